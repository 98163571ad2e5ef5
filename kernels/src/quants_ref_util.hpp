// Small helpers shared by the scalar reference kernels (quants_ref.cpp, quants_ref_k.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "edgellm/kernels/blocks.hpp"

namespace edgellm::kernels::detail {

// Round to nearest, ties to even (the default rounding mode; the same integer ggml's nearest_int
// gives for |x| < 2^22). Total: NaN gives 0 and huge values saturate, so no input is undefined.
// Adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits (as ggml does): inline
// and branch-free, where std::nearbyint is a libm call (10% of quantizing a model).
inline int nearest_int(float x) {
  if (std::isnan(x)) return 0;
  if (x >= 4194303.f) return 4194303;
  if (x <= -4194303.f) return -4194303;
  const float shifted = x + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007FFFFF) - 0x00400000;
}

// std::clamp(nearest_int(x), lo, hi) as a float, for 0 <= lo <= hi < 2^22, in operations a
// compiler can vectorize: the same value for every x (NaN gives lo, +-inf and huge values clamp).
inline float nearest_clamped(float x, float lo, float hi) {
  float r = (x + 12582912.f) - 12582912.f;  // x rounded to an integer, ties to even
  r = r > lo ? r : lo;                       // NaN compares false: lo
  return r < hi ? r : hi;
}

// The 256 4-bit quants of a Q4_K block in element order. qs holds 4 groups of 32 bytes; group g
// carries elements 64 g + l (low nibble) and 64 g + 32 + l (high nibble).
inline void unpack_q4_K(const block_q4_K& b, uint8_t q[QK_K]) {
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l) {
      q[64 * g + l] = b.qs[32 * g + l] & 0xF;
      q[64 * g + 32 + l] = b.qs[32 * g + l] >> 4;
    }
  }
}

// The 256 6-bit quants (0..63) of a Q6_K block in element order. Each half h of 128 elements uses
// ql[64 h ..] and qh[32 h ..]: for l < 32, elements 128 h + l, +32, +64, +96 take their low 4 bits
// from ql[l] low, ql[l + 32] low, ql[l] high, ql[l + 32] high, and their top 2 bits from qh[l]
// bits 0-1, 2-3, 4-5, 6-7. Element e uses scales[e / 16].
inline void unpack_q6_K(const block_q6_K& b, uint8_t q[QK_K]) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    uint8_t* out = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      out[l + 0] = (ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4);
      out[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
      out[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
      out[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
    }
  }
}


// The 256 5-bit quants (0..31) of a Q5_K block in element order: the low 4 bits as Q4_K's, the
// 5th bit of element e is bit e / 32 of qh[e % 32].
inline void unpack_q5_K(const block_q5_K& b, uint8_t q[QK_K]) {
  for (int g = 0; g < 4; ++g) {
    for (int l = 0; l < 32; ++l) {
      q[64 * g + l] = b.qs[32 * g + l] & 0xF;
      q[64 * g + 32 + l] = b.qs[32 * g + l] >> 4;
    }
  }
  for (int e = 0; e < QK_K; ++e) q[e] |= ((b.qh[e % 32] >> (e / 32)) & 1) << 4;
}

// The 256 2-bit fields of a Q2_K / Q3_K qs array in element order: element 128 h + 32 s + l is
// bits 2 s, 2 s + 1 of qs[32 h + l].
inline void unpack_2bit_K(const uint8_t* qs, uint8_t q[QK_K]) {
  for (int e = 0; e < QK_K; ++e) q[e] = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

// The 256 3-bit quants of a Q3_K block minus 4 (-4..3) in element order: the 2-bit field, minus 4
// where the element's hmask bit (bit e / 32 of hmask[e % 32]) is clear.
inline void unpack_q3_K(const block_q3_K& b, int8_t q[QK_K]) {
  uint8_t low[QK_K];
  unpack_2bit_K(b.qs, low);
  for (int e = 0; e < QK_K; ++e) q[e] = static_cast<int8_t>(low[e] - (((b.hmask[e % 32] >> (e / 32)) & 1) ? 0 : 4));
}

// The index of the IQ4_NL level nearest to v (ties to the lower one unless v is nearer the upper),
// by bisection as ggml's best_index_int8; NaN lands on the last level.
inline int iq4_nl_index(float v) {
  if (v <= kvalues_iq4nl[0]) return 0;
  if (!(v < kvalues_iq4nl[15])) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < kvalues_iq4nl[mid]) hi = mid;
    else lo = mid;
  }
  return v - kvalues_iq4nl[hi - 1] < kvalues_iq4nl[hi] - v ? hi - 1 : hi;
}

// The x^2-weighted least-squares scale of one 32-element sub-block on the IQ4_NL levels: from
// d = max / 127 (max the element of largest magnitude) with each element on its nearest level,
// then the inverse scales (t - 127) / max, t = -7..7, keeping the scale whose levels reduce the
// error most (the levels themselves are recomputed later). 0 for an (almost) all-zero sub-block.
inline float iq4_fit_scale(const float* x) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  if (amax < 1e-15f) return 0.0f;
  // sum w q x and sum w q^2 (w = x^2) for the levels nearest to x * id.
  auto sums = [&](float id, float* sum_qx, float* sum_q2) {
    *sum_qx = 0;
    *sum_q2 = 0;
    for (int j = 0; j < 32; ++j) {
      const float q = kvalues_iq4nl[iq4_nl_index(id * x[j])];
      const float w = x[j] * x[j];
      *sum_qx += w * q * x[j];
      *sum_q2 += w * q * q;
    }
  };
  float sum_qx, sum_q2;
  sums(1 / (-max / kvalues_iq4nl[0]), &sum_qx, &sum_q2);
  float d = sum_q2 > 0 ? sum_qx / sum_q2 : 0.0f;
  float best = d * sum_qx;  // = sum_qx^2 / sum_q2, the error reduction to maximise
  for (int t = -7; t <= 7; ++t) {
    sums((t + kvalues_iq4nl[0]) / max, &sum_qx, &sum_q2);
    if (sum_q2 > 0 && sum_qx * sum_qx > best * sum_q2) {
      d = sum_qx / sum_q2;
      best = d * sum_qx;
    }
  }
  return d;
}

}  // namespace edgellm::kernels::detail
