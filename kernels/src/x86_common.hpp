// Internal: small helpers shared by the x86 kernel files (kernels_avx2.cpp, kernels_avx512.cpp).
// Needs AVX2 + F16C, which both files are compiled with. Internal linkage (anonymous namespace),
// so each file keeps its own copy built with its own instruction set: a shared inline copy could
// be the AVX-512 one, which an AVX2-only CPU cannot run.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "edgellm/kernels/blocks.hpp"
#include "edgellm/kernels/quants.hpp"
#include "gemm_tile.hpp"

namespace edgellm::kernels::x86 {
namespace {

inline float fp16(fp16_t h) { return _cvtsh_ss(h); }

// The decode kernels read each weight row once, front to back, from DRAM. The hardware prefetcher
// alone keeps too few lines in flight for this machine's two cores to reach the memory bandwidth;
// asking for the bytes kPrefetchAhead ahead of the ones in use does (Q4_K GEMV from DRAM with two
// threads: 14 -> 21 GiB/s; 1 KiB ahead gave 18, 4 KiB the same as 2). Call once per `bytes` of
// weights consumed. Past the end of a row this touches the next one or unmapped memory: harmless,
// a prefetch never faults.
constexpr int kPrefetchAhead = 2048;
template <int bytes>
inline void prefetch_ahead(const void* p) {
  const char* c = static_cast<const char*>(p) + kPrefetchAhead;
  for (int o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

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

// max |x[i]| over n floats (n a multiple of 8), NaN left out: vmaxps returns its second operand,
// the running maximum, when the first is NaN. The activation quantizers' amax.
inline float abs_max(const float* x, int n) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 vmax = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8) vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask), vmax);
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  return _mm_cvtss_f32(m4);
}

// One block of Q8_0 / Q8_1 activations, bit-exact with quantize_row_q8_0_act_ref: d = amax / 127
// (NaN left out of amax), q = x * (127 / amax) rounded half to even, NaN -> 0, clamped to +-127.
// Returns amax; *sum gets the sum of the quants (Q8_1's s).
inline float quantize_block_q8(const float* x, fp16_t& d, int8_t* qs, int* sum) {
  const float amax = abs_max(x, QK8_0);
  float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  if (std::isinf(id)) id = 0.0f;  // amax < 127 / FLT_MAX: d is 0 in fp16, so are the q
  d = fp32_to_fp16(amax / 127.0f);
  __m256i q[4];
  for (int h = 0; h < 4; ++h) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * h), _mm256_set1_ps(id));
    __m256 r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q));  // NaN -> 0
    r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-127.f)), _mm256_set1_ps(127.f));
    q[h] = _mm256_cvtps_epi32(r);
  }
  if (sum) {
    __m256i t = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    *sum = _mm_cvtsi128_si32(s);
  }
  // 32 int32 -> 32 int8 in order (the packs work per 128-bit lane; permute back)
  const __m256i w01 = _mm256_packs_epi32(q[0], q[1]), w23 = _mm256_packs_epi32(q[2], q[3]);
  const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), b);
  return amax;
}

inline void quantize_row_q8_0(const float* x, block_q8_0* y, int64_t k) {
  for (int64_t i = 0; i < k / QK8_0; ++i, x += QK8_0) quantize_block_q8(x, y[i].d, y[i].qs, nullptr);
}

// Q8_1 activations, bit-exact with quantize_row_q8_1_act_ref: Q8_0's d and q, and
// s = fp16(amax / 127 * sum(q)) from the unrounded d.
inline void quantize_row_q8_1(const float* x, block_q8_1* y, int64_t k) {
  for (int64_t i = 0; i < k / QK8_1; ++i, x += QK8_1) {
    int sum = 0;
    const float amax = quantize_block_q8(x, y[i].d, y[i].qs, &sum);
    y[i].s = fp32_to_fp16(amax / 127.0f * static_cast<float>(sum));
  }
}

// The 5th bits of a Q5_0 / Q5_1 block as bytes, in element order: 0x10 where bit e of qh is set.
inline __m256i q5_high_bytes(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  // Byte e takes qh byte e / 8 (the shuffle works per 128-bit lane: lane 1 holds elements 16..31),
  // then tests its bit e % 8.
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

// The 32 quants of a Q5_0 / Q5_1 block, 0..31, as bytes in element order.
inline __m256i q5_quants(const uint8_t* qs, const uint8_t* qh) {
  const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(lo, 4), lo), _mm256_set1_epi8(0x0F));
  return _mm256_or_si256(nibbles, q5_high_bytes(qh));
}

// Q8_0 rows to floats (the Q8_0 KV cache's V rows), bit-exact: q * d in float, as the reference.
inline void dequantize_row_q8_0(const block_q8_0* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / QK8_0; ++i, y += QK8_0) {
    const __m256 d = _mm256_set1_ps(fp16(x[i].d));
    for (int j = 0; j < QK8_0; j += 8) {
      const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[i].qs + j)));
      _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
    }
  }
}

// The 32 quants of a 32-element-format block in element order as gemm_tile.hpp's u8 layout has
// them (gemm::Small<B>::raw's bytes: Q8_0 q + 128, IQ4_NL level + 128, the others their raw
// quants), and as the s16 layout's int16 levels, raw - offset; for the prefill tiles' packing.
struct Unpack32 {
  template <typename B>
  static __m256i raw_vec(const B& x) {
    if constexpr (std::is_same_v<B, block_q8_0>) {
      return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qs)), _mm256_set1_epi8(static_cast<char>(0x80)));
    } else if constexpr (std::is_same_v<B, block_q5_0> || std::is_same_v<B, block_q5_1>) {
      return q5_quants(x.qs, x.qh);
    } else {
      const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.qs));
      const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(lo, 4), lo), _mm256_set1_epi8(0x0F));
      if constexpr (std::is_same_v<B, block_iq4_nl>) {
        alignas(16) uint8_t t[16];
        for (int i = 0; i < 16; ++i) t[i] = static_cast<uint8_t>(kvalues_iq4nl[i] + 128);
        const __m128i t128 = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
        return _mm256_shuffle_epi8(_mm256_set_m128i(t128, t128), nib);
      } else {
        return nib;  // Q4_0, Q4_1
      }
    }
  }
  template <typename B>
  static void raw(const B& x, uint8_t* u) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(u), raw_vec(x));
  }
  template <typename B>
  static void levels(const B& x, int16_t* q) {
    const __m256i u = raw_vec(x), off = _mm256_set1_epi16(gemm::Small<B>::offset);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(u)), off));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 16), _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(u, 1)), off));
  }
};

// ---- row and element-wise ops, 8 floats at a time (both x86 tables use these) ----
// Bit-identical with ops.hpp's _ref: the same float operations per element, in the same order.
// No fused multiply-add: these files are built with -mfma and GCC contracts a * b + c written
// with operators (or generic vector intrinsics); a product feeding a sum goes through a builtin.

inline void add(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) y[i] = a[i] + b[i];
}

inline void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  // The sum of squares in ggml's order (one double, element by element; see ops.cpp's rms_norm:
  // a partial-sum order would move the scale by an ulp now and then, and the logits with it).
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = n > 0 ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
  const float s = 1.0f / std::sqrt(mean + eps);
  const __m256 sv = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv), _mm256_loadu_ps(weight + i)));
  for (; i < n; ++i) y[i] = (x[i] * s) * weight[i];
}

// Adjacent pairs (2i, 2i+1) of the first n_rot dims of each head, rotated by cos_sin = (c0, s0,
// c1, s1, ...): x' = (x0 c - x1 s, x0 s + x1 c), as addsub(x * c, swap(x) * s).
inline void rope_norm_with(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_sin) {
  const int64_t n = (n_rot < head_dim ? n_rot : head_dim) & ~int64_t{1};
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 cs = _mm256_loadu_ps(cos_sin + i);
      const __m256 v = _mm256_loadu_ps(xh + i);
      const __m256 c = _mm256_moveldup_ps(cs), s = _mm256_movehdup_ps(cs);
      const __m256 swapped = _mm256_permute_ps(v, 0xB1);  // (x1, x0, x3, x2, ...)
      _mm256_storeu_ps(xh + i, _mm256_addsub_ps(_mm256_mul_ps(v, c), _mm256_mul_ps(swapped, s)));
    }
    for (; i < n; i += 2) {  // scalar intrinsics: GCC would fuse `x0 * c - x1 * s` into an fmsub here
      const __m128 c = _mm_set_ss(cos_sin[i]), s = _mm_set_ss(cos_sin[i + 1]);
      const __m128 x0 = _mm_set_ss(xh[i]), x1 = _mm_set_ss(xh[i + 1]);
      xh[i] = _mm_cvtss_f32(_mm_sub_ss(_mm_mul_ss(x0, c), _mm_mul_ss(x1, s)));
      xh[i + 1] = _mm_cvtss_f32(_mm_add_ss(_mm_mul_ss(x0, s), _mm_mul_ss(x1, c)));
    }
  }
}

}  // namespace
}  // namespace edgellm::kernels::x86
