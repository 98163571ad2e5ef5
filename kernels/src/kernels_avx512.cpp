// The AVX-512 kernel table (F/BW/VL/DQ + VNNI): the scalar set with these kernels in place.
//
// Integer dot products use vpdpbusd (u8 x s8 -> s32): K-quant weights are unsigned (Q4_K 0..15,
// Q5_K 0..31, Q2_K 0..3, Q6_K 0..63 and Q3_K 0..7 with their -32 / -4 applied through the
// activation block sums), Q8_K activations signed; IQ4 levels (-127..113) go in as level + 128,
// the 128 taken back the same way.
// Per-sub-block scales are applied with vpdpwssd on the 32-bit lane sums (each lane sums four
// products, |lane| <= 4 * 63 * 128 < 2^15, so its low 16 bits are the whole value and a scale in
// the low 16 bits of a lane with a zero high half multiplies it exactly); IQ4_XS's lanes reach
// 4 * 241 * 128, so its scales are an int32 multiply.
//
// Two matrix kernels per weight type:
//   decode (few activation rows): one weight row after the other (a single sequential stream is
//     what the hardware prefetcher serves best: interleaving 4 rows per pass, which shares the
//     activation loads, measured 20-30% slower from DRAM and no faster in cache); a group of
//     rows stays in L1 while the other activation rows pass over it.
//   prefill (many activation rows): a tile of 16 weight rows is unpacked once into 8-bit quants
//     interleaved 16 rows x 4 consecutive k per 64-byte vector, plus per-sub-block float scales;
//     then each activation row broadcasts 4 bytes per vpdpbusd into 16 row lanes.
// GCC 12 warns about the deliberately undefined source operands inside its own AVX-512 intrinsic
// headers (a known false positive at -O3); the pragma must come before the header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "edgellm/kernels/quants.hpp"
#include "gemm_tile.hpp"
#include "kernel_sets.hpp"
#include "x86_common.hpp"

namespace edgellm::kernels {

namespace {

using x86::fp16;
using x86::hsum;
using x86::prefetch_ahead;
using x86::q4_K_scales_mins;

// 64 activation bytes: 32 from p and 32 from p + 64 (the elements that share the low or the high
// nibbles of one 64-byte run of Q4_K quants).
inline __m512i load_pair(const int8_t* p) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64)), 1);
}

// vpshufb controls that spread scale byte pairs (j0 in lanes 0-7, j1 in lanes 8-15) of a
// broadcast 64-bit word into 32-bit lanes with a zero high half.
inline __m512i spread_control(int j0, int j1) {
  alignas(64) int8_t c[64];
  for (int lane = 0; lane < 16; ++lane) {
    c[4 * lane] = static_cast<int8_t>(lane < 8 ? j0 : j1);
    c[4 * lane + 1] = c[4 * lane + 2] = c[4 * lane + 3] = -128;  // zero byte
  }
  return _mm512_load_si512(c);
}

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// ---- decode: R weight rows . one activation row ----

// Q4_K: per block, w = d sc_j q - dmin m_j, so
//   dot = d d8 sum_j sc_j (q . a)_j - dmin d8 sum_j m_j bsum_j.
// Quants qs[64 c .. 64 c + 63] hold sub-blocks 2c' (low nibbles) and 2c'+1 (high) for the two
// 32-byte groups c' = 2c, 2c + 1, so low nibbles of one 64-byte run pair sub-blocks (4c, 4c + 2)
// and high nibbles (4c + 1, 4c + 3).
// Q5_K (Block = block_q5_K) is the same with a 5th bit: sub-block s takes bit s of qh[l], so with
// qh in the low 256 bits and qh >> 2 in the high ones, bit 0, 1, 4, 5 of each byte is the 5th bit
// of the low nibbles of run 0, its high nibbles, run 1's low, run 1's high (quants up to 31: a
// lane sums at most 4 * 31 * 128 < 2^15, as the scales' vpdpwssd needs).
template <int R, class Block = block_q4_K>
void dot_rows_q4_K(int64_t nb, const uint8_t* w, size_t w_row_bytes, const block_q8_K* a,
                   float* out) {
  constexpr bool kHighBit = std::is_same_v<Block, block_q5_K>;
  const __m512i low4 = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
  const __m512i ctl0 = spread_control(0, 2), ctl1 = spread_control(1, 3),
                ctl2 = spread_control(4, 6), ctl3 = spread_control(5, 7);
  __m512 acc[R];
  __m256 acc_min[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps(), acc_min[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const block_q8_K& ab = a[b];
    const __m512i a0 = load_pair(ab.qs), a1 = load_pair(ab.qs + 32), a2 = load_pair(ab.qs + 128),
                  a3 = load_pair(ab.qs + 160);
    const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.bsums));
    for (int r = 0; r < R; ++r) {
      const auto* x = reinterpret_cast<const Block*>(w + r * w_row_bytes) + b;
      prefetch_ahead<sizeof(Block)>(x);
      const __m512i q0 = _mm512_loadu_si512(x->qs), q1 = _mm512_loadu_si512(x->qs + 64);
      __m512i n0 = _mm512_and_si512(q0, low4), n1 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), low4),
              n2 = _mm512_and_si512(q1, low4), n3 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), low4);
      if constexpr (kHighBit) {  // each 5th bit moved to bit 4 (shifts by 16 bits: bits stay in their byte)
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->qh));
        const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
        n0 = _mm512_or_si512(n0, _mm512_and_si512(_mm512_slli_epi16(h, 4), bit4));
        n1 = _mm512_or_si512(n1, _mm512_and_si512(_mm512_slli_epi16(h, 3), bit4));
        n2 = _mm512_or_si512(n2, _mm512_and_si512(h, bit4));
        n3 = _mm512_or_si512(n3, _mm512_and_si512(_mm512_srli_epi16(h, 1), bit4));
      }
      const __m512i z = _mm512_setzero_si512();
      const __m512i p0 = _mm512_dpbusd_epi32(z, n0, a0);
      const __m512i p1 = _mm512_dpbusd_epi32(z, n1, a1);
      const __m512i p2 = _mm512_dpbusd_epi32(z, n2, a2);
      const __m512i p3 = _mm512_dpbusd_epi32(z, n3, a3);
      uint64_t sc, mn;
      q4_K_scales_mins(x->scales, sc, mn);
      const __m512i scv = _mm512_set1_epi64(static_cast<int64_t>(sc));
      __m512i s01 = _mm512_dpwssd_epi32(z, p0, _mm512_shuffle_epi8(scv, ctl0));
      s01 = _mm512_dpwssd_epi32(s01, p1, _mm512_shuffle_epi8(scv, ctl1));
      __m512i s23 = _mm512_dpwssd_epi32(z, p2, _mm512_shuffle_epi8(scv, ctl2));
      s23 = _mm512_dpwssd_epi32(s23, p3, _mm512_shuffle_epi8(scv, ctl3));
      const float dd = fp16(x->d) * ab.d;
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s01, s23)), _mm512_set1_ps(dd), acc[r]);
      // mins: m_j (bsums[2j] + bsums[2j+1]) with m_j in both 16-bit halves of lane j
      const __m256i m32 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(mn)));
      const __m256i mins = _mm256_madd_epi16(bsums, _mm256_or_si256(m32, _mm256_slli_epi32(m32, 16)));
      acc_min[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(fp16(x->dmin) * ab.d), acc_min[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]) - hsum(acc_min[r]);
}

// Q6_K: w = d s_j (q - 32), q = 0..63 unsigned, so dot = d d8 (sum_j s_j (q . a)_j - 32 sum_j s_j bsum_j).
// Each half of 128 elements: low nibbles of ql[0..63] are elements 0..63 in order, high nibbles
// 64..127; qh[0..31] gives their top bits, 2 bits per 32-element quarter.
template <int R>
void dot_rows_q6_K(int64_t nb, const uint8_t* w, size_t w_row_bytes, const block_q8_K* a,
                   float* out) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
  const __m512i lo16 = _mm512_set1_epi32(0xFFFF);
  __m512i spread[4];  // lane l of vector v takes scale 4 v + l / 4
  for (int v = 0; v < 4; ++v) {
    alignas(64) int32_t idx[16];
    for (int l = 0; l < 16; ++l) idx[l] = 4 * v + l / 4;
    spread[v] = _mm512_load_si512(idx);
  }
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const block_q8_K& ab = a[b];
    const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.bsums));
    for (int r = 0; r < R; ++r) {
      const auto* x = reinterpret_cast<const block_q6_K*>(w + r * w_row_bytes) + b;
      prefetch_ahead<sizeof(block_q6_K)>(x);
      const __m512i scales = _mm512_and_si512(
          _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x->scales))), lo16);
      const __m512i z = _mm512_setzero_si512();
      __m512i sum = z;
      for (int h = 0; h < 2; ++h) {
        const __m512i ql = _mm512_loadu_si512(x->ql + 64 * h);
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x->qh + 32 * h));
        const __m512i qh02 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
        const __m512i qh46 = _mm512_srli_epi16(qh02, 4);
        const __m512i qa = _mm512_or_si512(_mm512_and_si512(ql, low4),
                                           _mm512_slli_epi16(_mm512_and_si512(qh02, low2), 4));
        const __m512i qb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                           _mm512_slli_epi16(_mm512_and_si512(qh46, low2), 4));
        const __m512i pa = _mm512_dpbusd_epi32(z, qa, _mm512_loadu_si512(ab.qs + 128 * h));
        const __m512i pb = _mm512_dpbusd_epi32(z, qb, _mm512_loadu_si512(ab.qs + 128 * h + 64));
        sum = _mm512_dpwssd_epi32(sum, pa, _mm512_permutexvar_epi32(spread[2 * h], scales));
        sum = _mm512_dpwssd_epi32(sum, pb, _mm512_permutexvar_epi32(spread[2 * h + 1], scales));
      }
      // - 32 sum_j s_j bsum_j
      const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x->scales)));
      const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bsums, s16), 5);
      sum = _mm512_sub_epi32(sum, _mm512_zextsi256_si512(corr));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(fp16(x->d) * ab.d), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

float vec_dot_q4_K_q8_K_avx512(int64_t n, const block_q4_K* x, const block_q8_K* y) {
  float out;
  dot_rows_q4_K<1>(n / QK_K, reinterpret_cast<const uint8_t*>(x), 0, y, &out);
  return out;
}

float vec_dot_q6_K_q8_K_avx512(int64_t n, const block_q6_K* x, const block_q8_K* y) {
  float out;
  dot_rows_q6_K<1>(n / QK_K, reinterpret_cast<const uint8_t*>(x), 0, y, &out);
  return out;
}

float vec_dot_q5_K_q8_K_avx512(int64_t n, const block_q5_K* x, const block_q8_K* y) {
  float out;
  dot_rows_q4_K<1, block_q5_K>(n / QK_K, reinterpret_cast<const uint8_t*>(x), 0, y, &out);
  return out;
}

// Q3_K / Q2_K: 16 sub-blocks of 16. Element 128h + 32k + l takes bits 2k..2k+1 of qs[32h + l]:
// with the 32 bytes of half h in the low 256 bits and them >> 2 in the high ones, bits 0..1 of
// each byte are elements 128h + 0..63 in order (k = 0, 1) and bits 4..5 elements 128h + 64..127
// (k = 2, 3), each a 64-byte run of activations. Lane l of run v = 2h + p (p = 0, 1) sums 4
// quants of sub-block 4v + l / 4, as in Q6_K; lane sums are at most 4 * 7 * 128 < 2^15, so the
// scale goes on with vpdpwssd (scale in the low 16 bits of a lane with a zero high half).
inline __m512i k16_spread(int v) {  // permutexvar index: lane l takes 32-bit lane 4v + l / 4
  alignas(64) int32_t idx[16];
  for (int l = 0; l < 16; ++l) idx[l] = 4 * v + l / 4;
  return _mm512_load_si512(idx);
}

// Q3_K: q in 0..7 (value q - 4: vpdpbusd takes the unsigned q, the - 4 comes back as
// - 4 sum_j s_j bsum_j), the 3rd bit of element 128h + 32k + l is bit 4h + k of hmask[l];
// scale s_j = sc_j - 32.
float vec_dot_q3_K_q8_K_avx512(int64_t n, const block_q3_K* x, const block_q8_K* y) {
  const __m512i low2 = _mm512_set1_epi8(0x03), bit2 = _mm512_set1_epi8(0x04);
  const __m512i lo16 = _mm512_set1_epi32(0xFFFF);
  const __m512i spread[4] = {k16_spread(0), k16_spread(1), k16_spread(2), k16_spread(3)};
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const block_q3_K& xb = x[b];
    const block_q8_K& ab = y[b];
    prefetch_ahead<sizeof(block_q3_K)>(&xb);
    // The 16 6-bit scales as bytes (as the AVX2 kernel builds them: no store-to-load round trip).
    uint32_t u[3];
    std::memcpy(u, xb.scales, 12);
    const __m128i low = _mm_and_si128(_mm_setr_epi32(int(u[0]), int(u[1]), int(u[0] >> 4), int(u[1] >> 4)),
                                      _mm_set1_epi8(0x0F));
    const __m128i top = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(int(u[2])), _mm_setr_epi32(0, 2, 4, 6)),
                                      _mm_set1_epi8(0x03));
    const __m128i sc8 = _mm_or_si128(low, _mm_slli_epi32(top, 4));
    const __m512i scales = _mm512_and_si512(_mm512_sub_epi32(_mm512_cvtepu8_epi32(sc8), _mm512_set1_epi32(32)), lo16);
    // hmask bit 4h + k for run 2h + p, lanes 0..31 (k = 2p) and 32..63 (k = 2p + 1): with hmask in
    // the low half and hmask >> 1 in the high one, bit 4h + 2p of each byte, moved to bit 2.
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.hmask));
    const __m512i hm01 = _mm512_inserti64x4(_mm512_castsi256_si512(hm), _mm256_srli_epi16(hm, 1), 1);
    const __m512i high[4] = {_mm512_and_si512(_mm512_slli_epi16(hm01, 2), bit2), _mm512_and_si512(hm01, bit2),
                             _mm512_and_si512(_mm512_srli_epi16(hm01, 2), bit2),
                             _mm512_and_si512(_mm512_srli_epi16(hm01, 4), bit2)};
    const __m512i z = _mm512_setzero_si512();
    __m512i sum = z;
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs + 32 * h));
      const __m512i q02 = _mm512_inserti64x4(_mm512_castsi256_si512(qs), _mm256_srli_epi16(qs, 2), 1);
      for (int p = 0; p < 2; ++p) {
        const int v = 2 * h + p;
        const __m512i q = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q02, 4 * p), low2), high[v]);
        const __m512i d = _mm512_dpbusd_epi32(z, q, _mm512_loadu_si512(ab.qs + 64 * v));
        sum = _mm512_dpwssd_epi32(sum, d, _mm512_permutexvar_epi32(spread[v], scales));
      }
    }
    // - 4 sum_j s_j bsum_j
    const __m256i s16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(sc8), _mm256_set1_epi16(32));
    const __m256i corr = _mm256_slli_epi32(
        _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.bsums)), s16), 2);
    sum = _mm512_sub_epi32(sum, _mm512_zextsi256_si512(corr));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(fp16(xb.d) * ab.d), acc);
  }
  return hsum(acc);
}

// Q2_K: q in 0..3 laid out as Q3_K's low bits; scales[j] holds sc_j (low nibble) and m_j (high):
// dot = d d8 sum_j sc_j (q . a)_j - dmin d8 sum_j m_j bsum_j.
float vec_dot_q2_K_q8_K_avx512(int64_t n, const block_q2_K* x, const block_q8_K* y) {
  const __m512i low2 = _mm512_set1_epi8(0x03);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m512i spread[4] = {k16_spread(0), k16_spread(1), k16_spread(2), k16_spread(3)};
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_min = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const block_q2_K& xb = x[b];
    const block_q8_K& ab = y[b];
    prefetch_ahead<sizeof(block_q2_K)>(&xb);
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.scales));
    const __m512i scales = _mm512_cvtepu8_epi32(_mm_and_si128(packed, low4));  // high halves zero
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
    const __m512i z = _mm512_setzero_si512();
    __m512i sum = z;
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs + 32 * h));
      const __m512i q02 = _mm512_inserti64x4(_mm512_castsi256_si512(qs), _mm256_srli_epi16(qs, 2), 1);
      for (int p = 0; p < 2; ++p) {
        const int v = 2 * h + p;
        const __m512i q = _mm512_and_si512(_mm512_srli_epi16(q02, 4 * p), low2);
        const __m512i d = _mm512_dpbusd_epi32(z, q, _mm512_loadu_si512(ab.qs + 64 * v));
        sum = _mm512_dpwssd_epi32(sum, d, _mm512_permutexvar_epi32(spread[v], scales));
      }
    }
    const __m256i sum_min = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.bsums)), mins);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(fp16(xb.d) * ab.d), acc);
    acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_min), _mm256_set1_ps(fp16(xb.dmin) * ab.d), acc_min);
  }
  return hsum(acc) - hsum(acc_min);
}

// IQ4_XS: levels + 128 (1..241) are unsigned, so vpdpbusd takes them and the + 128 comes back as
// - 128 sum_j s_j (bsum_2j + bsum_2j+1), s_j = ls_j - 32. Sub-blocks 2m, 2m + 1 (qs[32m ..], low
// nibbles elements 0..15 of each, high nibbles 16..31) make one 64-byte run in element order.
// Lane sums reach 4 * 241 * 128 > 2^15, so the scale is an int32 multiply, not vpdpwssd.
float vec_dot_iq4_xs_q8_K_avx512(int64_t n, const block_iq4_xs* x, const block_q8_K* y) {
  const __m128i t = _mm_add_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kvalues_iq4nl)), _mm_set1_epi8(-128));
  const __m512i levels = _mm512_broadcast_i32x4(t);  // vpshufb: the table in every 128-bit lane
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m256i shift_l = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), shift_h = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  __m512i spread[4];  // run m: lanes 0..7 take scale 2m, lanes 8..15 scale 2m + 1
  for (int m = 0; m < 4; ++m) {
    alignas(64) int32_t idx[16];
    for (int l = 0; l < 16; ++l) idx[l] = 2 * m + l / 8;
    spread[m] = _mm512_load_si512(idx);
  }
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const block_iq4_xs& xb = x[b];
    const block_q8_K& ab = y[b];
    prefetch_ahead<sizeof(block_iq4_xs)>(&xb);
    uint32_t sl;
    std::memcpy(&sl, xb.scales_l, 4);
    const __m256i ls = _mm256_or_si256(
        _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(sl)), shift_l), _mm256_set1_epi32(0xF)),
        _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(xb.scales_h), shift_h), _mm256_set1_epi32(3)), 4));
    const __m256i s32 = _mm256_sub_epi32(ls, _mm256_set1_epi32(32));  // s_0..s_7
    const __m512i scales = _mm512_zextsi256_si512(s32);
    __m512i sum = _mm512_setzero_si512();
    for (int m = 0; m < 4; ++m) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs + 32 * m));
      // 128-bit lanes: low nibbles of 2m, of 2m + 1, high nibbles of 2m, of 2m + 1 -> element order
      __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
      idx = _mm512_and_si512(_mm512_shuffle_i64x2(idx, idx, _MM_SHUFFLE(3, 1, 2, 0)), low4);
      const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_shuffle_epi8(levels, idx),
                                            _mm512_loadu_si512(ab.qs + 64 * m));
      sum = _mm512_add_epi32(sum, _mm512_mullo_epi32(d, _mm512_permutexvar_epi32(spread[m], scales)));
    }
    // - 128 sum_j s_j (bsum_2j + bsum_2j+1): s_j in both 16-bit halves of lane j
    const __m256i s16 = _mm256_or_si256(_mm256_and_si256(s32, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(s32, 16));
    const __m256i corr = _mm256_slli_epi32(
        _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab.bsums)), s16), 7);
    sum = _mm512_sub_epi32(sum, _mm512_zextsi256_si512(corr));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(fp16(xb.d) * ab.d), acc);
  }
  return hsum(acc);
}

// ---- 32-element formats: Q8_0, Q4_0, Q5_0 weights times Q8_0 activations, Q5_1 times Q8_1 ----
// One 32-byte block per step with 256-bit VNNI; the integer block sums are exact and scaled once
// per block in float.

// Q8_0 x Q8_0: x + 128 is unsigned, so x . y = (x + 128) . y - 128 sum(y), exact for every input
// (the sign trick, |x| . sign(x) y, fails for y = -128).
float vec_dot_q8_0_q8_0_avx512(int64_t n, const block_q8_0* x, const block_q8_0* y) {
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    prefetch_ahead<sizeof(block_q8_0)>(x + i);
    const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    const __m256i yq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256i dot = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_xor_si256(xq, bias), yq),
                                         _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, yq));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
  }
  return hsum(acc);
}

// Q4_0: w = d (q - 8), so q . y - 8 sum(y), both with vpdpbusd on the unsigned q.
float vec_dot_q4_0_q8_0_avx512(int64_t n, const block_q4_0* x, const block_q8_0* y) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), eights = _mm256_set1_epi8(8);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK4_0; ++i) {
    prefetch_ahead<sizeof(block_q4_0)>(x + i);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].qs));
    const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), low4);  // elements 0..31
    const __m256i yq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256i qy = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, yq);
    const __m256i dot = _mm256_sub_epi32(qy, _mm256_dpbusd_epi32(_mm256_setzero_si256(), eights, yq));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
  }
  return hsum(acc);
}

// Q5_0: w = d (q - 16) with q in 0..31 unsigned, so q . y - 16 sum(y) with vpdpbusd.
float vec_dot_q5_0_q8_0_avx512(int64_t n, const block_q5_0* x, const block_q8_0* y) {
  const __m256i sixteen = _mm256_set1_epi8(16);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK5_0; ++i) {
    prefetch_ahead<sizeof(block_q5_0)>(x + i);
    const __m256i yq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256i qy = _mm256_dpbusd_epi32(_mm256_setzero_si256(), x86::q5_quants(x[i].qs, x[i].qh), yq);
    const __m256i dot = _mm256_sub_epi32(qy, _mm256_dpbusd_epi32(_mm256_setzero_si256(), sixteen, yq));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
  }
  return hsum(acc);
}

// Q4_1 and IQ4_NL take two blocks per 512-bit step: a block per 256-bit step left the per-block
// float accumulate (one vfmadd chain) as the limit in cache. Lanes 0..7 hold block i, 8..15 block
// i + 1; half_lanes_index() gives the low half float 0 of a 128-bit vector, the high half float 2.
inline __m512i half_lanes_index() { return _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2); }

// The nibbles of two 16-byte runs (low nibbles elements 0..15, high 16..31 of each block) as 64
// quants 0..15 in element order: 128-bit lanes [lo p0, hi p0, lo p1, hi p1].
inline __m512i nibbles_2x16(const uint8_t* p0, const uint8_t* p1) {
  const __m256i b = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p1)),
                                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(p0)));
  const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(b), _mm256_srli_epi16(b, 4), 1);
  return _mm512_and_si512(_mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0F));
}

inline __m512i load_2x32(const int8_t* p0, const int8_t* p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p1)), 1);
}

// Two adjacent fp16 fields of blocks p0 and p1 (as Q4_1's d, m and Q8_1's d, s) as floats
// [f0(p0), f1(p0), f0(p1), f1(p1)].
inline __m128 fp16_pairs(const void* p0, const void* p1) {
  uint32_t a, b;
  std::memcpy(&a, p0, 4);
  std::memcpy(&b, p1, 4);
  return _mm_cvtph_ps(_mm_unpacklo_epi32(_mm_cvtsi32_si128(static_cast<int>(a)), _mm_cvtsi32_si128(static_cast<int>(b))));
}

// Q4_1 . Q8_1: d_x d_y q . y per block in the vector lanes (q in 0..15 unsigned, as vpdpbusd
// takes it), the min term m_x s_y in lanes 1 and 3 of a float vector.
float vec_dot_q4_1_q8_1_avx512(int64_t n, const block_q4_1* x, const block_q8_1* y) {
  const int64_t nb = n / QK4_1;
  const __m512i halves = half_lanes_index();
  __m512 acc = _mm512_setzero_ps();
  __m128 mins = _mm_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    prefetch_ahead<2 * sizeof(block_q4_1)>(x + i);
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles_2x16(x[i].qs, x[i + 1].qs),
                                            load_2x32(y[i].qs, y[i + 1].qs));
    const __m128 dm = _mm_mul_ps(fp16_pairs(&x[i].d, &x[i + 1].d), fp16_pairs(&y[i].d, &y[i + 1].d));  // [dd, ms] x 2
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(dm)), acc);
    mins = _mm_add_ps(mins, dm);
  }
  float tail = 0.0f;
  if (i < nb) {  // an odd last block
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].qs));
    const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), _mm256_set1_epi8(0x0F));
    const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs)));
    tail = hsum(_mm256_cvtepi32_ps(dot)) * (fp16(x[i].d) * fp16(y[i].d)) + fp16(x[i].m) * fp16(y[i].s);
  }
  alignas(16) float m[4];
  _mm_store_ps(m, mins);
  return hsum(acc) + (m[1] + m[3]) + tail;
}

// IQ4_NL . Q8_0: levels + 128 (1..241) are unsigned, as vpdpbusd takes them; the + 128 comes back
// as 128 sum(y), from the same instruction on a vector of 128s.
float vec_dot_iq4_nl_q8_0_avx512(int64_t n, const block_iq4_nl* x, const block_q8_0* y) {
  const __m128i t = _mm_add_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kvalues_iq4nl)), _mm_set1_epi8(-128));
  const __m512i levels = _mm512_broadcast_i32x4(t);  // vpshufb: the table in every 128-bit lane
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i halves = half_lanes_index();
  const int64_t nb = n / QK4_NL;
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    prefetch_ahead<2 * sizeof(block_iq4_nl)>(x + i);
    const __m512i u = _mm512_shuffle_epi8(levels, nibbles_2x16(x[i].qs, x[i + 1].qs));
    const __m512i yq = load_2x32(y[i].qs, y[i + 1].qs);
    const __m512i z = _mm512_setzero_si512();
    const __m512i dot = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, u, yq), _mm512_dpbusd_epi32(z, bias, yq));
    const __m128 dx = _mm_cvtph_ps(_mm_cvtsi32_si128(x[i].d | x[i + 1].d << 16));
    const __m128 dy = _mm_cvtph_ps(_mm_cvtsi32_si128(y[i].d | y[i + 1].d << 16));
    // [dd_i, dd_i+1] in floats 0, 1: the index wants them in 0 and 2
    const __m128 dd = _mm_unpacklo_ps(_mm_mul_ps(dx, dy), _mm_setzero_ps());
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(dd)), acc);
  }
  float tail = 0.0f;
  if (i < nb) {  // an odd last block
    const __m256i w = _mm256_shuffle_epi8(_mm512_castsi512_si256(levels),
                                          _mm512_castsi512_si256(nibbles_2x16(x[i].qs, x[i].qs)));
    const __m256i yq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256i z = _mm256_setzero_si256();
    const __m256i dot = _mm256_sub_epi32(_mm256_dpbusd_epi32(z, w, yq), _mm256_dpbusd_epi32(z, _mm512_castsi512_si256(bias), yq));
    tail = hsum(_mm256_cvtepi32_ps(dot)) * (fp16(x[i].d) * fp16(y[i].d));
  }
  return hsum(acc) + tail;
}

// Q5_1 . Q8_1: d_x d_y q . y per block in the vector lanes, the min term m_x s_y in a float sum.
float vec_dot_q5_1_q8_1_avx512(int64_t n, const block_q5_1* x, const block_q8_1* y) {
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t i = 0; i < n / QK5_1; ++i) {
    prefetch_ahead<sizeof(block_q5_1)>(x + i);
    const __m256i yq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].qs));
    const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), x86::q5_quants(x[i].qs, x[i].qh), yq);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
    mins += fp16(x[i].m) * fp16(y[i].s);
  }
  return hsum(acc) + mins;
}

// ---- float rows (attention over an f16/f32 KV cache, float weights) ----
// Four accumulators of 16 lanes, so each lane sums n / 64 products: well inside the bound the
// tests state for every dot product.

// Loaders of 16 values as floats; a tail of fewer than 16 through a mask (the rest read as zero).
// (fp16_t and bf16_t are both uint16_t, hence the structs.)
struct F32 {
  using T = float;
  static __m512 load(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};
struct F16 {
  using T = fp16_t;
  static __m512 load(const fp16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};
struct BF16 {
  using T = bf16_t;
  static __m512 load(const bf16_t* p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  }
};

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

template <typename L>
float vec_dot_to_f32(int64_t n, const typename L::T* x, const float* y) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    prefetch_ahead<64 * sizeof(typename L::T)>(x + i);
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm512_fmadd_ps(L::load(x + i + 16 * k, 0xFFFF), _mm512_loadu_ps(y + i + 16 * k), acc[k]);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    acc[0] = _mm512_fmadd_ps(L::load(x + i, m), _mm512_maskz_loadu_ps(m, y + i), acc[0]);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

// ---- softmax and silu_mul (element-wise, but per token they grow with the context / batch) ----

// e^x: x = n ln2 + r with |r| <= ln2 / 2, e^r by its degree-6 Taylor polynomial (relative error
// < 2e-7 there), times 2^n by vscalefps, which also gives 0 far below (x clamped at -127, where
// -inf lands) and inf above 88.7; NaN stays NaN (vmaxps returns its second operand for NaN).
inline __m512 exp_ps(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-127.0f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

SoftmaxStats softmax_scaled_avx512(float* x, int64_t n, float s) {
  if (n <= 0) return {};
  const __m512 vs = _mm512_set1_ps(s);
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs));
  }
  const float max = _mm512_reduce_max_ps(vmax);
  const __m512 mx = _mm512_set1_ps(max);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = exp_ps(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, x + i), vs, mx));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  const float total = _mm512_reduce_add_ps(sum);
  const __m512 inv = _mm512_set1_ps(1.0f / total);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
  return {max, total};
}

void silu_mul_avx512(const float* gate, const float* up, float* y, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

// y = x . W for a k-major W (attention scores: n_x queries against n_cols cached keys): column
// blocks of 32 for up to 8 query rows, each converted W vector feeding 8 fma with a broadcast
// query element. Each y is one sequential fma chain over k.
template <typename L, int NX>
void kn_block(int64_t n, const typename L::T* w, int64_t ldw, __mmask16 m0, __mmask16 m1, const float* x,
              int64_t ldx, float* y, int64_t ldy) {
  __m512 acc[NX][2];
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  // The K / V rows stream from memory at long contexts (a layer's cache is MBs): without a
  // prefetch ~2 KiB ahead this loop waits on each row (decode at depth 4096 on a Zen 5 VM).
  const int64_t ahead = std::max<int64_t>(8, 2048 / (ldw * int64_t{sizeof(typename L::T)}));
  for (int64_t k = 0; k < n; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(w + (k + ahead) * ldw), _MM_HINT_T0);
    const __m512 w0 = L::load(w + k * ldw, m0), w1 = L::load(w + k * ldw + 16, m1);
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      const __m512 xi = _mm512_set1_ps(x[i * ldx + k]);
      acc[i][0] = _mm512_fmadd_ps(w0, xi, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(w1, xi, acc[i][1]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i) {
    _mm512_mask_storeu_ps(y + i * ldy, m0, acc[i][0]);
    _mm512_mask_storeu_ps(y + i * ldy + 16, m1, acc[i][1]);
  }
}

template <typename L>
void matmul_kn(int64_t n, const typename L::T* w, int64_t ldw, int64_t n_cols, const float* x, int64_t ldx,
               int64_t n_x, float* y, int64_t ldy) {
  for (int64_t j = 0; j < n_cols; j += 32) {
    const int64_t left = n_cols - j;
    const __mmask16 m0 = tail_mask(left), m1 = left > 16 ? tail_mask(left - 16) : 0;
    for (int64_t i = 0; i < n_x; i += 8) {
      const float* xi = x + i * ldx;
      float* yi = y + i * ldy + j;
      switch (std::min<int64_t>(8, n_x - i)) {
        case 8: kn_block<L, 8>(n, w + j, ldw, m0, m1, xi, ldx, yi, ldy); break;
        case 7: kn_block<L, 7>(n, w + j, ldw, m0, m1, xi, ldx, yi, ldy); break;
        case 6: kn_block<L, 6>(n, w + j, ldw, m0, m1, xi, ldx, yi, ldy); break;
        case 5: kn_block<L, 5>(n, w + j, ldw, m0, m1, xi, ldx, yi, ldy); break;
        case 4: kn_block<L, 4>(n, w + j, ldw, m0, m1, xi, ldx, yi, ldy); break;
        case 3: kn_block<L, 3>(n, w + j, ldw, m0, m1, xi, ldx, yi, ldy); break;
        case 2: kn_block<L, 2>(n, w + j, ldw, m0, m1, xi, ldx, yi, ldy); break;
        default: kn_block<L, 1>(n, w + j, ldw, m0, m1, xi, ldx, yi, ldy); break;
      }
    }
  }
}

void matmul_kn_f16_f32_avx512(int64_t n, const fp16_t* w, int64_t ldw, int64_t n_cols, const float* x,
                              int64_t ldx, int64_t n_x, float* y, int64_t ldy) {
  matmul_kn<F16>(n, w, ldw, n_cols, x, ldx, n_x, y, ldy);
}
void matmul_kn_f32_f32_avx512(int64_t n, const float* w, int64_t ldw, int64_t n_cols, const float* x,
                              int64_t ldx, int64_t n_x, float* y, int64_t ldy) {
  matmul_kn<F32>(n, w, ldw, n_cols, x, ldx, n_x, y, ldy);
}

float vec_dot_f32_f32_avx512(int64_t n, const float* x, const float* y) { return vec_dot_to_f32<F32>(n, x, y); }
float vec_dot_f16_f32_avx512(int64_t n, const fp16_t* x, const float* y) { return vec_dot_to_f32<F16>(n, x, y); }
float vec_dot_bf16_f32_avx512(int64_t n, const bf16_t* x, const float* y) { return vec_dot_to_f32<BF16>(n, x, y); }

// Exact conversions (vcvtph2ps keeps NaN payloads and quiets them, as the reference does).
template <typename L>
void to_f32(const typename L::T* x, float* y, int64_t k) {
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 m = tail_mask(k - i);
    _mm512_mask_storeu_ps(y + i, m, L::load(x + i, m));
  }
}
void dequantize_row_f16_avx512(const fp16_t* x, float* y, int64_t k) { to_f32<F16>(x, y, k); }
void dequantize_row_bf16_avx512(const bf16_t* x, float* y, int64_t k) { to_f32<BF16>(x, y, k); }

// ---- activation quantization (bit-exact with quantize_row_q8_K_ref) ----

void quantize_row_q8_K_avx512(const float* x, block_q8_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    // max |x| ignoring NaN (max_ps returns its second operand when either is NaN)
    __m512 vmax = _mm512_setzero_ps();
    for (int j = 0; j < QK_K; j += 16) vmax = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(x + j), abs_mask), vmax);
    const float amax = _mm512_reduce_max_ps(vmax);
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    float max = 0.0f;  // the first element of largest magnitude, with its sign
    for (int j = 0; j < QK_K; j += 16) {
      const __mmask16 m = _mm512_cmp_ps_mask(_mm512_and_ps(_mm512_loadu_ps(x + j), abs_mask),
                                             _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (m) {
        max = x[j + __builtin_ctz(m)];
        break;
      }
    }
    const float iscale = -127.f / max;
    if (std::isinf(iscale)) {  // |max| < 127 / FLT_MAX: d rounds to -+0, every q is 0
      std::memset(&y[i], 0, sizeof y[i]);
      y[i].d = 1 / iscale;
      continue;
    }
    const __m512 vs = _mm512_set1_ps(iscale);
    for (int j = 0; j < QK_K; j += 16) {
      __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + j), vs);
      v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);  // NaN -> 0
      v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-128.f)), _mm512_set1_ps(127.f));
      const __m512i q = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + j), _mm512_cvtepi32_epi8(q));
      y[i].bsums[j / 16] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    y[i].d = 1 / iscale;
  }
}

// ---- dequantization (bit-exact: the reference's products, no fused multiply-add) ----

inline __m512 u8_to_ps(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// The 256 quants of a block in element order (Q4_K 0..15, Q6_K 0..63).
inline void unpack_4bit(const uint8_t* qs, uint8_t* q) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int g = 0; g < 2; ++g) {  // 64 bytes: 32-byte groups 2g and 2g + 1
    const __m512i v = _mm512_loadu_si512(qs + 64 * g);
    const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
    // a group's 32 low nibbles are 32 elements, its high nibbles the next 32
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 128 * g), _mm512_castsi512_si256(lo));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 128 * g + 32), _mm512_castsi512_si256(hi));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 128 * g + 64), _mm512_extracti64x4_epi64(lo, 1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 128 * g + 96), _mm512_extracti64x4_epi64(hi, 1));
  }
}

inline void unpack_q4_K(const block_q4_K& x, uint8_t* q) { unpack_4bit(x.qs, q); }

// Q5_K: Q4_K's low 4 bits, then the 5th bit of element 32 j + l from bit j of qh[l].
inline void unpack_q5_K(const block_q5_K& x, uint8_t* q) {
  unpack_4bit(x.qs, q);
  const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh)), one = _mm256_set1_epi8(1);
  for (int j = 0; j < 8; ++j) {
    auto* p = reinterpret_cast<__m256i*>(q + 32 * j);
    const __m256i bit = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, j), one), 4);
    _mm256_storeu_si256(p, _mm256_or_si256(_mm256_loadu_si256(p), bit));
  }
}

inline void unpack_q6_K(const block_q6_K& x, uint8_t* q) {
  const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
  for (int h = 0; h < 2; ++h) {
    const __m512i ql = _mm512_loadu_si512(x.ql + 64 * h);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.qh + 32 * h));
    const __m512i qh02 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
    const __m512i qh46 = _mm512_srli_epi16(qh02, 4);
    _mm512_storeu_si512(q + 128 * h, _mm512_or_si512(_mm512_and_si512(ql, low4),
                                                     _mm512_slli_epi16(_mm512_and_si512(qh02, low2), 4)));
    _mm512_storeu_si512(q + 128 * h + 64,
                        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                        _mm512_slli_epi16(_mm512_and_si512(qh46, low2), 4)));
  }
}

void dequantize_row_q4_K_avx512(const block_q4_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i, y += QK_K) {
    const float d = fp16(x[i].d), dmin = fp16(x[i].dmin);
    alignas(64) uint8_t q[QK_K];
    unpack_q4_K(x[i], q);
    for (int j = 0; j < QK_K / 32; ++j) {
      uint8_t sc, m;
      q4_K_scale_min(x[i].scales, j, &sc, &m);
      const __m512 dj = _mm512_set1_ps(d * sc), mj = _mm512_set1_ps(dmin * m);
      _mm512_storeu_ps(y + 32 * j, _mm512_sub_ps(_mm512_mul_ps(dj, u8_to_ps(q + 32 * j)), mj));
      _mm512_storeu_ps(y + 32 * j + 16, _mm512_sub_ps(_mm512_mul_ps(dj, u8_to_ps(q + 32 * j + 16)), mj));
    }
  }
}

void dequantize_row_q6_K_avx512(const block_q6_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  const __m512 m32 = _mm512_set1_ps(32.0f);
  for (int64_t i = 0; i < nb; ++i, y += QK_K) {
    const float d = fp16(x[i].d);
    alignas(64) uint8_t q[QK_K];
    unpack_q6_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const __m512 ds = _mm512_set1_ps(d * x[i].scales[j]);
      // q - 32 is exact in float, as the reference's int (q - 32) converted is
      _mm512_storeu_ps(y + 16 * j, _mm512_mul_ps(ds, _mm512_sub_ps(u8_to_ps(q + 16 * j), m32)));
    }
  }
}

// ---- prefill: a tile of 16 weight rows unpacked once, times many activation rows ----
// Each weight vector (16 rows x 4 k) serves 8 activation rows. Measured on the Q4_K 512-row GEMM:
// 8 activation rows per pass slightly ahead of 4; 32-row tiles (two vectors per broadcast) no
// faster.

constexpr int kTileRows = 16;
constexpr int kActPerPass = 8;
// Activation rows from which the prefill tile beats the decode kernel (rows re-read from L1), per
// type; matmul() reads them. Measured with `bench-kernels --benchmark_filter=switch/` on an AMD
// EPYC Zen 4 VM (docs/PERFORMANCE.md, "GEMV/GEMM switch"); an earlier session's Xeon measurement
// gave 8 for both. Other CPUs may differ: re-measure before trusting them elsewhere.
constexpr int64_t kGemmMinRowsQ4K = 6, kGemmMinRowsQ6K = 6, kGemmMinRowsQ5K = 3;
// The 32-element formats' tiles (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, IQ4_NL) win from 2-4 rows on an
// AMD EPYC VM reporting family 26 (Zen 5), measured noisily (another build shared the cores).
constexpr int64_t kGemmMinRows32 = 3;
using Tile = gemm::Tile<kTileRows>;
// A tile's 16 rows x 64 groups of 4 quants, transposed to its 64 group vectors: four 16 x 16
// transposes of 32-bit words (unpack 32 / 64-bit, then two 128-bit lane shuffles), where a word
// at a time would be 1024 loads and stores per block.
inline void transpose16x16_epi32(__m512i r[16]) {
  __m512i t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 2; ++k) {
      r[4 * i + k] = _mm512_unpacklo_epi64(t[4 * i + k], t[4 * i + 2 + k]);
      r[4 * i + 2 + k] = _mm512_unpackhi_epi64(t[4 * i + k], t[4 * i + 2 + k]);
    }
  }
  // r[4 i + c]: rows 4i..4i+3, word column c (+ 4 per 128-bit lane)
#pragma GCC unroll 16
  for (int i = 0; i < 2; ++i) {
    for (int c = 0; c < 4; ++c) {
      t[8 * i + c] = _mm512_shuffle_i32x4(r[8 * i + c], r[8 * i + 4 + c], 0x88);
      t[8 * i + 4 + c] = _mm512_shuffle_i32x4(r[8 * i + c], r[8 * i + 4 + c], 0xDD);
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < 8; ++c) {
    r[c] = _mm512_shuffle_i32x4(t[c], t[8 + c], 0x88);
    r[8 + c] = _mm512_shuffle_i32x4(t[c], t[8 + c], 0xDD);
  }
}

// Output vector k of transpose16x16_epi32 holds word column kTransposeOrder[k] (lanes = rows).
constexpr int kTransposeOrder[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};

struct Unpack {
  static void q4_K(const block_q4_K& b, uint8_t* q) { unpack_q4_K(b, q); }
  static void q5_K(const block_q5_K& b, uint8_t* q) { unpack_q5_K(b, q); }
  static void q6_K(const block_q6_K& b, uint8_t* q) { unpack_q6_K(b, q); }
  static void groups(const uint8_t* q, uint8_t* tb) {
    static_assert(kTileRows == 16);
    for (int c = 0; c < 4; ++c) {  // groups 16 c .. 16 c + 15
      __m512i r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) r[i] = _mm512_load_si512(q + i * QK_K + 64 * c);
      transpose16x16_epi32(r);
#pragma GCC unroll 16
      for (int k = 0; k < 16; ++k) _mm512_store_si512(tb + (16 * c + kTransposeOrder[k]) * Tile::group_bytes, r[k]);
    }
  }
};

// acc + the unsigned weight bytes w . the 4 signed activation bytes at p in every lane: vpdpbusd
// with its memory operand broadcast ({1to16}). GCC 12 does not fold a broadcast into vpdpbusd, and
// the separate vpbroadcastd doubled the instructions of the tile loops (8 activation rows per
// weight vector: 72 loads and 64 products per 32 cycles of the VNNI units).
using i32_alias = int32_t __attribute__((may_alias));
inline __m512i dpbusd_bcast(__m512i acc, __m512i w, const int8_t* p) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const i32_alias*>(p)));
  return acc;
}
// The same for int16 pairs (vpdpwssd): w's lanes . the 2 int16 at p.
inline __m512i dpwssd_bcast(__m512i acc, __m512i w, const int16_t* p) {
  __asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const i32_alias*>(p)));
  return acc;
}

// NA activation rows times one Q4_K tile: y lane r = sum_b d8 (sum_j d sc_j (q . a)_j - dmin sum_j m_j bs_j).
// bs: per activation row and block, the 8 sub-block sums as int16.
template <int NA>
void tile_rows_q4_K(const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs,
                    float* y) {
  __m512 out[NA];
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) out[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + b * Tile::block_bytes<block_q4_K>();
    const auto* dsc = reinterpret_cast<const float*>(tb + Tile::quant_bytes);
    __m512 sumf[NA];  // sum_j d sc_j (q . a)_j; d8 once per block
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) sumf[i] = _mm512_setzero_ps();
    for (int j = 0; j < 8; ++j) {
      __m512i acc[NA];
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) acc[i] = _mm512_setzero_si512();
#pragma GCC unroll 16
      for (int g = 0; g < 8; ++g) {
        const __m512i w = _mm512_load_si512(tb + (8 * j + g) * Tile::group_bytes);
#pragma GCC unroll 16
        for (int i = 0; i < NA; ++i) acc[i] = dpbusd_bcast(acc[i], w, a[i][b].qs + 32 * j + 4 * g);
      }
      const __m512 dj = _mm512_load_ps(dsc + j * kTileRows);
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) sumf[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), dj, sumf[i]);
    }
    const uint8_t* mins = tb + Tile::quant_bytes + 8 * Tile::vec_bytes;
    __m512i macc[NA];
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) macc[i] = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (int p = 0; p < 4; ++p) {
      const __m512i m = _mm512_load_si512(mins + p * Tile::vec_bytes);
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i)
        macc[i] = dpwssd_bcast(macc[i], m, bs[i] + 8 * b + 2 * p);
    }
    const __m512 dm = _mm512_load_ps(reinterpret_cast<const float*>(tb + Tile::quant_bytes + 12 * Tile::vec_bytes));
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i)
      out[i] = _mm512_fmadd_ps(_mm512_fnmadd_ps(_mm512_cvtepi32_ps(macc[i]), dm, sumf[i]), _mm512_set1_ps(a[i][b].d), out[i]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) _mm512_store_ps(y + i * kTileRows, out[i]);
}

// NA activation rows times one Q6_K tile: y lane r = sum_b d8 sum_j d s_j ((q . a)_j - 32 bsum_j).
template <int NA>
void tile_rows_q6_K(const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const*,
                    float* y) {
  __m512 out[NA];
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) out[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + b * Tile::block_bytes<block_q6_K>();
    const auto* dsc = reinterpret_cast<const float*>(tb + Tile::quant_bytes);
    __m512 sumf[NA];
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) sumf[i] = _mm512_setzero_ps();
    for (int j = 0; j < 16; ++j) {
      __m512i acc[NA];
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) acc[i] = _mm512_set1_epi32(-32 * a[i][b].bsums[j]);
#pragma GCC unroll 16
      for (int g = 0; g < 4; ++g) {
        const __m512i w = _mm512_load_si512(tb + (4 * j + g) * Tile::group_bytes);
#pragma GCC unroll 16
        for (int i = 0; i < NA; ++i) acc[i] = dpbusd_bcast(acc[i], w, a[i][b].qs + 16 * j + 4 * g);
      }
      const __m512 dj = _mm512_load_ps(dsc + j * kTileRows);
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) sumf[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), dj, sumf[i]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) out[i] = _mm512_fmadd_ps(sumf[i], _mm512_set1_ps(a[i][b].d), out[i]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) _mm512_store_ps(y + i * kTileRows, out[i]);
}

template <int NA>
struct RowsQ4K {
  static void run(const uint8_t* t, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* o) {
    tile_rows_q4_K<NA>(t, nb, a, bs, o);
  }
};
template <int NA>
struct RowsQ6K {
  static void run(const uint8_t* t, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* o) {
    tile_rows_q6_K<NA>(t, nb, a, bs, o);
  }
};

// NA activation rows times one tile of a 32-element format (gemm_tile.hpp, u8 layout): per block
// the integer sum starts at -offset sum(a) and takes 8 vpdpbusd of the unsigned quants with 4
// broadcast activation bytes; then y lane r += d_r d_a sum (+ m_r s_a for Q4_1 / Q5_1).
template <typename B>
struct Rows32 {
  using T = gemm::Tile32<kTileRows, B, gemm::Layout32::u8>;
  using A = typename gemm::Small<B>::Act;
  template <int NA>
  struct Run {
    static void run(const uint8_t* tile, int64_t nb, const void* const* q, const gemm::Act32* const* act, float* y) {
      __m512 out[NA];
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) out[i] = _mm512_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* tb = tile + b * T::block_bytes;
        __m512i acc[NA];
#pragma GCC unroll 16
        for (int i = 0; i < NA; ++i) acc[i] = _mm512_set1_epi32(act[i][b].start);
#pragma GCC unroll 16
        for (int g = 0; g < 8; ++g) {
          const __m512i w = _mm512_load_si512(tb + g * T::group_bytes);
#pragma GCC unroll 16
          for (int i = 0; i < NA; ++i)
            acc[i] = dpbusd_bcast(acc[i], w, static_cast<const A*>(q[i])[b].qs + 4 * g);
        }
        const __m512 d = _mm512_load_ps(T::d(tb));
#pragma GCC unroll 16
        for (int i = 0; i < NA; ++i)
          out[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), _mm512_mul_ps(d, _mm512_set1_ps(act[i][b].d)), out[i]);
        if constexpr (gemm::has_min<B>) {
          const __m512 m = _mm512_load_ps(T::m(tb));
#pragma GCC unroll 16
          for (int i = 0; i < NA; ++i) out[i] = _mm512_fmadd_ps(m, _mm512_set1_ps(act[i][b].s), out[i]);
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) _mm512_store_ps(y + i * kTileRows, out[i]);
    }
  };
};

// The 32-element formats' prefill tiles (set_gemm32; matmul() picks them from kGemmMinRows32 rows on).
template <typename B>
struct Tiles32 {
  static constexpr MatmulTile tile =
      gemm::matmul_tiles32<kTileRows, B, gemm::Layout32::u8, Rows32<B>::template Run, kActPerPass, x86::Unpack32>;
  static constexpr int64_t min_rows = kGemmMinRows32;
};

// The prefill tiles (matmul() picks them from kGemmMinRowsQ4K / Q6K activation rows on).
void matmul_q4_K_avx512(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* a,
                        size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  gemm::matmul_tiles<kTileRows, block_q4_K, RowsQ4K, Unpack, kActPerPass>(n, w, w_row_bytes, n_rows, a, a_row_bytes, n_act, y, ldy);
}

// Q5_K: the Q4_K tile and kernel with 5-bit quants (vpdpbusd sums are exact for any u8).
void matmul_q5_K_avx512(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* a,
                        size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  gemm::matmul_tiles<kTileRows, block_q5_K, RowsQ4K, Unpack, kActPerPass>(n, w, w_row_bytes, n_rows, a, a_row_bytes, n_act, y, ldy);
}

void matmul_q6_K_avx512(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* a,
                        size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  gemm::matmul_tiles<kTileRows, block_q6_K, RowsQ6K, Unpack, kActPerPass>(n, w, w_row_bytes, n_rows, a, a_row_bytes, n_act, y, ldy);
}

}  // namespace

const KernelSet* avx512_kernels() {
  static const KernelSet ks = [] {
#if defined(EDGELLM_HAVE_AVX2)
    // Every CPU that runs this table runs the AVX2 one (detect_x86 requires it): a type with no
    // AVX-512 kernel keeps its AVX2 kernel rather than falling back to the scalar reference.
    KernelSet k = *avx2_kernels();
#else
    KernelSet k = scalar_kernel_set();
#endif
    k.isa = Isa::avx512;
    k.name = "avx512";
    TypeKernels &q4_K = k.row(DType::Q4_K), &q6_K = k.row(DType::Q6_K);
    set_dequantize<dequantize_row_q4_K_avx512>(q4_K);
    set_vec_dot<vec_dot_q4_K_q8_K_avx512>(q4_K);
    set_gemm(q4_K, matmul_q4_K_avx512, kGemmMinRowsQ4K);
    set_dequantize<dequantize_row_q6_K_avx512>(q6_K);
    set_vec_dot<vec_dot_q6_K_q8_K_avx512>(q6_K);
    set_gemm(q6_K, matmul_q6_K_avx512, kGemmMinRowsQ6K);
    set_vec_dot<vec_dot_q5_K_q8_K_avx512>(k.row(DType::Q5_K));
    set_gemm(k.row(DType::Q5_K), matmul_q5_K_avx512, kGemmMinRowsQ5K);
    set_vec_dot<vec_dot_q3_K_q8_K_avx512>(k.row(DType::Q3_K));
    set_vec_dot<vec_dot_q2_K_q8_K_avx512>(k.row(DType::Q2_K));
    set_vec_dot<vec_dot_iq4_xs_q8_K_avx512>(k.row(DType::IQ4_XS));
    set_vec_dot<vec_dot_iq4_nl_q8_0_avx512>(k.row(DType::IQ4_NL));
    set_vec_dot<vec_dot_q4_1_q8_1_avx512>(k.row(DType::Q4_1));
    set_vec_dot<vec_dot_q8_0_q8_0_avx512>(k.row(DType::Q8_0));
    set_dequantize<x86::dequantize_row_q8_0>(k.row(DType::Q8_0));
    set_vec_dot<vec_dot_q4_0_q8_0_avx512>(k.row(DType::Q4_0));
    set_vec_dot<vec_dot_q5_0_q8_0_avx512>(k.row(DType::Q5_0));
    set_vec_dot<vec_dot_q5_1_q8_1_avx512>(k.row(DType::Q5_1));
    set_gemm32<Tiles32>(k);
    set_dequantize<dequantize_row_f16_avx512>(k.row(DType::F16));
    set_vec_dot<vec_dot_f16_f32_avx512>(k.row(DType::F16));
    set_dequantize<dequantize_row_bf16_avx512>(k.row(DType::BF16));
    set_vec_dot<vec_dot_bf16_f32_avx512>(k.row(DType::BF16));
    set_vec_dot<vec_dot_f32_f32_avx512>(k.row(DType::F32));
    k.act(ActForm::q8_K).from_f32 = erased_quantize<quantize_row_q8_K_avx512>;
    k.act(ActForm::q8_0).from_f32 = erased_quantize<x86::quantize_row_q8_0>;
    k.act(ActForm::q8_1).from_f32 = erased_quantize<x86::quantize_row_q8_1>;
    k.matmul_kn_f16_f32 = matmul_kn_f16_f32_avx512;
    k.matmul_kn_f32_f32 = matmul_kn_f32_f32_avx512;
    k.softmax_scaled = softmax_scaled_avx512;
    k.silu_mul = silu_mul_avx512;
    k.rms_norm = x86::rms_norm;
    k.add = x86::add;
    k.rope_norm_with = x86::rope_norm_with;
    return k;
  }();
  return &ks;
}

}  // namespace edgellm::kernels
