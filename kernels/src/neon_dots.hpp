// Internal: the NEON integer dot products of the quantized formats, written once and compiled
// twice, by kernels_neon.cpp (armv8.0) and kernels_dotprod.cpp (armv8.2-a+dotprod). They differ
// only in how int8 pairs are multiplied and summed into four int32 lanes, the Dot policy:
//   int32x4_t Dot::dot16(acc, a, b)                   16 pairs, any int8 values
//   int32x4_t Dot::dot16_small(acc, a, b)             16 pairs, every |a[l] b[l]| < 2^14
//   int32x4_t Dot::dot32_small(acc, a0, b0, a1, b1)   32 pairs, every |product| < 2^13
// each adding to acc four partial sums whose total is the dot product. (The small forms let the
// armv8.0 flavour add two or four products in int16 before widening. Weights here, against
// activations down to -128: Q6_K 0..63, |product| <= 8064, and the IQ4 levels -127..113, <= 16256
// (dot16_small); Q5_K / Q5_1 0..31, <= 3968, Q4_K / Q4_1 0..15, Q5_0 -16..15, Q4_0 -8..7, Q3_K
// -4..3 and Q2_K 0..3 (dot32_small, or dot16_small for the 16-element sub-blocks).)
//
// Everything here is in an anonymous namespace: each of the two files gets its own copy, compiled
// with its own -march, so the linker can never hand the armv8.0 path a copy built for dotprod.
// For the same reason this header uses nothing but <arm_neon.h> and the block structs.
//
// Per super-block the integer sums are exact (int32 cannot overflow for any input bytes); they
// are scaled and accumulated in float, so against the references (double, rounded once)
//   |r - ref| <= (n / 16 + 16) * 2^-23 * sum_i |w_i a_i|
// (for Q4_K / Q5_K / Q2_K, |w_i| counts d sc q and dmin m separately, for Q4_1 / Q5_1 d q and m),
// the bound test_kernels_isa.cpp and test_kernels_neon.cpp check. K-quant activations must have
// bsums consistent with qs, as quantize_row_q8_K makes them (Q4_K / Q5_K / Q2_K take their min
// terms from them, Q6_K its -32 offset); Q8_1 activations carry s = d sum(q) (the min terms).
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "edgellm/kernels/blocks.hpp"

namespace edgellm::kernels {
namespace {

// fp16 bits -> float with the FPU's conversion (exact; the same value fp16_to_fp32 gives).
inline float fp16_value(fp16_t h) {
  __fp16 v;
  std::memcpy(&v, &h, sizeof v);
  return static_cast<float>(v);
}

// The totals of four int32x4 partial-sum vectors, one per lane: [sum a, sum b, sum c, sum d].
inline int32x4_t lane_totals(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}

// The 12 scale bytes of a Q4_K block as 8 scales and 8 mins (6 bits each; see q4_K_scale_min):
// bytes 0..3 / 4..7 give scales / mins 0..3 in their low 6 bits, bytes 8..11 the low 4 bits of
// scales (low nibble) and mins (high nibble) 4..7, whose top 2 bits are the top bits of 0..7.
inline void q4_K_scales_mins(const uint8_t* s, uint8x8_t* scales, uint8x8_t* mins) {
  uint32_t u0, u1, u2;
  std::memcpy(&u0, s, 4);
  std::memcpy(&u1, s + 4, 4);
  std::memcpy(&u2, s + 8, 4);
  const uint32_t sc_lo = u0 & 0x3f3f3f3f;
  const uint32_t mn_lo = u1 & 0x3f3f3f3f;
  const uint32_t sc_hi = (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4);
  const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4);
  *scales = vcreate_u8(sc_lo | (static_cast<uint64_t>(sc_hi) << 32));
  *mins = vcreate_u8(mn_lo | (static_cast<uint64_t>(mn_hi) << 32));
}

// Q4_K / Q5_K . Q8_K: per super-block  d dy sum_j sc_j (q . a)_j  -  dmin dy sum_j m_j (sum of a)_j.
// 32 bytes of qs carry two sub-blocks (low nibbles: 2c, high: 2c + 1) whose activations are the
// 64 contiguous bytes a[64 c ..]; the eight sub-block dots stay in registers, are reduced to one
// lane each and scaled with one multiply-add per four sub-blocks; one horizontal add per block.
// Q5_K (Block = block_q5_K) adds the 5th bit: byte l of qh holds it for element 64 c + l in bit
// 2 c and for 64 c + 32 + l in bit 2 c + 1 (qh is shifted down two bits per c).
template <class Dot, class Block>
float dot_q4_K_q8_K(int64_t n, const Block* x, const block_q8_K* y) {
  constexpr bool kHighBit = std::is_same_v<Block, block_q5_K>;
  const uint8x16_t low4 = vdupq_n_u8(0x0F), bit0 = vdupq_n_u8(0x01), bit1 = vdupq_n_u8(0x02);
  const int32x4_t zero = vdupq_n_s32(0);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    uint8x16x2_t qh = {{vdupq_n_u8(0), vdupq_n_u8(0)}};
    if constexpr (kHighBit) qh = vld1q_u8_x2(x[i].qh);
    uint8x8_t sc8, mn8;
    q4_K_scales_mins(x[i].scales, &sc8, &mn8);

    // Min terms: m_j times the activation sum of sub-block j (the two 16-element bsums).
    const int16x8_t a_sums = vpaddq_s16(vld1q_s16(y[i].bsums), vld1q_s16(y[i].bsums + 8));
    const int16x8_t mn = vreinterpretq_s16_u16(vmovl_u8(mn8));
    const int32x4_t min_terms = vmlal_high_s16(vmull_s16(vget_low_s16(mn), vget_low_s16(a_sums)), mn, a_sums);

    int32x4_t dots[8];
    for (int c = 0; c < 4; ++c) {
      const uint8x16x2_t q = vld1q_u8_x2(x[i].qs + 32 * c);
      const int8x16x4_t a = vld1q_s8_x4(y[i].qs + 64 * c);
      uint8x16_t lo0 = vandq_u8(q.val[0], low4), lo1 = vandq_u8(q.val[1], low4);
      uint8x16_t hi0 = vshrq_n_u8(q.val[0], 4), hi1 = vshrq_n_u8(q.val[1], 4);
      if constexpr (kHighBit) {
        lo0 = vorrq_u8(lo0, vshlq_n_u8(vandq_u8(qh.val[0], bit0), 4));
        lo1 = vorrq_u8(lo1, vshlq_n_u8(vandq_u8(qh.val[1], bit0), 4));
        hi0 = vorrq_u8(hi0, vshlq_n_u8(vandq_u8(qh.val[0], bit1), 3));
        hi1 = vorrq_u8(hi1, vshlq_n_u8(vandq_u8(qh.val[1], bit1), 3));
        qh.val[0] = vshrq_n_u8(qh.val[0], 2);
        qh.val[1] = vshrq_n_u8(qh.val[1], 2);
      }
      dots[2 * c] = Dot::dot32_small(zero, vreinterpretq_s8_u8(lo0), a.val[0], vreinterpretq_s8_u8(lo1), a.val[1]);
      dots[2 * c + 1] = Dot::dot32_small(zero, vreinterpretq_s8_u8(hi0), a.val[2], vreinterpretq_s8_u8(hi1), a.val[3]);
    }
    const uint16x8_t sc = vmovl_u8(sc8);
    int32x4_t q_terms = vmulq_s32(lane_totals(dots[0], dots[1], dots[2], dots[3]),
                                  vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(sc))));
    q_terms = vmlaq_s32(q_terms, lane_totals(dots[4], dots[5], dots[6], dots[7]),
                        vreinterpretq_s32_u32(vmovl_high_u16(sc)));

    const float dy = y[i].d;
    sum += dy * fp16_value(x[i].d) * static_cast<float>(vaddvq_s32(q_terms)) -
           dy * fp16_value(x[i].dmin) * static_cast<float>(vaddvq_s32(min_terms));
  }
  return sum;
}

// Q6_K . Q8_K: per super-block  d dy sum_j s_j ((q . a)_j - 32 (sum of a)_j)  with q in 0..63
// (the -32 offset taken from bsums instead of being subtracted from every quant). Each half of
// 128 elements: 64 bytes of ql and 32 of qh give 8 vectors of 16 quants, one per sub-block.
template <class Dot>
float dot_q6_K_q8_K(int64_t n, const block_q6_K* x, const block_q8_K* y) {
  const uint8x16_t low4 = vdupq_n_u8(0x0F), top2 = vdupq_n_u8(0x30);
  const int32x4_t zero = vdupq_n_s32(0);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* a = y[i].qs;
    int32x4_t dots[16];  // dots[j]: partial sums of sub-block j
    for (int h = 0; h < 2; ++h) {
      const uint8x16x4_t ql = vld1q_u8_x4(x[i].ql + 64 * h);
      const uint8x16x2_t qh = vld1q_u8_x2(x[i].qh + 32 * h);
      for (int k = 0; k < 2; ++k) {  // elements 128 h + 16 k + l (+32, +64, +96), l < 16
        const uint8x16_t hb = qh.val[k];
        const uint8x16_t q0 = vorrq_u8(vandq_u8(ql.val[k], low4), vandq_u8(vshlq_n_u8(hb, 4), top2));
        const uint8x16_t q1 = vorrq_u8(vandq_u8(ql.val[k + 2], low4), vandq_u8(vshlq_n_u8(hb, 2), top2));
        const uint8x16_t q2 = vorrq_u8(vshrq_n_u8(ql.val[k], 4), vandq_u8(hb, top2));
        const uint8x16_t q3 = vorrq_u8(vshrq_n_u8(ql.val[k + 2], 4), vandq_u8(vshrq_n_u8(hb, 2), top2));
        const int j = 8 * h + k;  // sub-blocks j, j + 2, j + 4, j + 6
        dots[j] = Dot::dot16_small(zero, vreinterpretq_s8_u8(q0), vld1q_s8(a + 16 * j));
        dots[j + 2] = Dot::dot16_small(zero, vreinterpretq_s8_u8(q1), vld1q_s8(a + 16 * (j + 2)));
        dots[j + 4] = Dot::dot16_small(zero, vreinterpretq_s8_u8(q2), vld1q_s8(a + 16 * (j + 4)));
        dots[j + 6] = Dot::dot16_small(zero, vreinterpretq_s8_u8(q3), vld1q_s8(a + 16 * (j + 6)));
      }
    }
    const int8x16_t s8 = vld1q_s8(x[i].scales);
    const int16x8_t s_lo = vmovl_s8(vget_low_s8(s8)), s_hi = vmovl_high_s8(s8);
    const int16x8_t b_lo = vld1q_s16(y[i].bsums), b_hi = vld1q_s16(y[i].bsums + 8);
    const int32x4_t scales[4] = {vmovl_s16(vget_low_s16(s_lo)), vmovl_high_s16(s_lo),
                                 vmovl_s16(vget_low_s16(s_hi)), vmovl_high_s16(s_hi)};
    const int32x4_t bsums[4] = {vmovl_s16(vget_low_s16(b_lo)), vmovl_high_s16(b_lo),
                                vmovl_s16(vget_low_s16(b_hi)), vmovl_high_s16(b_hi)};
    int32x4_t acc = zero;
    for (int g = 0; g < 4; ++g) {  // sub-blocks 4 g .. 4 g + 3, one per lane
      const int32x4_t t = lane_totals(dots[4 * g], dots[4 * g + 1], dots[4 * g + 2], dots[4 * g + 3]);
      acc = vmlaq_s32(acc, vsubq_s32(t, vshlq_n_s32(bsums[g], 5)), scales[g]);
    }
    sum += y[i].d * fp16_value(x[i].d) * static_cast<float>(vaddvq_s32(acc));
  }
  return sum;
}

// The 16 widened per-sub-block factors s[0..15] of a K-quant block as four int32x4 (s[4 g ..]).
inline void widen_16(int8x16_t s8, int32x4_t out[4]) {
  const int16x8_t lo = vmovl_s8(vget_low_s8(s8)), hi = vmovl_high_s8(s8);
  out[0] = vmovl_s16(vget_low_s16(lo));
  out[1] = vmovl_high_s16(lo);
  out[2] = vmovl_s16(vget_low_s16(hi));
  out[3] = vmovl_high_s16(hi);
}

// sum_j s_j dots_j over 16 sub-blocks: four lane reductions, one multiply-add each.
inline int32_t scaled_sum_16(const int32x4_t dots[16], const int32x4_t s[4]) {
  int32x4_t acc = vdupq_n_s32(0);
  for (int g = 0; g < 4; ++g)
    acc = vmlaq_s32(acc, lane_totals(dots[4 * g], dots[4 * g + 1], dots[4 * g + 2], dots[4 * g + 3]), s[g]);
  return vaddvq_s32(acc);
}

// The 16 Q3_K scales sc_j - 32 (-32..31), in sub-block order: four per 32-bit word, word w
// (sub-blocks 4 w ..) taking its low nibbles from bytes 0..3 (w = 0) / 4..7 (w = 1) or their high
// nibbles (w = 2, 3) and its top two bits from bits 2 w, 2 w + 1 of bytes 8..11.
inline int8x16_t q3_K_scales(const uint8_t* s) {
  uint32_t u[3], w[4];
  std::memcpy(u, s, 12);
  for (int k = 0; k < 4; ++k) {
    const uint32_t low = k < 2 ? u[k] & 0x0F0F0F0F : (u[k - 2] >> 4) & 0x0F0F0F0F;
    w[k] = low | ((u[2] >> (2 * k)) & 0x03030303) << 4;
  }
  return vsubq_s8(vreinterpretq_s8_u32(vld1q_u32(w)), vdupq_n_s8(32));
}

// Q3_K . Q8_K: per super-block  d dy sum_j (sc_j - 32) ((q - 4) . a)_j. Laid out as Q6_K's halves:
// element 128 h + 32 k + l takes bits 2 k, 2 k + 1 of qs[32 h + l] and bit 4 h + k of hmask[l],
// and belongs to sub-block 8 h + 2 k (+1 for l >= 16), whose activations are a[16 j ..]. The
// quants are shifted down two bits per k, the hmask bytes one bit per (h, k).
template <class Dot>
float dot_q3_K_q8_K(int64_t n, const block_q3_K* x, const block_q8_K* y) {
  const uint8x16_t low2 = vdupq_n_u8(0x03), bit0 = vdupq_n_u8(0x01);
  const int8x16_t four = vdupq_n_s8(4);
  const int32x4_t zero = vdupq_n_s32(0);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* a = y[i].qs;
    const uint8x16x2_t hm = vld1q_u8_x2(x[i].hmask);
    uint8x16_t hbits[2] = {hm.val[0], hm.val[1]};
    int32x4_t dots[16];
    for (int h = 0; h < 2; ++h) {
      const uint8x16x2_t qs = vld1q_u8_x2(x[i].qs + 32 * h);
      uint8x16_t q2[2] = {qs.val[0], qs.val[1]};
      for (int k = 0; k < 4; ++k) {
        for (int v = 0; v < 2; ++v) {
          const uint8x16_t q = vorrq_u8(vandq_u8(q2[v], low2), vshlq_n_u8(vandq_u8(hbits[v], bit0), 2));
          const int j = 8 * h + 2 * k + v;
          dots[j] = Dot::dot16_small(zero, vsubq_s8(vreinterpretq_s8_u8(q), four), vld1q_s8(a + 16 * j));
          q2[v] = vshrq_n_u8(q2[v], 2);
          hbits[v] = vshrq_n_u8(hbits[v], 1);
        }
      }
    }
    int32x4_t scales[4];
    widen_16(q3_K_scales(x[i].scales), scales);
    sum += y[i].d * fp16_value(x[i].d) * static_cast<float>(scaled_sum_16(dots, scales));
  }
  return sum;
}

// Q2_K . Q8_K: per super-block  d dy sum_j sc_j (q . a)_j  -  dmin dy sum_j m_j (sum of a)_j, the
// 2-bit quants laid out as Q3_K's low bits; scales[j] holds sc_j (low nibble) and m_j (high).
template <class Dot>
float dot_q2_K_q8_K(int64_t n, const block_q2_K* x, const block_q8_K* y) {
  const uint8x16_t low2 = vdupq_n_u8(0x03), low4 = vdupq_n_u8(0x0F);
  const int32x4_t zero = vdupq_n_s32(0);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    const int8_t* a = y[i].qs;
    int32x4_t dots[16];
    for (int h = 0; h < 2; ++h) {
      const uint8x16x2_t qs = vld1q_u8_x2(x[i].qs + 32 * h);
      uint8x16_t q2[2] = {qs.val[0], qs.val[1]};
      for (int k = 0; k < 4; ++k) {
        for (int v = 0; v < 2; ++v) {
          const int j = 8 * h + 2 * k + v;
          dots[j] = Dot::dot16_small(zero, vreinterpretq_s8_u8(vandq_u8(q2[v], low2)), vld1q_s8(a + 16 * j));
          q2[v] = vshrq_n_u8(q2[v], 2);
        }
      }
    }
    const uint8x16_t packed = vld1q_u8(x[i].scales);
    int32x4_t scales[4];
    widen_16(vreinterpretq_s8_u8(vandq_u8(packed, low4)), scales);
    // Min terms: m_j times sub-block j's activation sum (one bsum each).
    const int16x8_t mn_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(vshrq_n_u8(packed, 4))));
    const int16x8_t mn_hi = vreinterpretq_s16_u16(vmovl_high_u8(vshrq_n_u8(packed, 4)));
    const int16x8_t b_lo = vld1q_s16(y[i].bsums), b_hi = vld1q_s16(y[i].bsums + 8);
    int32x4_t min_terms = vmull_s16(vget_low_s16(mn_lo), vget_low_s16(b_lo));
    min_terms = vmlal_high_s16(min_terms, mn_lo, b_lo);
    min_terms = vmlal_s16(min_terms, vget_low_s16(mn_hi), vget_low_s16(b_hi));
    min_terms = vmlal_high_s16(min_terms, mn_hi, b_hi);

    const float dy = y[i].d;
    sum += dy * fp16_value(x[i].d) * static_cast<float>(scaled_sum_16(dots, scales)) -
           dy * fp16_value(x[i].dmin) * static_cast<float>(vaddvq_s32(min_terms));
  }
  return sum;
}

// 16 IQ4_NL / IQ4_XS indices (low or high nibbles) as their levels, by table lookup.
inline int8x16_t iq4_levels(int8x16_t table, uint8x16_t idx) { return vqtbl1q_s8(table, idx); }

// The levels of 32 packed IQ4 quants (low nibbles: elements 0..15, high: 16..31) times 32
// activation bytes. |level * a| <= 127 * 128 < 2^14: the dot16_small form.
template <class Dot>
int32x4_t iq4_dot_32(int8x16_t table, const uint8_t* qs, const int8x16x2_t& a) {
  const uint8x16_t q = vld1q_u8(qs);
  const int8x16_t w0 = iq4_levels(table, vandq_u8(q, vdupq_n_u8(0x0F))), w1 = iq4_levels(table, vshrq_n_u8(q, 4));
  return Dot::dot16_small(Dot::dot16_small(vdupq_n_s32(0), w0, a.val[0]), w1, a.val[1]);
}

// IQ4_XS . Q8_K: per super-block  d dy sum_j (ls_j - 32) (levels . a)_j; sub-block j (32 elements,
// qs[16 j ..]) is one IQ4_NL block's layout. The eight 6-bit scales are decoded in scalar code.
template <class Dot>
float dot_iq4_xs_q8_K(int64_t n, const block_iq4_xs* x, const block_q8_K* y) {
  const int8x16_t table = vld1q_s8(kvalues_iq4nl);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int32x4_t dots[8];
    for (int j = 0; j < 8; ++j) dots[j] = iq4_dot_32<Dot>(table, x[i].qs + 16 * j, vld1q_s8_x2(y[i].qs + 32 * j));
    int32_t ls[8];
    for (int j = 0; j < 8; ++j) {
      ls[j] = (((x[i].scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | ((x[i].scales_h >> (2 * j)) & 3) << 4) - 32;
    }
    int32x4_t acc = vmulq_s32(lane_totals(dots[0], dots[1], dots[2], dots[3]), vld1q_s32(ls));
    acc = vmlaq_s32(acc, lane_totals(dots[4], dots[5], dots[6], dots[7]), vld1q_s32(ls + 4));
    sum += y[i].d * fp16_value(x[i].d) * static_cast<float>(vaddvq_s32(acc));
  }
  return sum;
}

// The 32 quants of a Q8_0 / Q4_0 block as two int8 vectors (elements 0..15, 16..31), and the
// dot product of a block with 32 activation bytes (Q8_0 quants reach -128: the exact-for-all form).
inline int8x16x2_t block_quants(const block_q8_0& b) { return vld1q_s8_x2(b.qs); }
template <class Dot>
int32x4_t block_dot(const block_q8_0& w, const int8x16x2_t& a) {
  const int8x16x2_t q = block_quants(w);
  return Dot::dot16(Dot::dot16(vdupq_n_s32(0), q.val[0], a.val[0]), q.val[1], a.val[1]);
}
inline int8x16x2_t block_quants(const block_q4_0& b) {
  const uint8x16_t q = vld1q_u8(b.qs);  // low nibbles: elements 0..15, high: 16..31
  const int8x16_t eight = vdupq_n_s8(8);
  return {{vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight),
           vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight)}};
}
template <class Dot>
int32x4_t block_dot(const block_q4_0& w, const int8x16x2_t& a) {  // |q - 8| <= 8
  const int8x16x2_t q = block_quants(w);
  return Dot::dot32_small(vdupq_n_s32(0), q.val[0], a.val[0], q.val[1], a.val[1]);
}

// Q5_0 / Q5_1: the 5th bits of the 32 quants as 0x10 in bytes 0..15 and 16..31 (bit e of the
// little-endian qh word for element e: byte e / 8 of qh, tested against bit e % 8).
inline uint8x16x2_t q5_high_bytes(const uint8_t* qh) {
  const uint8x16_t bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ull));
  const uint8x16_t b0 = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
  const uint8x16_t b1 = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
  const uint8x16_t h = vdupq_n_u8(0x10);
  return {{vandq_u8(vtstq_u8(b0, bit), h), vandq_u8(vtstq_u8(b1, bit), h)}};
}

// The unsigned quants of a Q4_1 (0..15) / Q5_1 (0..31) block, nibbles as Q4_0's.
inline uint8x16x2_t unsigned_quants(const block_q4_1& b) {
  const uint8x16_t q = vld1q_u8(b.qs);
  return {{vandq_u8(q, vdupq_n_u8(0x0F)), vshrq_n_u8(q, 4)}};
}
template <class B>
inline uint8x16x2_t q5_quants(const B& b) {
  const uint8x16_t q = vld1q_u8(b.qs);
  const uint8x16x2_t h = q5_high_bytes(b.qh);
  return {{vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), h.val[0]), vorrq_u8(vshrq_n_u8(q, 4), h.val[1])}};
}
inline uint8x16x2_t unsigned_quants(const block_q5_1& b) { return q5_quants(b); }

inline int8x16x2_t block_quants(const block_q5_0& b) {  // q - 16, in -16..15
  const uint8x16x2_t q = q5_quants(b);
  const int8x16_t sixteen = vdupq_n_s8(16);
  return {{vsubq_s8(vreinterpretq_s8_u8(q.val[0]), sixteen), vsubq_s8(vreinterpretq_s8_u8(q.val[1]), sixteen)}};
}
template <class Dot>
int32x4_t block_dot(const block_q5_0& w, const int8x16x2_t& a) {  // |q - 16| <= 16
  const int8x16x2_t q = block_quants(w);
  return Dot::dot32_small(vdupq_n_s32(0), q.val[0], a.val[0], q.val[1], a.val[1]);
}
template <class Dot>
int32x4_t block_dot(const block_iq4_nl& w, const int8x16x2_t& a) {
  return iq4_dot_32<Dot>(vld1q_s8(kvalues_iq4nl), w.qs, a);  // the table load is hoisted out of the loop
}

// Q8_0 / Q4_0 / Q5_0 / IQ4_NL . Q8_0: two blocks per iteration into two float accumulators (independent
// multiply-add chains); one horizontal add at the end. The lane sums (at most 8 * 128^2) are
// exact in float.
template <class Dot, class WBlock>
float dot_32_q8_0(int64_t n, const WBlock* x, const block_q8_0* y) {
  auto sum = [&](int64_t i) { return vcvtq_f32_s32(block_dot<Dot>(x[i], vld1q_s8_x2(y[i].qs))); };
  const int64_t nb = n / QK8_0;
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    acc0 = vfmaq_n_f32(acc0, sum(i), fp16_value(x[i].d) * fp16_value(y[i].d));
    acc1 = vfmaq_n_f32(acc1, sum(i + 1), fp16_value(x[i + 1].d) * fp16_value(y[i + 1].d));
  }
  if (i < nb) acc0 = vfmaq_n_f32(acc0, sum(i), fp16_value(x[i].d) * fp16_value(y[i].d));
  return vaddvq_f32(vaddq_f32(acc0, acc1));
}

// Q4_1 / Q5_1 . Q8_1: per block  d_x d_y (q . a)  +  m_x s_y, the unsigned quants (at most 31, so
// |product| <= 3968: dot32_small) in the vector lanes as above, the min terms in a float sum.
template <class Dot, class WBlock>
float dot_32_q8_1(int64_t n, const WBlock* x, const block_q8_1* y) {
  auto sum = [&](int64_t i) {
    const uint8x16x2_t q = unsigned_quants(x[i]);
    const int8x16x2_t a = vld1q_s8_x2(y[i].qs);
    return vcvtq_f32_s32(Dot::dot32_small(vdupq_n_s32(0), vreinterpretq_s8_u8(q.val[0]), a.val[0],
                                          vreinterpretq_s8_u8(q.val[1]), a.val[1]));
  };
  const int64_t nb = n / QK8_1;
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  float mins0 = 0.0f, mins1 = 0.0f;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    acc0 = vfmaq_n_f32(acc0, sum(i), fp16_value(x[i].d) * fp16_value(y[i].d));
    acc1 = vfmaq_n_f32(acc1, sum(i + 1), fp16_value(x[i + 1].d) * fp16_value(y[i + 1].d));
    mins0 += fp16_value(x[i].m) * fp16_value(y[i].s);
    mins1 += fp16_value(x[i + 1].m) * fp16_value(y[i + 1].s);
  }
  if (i < nb) {
    acc0 = vfmaq_n_f32(acc0, sum(i), fp16_value(x[i].d) * fp16_value(y[i].d));
    mins0 += fp16_value(x[i].m) * fp16_value(y[i].s);
  }
  return vaddvq_f32(vaddq_f32(acc0, acc1)) + (mins0 + mins1);
}

}  // namespace
}  // namespace edgellm::kernels
