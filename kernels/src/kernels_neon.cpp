// The NEON kernel tables (aarch64). Every aarch64 CPU has armv8.0 NEON, so the "neon" table
// always runs; on CPUs with the armv8.2 dot-product extension (HWCAP_ASIMDDP, checked at run
// time) the integer dot products and the inner kernels of the Q4_K / Q5_K / Q6_K prefill tiles
// come from kernels_dotprod.cpp instead ("neon+dotprod"). Both tables are built here, in armv8.0
// code.
//
// Dequantization and activation quantization are bit-exact with the references: the same float
// operations in the same order (this file is compiled without FMA contraction; fused
// multiply-adds appear only where written, in the dot products). Dot products: see neon_dots.hpp.
#include <arm_neon.h>

#include <cmath>
#include <cstring>

#if defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#include "edgellm/kernels/quants.hpp"
#include "gemm_tile.hpp"
#include "kernel_sets.hpp"
#include "neon_dots.hpp"
#include "neon_kernels.hpp"
#include "quants_ref_util.hpp"

namespace edgellm::kernels {

namespace {

// ---- integer dot products, armv8.0 ----

// int8 pairs without sdot: widening multiplies into int16 lanes, added pairwise into the int32
// lanes (vpadal). Any int8 pair: one product per int16 lane (-128 * -128 = 2^14 fits). The small
// forms add two products below 2^14, or four below 2^13, in an int16 lane before widening.
struct WideningDot {
  static int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
  }
  static int32x4_t dot16_small(int32x4_t acc, int8x16_t a, int8x16_t b) {
    return vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b));
  }
  static int32x4_t dot32_small(int32x4_t acc, int8x16_t a0, int8x16_t b0, int8x16_t a1, int8x16_t b1) {
    int16x8_t p = vmull_s8(vget_low_s8(a0), vget_low_s8(b0));
    p = vmlal_high_s8(p, a0, b0);
    p = vmlal_s8(p, vget_low_s8(a1), vget_low_s8(b1));
    return vpadalq_s16(acc, vmlal_high_s8(p, a1, b1));
  }
};

float vec_dot_q4_K_q8_K_neon(int64_t n, const block_q4_K* x, const block_q8_K* y) {
  return dot_q4_K_q8_K<WideningDot>(n, x, y);
}
float vec_dot_q6_K_q8_K_neon(int64_t n, const block_q6_K* x, const block_q8_K* y) {
  return dot_q6_K_q8_K<WideningDot>(n, x, y);
}
float vec_dot_q8_0_q8_0_neon(int64_t n, const block_q8_0* x, const block_q8_0* y) {
  return dot_32_q8_0<WideningDot>(n, x, y);
}
float vec_dot_q4_0_q8_0_neon(int64_t n, const block_q4_0* x, const block_q8_0* y) {
  return dot_32_q8_0<WideningDot>(n, x, y);
}
float vec_dot_q5_K_q8_K_neon(int64_t n, const block_q5_K* x, const block_q8_K* y) {
  return dot_q4_K_q8_K<WideningDot>(n, x, y);
}
float vec_dot_q3_K_q8_K_neon(int64_t n, const block_q3_K* x, const block_q8_K* y) {
  return dot_q3_K_q8_K<WideningDot>(n, x, y);
}
float vec_dot_q2_K_q8_K_neon(int64_t n, const block_q2_K* x, const block_q8_K* y) {
  return dot_q2_K_q8_K<WideningDot>(n, x, y);
}
float vec_dot_iq4_xs_q8_K_neon(int64_t n, const block_iq4_xs* x, const block_q8_K* y) {
  return dot_iq4_xs_q8_K<WideningDot>(n, x, y);
}
float vec_dot_q5_0_q8_0_neon(int64_t n, const block_q5_0* x, const block_q8_0* y) {
  return dot_32_q8_0<WideningDot>(n, x, y);
}
float vec_dot_iq4_nl_q8_0_neon(int64_t n, const block_iq4_nl* x, const block_q8_0* y) {
  return dot_32_q8_0<WideningDot>(n, x, y);
}
float vec_dot_q4_1_q8_1_neon(int64_t n, const block_q4_1* x, const block_q8_1* y) {
  return dot_32_q8_1<WideningDot>(n, x, y);
}
float vec_dot_q5_1_q8_1_neon(int64_t n, const block_q5_1* x, const block_q8_1* y) {
  return dot_32_q8_1<WideningDot>(n, x, y);
}

// ---- float rows: f32 / f16 / bf16 weights (or KV cache) times f32 ----

// 16 values as four float vectors. fp16 -> f32 with fcvtl (exact, NaN payloads kept and made
// quiet like fp16_to_fp32); bf16 -> f32 is a 16-bit left shift.
struct F32 {
  using T = float;
  static float32x4x4_t load16(const float* p) { return vld1q_f32_x4(p); }
  static float one(float v) { return v; }
};
struct F16 {
  using T = fp16_t;
  static float32x4x4_t load16(const fp16_t* p) {
    const float16x8_t a = vreinterpretq_f16_u16(vld1q_u16(p)), b = vreinterpretq_f16_u16(vld1q_u16(p + 8));
    return {{vcvt_f32_f16(vget_low_f16(a)), vcvt_high_f32_f16(a), vcvt_f32_f16(vget_low_f16(b)),
             vcvt_high_f32_f16(b)}};
  }
  static float one(fp16_t v) { return fp16_to_fp32(v); }
};
struct BF16 {
  using T = bf16_t;
  static float32x4_t widen(uint16x4_t v) { return vreinterpretq_f32_u32(vshll_n_u16(v, 16)); }
  static float32x4x4_t load16(const bf16_t* p) {
    const uint16x8_t a = vld1q_u16(p), b = vld1q_u16(p + 8);
    return {{widen(vget_low_u16(a)), widen(vget_high_u16(a)), widen(vget_low_u16(b)), widen(vget_high_u16(b))}};
  }
  static float one(bf16_t v) { return bf16_to_fp32(v); }
};

// Four independent accumulators (16 lanes, each summing n / 16 products with fma), one horizontal
// add; the last n % 16 values in scalar.
template <class L>
float dot_to_f32(int64_t n, const typename L::T* x, const float* y) {
  float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const float32x4x4_t xv = L::load16(x + i);
    const float32x4x4_t yv = vld1q_f32_x4(y + i);
    for (int k = 0; k < 4; ++k) acc[k] = vfmaq_f32(acc[k], xv.val[k], yv.val[k]);
  }
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; ++i) sum += L::one(x[i]) * y[i];
  return sum;
}

// y = x . W for a k-major W (attention scores): column blocks of 16 for up to 4 query rows, each
// converted W vector feeding 4 fma with the query element by lane; the last n_cols % 16 columns
// in scalar, the same fma chain per y.
template <class L, int NX>
void kn_block(int64_t n, const typename L::T* w, int64_t ldw, const float* x, int64_t ldx, float* y, int64_t ldy) {
  float32x4_t acc[NX][4];
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < 4; ++v) acc[i][v] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < n; ++k) {
    const float32x4x4_t wv = L::load16(w + k * ldw);
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      const float32x4_t xi = vdupq_n_f32(x[i * ldx + k]);
#pragma GCC unroll 16
      for (int v = 0; v < 4; ++v) acc[i][v] = vfmaq_f32(acc[i][v], wv.val[v], xi);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < 4; ++v) vst1q_f32(y + i * ldy + 4 * v, acc[i][v]);
}

template <class L>
void matmul_kn(int64_t n, const typename L::T* w, int64_t ldw, int64_t n_cols, const float* x, int64_t ldx,
               int64_t n_x, float* y, int64_t ldy) {
  int64_t j = 0;
  for (; j + 16 <= n_cols; j += 16) {
    for (int64_t i = 0; i < n_x; i += 4) {
      const int64_t nx = n_x - i < 4 ? n_x - i : 4;
      const float* xi = x + i * ldx;
      float* yi = y + i * ldy + j;
      if (nx == 4) kn_block<L, 4>(n, w + j, ldw, xi, ldx, yi, ldy);
      else if (nx == 3) kn_block<L, 3>(n, w + j, ldw, xi, ldx, yi, ldy);
      else if (nx == 2) kn_block<L, 2>(n, w + j, ldw, xi, ldx, yi, ldy);
      else kn_block<L, 1>(n, w + j, ldw, xi, ldx, yi, ldy);
    }
  }
  for (; j < n_cols; ++j) {
    for (int64_t i = 0; i < n_x; ++i) {
      float s = 0.0f;
      for (int64_t k = 0; k < n; ++k) s = std::fma(L::one(w[k * ldw + j]), x[i * ldx + k], s);
      y[i * ldy + j] = s;
    }
  }
}

void matmul_kn_f16_f32_neon(int64_t n, const fp16_t* w, int64_t ldw, int64_t n_cols, const float* x,
                            int64_t ldx, int64_t n_x, float* y, int64_t ldy) {
  matmul_kn<F16>(n, w, ldw, n_cols, x, ldx, n_x, y, ldy);
}
void matmul_kn_f32_f32_neon(int64_t n, const float* w, int64_t ldw, int64_t n_cols, const float* x,
                            int64_t ldx, int64_t n_x, float* y, int64_t ldy) {
  matmul_kn<F32>(n, w, ldw, n_cols, x, ldx, n_x, y, ldy);
}

float vec_dot_f32_f32_neon(int64_t n, const float* x, const float* y) { return dot_to_f32<F32>(n, x, y); }
float vec_dot_f16_f32_neon(int64_t n, const fp16_t* x, const float* y) { return dot_to_f32<F16>(n, x, y); }
float vec_dot_bf16_f32_neon(int64_t n, const bf16_t* x, const float* y) { return dot_to_f32<BF16>(n, x, y); }

template <class L>
void to_f32(const typename L::T* x, float* y, int64_t k) {
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) vst1q_f32_x4(y + i, L::load16(x + i));
  for (; i < k; ++i) y[i] = L::one(x[i]);
}

void dequantize_row_f16_neon(const fp16_t* x, float* y, int64_t k) { to_f32<F16>(x, y, k); }
void dequantize_row_bf16_neon(const bf16_t* x, float* y, int64_t k) { to_f32<BF16>(x, y, k); }

// ---- dequantization (the references' float operations, in their order) ----

// 16 integer quants (exact in float) as four float vectors.
inline float32x4x4_t u8_to_f32(uint8x16_t q) {
  const uint16x8_t lo = vmovl_u8(vget_low_u8(q)), hi = vmovl_high_u8(q);
  return {{vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))), vcvtq_f32_u32(vmovl_high_u16(lo)),
           vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))), vcvtq_f32_u32(vmovl_high_u16(hi))}};
}
inline float32x4x4_t s8_to_f32(int8x16_t q) {
  const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
  return {{vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), vcvtq_f32_s32(vmovl_high_s16(lo)),
           vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), vcvtq_f32_s32(vmovl_high_s16(hi))}};
}

// y[l] = scale * q[l] for 16 values (Q8_0, Q4_0 and Q6_K: q * d or d * q, the same product).
inline void store_scaled(float* y, int8x16_t q, float scale) {
  const float32x4x4_t f = s8_to_f32(q);
  const float32x4_t s = vdupq_n_f32(scale);
  vst1q_f32_x4(y, (float32x4x4_t{{vmulq_f32(f.val[0], s), vmulq_f32(f.val[1], s), vmulq_f32(f.val[2], s), vmulq_f32(f.val[3], s)}}));
}

void dequantize_row_q8_0_neon(const block_q8_0* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / QK8_0; ++i, y += QK8_0) {
    const float d = fp16_value(x[i].d);
    store_scaled(y, vld1q_s8(x[i].qs), d);
    store_scaled(y + 16, vld1q_s8(x[i].qs + 16), d);
  }
}

void dequantize_row_q4_0_neon(const block_q4_0* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k / QK4_0; ++i, y += QK4_0) {
    const int8x16x2_t q = block_quants(x[i]);  // q - 8, elements 0..15 and 16..31
    const float d = fp16_value(x[i].d);
    store_scaled(y, q.val[0], d);
    store_scaled(y + 16, q.val[1], d);
  }
}

// Q4_K: y = (d sc_j) q - (dmin m_j), the product rounded before the subtraction. 32 bytes of qs
// give sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles).
void dequantize_row_q4_K_neon(const block_q4_K* x, float* y, int64_t k) {
  const uint8x16_t low4 = vdupq_n_u8(0x0F);
  for (int64_t i = 0; i < k / QK_K; ++i, y += QK_K) {
    const float d = fp16_value(x[i].d), dmin = fp16_value(x[i].dmin);
    uint8x8_t sc8, mn8;
    q4_K_scales_mins(x[i].scales, &sc8, &mn8);
    uint8_t sc[8], mn[8];
    vst1_u8(sc, sc8);
    vst1_u8(mn, mn8);
    // 16 values of sub-block j at y[32 j + 16 h ..]
    auto store = [&](int j, int h, uint8x16_t q) {
      const float32x4_t dj = vdupq_n_f32(d * sc[j]), mj = vdupq_n_f32(dmin * mn[j]);
      const float32x4x4_t f = u8_to_f32(q);
      // (A named value, not a braced list: clang's arm_neon.h defines vst1q_f32_x4 as a macro.)
      const float32x4x4_t w = {{vsubq_f32(vmulq_f32(dj, f.val[0]), mj), vsubq_f32(vmulq_f32(dj, f.val[1]), mj),
                                vsubq_f32(vmulq_f32(dj, f.val[2]), mj), vsubq_f32(vmulq_f32(dj, f.val[3]), mj)}};
      vst1q_f32_x4(y + 32 * j + 16 * h, w);
    };
    for (int c = 0; c < 4; ++c) {
      const uint8x16x2_t qs = vld1q_u8_x2(x[i].qs + 32 * c);
      for (int h = 0; h < 2; ++h) {
        store(2 * c, h, vandq_u8(qs.val[h], low4));
        store(2 * c + 1, h, vshrq_n_u8(qs.val[h], 4));
      }
    }
  }
}

// Q6_K: y = (d s_j) (q - 32), one sub-block per 16 quants (layout as in dot_q6_K_q8_K).
void dequantize_row_q6_K_neon(const block_q6_K* x, float* y, int64_t k) {
  const uint8x16_t low4 = vdupq_n_u8(0x0F), top2 = vdupq_n_u8(0x30);
  const int8x16_t m32 = vdupq_n_s8(32);
  for (int64_t i = 0; i < k / QK_K; ++i, y += QK_K) {
    const float d = fp16_value(x[i].d);
    auto store = [&](int j, uint8x16_t q) {  // sub-block j
      store_scaled(y + 16 * j, vsubq_s8(vreinterpretq_s8_u8(q), m32), d * x[i].scales[j]);
    };
    for (int h = 0; h < 2; ++h) {
      const uint8x16x4_t ql = vld1q_u8_x4(x[i].ql + 64 * h);
      const uint8x16x2_t qh = vld1q_u8_x2(x[i].qh + 32 * h);
      for (int kk = 0; kk < 2; ++kk) {
        const uint8x16_t hb = qh.val[kk];
        const int j = 8 * h + kk;
        store(j, vorrq_u8(vandq_u8(ql.val[kk], low4), vandq_u8(vshlq_n_u8(hb, 4), top2)));
        store(j + 2, vorrq_u8(vandq_u8(ql.val[kk + 2], low4), vandq_u8(vshlq_n_u8(hb, 2), top2)));
        store(j + 4, vorrq_u8(vshrq_n_u8(ql.val[kk], 4), vandq_u8(hb, top2)));
        store(j + 6, vorrq_u8(vshrq_n_u8(ql.val[kk + 2], 4), vandq_u8(vshrq_n_u8(hb, 2), top2)));
      }
    }
  }
}

// ---- activation quantization (bit-exact with quantize_row_q8_K_ref / q8_0_act_ref / q8_1_act_ref) ----

// The largest |x| of n floats (n a multiple of 16), NaN left out as in the references: a lane
// only takes a value greater than what it holds, which a NaN never is.
inline float abs_max(const float* x, int n) {
  float32x4_t m[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
  for (int j = 0; j < n; j += 16) {
    const float32x4x4_t v = vld1q_f32_x4(x + j);
    for (int k = 0; k < 4; ++k) {
      const float32x4_t a = vabsq_f32(v.val[k]);
      m[k] = vbslq_f32(vcgtq_f32(a, m[k]), a, m[k]);
    }
  }
  return vmaxvq_f32(vmaxq_f32(vmaxq_f32(m[0], m[1]), vmaxq_f32(m[2], m[3])));
}

// Q8_K: d = -max / 127 for the first element of largest magnitude, q = round-to-even(x * -127 /
// max) saturated to int8 (fcvtns gives 0 for NaN and saturates, as nearest_int + clamp do).
void quantize_row_q8_K_neon(const float* x, block_q8_K* y, int64_t k) {
  for (int64_t i = 0; i < k / QK_K; ++i, x += QK_K) {
    const float amax = abs_max(x, QK_K);
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    float max = 0.0f;  // the first element with |x| == amax, with its sign
    for (int j = 0; j < QK_K; j += 4) {
      if (vmaxvq_u32(vceqq_f32(vabsq_f32(vld1q_f32(x + j)), vdupq_n_f32(amax)))) {
        while (std::fabs(x[j]) != amax) ++j;
        max = x[j];
        break;
      }
    }
    const float iscale = -127.f / max;
    if (std::isinf(iscale)) {  // |max| < 127 / FLT_MAX: d rounds to -+0, every q is 0
      std::memset(&y[i], 0, sizeof y[i]);
      y[i].d = 1 / iscale;
      continue;
    }
    const float32x4_t vs = vdupq_n_f32(iscale);
    for (int j = 0; j < QK_K; j += 16) {
      const float32x4x4_t v = vld1q_f32_x4(x + j);
      int32x4_t q[4];
      for (int l = 0; l < 4; ++l) q[l] = vcvtnq_s32_f32(vmulq_f32(v.val[l], vs));
      const int16x8_t q16a = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
      const int16x8_t q16b = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
      const int8x16_t q8 = vcombine_s8(vqmovn_s16(q16a), vqmovn_s16(q16b));
      vst1q_s8(y[i].qs + j, q8);
      y[i].bsums[j / 16] = vaddlvq_s8(q8);
    }
    y[i].d = 1 / iscale;
  }
}

// One block of Q8_0 / Q8_1 activations (quantize_row_q8_0_act_ref): d = amax / 127, q = x * (127 /
// amax) rounded half to even, clamped to +-127; NaN gives 0 (fcvtns of NaN). Returns amax.
inline float quantize_block_q8(const float* x, fp16_t& d, int8_t* qs) {
  const float32x4_t lo = vdupq_n_f32(-127.f), hi = vdupq_n_f32(127.f);
  const float amax = abs_max(x, QK8_0);
  float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  if (std::isinf(id)) id = 0.0f;  // amax < 127 / FLT_MAX: d is 0 in fp16, so are the q
  d = fp32_to_fp16(amax / 127.0f);
  const float32x4_t vid = vdupq_n_f32(id);
  int32x4_t q[8];
  for (int l = 0; l < 8; ++l) {
    const float32x4_t v = vmulq_f32(vld1q_f32(x + 4 * l), vid);
    q[l] = vcvtnq_s32_f32(vminq_f32(vmaxq_f32(v, lo), hi));  // fmax/fmin keep NaN: q = 0
  }
  for (int h = 0; h < 2; ++h) {
    const int16x8_t a = vcombine_s16(vmovn_s32(q[4 * h]), vmovn_s32(q[4 * h + 1]));
    const int16x8_t b = vcombine_s16(vmovn_s32(q[4 * h + 2]), vmovn_s32(q[4 * h + 3]));
    vst1q_s8(qs + 16 * h, vcombine_s8(vmovn_s16(a), vmovn_s16(b)));
  }
  return amax;
}

void quantize_row_q8_0_neon(const float* x, block_q8_0* y, int64_t k) {
  for (int64_t i = 0; i < k / QK8_0; ++i, x += QK8_0) quantize_block_q8(x, y[i].d, y[i].qs);
}

// Q8_1 activations (quantize_row_q8_1_act_ref): Q8_0's d and q, and s = fp16(amax / 127 * sum(q))
// from the unrounded d.
void quantize_row_q8_1_neon(const float* x, block_q8_1* y, int64_t k) {
  for (int64_t i = 0; i < k / QK8_1; ++i, x += QK8_1) {
    const float amax = quantize_block_q8(x, y[i].d, y[i].qs);
    const int8x16x2_t q = vld1q_s8_x2(y[i].qs);
    const int sum = vaddlvq_s8(q.val[0]) + vaddlvq_s8(q.val[1]);
    y[i].s = fp32_to_fp16(amax / 127.0f * static_cast<float>(sum));
  }
}

// ---- the tables ----

KernelSet make_v8_set() {
  KernelSet k = scalar_kernel_set();
  k.isa = Isa::neon;
  k.name = "neon";
  set_dequantize<dequantize_row_q4_K_neon>(k.row(DType::Q4_K));
  set_vec_dot<vec_dot_q4_K_q8_K_neon>(k.row(DType::Q4_K));
  set_dequantize<dequantize_row_q6_K_neon>(k.row(DType::Q6_K));
  set_vec_dot<vec_dot_q6_K_q8_K_neon>(k.row(DType::Q6_K));
  set_dequantize<dequantize_row_q8_0_neon>(k.row(DType::Q8_0));
  set_vec_dot<vec_dot_q8_0_q8_0_neon>(k.row(DType::Q8_0));
  set_dequantize<dequantize_row_q4_0_neon>(k.row(DType::Q4_0));
  set_vec_dot<vec_dot_q4_0_q8_0_neon>(k.row(DType::Q4_0));
  set_dequantize<dequantize_row_f16_neon>(k.row(DType::F16));
  set_vec_dot<vec_dot_f16_f32_neon>(k.row(DType::F16));
  set_dequantize<dequantize_row_bf16_neon>(k.row(DType::BF16));
  set_vec_dot<vec_dot_bf16_f32_neon>(k.row(DType::BF16));
  set_vec_dot<vec_dot_f32_f32_neon>(k.row(DType::F32));
  // Dot products only (dequantization stays the reference's).
  set_vec_dot<vec_dot_q5_K_q8_K_neon>(k.row(DType::Q5_K));
  set_vec_dot<vec_dot_q3_K_q8_K_neon>(k.row(DType::Q3_K));
  set_vec_dot<vec_dot_q2_K_q8_K_neon>(k.row(DType::Q2_K));
  set_vec_dot<vec_dot_iq4_xs_q8_K_neon>(k.row(DType::IQ4_XS));
  set_vec_dot<vec_dot_q5_0_q8_0_neon>(k.row(DType::Q5_0));
  set_vec_dot<vec_dot_iq4_nl_q8_0_neon>(k.row(DType::IQ4_NL));
  set_vec_dot<vec_dot_q4_1_q8_1_neon>(k.row(DType::Q4_1));
  set_vec_dot<vec_dot_q5_1_q8_1_neon>(k.row(DType::Q5_1));
  k.act(ActForm::q8_K).from_f32 = erased_quantize<quantize_row_q8_K_neon>;
  k.act(ActForm::q8_0).from_f32 = erased_quantize<quantize_row_q8_0_neon>;
  k.act(ActForm::q8_1).from_f32 = erased_quantize<quantize_row_q8_1_neon>;
  k.matmul_kn_f16_f32 = matmul_kn_f16_f32_neon;
  k.matmul_kn_f32_f32 = matmul_kn_f32_f32_neon;
  return k;
}

// ---- dotprod matmul tiles ----
// The driver and the packing (gemm_tile.hpp) are instantiated here, in armv8.0 code; only the
// inner kernels they call live in kernels_dotprod.cpp. A few activation rows use the decode
// kernel (one weight row after the other); from kGemmMinRows rows on (matmul() switches), a
// weight tile is unpacked once and shared by all of them. (NOT measured on ARM: qemu cannot stand
// in for hardware, so this is the x86 crossover of the same tile layout, until a device says.)
constexpr int64_t kGemmMinRows = 8;

template <int NA>
struct DotprodRowsQ4K {
  static void run(const uint8_t* t, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* o) {
    dotprod::tile_rows_q4_K(NA, t, nb, a, bs, o);
  }
};
// Packing a tile runs here, in the armv8.0 object, once per 8 weight rows: the portable unpackers do.
struct UnpackPortable {
  static void q4_K(const block_q4_K& b, uint8_t* q) { detail::unpack_q4_K(b, q); }
  static void q6_K(const block_q6_K& b, uint8_t* q) { detail::unpack_q6_K(b, q); }
  static void groups(const uint8_t* q, uint8_t* tb) { gemm::scatter_rows<dotprod::kTileRows>(q, tb); }
};
template <int NA>
struct DotprodRowsQ6K {
  static void run(const uint8_t* t, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* o) {
    dotprod::tile_rows_q6_K(NA, t, nb, a, bs, o);
  }
};

void matmul_q4_K_dotprod(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* a,
                         size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  gemm::matmul_tiles<dotprod::kTileRows, block_q4_K, DotprodRowsQ4K, UnpackPortable>(n, w, w_row_bytes, n_rows, a,
                                                                                     a_row_bytes, n_act, y, ldy);
}

void matmul_q6_K_dotprod(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* a,
                         size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  gemm::matmul_tiles<dotprod::kTileRows, block_q6_K, DotprodRowsQ6K, UnpackPortable>(n, w, w_row_bytes, n_rows, a,
                                                                                     a_row_bytes, n_act, y, ldy);
}

// Q5_K prefill: the Q4_K tile layout (gemm_tile.hpp: per row d sc_j, the mins, dmin) with the
// 5-bit quants (0..31) in the group vectors, so the Q4_K inner kernel serves unchanged (sdot by
// lane: products <= 31 * 128, exact int32 sub-block sums; the mins against the same 32-element
// activation sums).

// The 256 quants of a Q5_K block in element order (bytes 32 c .. of qs and all of qh give
// elements 64 c .. 64 c + 63: the 5th bit in bit 2 c / 2 c + 1 of qh, shifted down 2 per c).
void unpack_q5_K_neon(const block_q5_K& b, uint8_t* q) {
  const uint8x16_t low4 = vdupq_n_u8(0x0F), bit0 = vdupq_n_u8(0x01);
  uint8x16x2_t qh = vld1q_u8_x2(b.qh);
  for (int c = 0; c < 4; ++c) {
    const uint8x16x2_t qs = vld1q_u8_x2(b.qs + 32 * c);
    for (int v = 0; v < 2; ++v) {
      vst1q_u8(q + 64 * c + 16 * v, vorrq_u8(vandq_u8(qs.val[v], low4), vshlq_n_u8(vandq_u8(qh.val[v], bit0), 4)));
      vst1q_u8(q + 64 * c + 32 + 16 * v,
               vorrq_u8(vshrq_n_u8(qs.val[v], 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh.val[v], 1), bit0), 4)));
      qh.val[v] = vshrq_n_u8(qh.val[v], 2);
    }
  }
}

struct UnpackQ5K {
  static void q5_K(const block_q5_K& b, uint8_t* q) { unpack_q5_K_neon(b, q); }
  static void groups(const uint8_t* q, uint8_t* tb) { gemm::scatter_rows<dotprod::kTileRows>(q, tb); }
};

void matmul_q5_K_dotprod(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* a,
                         size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  gemm::matmul_tiles<dotprod::kTileRows, block_q5_K, DotprodRowsQ4K, UnpackQ5K>(n, w, w_row_bytes, n_rows, a,
                                                                                a_row_bytes, n_act, y, ldy);
}

// The armv8.0 table with the sdot kernels: dot products, and the matmul tiles built on them.
KernelSet make_dotprod_set() {
  KernelSet k = make_v8_set();
  k.name = "neon+dotprod";
  set_vec_dot<dotprod::vec_dot_q4_K_q8_K>(k.row(DType::Q4_K));
  set_gemm(k.row(DType::Q4_K), matmul_q4_K_dotprod, kGemmMinRows);
  set_vec_dot<dotprod::vec_dot_q6_K_q8_K>(k.row(DType::Q6_K));
  set_gemm(k.row(DType::Q6_K), matmul_q6_K_dotprod, kGemmMinRows);
  set_vec_dot<dotprod::vec_dot_q8_0_q8_0>(k.row(DType::Q8_0));
  set_vec_dot<dotprod::vec_dot_q4_0_q8_0>(k.row(DType::Q4_0));
  set_vec_dot<dotprod::vec_dot_q5_K_q8_K>(k.row(DType::Q5_K));
  set_gemm(k.row(DType::Q5_K), matmul_q5_K_dotprod, kGemmMinRows);
  set_vec_dot<dotprod::vec_dot_q3_K_q8_K>(k.row(DType::Q3_K));
  set_vec_dot<dotprod::vec_dot_q2_K_q8_K>(k.row(DType::Q2_K));
  set_vec_dot<dotprod::vec_dot_iq4_xs_q8_K>(k.row(DType::IQ4_XS));
  set_vec_dot<dotprod::vec_dot_q5_0_q8_0>(k.row(DType::Q5_0));
  set_vec_dot<dotprod::vec_dot_iq4_nl_q8_0>(k.row(DType::IQ4_NL));
  set_vec_dot<dotprod::vec_dot_q4_1_q8_1>(k.row(DType::Q4_1));
  set_vec_dot<dotprod::vec_dot_q5_1_q8_1>(k.row(DType::Q5_1));
  return k;
}

}  // namespace

bool cpu_has_dotprod() {
#if defined(__linux__)
  static const bool has = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
  // Apple's sysctl for FEAT_DotProd (every Apple M-series CPU has it). Not built or run here (no
  // Mac): written to compile by construction against <sys/sysctl.h>.
  static const bool has = [] {
    int value = 0;
    size_t size = sizeof value;
    return sysctlbyname("hw.optional.arm.FEAT_DotProd", &value, &size, nullptr, 0) == 0 && value != 0;
  }();
#else
  static const bool has = false;  // no run-time check on this OS: the armv8.0 kernels run everywhere
#endif
  return has;
}

const KernelSet* neon_v8_kernels() {
  static const KernelSet ks = make_v8_set();
  return &ks;
}

const KernelSet* neon_dotprod_kernels() {
  if (!cpu_has_dotprod()) return nullptr;
  static const KernelSet ks = make_dotprod_set();
  return &ks;
}

// dispatch.cpp's entry point: the best NEON flavour this CPU runs.
const KernelSet* neon_kernels() {
  const KernelSet* best = neon_dotprod_kernels();
  return best ? best : neon_v8_kernels();
}

}  // namespace edgellm::kernels
