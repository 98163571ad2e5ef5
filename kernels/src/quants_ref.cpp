// Scalar reference kernels: see quants.hpp. This file: fp16/bf16 conversions, the plain float
// types and the 32-element formats Q8_0, Q4_0, Q4_1, IQ4_NL, Q5_0, Q5_1 (and the Q8_1 activations). The
// K-quants are in quants_ref_k.cpp.
//
// Every formula keeps the exact order of float operations of ggml's reference code, because
// dequantization and activation quantization must match llama.cpp bit for bit. The portable
// kernel sources are compiled with -ffp-contract=off (kernels/CMakeLists.txt), which the same
// bit-exactness needs: GCC would otherwise fuse a * b - c into one FMA on aarch64.
#include <cmath>
#include <cstring>
#include <limits>

#include "edgellm/kernels/quants.hpp"
#include "quants_ref_util.hpp"

namespace edgellm::kernels {

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

// ---- conversions ----

float fp16_to_fp32(fp16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return float_of(bits_of(v) | sign);
  }
  if (exp == 31) {  // Inf, or NaN with its payload, made quiet as ggml's conversion does
    return float_of(sign | 0x7F800000u | (mant << 13) | (mant ? 0x00400000u : 0u));
  }
  return float_of(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

fp16_t fp32_to_fp16(float f) {
  const uint32_t x = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7FFFFFFF;
  if (ax > 0x7F800000) return sign | 0x7E00;  // NaN: ggml gives a quiet NaN without payload
  if (ax >= 0x477FF000) return sign | 0x7C00;  // >= 65520 rounds to Inf
  if (ax >= 0x38800000) {                      // normal half (>= 2^-14)
    uint32_t h = (ax - (112u << 23)) >> 13;    // rebias exponent, keep 10 mantissa bits
    const uint32_t rest = ax & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // a carry moves into the exponent
    return sign | static_cast<uint16_t>(h);
  }
  if (ax <= 0x33000000) return sign;  // <= 2^-25: rounds to zero (2^-25 is a tie, to even 0)
  // Subnormal half: value / 2^-24 = m * 2^(e - 126) with m the 24-bit significand.
  const uint32_t e = ax >> 23;
  const uint32_t m = (ax & 0x7FFFFF) | 0x800000;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rest = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (h & 1))) ++h;
  return sign | static_cast<uint16_t>(h);
}

float bf16_to_fp32(bf16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

bf16_t fp32_to_bf16(float f) {
  const uint32_t x = bits_of(f);
  if ((x & 0x7FFFFFFF) > 0x7F800000) return static_cast<bf16_t>((x >> 16) | 0x40);  // quiet NaN
  const uint32_t lsb = (x >> 16) & 1;  // round to nearest even; overflow carries into Inf
  return static_cast<bf16_t>((x + 0x7FFF + lsb) >> 16);
}

void quantize_row_f16_ref(const float* x, fp16_t* y, int64_t k) {
  for (int64_t i = 0; i < k; ++i) y[i] = fp32_to_fp16(x[i]);
}

void quantize_row_bf16_ref(const float* x, bf16_t* y, int64_t k) {
  for (int64_t i = 0; i < k; ++i) y[i] = fp32_to_bf16(x[i]);
}

void dequantize_row_f16_ref(const fp16_t* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k; ++i) y[i] = fp16_to_fp32(x[i]);
}

void dequantize_row_bf16_ref(const bf16_t* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k; ++i) y[i] = bf16_to_fp32(x[i]);
}

// ---- Q8_0: w = d * q ----

// d = amax / 127 and q = round-half-away(x / d) with 1/d taken before d is rounded to fp16, as
// ggml does. Non-finite input: NaN elements are left out of amax and get q = 0; an Inf gives
// d = Inf (fp16 Inf), 1/d = 0 and so q = 0 for the whole block.
void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t k) {
  const int64_t nb = k / QK8_0;
  for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    if (std::isinf(id)) id = 0.0f;  // d is a tiny subnormal that fp16 stores as 0: so are the q
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) {
      const float v = std::round(x[j] * id);  // |v| <= 127 for finite input
      y[i].qs[j] = std::isnan(v) ? 0 : static_cast<int8_t>(std::fmax(-127.f, std::fmin(127.f, v)));
    }
  }
}

// Activations: as llama.cpp's CPU backend quantizes the input of a Q8_0/Q4_0 product on x86
// (quantize_row_q8_0 in its AVX2/AVX-512 builds), which differs from the weight quantizer above in
// the multiplier, 127 / amax rather than 1 / d, and in rounding halves to even. The two disagree on
// exact halves, which are common right after a Q4_0/Q8_0 embedding row (its values are small
// multiples of one scale), so matching it is what makes our logits llama.cpp's. Non-finite and
// tiny input: NaN is left out of amax and gives q = 0; an Inf gives d = Inf and q = 0; an amax
// below 127 / FLT_MAX (d = 0 in fp16) gives q = 0, where llama.cpp's overflowing multiplier gives
// -128s that its d = 0 cancels.
void quantize_row_q8_0_act_ref(const float* x, block_q8_0* y, int64_t k) {
  const int64_t nb = k / QK8_0;
  for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    if (std::isinf(id)) id = 0.0f;
    y[i].d = fp32_to_fp16(amax / 127.0f);
    for (int j = 0; j < QK8_0; ++j) {
      const float v = std::nearbyint(x[j] * id);  // the default rounding mode: halves to even
      y[i].qs[j] = std::isnan(v) ? 0 : static_cast<int8_t>(std::fmax(-127.f, std::fmin(127.f, v)));
    }
  }
}

void dequantize_row_q8_0_ref(const block_q8_0* x, float* y, int64_t k) {
  const int64_t nb = k / QK8_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK8_0; ++j) y[i * QK8_0 + j] = x[i].qs[j] * d;
  }
}

// ---- Q4_0: w = d * (q - 8) ----

// d = -(the value of largest magnitude) / 8, so that value maps to q = 0 exactly; the others are
// truncate(x / d + 8.5) capped to 0..15, as ggml does. NaN elements give q = 8 (zero); a block
// whose largest magnitude is Inf gets d = -+Inf and q = 8 throughout (1/d = 0, Inf * 0 is NaN).
void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t k) {
  const int64_t nb = k / QK4_0;
  for (int64_t i = 0; i < nb; ++i, x += QK4_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      uint8_t q[2];
      for (int h = 0; h < 2; ++h) {
        // In [0.5, 16.5] for finite input unless 1/d overflowed (d a tiny subnormal, 0 in fp16),
        // which gives +-Inf or NaN: there llama.cpp's x86 build stores 0 (its C conversion is
        // undefined; cvttss2si gives 0x80000000, whose low byte it keeps). So do we.
        const float v = x[j + h * QK4_0 / 2] * id + 8.5f;
        q[h] = !std::isfinite(v) ? 0 : static_cast<uint8_t>(std::fmax(0.f, std::fmin(15.f, v)));
      }
      y[i].qs[j] = q[0] | (q[1] << 4);
    }
  }
}

void dequantize_row_q4_0_ref(const block_q4_0* x, float* y, int64_t k) {
  const int64_t nb = k / QK4_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const int x0 = (x[i].qs[j] & 0xF) - 8;
      const int x1 = (x[i].qs[j] >> 4) - 8;
      y[i * QK4_0 + j] = x0 * d;
      y[i * QK4_0 + j + QK4_0 / 2] = x1 * d;
    }
  }
}

// ---- Q4_1: w = d * q + m ----

namespace {

// A 4-bit quant from v = (x - min) / d + 0.5, truncated and capped at 15 as ggml does
// (MIN(15, (int8_t)v)); where that conversion is undefined (NaN, Inf, out of int8 range: 1/d
// overflowed), 0, as llama.cpp's x86 build stores.
uint8_t q4_1_from(float v) {
  if (v >= 0.0f && v < 16.0f) return static_cast<uint8_t>(v);
  return v >= 16.0f && v < 128.0f ? 15 : 0;
}

}  // namespace

// m = the block's minimum, d = (max - min) / 15, q = truncate((x - min) / d + 0.5).
void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t k) {
  const int64_t nb = k / QK4_1;
  for (int64_t i = 0; i < nb; ++i, x += QK4_1) {
    float min = std::numeric_limits<float>::max(), max = -std::numeric_limits<float>::max();
    for (int j = 0; j < QK4_1; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const uint8_t q0 = q4_1_from((x[j] - min) * id + 0.5f);
      const uint8_t q1 = q4_1_from((x[j + QK4_1 / 2] - min) * id + 0.5f);
      y[i].qs[j] = static_cast<uint8_t>(q0 | q1 << 4);
    }
  }
}

void dequantize_row_q4_1_ref(const block_q4_1* x, float* y, int64_t k) {
  const int64_t nb = k / QK4_1;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d), m = fp16_to_fp32(x[i].m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      y[i * QK4_1 + j] = static_cast<float>(x[i].qs[j] & 0xF) * d + m;  // no FMA: ggml rounds twice
      y[i * QK4_1 + j + QK4_1 / 2] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
    }
  }
}

// ---- IQ4_NL: w = d * kvalues_iq4nl[q] ----

using detail::iq4_nl_index;

// llama.cpp's reference: d0 = max / -127 (max the element of largest magnitude), each element to
// its nearest level at x / d0, then the least-squares scale for those levels with weights x^2:
// d = sum(w q x) / sum(w q^2). Blocks with amax < 1e-15 get d = 0 and all quants 0.
void quantize_row_iq4_nl_ref(const float* x, block_iq4_nl* y, int64_t k) {
  const int64_t nb = k / QK4_NL;
  for (int64_t i = 0; i < nb; ++i, x += QK4_NL) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK4_NL; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    uint8_t L[QK4_NL] = {};
    float d = 0.0f;
    if (!(amax < 1e-15f)) {
      const float id = 1 / (max / kvalues_iq4nl[0]);
      float sumqx = 0.0f, sumq2 = 0.0f;
      for (int j = 0; j < QK4_NL; ++j) {
        const int l = iq4_nl_index(id * x[j]);
        L[j] = static_cast<uint8_t>(l);
        const float q = kvalues_iq4nl[l];
        const float w = x[j] * x[j];
        const float wq = w * q;
        const float wqx = wq * x[j];
        const float wqq = wq * q;
        sumqx += wqx;
        sumq2 += wqq;
      }
      d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    }
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_NL / 2; ++j) y[i].qs[j] = static_cast<uint8_t>(L[j] | L[j + QK4_NL / 2] << 4);
  }
}

// llama.cpp's quantize_iq4_nl without importance weights (what llama-quantize writes): the scale
// of detail::iq4_fit_scale (the reference's first scale, then 15 more tries), every element on its
// nearest level at x / d with the unrounded d. An (almost) all-zero block has d = 0 and every
// element on the level nearest 0.
void quantize_row_iq4_nl_file_ref(const float* x, block_iq4_nl* y, int64_t k) {
  const int64_t nb = k / QK4_NL;
  for (int64_t i = 0; i < nb; ++i, x += QK4_NL) {
    const float d = detail::iq4_fit_scale(x);
    const float id = d != 0 ? 1 / d : 0.0f;
    uint8_t L[QK4_NL];
    for (int j = 0; j < QK4_NL; ++j) L[j] = static_cast<uint8_t>(iq4_nl_index(id * x[j]));
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_NL / 2; ++j) y[i].qs[j] = static_cast<uint8_t>(L[j] | L[j + QK4_NL / 2] << 4);
  }
}

void dequantize_row_iq4_nl_ref(const block_iq4_nl* x, float* y, int64_t k) {
  const int64_t nb = k / QK4_NL;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK4_NL / 2; ++j) {
      y[i * QK4_NL + j] = d * static_cast<float>(kvalues_iq4nl[x[i].qs[j] & 0xF]);
      y[i * QK4_NL + j + QK4_NL / 2] = d * static_cast<float>(kvalues_iq4nl[x[i].qs[j] >> 4]);
    }
  }
}

// ---- Q5_0: w = d * (q - 16); Q5_1: w = d * q + m ----

namespace {

// A 5-bit quant from v = x / d + 16.5 (Q5_0) or (x - min) / d + 0.5 (Q5_1), truncated; from 32
// (Q5_0's largest positive values) capped at 31, as ggml does. Where ggml's C conversion is
// undefined (NaN, +-Inf) this is what llama.cpp's x86 build stores: 0 (cvttss2si gives
// 0x80000000, whose low byte it keeps). For finite input v is in [0, 32.5] unless 1/d overflowed
// (d a tiny subnormal, 0 in fp16), which gives +-Inf or NaN: so every finite row gets its bytes.
uint8_t q5_from(float v) {
  if (v >= 0.0f && v < 32.0f) return static_cast<uint8_t>(v);
  return v >= 32.0f && v < 128.0f ? 31 : 0;
}

// Element j (0..15) and j + 16 of a Q5 block: the nibbles of qs[j] and bits j, j + 16 of qh.
inline int q5_lo(const uint8_t* qs, uint32_t qh, int j) {
  return (qs[j] & 0xF) | static_cast<int>((qh >> j) & 1) << 4;
}
inline int q5_hi(const uint8_t* qs, uint32_t qh, int j) {
  return (qs[j] >> 4) | static_cast<int>((qh >> (j + 16)) & 1) << 4;
}

inline void store_qh(uint8_t* qh, uint32_t bits) {
  for (int b = 0; b < 4; ++b) qh[b] = static_cast<uint8_t>(bits >> (8 * b));
}

}  // namespace

// As Q4_0 with 16 levels each side: d = -(the value of largest magnitude) / 16, which maps to
// q = 0; the others are truncate(x / d + 16.5) capped at 31.
void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t k) {
  const int64_t nb = k / QK5_0;
  for (int64_t i = 0; i < nb; ++i, x += QK5_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK5_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const uint8_t q0 = q5_from(x[j] * id + 16.5f);
      const uint8_t q1 = q5_from(x[j + QK5_0 / 2] * id + 16.5f);
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | (q1 & 0xF) << 4);
      qh |= static_cast<uint32_t>(q0 >> 4) << j | static_cast<uint32_t>(q1 >> 4) << (j + QK5_0 / 2);
    }
    store_qh(y[i].qh, qh);
  }
}

// m = the block's minimum, d = (max - min) / 31, q = truncate((x - min) / d + 0.5), as ggml does
// (comparisons skip NaN elements).
void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t k) {
  const int64_t nb = k / QK5_1;
  for (int64_t i = 0; i < nb; ++i, x += QK5_1) {
    float min = std::numeric_limits<float>::max(), max = -std::numeric_limits<float>::max();
    for (int j = 0; j < QK5_1; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const uint8_t q0 = q5_from((x[j] - min) * id + 0.5f);
      const uint8_t q1 = q5_from((x[j + QK5_1 / 2] - min) * id + 0.5f);
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | (q1 & 0xF) << 4);
      qh |= static_cast<uint32_t>(q0 >> 4) << j | static_cast<uint32_t>(q1 >> 4) << (j + QK5_1 / 2);
    }
    store_qh(y[i].qh, qh);
  }
}

void dequantize_row_q5_0_ref(const block_q5_0* x, float* y, int64_t k) {
  const int64_t nb = k / QK5_0;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const uint32_t qh = q5_high_bits(x[i].qh);
    for (int j = 0; j < QK5_0 / 2; ++j) {
      y[i * QK5_0 + j] = static_cast<float>(q5_lo(x[i].qs, qh, j) - 16) * d;
      y[i * QK5_0 + j + QK5_0 / 2] = static_cast<float>(q5_hi(x[i].qs, qh, j) - 16) * d;
    }
  }
}

void dequantize_row_q5_1_ref(const block_q5_1* x, float* y, int64_t k) {
  const int64_t nb = k / QK5_1;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d), m = fp16_to_fp32(x[i].m);
    const uint32_t qh = q5_high_bits(x[i].qh);
    for (int j = 0; j < QK5_1 / 2; ++j) {
      y[i * QK5_1 + j] = static_cast<float>(q5_lo(x[i].qs, qh, j)) * d + m;  // no FMA: ggml rounds twice
      y[i * QK5_1 + j + QK5_1 / 2] = static_cast<float>(q5_hi(x[i].qs, qh, j)) * d + m;
    }
  }
}

// ---- Q8_1 activations: a = d * q, s = d * sum(q) ----

// The Q8_0 activation quantizer's d and q (see quantize_row_q8_0_act_ref), and s rounded to fp16
// from the float product of the unrounded d and the integer sum, as llama.cpp's x86 backend does.
void quantize_row_q8_1_act_ref(const float* x, block_q8_1* y, int64_t k) {
  const int64_t nb = k / QK8_1;
  for (int64_t i = 0; i < nb; ++i, x += QK8_1) {
    block_q8_0 b;
    quantize_row_q8_0_act_ref(x, &b, QK8_1);
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) sum += b.qs[j];
    y[i].d = b.d;
    y[i].s = fp32_to_fp16(amax / 127.0f * static_cast<float>(sum));
    std::memcpy(y[i].qs, b.qs, QK8_1);
  }
}

void dequantize_row_q8_1_ref(const block_q8_1* x, float* y, int64_t k) {
  const int64_t nb = k / QK8_1;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK8_1; ++j) y[i * QK8_1 + j] = x[i].qs[j] * d;
  }
}

// ---- dot products ----
// Integer sums are exact (int32 cannot overflow for these block sizes). Scale products and the
// sum over blocks are taken in double and rounded to float once, so for a result r and the exact
// value s of the dot product of the dequantized rows:
//   |r - s| <= 2^-24 |s| + 2^-50 * sum over blocks of |block term|
// (in practice the reference is the correctly rounded value). Optimized kernels accumulate in
// float and are compared with these under their own written-down bounds.

float vec_dot_q8_0_q8_0_ref(int64_t n, const block_q8_0* x, const block_q8_0* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < QK8_0; ++j) sumi += x[i].qs[j] * y[i].qs[j];
    sum += static_cast<double>(fp16_to_fp32(x[i].d)) * fp16_to_fp32(y[i].d) * sumi;
  }
  return static_cast<float>(sum);
}

float vec_dot_q4_0_q8_0_ref(int64_t n, const block_q4_0* x, const block_q8_0* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK4_0; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      sumi += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j];
      sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + QK4_0 / 2];
    }
    sum += static_cast<double>(fp16_to_fp32(x[i].d)) * fp16_to_fp32(y[i].d) * sumi;
  }
  return static_cast<float>(sum);
}

// sum over blocks of d_x d_y sum(q_x q_y) + m_x s_y, as Q5_1.
float vec_dot_q4_1_q8_1_ref(int64_t n, const block_q4_1* x, const block_q8_1* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK4_1; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < QK4_1 / 2; ++j) {
      sumi += (x[i].qs[j] & 0xF) * y[i].qs[j];
      sumi += (x[i].qs[j] >> 4) * y[i].qs[j + QK4_1 / 2];
    }
    sum += static_cast<double>(fp16_to_fp32(x[i].d)) * fp16_to_fp32(y[i].d) * sumi +
           static_cast<double>(fp16_to_fp32(x[i].m)) * fp16_to_fp32(y[i].s);
  }
  return static_cast<float>(sum);
}

float vec_dot_iq4_nl_q8_0_ref(int64_t n, const block_iq4_nl* x, const block_q8_0* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK4_NL; ++i) {
    int32_t sumi = 0;
    for (int j = 0; j < QK4_NL / 2; ++j) {
      sumi += kvalues_iq4nl[x[i].qs[j] & 0xF] * y[i].qs[j];
      sumi += kvalues_iq4nl[x[i].qs[j] >> 4] * y[i].qs[j + QK4_NL / 2];
    }
    sum += static_cast<double>(fp16_to_fp32(x[i].d)) * fp16_to_fp32(y[i].d) * sumi;
  }
  return static_cast<float>(sum);
}

float vec_dot_q5_0_q8_0_ref(int64_t n, const block_q5_0* x, const block_q8_0* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK5_0; ++i) {
    const uint32_t qh = q5_high_bits(x[i].qh);
    int32_t sumi = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      sumi += (q5_lo(x[i].qs, qh, j) - 16) * y[i].qs[j];
      sumi += (q5_hi(x[i].qs, qh, j) - 16) * y[i].qs[j + QK5_0 / 2];
    }
    sum += static_cast<double>(fp16_to_fp32(x[i].d)) * fp16_to_fp32(y[i].d) * sumi;
  }
  return static_cast<float>(sum);
}

// sum over blocks of d_x d_y sum(q_x q_y) + m_x s_y: the min term through the activation's s.
float vec_dot_q5_1_q8_1_ref(int64_t n, const block_q5_1* x, const block_q8_1* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK5_1; ++i) {
    const uint32_t qh = q5_high_bits(x[i].qh);
    int32_t sumi = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      sumi += q5_lo(x[i].qs, qh, j) * y[i].qs[j];
      sumi += q5_hi(x[i].qs, qh, j) * y[i].qs[j + QK5_1 / 2];
    }
    sum += static_cast<double>(fp16_to_fp32(x[i].d)) * fp16_to_fp32(y[i].d) * sumi +
           static_cast<double>(fp16_to_fp32(x[i].m)) * fp16_to_fp32(y[i].s);
  }
  return static_cast<float>(sum);
}

float vec_dot_f16_f32_ref(int64_t n, const fp16_t* x, const float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(fp16_to_fp32(x[i])) * y[i];
  return static_cast<float>(sum);
}

float vec_dot_bf16_f32_ref(int64_t n, const bf16_t* x, const float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_fp32(x[i])) * y[i];
  return static_cast<float>(sum);
}

float vec_dot_f32_f32_ref(int64_t n, const float* x, const float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * y[i];
  return static_cast<float>(sum);
}

namespace {
float as_float(float v) { return v; }
template <typename T, float (*to_f32)(T)>
void matmul_kn_ref(int64_t n, const T* w, int64_t ldw, int64_t n_cols, const float* x, int64_t ldx,
                   int64_t n_x, float* y, int64_t ldy) {
  for (int64_t i = 0; i < n_x; ++i) {
    for (int64_t j = 0; j < n_cols; ++j) {
      double sum = 0.0;
      for (int64_t k = 0; k < n; ++k) sum += static_cast<double>(x[i * ldx + k]) * to_f32(w[k * ldw + j]);
      y[i * ldy + j] = static_cast<float>(sum);
    }
  }
}
}  // namespace

void matmul_kn_f16_f32_ref(int64_t n, const fp16_t* w, int64_t ldw, int64_t n_cols, const float* x,
                           int64_t ldx, int64_t n_x, float* y, int64_t ldy) {
  matmul_kn_ref<fp16_t, fp16_to_fp32>(n, w, ldw, n_cols, x, ldx, n_x, y, ldy);
}

void matmul_kn_f32_f32_ref(int64_t n, const float* w, int64_t ldw, int64_t n_cols, const float* x,
                           int64_t ldx, int64_t n_x, float* y, int64_t ldy) {
  matmul_kn_ref<float, as_float>(n, w, ldw, n_cols, x, ldx, n_x, y, ldy);
}

}  // namespace edgellm::kernels
