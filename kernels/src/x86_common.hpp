// Internal: small helpers shared by the x86 kernel files (kernels_avx2.cpp, kernels_avx512.cpp).
// Needs AVX2 + F16C, which both files are compiled with; inline, so each file gets its own copy
// built with its own instruction set.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "edgellm/kernels/blocks.hpp"

namespace edgellm::kernels::x86 {

inline float fp16(fp16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The eight 6-bit scales and eight 6-bit mins of a Q4_K block (the same values as
// q4_K_scale_min for j = 0..7), as bytes of two 64-bit words, in a few 32-bit operations.
inline void q4_K_scales_mins(const uint8_t* s, uint64_t& sc, uint64_t& mn) {
  uint32_t u0, u1, u2;
  std::memcpy(&u0, s, 4);
  std::memcpy(&u1, s + 4, 4);
  std::memcpy(&u2, s + 8, 4);
  const uint32_t sc_lo = u0 & 0x3f3f3f3f;
  const uint32_t mn_lo = u1 & 0x3f3f3f3f;
  const uint32_t sc_hi = (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4);
  const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4);
  sc = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  mn = mn_lo | (static_cast<uint64_t>(mn_hi) << 32);
}

}  // namespace edgellm::kernels::x86
