// The AVX2 kernel table (AVX2 + FMA + F16C, no VNNI: runs on Haswell and later): the scalar set
// with these kernels in place.
//
// Integer dot products use vpmaddubsw (u8 x s8 -> pairs summed to s16; K-quant weights are
// unsigned, at most 63 * 128 * 2 < 2^15, so no saturation) and vpmaddwd with the sub-block scales
// (s16 x s16 -> pairs summed to s32). dot_rows<R> can take R rows per pass sharing the
// activation loads; matmul uses one row at a time, which streams best from memory.
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

inline int hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// pshufb control that broadcasts 16-bit element j of each 128-bit lane to the whole lane.
inline __m256i bcast16_control(int j) {
  const int lo = 2 * j, hi = 2 * j + 1;
  return _mm256_setr_epi8(lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi,
                          lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi);
}

// ---- decode: R weight rows . one activation row ----

// Q4_K: 32-byte group c of qs holds sub-block 2c (low nibbles) and 2c + 1 (high nibbles), whose
// activations are the contiguous a[64c ..] and a[64c + 32 ..]. Q5_K (Block = block_q5_K) is the
// same with a 5th bit: byte l of qh holds it for element 64c + l in bit 2c and for 64c + 32 + l in
// bit 2c + 1 (quants up to 31: maddubs pairs stay below 31 * 128 * 2 < 2^15).
template <int R, class Block = block_q4_K>
void dot_rows_q4_K(int64_t nb, const uint8_t* w, size_t w_row_bytes, const block_q8_K* a, float* out) {
  constexpr bool kHighBit = std::is_same_v<Block, block_q5_K>;
  const __m256i low4 = _mm256_set1_epi8(0x0F), bit0 = _mm256_set1_epi8(0x01);
  __m256 acc[R], acc_min[R];
  for (int r = 0; r < R; ++r) acc[r] = acc_min[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const block_q8_K& ab = a[b];
    const __m256i bsums = load256(ab.bsums);
    for (int r = 0; r < R; ++r) {
      const auto* x = reinterpret_cast<const Block*>(w + r * w_row_bytes) + b;
      prefetch_ahead<sizeof(Block)>(x);
      uint64_t sc, mn;
      q4_K_scales_mins(x->scales, sc, mn);
      const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc))));
      __m256i sum = _mm256_setzero_si256();
      [[maybe_unused]] __m256i qh;
      if constexpr (kHighBit) qh = load256(x->qh);
      for (int c = 0; c < 4; ++c) {
        const __m256i q = load256(x->qs + 32 * c);
        __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        if constexpr (kHighBit) {  // bit 0 of each byte of qh >> k, moved to bit 4
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), bit0), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), bit0), 4));
        }
        const __m256i plo = _mm256_maddubs_epi16(lo, load256(ab.qs + 64 * c));
        const __m256i phi = _mm256_maddubs_epi16(hi, load256(ab.qs + 64 * c + 32));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(plo, _mm256_shuffle_epi8(sc16, bcast16_control(2 * c))));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(phi, _mm256_shuffle_epi8(sc16, bcast16_control(2 * c + 1))));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(fp16(x->d) * ab.d), acc[r]);
      const __m256i m32 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(mn)));
      const __m256i mins = _mm256_madd_epi16(bsums, _mm256_or_si256(m32, _mm256_slli_epi32(m32, 16)));
      acc_min[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(fp16(x->dmin) * ab.d), acc_min[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]) - hsum(acc_min[r]);
}

// Q6_K: elements 128h + 32k + l (k = 0..3) take low bits from ql[64h + l + 32 (k & 1)] (low
// nibble for k < 2, high for k >= 2) and top bits 2k..2k+1 of qh[32h + l]; dot = d d8 (sum_j s_j
// (q . a)_j - 32 sum_j s_j bsum_j).
template <int R>
void dot_rows_q6_K(int64_t nb, const uint8_t* w, size_t w_row_bytes, const block_q8_K* a, float* out) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
  // lane 0 takes 16-bit element 0 of the broadcast pair, lane 1 element 1
  const __m256i pair_ctl = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                            2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const block_q8_K& ab = a[b];
    const __m256i bsums = load256(ab.bsums);
    for (int r = 0; r < R; ++r) {
      const auto* x = reinterpret_cast<const block_q6_K*>(w + r * w_row_bytes) + b;
      prefetch_ahead<sizeof(block_q6_K)>(x);
      alignas(32) int16_t s16[16];
      const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x->scales)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(s16), scales);
      __m256i sum = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = load256(x->ql + 64 * h), ql1 = load256(x->ql + 64 * h + 32);
        const __m256i qh = load256(x->qh + 32 * h);
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4)),
            _mm256_or_si256(_mm256_and_si256(ql1, low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4))};
        for (int k = 0; k < 4; ++k) {
          const int j = 8 * h + 2 * k;  // sub-blocks j, j + 1
          int32_t pair;
          std::memcpy(&pair, s16 + j, 4);
          const __m256i sc = _mm256_shuffle_epi8(_mm256_set1_epi32(pair), pair_ctl);
          const __m256i p = _mm256_maddubs_epi16(q[k], load256(ab.qs + 128 * h + 32 * k));
          sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, sc));
        }
      }
      sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(_mm256_madd_epi16(bsums, scales), 5));
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(fp16(x->d) * ab.d), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

float vec_dot_q4_K_q8_K_avx2(int64_t n, const block_q4_K* x, const block_q8_K* y) {
  float out;
  dot_rows_q4_K<1>(n / QK_K, reinterpret_cast<const uint8_t*>(x), 0, y, &out);
  return out;
}

float vec_dot_q6_K_q8_K_avx2(int64_t n, const block_q6_K* x, const block_q8_K* y) {
  float out;
  dot_rows_q6_K<1>(n / QK_K, reinterpret_cast<const uint8_t*>(x), 0, y, &out);
  return out;
}

float vec_dot_q5_K_q8_K_avx2(int64_t n, const block_q5_K* x, const block_q8_K* y) {
  float out;
  dot_rows_q4_K<1, block_q5_K>(n / QK_K, reinterpret_cast<const uint8_t*>(x), 0, y, &out);
  return out;
}

// Q3_K / Q2_K scales: 16 sub-block scales s_0..s_15 as unsigned bytes. The 32 quants at
// 128h + 32k take s_{8h+2k} (elements 0..15) and s_{8h+2k+1} (16..31): scale_half widens
// s_{8h..8h+7} (minus `offset`) to int16 in both lanes (no lane-crossing shuffle: they are slow on
// some AMD cores), scale_pair broadcasts s_{8h+2k} over the low lane and s_{8h+2k+1} over the high
// one (one in-lane shuffle per 32 quants).
inline __m256i scale_half(__m128i sc8, int h, int16_t offset) {
  const __m128i bytes = h == 0 ? sc8 : _mm_unpackhi_epi64(sc8, sc8);
  return _mm256_broadcastsi128_si256(_mm_sub_epi16(_mm_cvtepu8_epi16(bytes), _mm_set1_epi16(offset)));
}
inline __m256i scale_pair(__m256i half, int k) {
  const char lo = static_cast<char>(4 * k), hi = static_cast<char>(4 * k + 2);
  return _mm256_shuffle_epi8(half, _mm256_setr_epi8(lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo,
                                                    lo + 1, lo, lo + 1, lo, lo + 1, hi, hi + 1, hi, hi + 1, hi,
                                                    hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1));
}

// Q3_K: laid out as Q6_K's halves: element 128h + 32k + l takes bits 2k..2k+1 of qs[32h + l] and
// bit 4h + k of hmask[l] as q in 0..7 (value q - 4; maddubs takes the unsigned q and the - 4 comes
// back as - 4 sum_j s_j bsum_j); sub-block j = 8h + 2k (+1 for l >= 16) has scale s_j = sc_j - 32.
float vec_dot_q3_K_q8_K_avx2(int64_t n, const block_q3_K* x, const block_q8_K* y) {
  const __m256i low2 = _mm256_set1_epi8(0x03), bit0 = _mm256_set1_epi8(0x01);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const block_q3_K& xb = x[b];
    const block_q8_K& ab = y[b];
    prefetch_ahead<sizeof(block_q3_K)>(&xb);
    // The 16 6-bit scales, 4 to a word: word w holds sub-blocks 4w..4w+3, the low nibbles from
    // bytes 0..7 (w < 2: low nibbles, else high), the top 2 bits from bits 2w, 2w + 1 of bytes 8..11.
    // Built in registers: four scalar stores read back by one vector load cannot be forwarded.
    uint32_t u[3];
    std::memcpy(u, xb.scales, 12);
    const __m128i low = _mm_and_si128(_mm_setr_epi32(int(u[0]), int(u[1]), int(u[0] >> 4), int(u[1] >> 4)),
                                      _mm_set1_epi8(0x0F));
    const __m128i top = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(int(u[2])), _mm_setr_epi32(0, 2, 4, 6)),
                                      _mm_set1_epi8(0x03));
    const __m128i sc8 = _mm_or_si128(low, _mm_slli_epi32(top, 4));
    const __m256i scales = _mm256_sub_epi16(_mm256_cvtepu8_epi16(sc8), _mm256_set1_epi16(32));
    const __m256i hm = load256(xb.hmask);
    __m256i sum = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = load256(xb.qs + 32 * h);
      const __m256i half = scale_half(sc8, h, 32);
      for (int k = 0; k < 4; ++k) {
        const __m256i low2k = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * k), low2);
        const __m256i high = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + k), bit0), 2);
        const __m256i q = _mm256_or_si256(low2k, high);
        const __m256i sc = scale_pair(half, k);  // sub-blocks 8h + 2k (low lane), 8h + 2k + 1 (high lane)
        const __m256i p = _mm256_maddubs_epi16(q, load256(ab.qs + 128 * h + 32 * k));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, sc));
      }
    }
    sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(_mm256_madd_epi16(load256(ab.bsums), scales), 2));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(fp16(xb.d) * ab.d), acc);
  }
  return hsum(acc);
}

// Q2_K: the 2-bit fields laid out as Q3_K's low bits (element 128h + 32k + l: bits 2k..2k+1 of
// qs[32h + l], sub-block 8h + 2k, +1 for l >= 16); scales[j] holds sc_j (low nibble) and m_j
// (high): dot = d d8 sum_j sc_j (q . a)_j - dmin d8 sum_j m_j bsum_j.
float vec_dot_q2_K_q8_K_avx2(int64_t n, const block_q2_K* x, const block_q8_K* y) {
  const __m256i low2 = _mm256_set1_epi8(0x03);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const block_q2_K& xb = x[b];
    const block_q8_K& ab = y[b];
    prefetch_ahead<sizeof(block_q2_K)>(&xb);
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.scales));
    const __m128i sc8 = _mm_and_si128(packed, low4);
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
    __m256i sum = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = load256(xb.qs + 32 * h);
      const __m256i half = scale_half(sc8, h, 0);
      for (int k = 0; k < 4; ++k) {
        const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * k), low2);
        const __m256i p = _mm256_maddubs_epi16(q, load256(ab.qs + 128 * h + 32 * k));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, scale_pair(half, k)));
      }
    }
    const __m256i sum_min = _mm256_madd_epi16(load256(ab.bsums), mins);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(fp16(xb.d) * ab.d), acc);
    acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_min), _mm256_set1_ps(fp16(xb.dmin) * ab.d), acc_min);
  }
  return hsum(acc) - hsum(acc_min);
}

// IQ4_NL levels of 32 quants (16 packed bytes: low nibbles are elements 0..15, high 16..31) times
// 32 int8 activations, as 8 lanes of int32 partial sums, each 16-bit pair sum times `scale`
// (1, or IQ4_XS's sub-block scale, |scale| <= 32: pairs below 2^21). vpmaddubsw takes |a| as the
// unsigned operand (|-128| = 128 fits a byte) and the level with a's sign as the signed one
// (levels are -127..113, so negating never wraps): exact, pairs at most 2 * 128 * 127 < 2^15.
inline __m256i dot_iq4_s8(const uint8_t* qs, const int8_t* a, __m256i levels, __m256i scale) {
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i idx = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), low4), _mm_and_si128(q, low4));
  const __m256i w = _mm256_shuffle_epi8(levels, idx);
  const __m256i av = load256(a);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(av), _mm256_sign_epi8(w, av)), scale);
}

inline __m256i iq4_levels() {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kvalues_iq4nl));
  return _mm256_set_m128i(t, t);
}

float vec_dot_iq4_nl_q8_0_avx2(int64_t n, const block_iq4_nl* x, const block_q8_0* y) {
  const __m256i levels = iq4_levels();
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK4_NL; ++i) {
    prefetch_ahead<sizeof(block_iq4_nl)>(x + i);
    const __m256i dot = dot_iq4_s8(x[i].qs, y[i].qs, levels, _mm256_set1_epi16(1));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
  }
  return hsum(acc);
}

// IQ4_XS: sub-block j (32 elements, qs[16j ..]) as one IQ4_NL block, weighted by ls_j - 32.
float vec_dot_iq4_xs_q8_K_avx2(int64_t n, const block_iq4_xs* x, const block_q8_K* y) {
  const __m256i levels = iq4_levels();
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const block_iq4_xs& xb = x[b];
    prefetch_ahead<sizeof(block_iq4_xs)>(&xb);
    __m256i sum = _mm256_setzero_si256();
    for (int j = 0; j < QK_K / 32; ++j) {
      const __m256i scale = _mm256_set1_epi16(static_cast<int16_t>(iq4_xs_scale(xb, j) - 32));
      sum = _mm256_add_epi32(sum, dot_iq4_s8(xb.qs + 16 * j, y[b].qs + 32 * j, levels, scale));
    }
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(fp16(xb.d) * y[b].d), acc);
  }
  return hsum(acc);
}

// ---- prefill: a tile of 8 weight rows unpacked once (gemm_tile.hpp), times many activation rows ----

constexpr int kTileRows = 8;
// Activation rows from which the prefill tile beats the decode kernel (rows re-read from L1), per
// type; matmul() reads them (docs/PERFORMANCE.md, "GEMV/GEMM switch"). Measured on an AMD EPYC
// VM reporting family 23 model 1 (2 shared cores, AVX2, no AVX-512) with
// `bench-kernels --benchmark_filter='switch/.*threads:1'`
// (CPU time, medians of 3), after the tiles' shuffle transpose (transpose_rows): gemv = gemm at
// about 8 rows for Q4_K (12 before the transpose, 2 threads), 6-7 for Q6_K (kept at the earlier 2-thread 6),
// 5 for Q5_K, 3 for Q3_K (a slow decode kernel), 5-6 for Q2_K. An earlier session's Xeon gave 8
// for Q4_K and Q6_K. Other CPUs may differ: re-measure before trusting them elsewhere.
constexpr int64_t kGemmMinRowsQ4K = 8, kGemmMinRowsQ6K = 6;
constexpr int64_t kGemmMinRowsQ5K = 5, kGemmMinRowsQ3K = 3, kGemmMinRowsQ2K = 6;
// The 32-element formats' tiles, measured the same way (noisily: another build shared the cores)
// on an AMD EPYC VM reporting family 26 (Zen 5) with the AVX2 table forced: Q4_0 / Q5_0 (8-bit
// products) win from 2-3 rows, IQ4_NL (16-bit, its decode a table lookup) from about 6, Q8_0
// (16-bit products, as many instructions per weight as its decode kernel) only from about 12.
constexpr int64_t kGemmMinRows32 = 3, kGemmMinRowsIQ4NL = 6, kGemmMinRowsQ8_0 = 12;
using Tile = gemm::Tile<kTileRows>;

inline __m256i bcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// NA activation rows times one Q4_K (or Q5_K) tile. vpmaddubsw gives per row lane two 16-bit sums
// of two products each (|sum| <= 2 * 15 * 128 for Q4_K); the 8 groups of a sub-block add up to at
// most 30720, so they are summed in 16 bits and widened once per sub-block. Q5_K's quants reach 31
// (|pair| <= 7936): 4 groups at a time (31744), widened twice per sub-block.
template <int NA, class Block = block_q4_K>
void tile_rows_q4_K(const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs,
                    float* y) {
  constexpr int kGroups16 = std::is_same_v<Block, block_q5_K> ? 4 : 8;  // groups per 16-bit sum
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 out[NA];
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) out[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + b * Tile::block_bytes<Block>();
    const auto* dsc = reinterpret_cast<const float*>(tb + Tile::quant_bytes);
    __m256 sumf[NA];
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) sumf[i] = _mm256_setzero_ps();
    for (int j = 0; j < 8; ++j) {
      __m256i p32[NA];
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) p32[i] = _mm256_setzero_si256();
#pragma GCC unroll 2
      for (int g0 = 0; g0 < 8; g0 += kGroups16) {
        __m256i p16[NA];
#pragma GCC unroll 16
        for (int i = 0; i < NA; ++i) p16[i] = _mm256_setzero_si256();
#pragma GCC unroll 16
        for (int g = g0; g < g0 + kGroups16; ++g) {
          const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(tb + (8 * j + g) * Tile::group_bytes));
#pragma GCC unroll 16
          for (int i = 0; i < NA; ++i)
            p16[i] = _mm256_add_epi16(p16[i], _mm256_maddubs_epi16(w, bcast4(a[i][b].qs + 32 * j + 4 * g)));
        }
#pragma GCC unroll 16
        for (int i = 0; i < NA; ++i) p32[i] = _mm256_add_epi32(p32[i], _mm256_madd_epi16(p16[i], ones));
      }
      const __m256 dj = _mm256_load_ps(dsc + j * kTileRows);
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) sumf[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32[i]), dj, sumf[i]);
    }
    const uint8_t* mins = tb + Tile::quant_bytes + 8 * Tile::vec_bytes;
    __m256i macc[NA];
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) macc[i] = _mm256_setzero_si256();
#pragma GCC unroll 16
    for (int p = 0; p < 4; ++p) {
      const __m256i m = _mm256_load_si256(reinterpret_cast<const __m256i*>(mins + p * Tile::vec_bytes));
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) macc[i] = _mm256_add_epi32(macc[i], _mm256_madd_epi16(m, bcast4(bs[i] + 8 * b + 2 * p)));
    }
    const __m256 dmin = _mm256_load_ps(reinterpret_cast<const float*>(tb + Tile::quant_bytes + 12 * Tile::vec_bytes));
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) {
      sumf[i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(macc[i]), dmin, sumf[i]);
      out[i] = _mm256_fmadd_ps(sumf[i], _mm256_set1_ps(a[i][b].d), out[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) _mm256_store_ps(y + i * kTileRows, out[i]);
}

// NA activation rows times one Q6_K tile. Q6_K quants reach 63, so only two groups' 16-bit sums
// (at most 2 * 2 * 63 * 128 = 32256) are added before widening.
template <int NA>
void tile_rows_q6_K(const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const*,
                    float* y) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 out[NA];
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) out[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + b * Tile::block_bytes<block_q6_K>();
    const auto* dsc = reinterpret_cast<const float*>(tb + Tile::quant_bytes);
    __m256 sumf[NA];
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) sumf[i] = _mm256_setzero_ps();
    for (int j = 0; j < 16; ++j) {
      __m256i acc[NA];
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) acc[i] = _mm256_set1_epi32(-32 * a[i][b].bsums[j]);
#pragma GCC unroll 16
      for (int g = 0; g < 4; g += 2) {
        const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(tb + (4 * j + g) * Tile::group_bytes));
        const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(tb + (4 * j + g + 1) * Tile::group_bytes));
#pragma GCC unroll 16
        for (int i = 0; i < NA; ++i) {
          const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, bcast4(a[i][b].qs + 16 * j + 4 * g)),
                                             _mm256_maddubs_epi16(w1, bcast4(a[i][b].qs + 16 * j + 4 * g + 4)));
          acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, ones));
        }
      }
      const __m256 dj = _mm256_load_ps(dsc + j * kTileRows);
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) sumf[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i]), dj, sumf[i]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) out[i] = _mm256_fmadd_ps(sumf[i], _mm256_set1_ps(a[i][b].d), out[i]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) _mm256_store_ps(y + i * kTileRows, out[i]);
}

// NA activation rows times one Q3_K or Q2_K tile (integer scales, gemm_tile.hpp). Per sub-block j
// the 4 groups' 16-bit sums (at most 4 * 2 * 7 * 128 = 7168) meet the row's scale in one vpmaddwd
// (|s_j| <= 32) and add up in 32 bits over the block (< 16 * 32 * 16 * 7 * 128 < 2^31); the
// bsum pairs against the tile's pairs give Q3_K's offset (4 sum_j s_j bsum_j) or Q2_K's mins.
template <int NA, class Block>
void tile_rows_k16i(const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const*,
                    float* y) {
  constexpr bool kQ2 = std::is_same_v<Block, block_q2_K>;
  __m256 out[NA];
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) out[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + b * Tile::block_bytes<Block>();
    const uint8_t* vecs = tb + Tile::quant_bytes;
    __m256i isum[NA];
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) isum[i] = _mm256_setzero_si256();
    for (int j = 0; j < 16; ++j) {
      __m256i p[NA];
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) p[i] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(tb + (4 * j + g) * Tile::group_bytes));
#pragma GCC unroll 16
        for (int i = 0; i < NA; ++i)
          p[i] = _mm256_add_epi16(p[i], _mm256_maddubs_epi16(w, bcast4(a[i][b].qs + 16 * j + 4 * g)));
      }
      const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(vecs + j * Tile::vec_bytes));
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(p[i], sc));
    }
    __m256i pacc[NA];
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) pacc[i] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) {
      const __m256i m = _mm256_load_si256(reinterpret_cast<const __m256i*>(vecs + (16 + q) * Tile::vec_bytes));
#pragma GCC unroll 16
      for (int i = 0; i < NA; ++i) pacc[i] = _mm256_add_epi32(pacc[i], _mm256_madd_epi16(m, bcast4(a[i][b].bsums + 2 * q)));
    }
    const __m256 d = _mm256_load_ps(reinterpret_cast<const float*>(vecs + 24 * Tile::vec_bytes));
#pragma GCC unroll 16
    for (int i = 0; i < NA; ++i) {
      __m256 sumf;
      if constexpr (kQ2) {
        const __m256 dmin = _mm256_load_ps(reinterpret_cast<const float*>(vecs + 25 * Tile::vec_bytes));
        sumf = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(pacc[i]), dmin, _mm256_mul_ps(_mm256_cvtepi32_ps(isum[i]), d));
      } else {
        sumf = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum[i], _mm256_slli_epi32(pacc[i], 2))), d);
      }
      out[i] = _mm256_fmadd_ps(sumf, _mm256_set1_ps(a[i][b].d), out[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NA; ++i) _mm256_store_ps(y + i * kTileRows, out[i]);
}

template <int NA>
struct RowsQ4K {
  static void run(const uint8_t* t, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* o) {
    tile_rows_q4_K<NA>(t, nb, a, bs, o);
  }
};
template <int NA>
struct RowsQ5K {
  static void run(const uint8_t* t, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* o) {
    tile_rows_q4_K<NA, block_q5_K>(t, nb, a, bs, o);
  }
};
template <int NA>
struct RowsQ6K {
  static void run(const uint8_t* t, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* o) {
    tile_rows_q6_K<NA>(t, nb, a, bs, o);
  }
};
template <int NA>
struct RowsQ3K {
  static void run(const uint8_t* t, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* o) {
    tile_rows_k16i<NA, block_q3_K>(t, nb, a, bs, o);
  }
};
template <int NA>
struct RowsQ2K {
  static void run(const uint8_t* t, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* o) {
    tile_rows_k16i<NA, block_q2_K>(t, nb, a, bs, o);
  }
};

// NA activation rows times one tile of a 32-element format (gemm_tile.hpp), per block:
//   s16 layout (Q8_0, IQ4_NL): 16 vpmaddwd of a row-pair vector with a broadcast pair of int16
//     activations (exact: no 8-bit product saturates, Q8_0's -128 included);
//   u8 layout (quants at most 31: Q4_0, Q5_0, Q4_1, Q5_1): vpmaddubsw pairs are at most
//     2 * 31 * 128 = 7936, so 4 groups add up in 16 bits (31744) before one vpmaddwd with ones
//     widens them (16 8-bit products per instruction instead of 8); the sum starts at -offset sum(a);
// then y lane r += d_r d_a sum (+ m_r s_a for Q4_1 / Q5_1).
template <typename B, gemm::Layout32 L>
struct Rows32 {
  using T = gemm::Tile32<kTileRows, B, L>;
  using A = typename gemm::Small<B>::Act;
  template <int NA>
  static void block_sums(const uint8_t* tb, const void* const* q, const gemm::Act32* const* act, int64_t b,
                         __m256i* acc) {
    if constexpr (L == gemm::Layout32::s16) {
      for (int i = 0; i < NA; ++i) acc[i] = _mm256_setzero_si256();
      // (Unrolled by 4, not 16: GCC then hoists all 16 weight loads and spills them.)
#pragma GCC unroll 4
      for (int p = 0; p < 16; ++p) {
        const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(tb + p * T::group_bytes));
        for (int i = 0; i < NA; ++i)
          acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(w, bcast4(static_cast<const int16_t*>(q[i]) + 32 * b + 2 * p)));
      }
    } else {
      const __m256i ones = _mm256_set1_epi16(1);
      for (int i = 0; i < NA; ++i) acc[i] = _mm256_set1_epi32(act[i][b].start);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        __m256i s16[NA];
        for (int i = 0; i < NA; ++i) s16[i] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int g = 4 * h; g < 4 * h + 4; ++g) {
          const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(tb + g * T::group_bytes));
          for (int i = 0; i < NA; ++i)
            s16[i] = _mm256_add_epi16(s16[i], _mm256_maddubs_epi16(w, bcast4(static_cast<const A*>(q[i])[b].qs + 4 * g)));
        }
        for (int i = 0; i < NA; ++i) acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(s16[i], ones));
      }
    }
  }
  template <int NA>
  struct Run {
    static void run(const uint8_t* tile, int64_t nb, const void* const* q, const gemm::Act32* const* act, float* y) {
      __m256 out[NA];
      for (int i = 0; i < NA; ++i) out[i] = _mm256_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* tb = tile + b * T::block_bytes;
        __m256i acc[NA];
        block_sums<NA>(tb, q, act, b, acc);
        const __m256 d = _mm256_load_ps(T::d(tb));
        for (int i = 0; i < NA; ++i)
          out[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i]), _mm256_mul_ps(d, _mm256_set1_ps(act[i][b].d)), out[i]);
        if constexpr (gemm::has_min<B>) {
          const __m256 m = _mm256_load_ps(T::m(tb));
          for (int i = 0; i < NA; ++i) out[i] = _mm256_fmadd_ps(m, _mm256_set1_ps(act[i][b].s), out[i]);
        }
      }
      for (int i = 0; i < NA; ++i) _mm256_store_ps(y + i * kTileRows, out[i]);
    }
  };
};

// The 32-element formats' prefill tiles (set_gemm32; matmul() picks them from min_rows rows on,
// kGemmMinRows32 but for IQ4_NL and Q8_0): 8-bit products where the quants allow, 16-bit for Q8_0
// and IQ4_NL (levels up to 127 in magnitude).
template <typename B>
struct Tiles32 {
  static constexpr bool quants_below_32 = !std::is_same_v<B, block_q8_0> && !std::is_same_v<B, block_iq4_nl>;
  static constexpr gemm::Layout32 layout = quants_below_32 ? gemm::Layout32::u8 : gemm::Layout32::s16;
  static constexpr MatmulTile tile =
      gemm::matmul_tiles32<kTileRows, B, layout, Rows32<B, layout>::template Run, 4, x86::Unpack32>;
  static constexpr int64_t min_rows = std::is_same_v<B, block_q8_0>     ? kGemmMinRowsQ8_0
                                      : std::is_same_v<B, block_iq4_nl> ? kGemmMinRowsIQ4NL
                                                                        : kGemmMinRows32;
};

// ---- 32-element formats: Q8_0, Q4_0, Q5_0 weights times Q8_0 activations, Q5_1 times Q8_1 ----
// Products are widened to 16 bits first (vpmaddubsw could saturate on -128 * -128 pairs); the
// integer block sums are exact and scaled once per block in float.

inline __m256i dot_s8_32(const int8_t* a, const int8_t* b) {  // 8 lanes of int32 partial sums
  const __m128i a0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m128i a1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 16));
  const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16));
  return _mm256_add_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(a0), _mm256_cvtepi8_epi16(b0)),
                          _mm256_madd_epi16(_mm256_cvtepi8_epi16(a1), _mm256_cvtepi8_epi16(b1)));
}

float vec_dot_q8_0_q8_0_avx2(int64_t n, const block_q8_0* x, const block_q8_0* y) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK8_0; ++i) {
    prefetch_ahead<sizeof(block_q8_0)>(x + i);
    const __m256i dot = dot_s8_32(x[i].qs, y[i].qs);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
  }
  return hsum(acc);
}

// Q4_0: w = d (q - 8); q - 8 is in -8..7, so the signed 16-bit path above serves.
float vec_dot_q4_0_q8_0_avx2(int64_t n, const block_q4_0* x, const block_q8_0* y) {
  const __m128i low4 = _mm_set1_epi8(0x0F), eights = _mm_set1_epi8(8);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK4_0; ++i) {
    prefetch_ahead<sizeof(block_q4_0)>(x + i);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].qs));
    alignas(16) int8_t w[32];
    _mm_store_si128(reinterpret_cast<__m128i*>(w), _mm_sub_epi8(_mm_and_si128(qs, low4), eights));
    _mm_store_si128(reinterpret_cast<__m128i*>(w + 16), _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), low4), eights));
    const __m256i dot = dot_s8_32(w, y[i].qs);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
  }
  return hsum(acc);
}

// Q5_0 / Q5_1: the quants q in 0..31 are unsigned, so vpmaddubsw takes them as they are (pairs
// are at most 2 * 31 * 128 < 2^15: no saturation). Q5_0's -16 is 16 sum(y), taken the same way.
inline __m256i dot_u5_s8(__m256i q, __m256i y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), _mm256_set1_epi16(1));
}

float vec_dot_q5_0_q8_0_avx2(int64_t n, const block_q5_0* x, const block_q8_0* y) {
  const __m256i sixteen = _mm256_set1_epi8(16);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / QK5_0; ++i) {
    prefetch_ahead<sizeof(block_q5_0)>(x + i);
    const __m256i yq = load256(y[i].qs);
    const __m256i dot = _mm256_sub_epi32(dot_u5_s8(x86::q5_quants(x[i].qs, x[i].qh), yq), dot_u5_s8(sixteen, yq));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
  }
  return hsum(acc);
}

// Q4_1 . Q8_1: as Q5_1 below with 4-bit quants (low nibbles elements 0..15, high 16..31).
float vec_dot_q4_1_q8_1_avx2(int64_t n, const block_q4_1* x, const block_q8_1* y) {
  const __m128i low4 = _mm_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t i = 0; i < n / QK4_1; ++i) {
    prefetch_ahead<sizeof(block_q4_1)>(x + i);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].qs));
    const __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), low4), _mm_and_si128(qs, low4));
    const __m256i dot = dot_u5_s8(q, load256(y[i].qs));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
    mins += fp16(x[i].m) * fp16(y[i].s);
  }
  return hsum(acc) + mins;
}

// Q5_1 . Q8_1: d_x d_y q . y per block in the vector lanes, the min term m_x s_y in a float sum.
float vec_dot_q5_1_q8_1_avx2(int64_t n, const block_q5_1* x, const block_q8_1* y) {
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t i = 0; i < n / QK5_1; ++i) {
    prefetch_ahead<sizeof(block_q5_1)>(x + i);
    const __m256i dot = dot_u5_s8(x86::q5_quants(x[i].qs, x[i].qh), load256(y[i].qs));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(x[i].d) * fp16(y[i].d)), acc);
    mins += fp16(x[i].m) * fp16(y[i].s);
  }
  return hsum(acc) + mins;
}

// ---- float rows (attention over an f16/f32 KV cache, float weights) ----
// Four accumulators of 8 lanes (each lane sums n / 32 products); the tail goes through the
// scalar conversions.

// Loaders of 8 values as floats, with the scalar conversion for the tail. (fp16_t and bf16_t are
// both uint16_t, hence the structs.)
struct F32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static float one(float v) { return v; }
};
struct F16 {
  using T = fp16_t;
  static __m256 load(const fp16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static float one(fp16_t v) { return fp16_to_fp32(v); }
};
struct BF16 {
  using T = bf16_t;
  static __m256 load(const bf16_t* p) {
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
  static float one(bf16_t v) { return bf16_to_fp32(v); }
};

template <typename L>
float vec_dot_to_f32(int64_t n, const typename L::T* x, const float* y) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    prefetch_ahead<32 * sizeof(typename L::T)>(x + i);
    for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(L::load(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(L::load(x + i), _mm256_loadu_ps(y + i), acc[0]);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += L::one(x[i]) * y[i];
  return sum;
}

// ---- softmax and silu_mul (element-wise, but per token they grow with the context / batch) ----

// e^x: x = n ln2 + r with |r| <= ln2 / 2, e^r by its degree-6 Taylor polynomial (relative error
// < 2e-7 there), times 2^(n-1) built in the exponent bits, times 2. x is clamped to [-86.6, 88.72]
// (there 2^(n-1) is a normal float); below, the result is 0 (the true value is < 2.5e-38), above
// it is inf; NaN stays NaN (vmaxps / vminps return their second operand for NaN).
inline __m256 exp_ps(__m256 x_in) {
  const __m256 lo = _mm256_set1_ps(-86.6f), hi = _mm256_set1_ps(88.72f);
  const __m256 x = _mm256_min_ps(hi, _mm256_max_ps(lo, x_in));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(126)), 23);
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), _mm256_set1_ps(2.0f));
  y = _mm256_andnot_ps(_mm256_cmp_ps(x_in, lo, _CMP_LT_OQ), y);                             // -> 0
  return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x_in, hi, _CMP_GT_OQ));  // -> inf
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Full vectors, then the last n % 8 through a padded copy (-inf pads exponentiate to 0).
SoftmaxStats softmax_scaled_avx2(float* x, int64_t n, float s) {
  if (n <= 0) return {};
  const __m256 vs = _mm256_set1_ps(s);
  const int64_t nv = n / 8 * 8;
  alignas(32) float tail[8];
  for (int k = 0; k < 8; ++k) tail[k] = nv + k < n ? x[nv + k] * s : -INFINITY;
  __m256 vmax = _mm256_load_ps(tail);
  for (int64_t i = 0; i < nv; i += 8) vmax = _mm256_max_ps(vmax, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
  const float max = hmax(vmax);
  const __m256 mx = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  for (int64_t i = 0; i < nv; i += 8) {
    const __m256 e = exp_ps(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), vs, mx));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  const __m256 et = exp_ps(_mm256_sub_ps(_mm256_load_ps(tail), mx));
  sum = _mm256_add_ps(sum, et);
  const float total = hsum(sum), inv = 1.0f / total;
  _mm256_store_ps(tail, _mm256_mul_ps(et, _mm256_set1_ps(inv)));
  for (int64_t i = 0; i < nv; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(inv)));
  for (int64_t k = 0; nv + k < n; ++k) x[nv + k] = tail[k];
  return {max, total};
}

void silu_mul_avx2(const float* gate, const float* up, float* y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// y = x . W for a k-major W (attention scores): column blocks of 16 for up to 4 query rows, each
// converted W vector feeding 4 fma with a broadcast query element; columns past the last full 8
// in scalar, the same fma chain per y.
template <typename L, int NX, int NV>
void kn_block(int64_t n, const typename L::T* w, int64_t ldw, const float* x, int64_t ldx, float* y, int64_t ldy) {
  __m256 acc[NX][NV];
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  // The K / V rows stream from memory at long contexts: prefetch ~2 KiB ahead (see kernels_avx512.cpp).
  const int64_t ahead = std::max<int64_t>(8, 2048 / (ldw * int64_t{sizeof(typename L::T)}));
  for (int64_t k = 0; k < n; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(w + (k + ahead) * ldw), _MM_HINT_T0);
    __m256 wv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) wv[v] = L::load(w + k * ldw + 8 * v);
#pragma GCC unroll 16
    for (int i = 0; i < NX; ++i) {
      const __m256 xi = _mm256_set1_ps(x[i * ldx + k]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(wv[v], xi, acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NX; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(y + i * ldy + 8 * v, acc[i][v]);
}

template <typename L, int NV>
void kn_rows(int64_t n, const typename L::T* w, int64_t ldw, const float* x, int64_t ldx, int64_t n_x, float* y,
             int64_t ldy) {
  for (int64_t i = 0; i < n_x; i += 4) {
    switch (std::min<int64_t>(4, n_x - i)) {
      case 4: kn_block<L, 4, NV>(n, w, ldw, x + i * ldx, ldx, y + i * ldy, ldy); break;
      case 3: kn_block<L, 3, NV>(n, w, ldw, x + i * ldx, ldx, y + i * ldy, ldy); break;
      case 2: kn_block<L, 2, NV>(n, w, ldw, x + i * ldx, ldx, y + i * ldy, ldy); break;
      default: kn_block<L, 1, NV>(n, w, ldw, x + i * ldx, ldx, y + i * ldy, ldy); break;
    }
  }
}

template <typename L>
void matmul_kn(int64_t n, const typename L::T* w, int64_t ldw, int64_t n_cols, const float* x, int64_t ldx,
               int64_t n_x, float* y, int64_t ldy) {
  int64_t j = 0;
  for (; j + 16 <= n_cols; j += 16) kn_rows<L, 2>(n, w + j, ldw, x, ldx, n_x, y + j, ldy);
  for (; j + 8 <= n_cols; j += 8) kn_rows<L, 1>(n, w + j, ldw, x, ldx, n_x, y + j, ldy);
  for (; j < n_cols; ++j) {
    for (int64_t i = 0; i < n_x; ++i) {
      float s = 0.0f;
      for (int64_t k = 0; k < n; ++k) s = std::fma(L::one(w[k * ldw + j]), x[i * ldx + k], s);
      y[i * ldy + j] = s;
    }
  }
}

void matmul_kn_f16_f32_avx2(int64_t n, const fp16_t* w, int64_t ldw, int64_t n_cols, const float* x,
                            int64_t ldx, int64_t n_x, float* y, int64_t ldy) {
  matmul_kn<F16>(n, w, ldw, n_cols, x, ldx, n_x, y, ldy);
}
void matmul_kn_f32_f32_avx2(int64_t n, const float* w, int64_t ldw, int64_t n_cols, const float* x,
                            int64_t ldx, int64_t n_x, float* y, int64_t ldy) {
  matmul_kn<F32>(n, w, ldw, n_cols, x, ldx, n_x, y, ldy);
}

float vec_dot_f32_f32_avx2(int64_t n, const float* x, const float* y) { return vec_dot_to_f32<F32>(n, x, y); }
float vec_dot_f16_f32_avx2(int64_t n, const fp16_t* x, const float* y) { return vec_dot_to_f32<F16>(n, x, y); }
float vec_dot_bf16_f32_avx2(int64_t n, const bf16_t* x, const float* y) { return vec_dot_to_f32<BF16>(n, x, y); }

// Exact conversions (vcvtph2ps keeps NaN payloads and quiets them, as the reference does).
template <typename L>
void to_f32(const typename L::T* x, float* y, int64_t k) {
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) _mm256_storeu_ps(y + i, L::load(x + i));
  for (; i < k; ++i) y[i] = L::one(x[i]);
}
void dequantize_row_f16_avx2(const fp16_t* x, float* y, int64_t k) { to_f32<F16>(x, y, k); }
void dequantize_row_bf16_avx2(const bf16_t* x, float* y, int64_t k) { to_f32<BF16>(x, y, k); }

// ---- activation quantization (bit-exact with quantize_row_q8_K_ref) ----

void quantize_row_q8_K_avx2(const float* x, block_q8_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    const float amax = x86::abs_max(x, QK_K);  // NaN left out
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    float max = 0.0f;  // the first element of largest magnitude, with its sign
    for (int j = 0; j < QK_K; j += 8) {
      const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask),
                                                     _mm256_set1_ps(amax), _CMP_EQ_OQ));
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
    const __m256 vs = _mm256_set1_ps(iscale);
    for (int j = 0; j < QK_K; j += 16) {
      __m256i q[2];
      for (int h = 0; h < 2; ++h) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * h), vs);
        v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN -> 0
        v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-128.f)), _mm256_set1_ps(127.f));
        q[h] = _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
      // 16 int32 -> 16 int8 in order (packs work per 128-bit lane, so fix the order after)
      const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8);
      const __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + j), b8);
      y[i].bsums[j / 16] = static_cast<int16_t>(hsum(_mm256_add_epi32(q[0], q[1])));
    }
    y[i].d = 1 / iscale;
  }
}

// ---- dequantization (bit-exact: the reference's products, no fused multiply-add) ----

inline __m256 u8_to_ps(const uint8_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v)));
}

// The 256 quants of a block in element order (Q4_K 0..15, Q6_K 0..63).
inline void unpack_q4_K(const block_q4_K& x, uint8_t* q) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int c = 0; c < 4; ++c) {
    const __m256i v = load256(x.qs + 32 * c);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 64 * c), _mm256_and_si256(v, low4));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 64 * c + 32), _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
  }
}

inline void unpack_q6_K(const block_q6_K& x, uint8_t* q) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
  for (int h = 0; h < 2; ++h) {
    const __m256i ql0 = load256(x.ql + 64 * h), ql1 = load256(x.ql + 64 * h + 32);
    const __m256i qh = load256(x.qh + 32 * h);
    uint8_t* o = q + 128 * h;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o),
                        _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 32),
                        _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 96),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4)));
  }
}

// Q5_K: Q4_K's nibbles plus bit 2c (low nibbles of group c) / 2c + 1 (high) of qh[l] as bit 4.
inline void unpack_q5_K(const block_q5_K& x, uint8_t* q) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), bit0 = _mm256_set1_epi8(0x01);
  const __m256i qh = load256(x.qh);
  for (int c = 0; c < 4; ++c) {
    const __m256i v = load256(x.qs + 32 * c);
    const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), bit0), 4);
    const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), bit0), 4);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 64 * c), _mm256_or_si256(_mm256_and_si256(v, low4), h0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 64 * c + 32),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), h1));
  }
}

// Q3_K (0..7: q + 4) and Q2_K (0..3): element 128h + 32k + l is bits 2k..2k+1 of qs[32h + l],
// Q3_K's third bit bit 4h + k of hmask[l].
template <bool kHmask>
inline void unpack_2bit(const uint8_t* qs, const uint8_t* hmask, uint8_t* q) {
  const __m256i low2 = _mm256_set1_epi8(0x03), bit0 = _mm256_set1_epi8(0x01);
  [[maybe_unused]] __m256i hm;
  if constexpr (kHmask) hm = load256(hmask);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = load256(qs + 32 * h);
    for (int k = 0; k < 4; ++k) {
      __m256i o = _mm256_and_si256(_mm256_srli_epi16(v, 2 * k), low2);
      if constexpr (kHmask)
        o = _mm256_or_si256(o, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + k), bit0), 2));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 128 * h + 32 * k), o);
    }
  }
}

void dequantize_row_q4_K_avx2(const block_q4_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i, y += QK_K) {
    const float d = fp16(x[i].d), dmin = fp16(x[i].dmin);
    alignas(32) uint8_t q[QK_K];
    unpack_q4_K(x[i], q);
    for (int j = 0; j < QK_K / 32; ++j) {
      uint8_t sc, m;
      q4_K_scale_min(x[i].scales, j, &sc, &m);
      const __m256 dj = _mm256_set1_ps(d * sc), mj = _mm256_set1_ps(dmin * m);
      for (int l = 0; l < 32; l += 8)
        _mm256_storeu_ps(y + 32 * j + l, _mm256_sub_ps(_mm256_mul_ps(dj, u8_to_ps(q + 32 * j + l)), mj));
    }
  }
}

void dequantize_row_q6_K_avx2(const block_q6_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  const __m256 m32 = _mm256_set1_ps(32.0f);
  for (int64_t i = 0; i < nb; ++i, y += QK_K) {
    const float d = fp16(x[i].d);
    alignas(32) uint8_t q[QK_K];
    unpack_q6_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const __m256 ds = _mm256_set1_ps(d * x[i].scales[j]);
      for (int l = 0; l < 16; l += 8)
        _mm256_storeu_ps(y + 16 * j + l, _mm256_mul_ps(ds, _mm256_sub_ps(u8_to_ps(q + 16 * j + l), m32)));
    }
  }
}

// gemm::scatter_rows<8> with shuffles: per 8 groups, an 8 x 8 transpose of 32-bit words (row r's
// words 8c .. 8c + 7 in, group 8c + g's 8 rows out).
inline void transpose_rows(const uint8_t* q, uint8_t* tb) {
  static_assert(kTileRows == 8 && Tile::group_bytes == 32);
  for (int c = 0; c < 8; ++c) {
    __m256i v[8], t[8], u[8];
    for (int r = 0; r < 8; ++r) v[r] = load256(q + r * QK_K + 32 * c);
    for (int r = 0; r < 8; r += 2) {
      t[r] = _mm256_unpacklo_epi32(v[r], v[r + 1]);      // words 0, 1 | 4, 5 of rows r, r + 1
      t[r + 1] = _mm256_unpackhi_epi32(v[r], v[r + 1]);  // words 2, 3 | 6, 7
    }
    for (int h = 0; h < 8; h += 4) {  // rows h .. h + 3
      u[h] = _mm256_unpacklo_epi64(t[h], t[h + 2]);      // word 0 | 4
      u[h + 1] = _mm256_unpackhi_epi64(t[h], t[h + 2]);  // word 1 | 5
      u[h + 2] = _mm256_unpacklo_epi64(t[h + 1], t[h + 3]);  // word 2 | 6
      u[h + 3] = _mm256_unpackhi_epi64(t[h + 1], t[h + 3]);  // word 3 | 7
    }
    auto* out = reinterpret_cast<__m256i*>(tb + 8 * c * Tile::group_bytes);
    for (int g = 0; g < 4; ++g) {
      _mm256_store_si256(out + g, _mm256_permute2x128_si256(u[g], u[4 + g], 0x20));
      _mm256_store_si256(out + 4 + g, _mm256_permute2x128_si256(u[g], u[4 + g], 0x31));
    }
  }
}

struct Unpack {
  static void q4_K(const block_q4_K& b, uint8_t* q) { unpack_q4_K(b, q); }
  static void q5_K(const block_q5_K& b, uint8_t* q) { unpack_q5_K(b, q); }
  static void q6_K(const block_q6_K& b, uint8_t* q) { unpack_q6_K(b, q); }
  static void q3_K(const block_q3_K& b, uint8_t* q) { unpack_2bit<true>(b.qs, b.hmask, q); }
  static void q2_K(const block_q2_K& b, uint8_t* q) { unpack_2bit<false>(b.qs, nullptr, q); }
  static void groups(const uint8_t* q, uint8_t* tb) { transpose_rows(q, tb); }
};

// The K-quant prefill tiles (matmul() picks them from kGemmMinRowsQ4K ... rows on; below, the
// decode kernel: one weight row after the other, which streams best from memory).
template <typename Block, template <int> class Rows>
constexpr MatmulTile matmul_K = gemm::matmul_tiles<kTileRows, Block, Rows, Unpack>;
}  // namespace

const KernelSet* avx2_kernels() {
  static const KernelSet ks = [] {
    KernelSet k = scalar_kernel_set();
    k.isa = Isa::avx2;
    k.name = "avx2";
    TypeKernels &q4_K = k.row(DType::Q4_K), &q6_K = k.row(DType::Q6_K);
    set_dequantize<dequantize_row_q4_K_avx2>(q4_K);
    set_vec_dot<vec_dot_q4_K_q8_K_avx2>(q4_K);
    set_gemm(q4_K, matmul_K<block_q4_K, RowsQ4K>, kGemmMinRowsQ4K);
    set_dequantize<dequantize_row_q6_K_avx2>(q6_K);
    set_vec_dot<vec_dot_q6_K_q8_K_avx2>(q6_K);
    set_gemm(q6_K, matmul_K<block_q6_K, RowsQ6K>, kGemmMinRowsQ6K);
    set_vec_dot<vec_dot_q5_K_q8_K_avx2>(k.row(DType::Q5_K));
    set_gemm(k.row(DType::Q5_K), matmul_K<block_q5_K, RowsQ5K>, kGemmMinRowsQ5K);
    set_vec_dot<vec_dot_q3_K_q8_K_avx2>(k.row(DType::Q3_K));
    set_gemm(k.row(DType::Q3_K), matmul_K<block_q3_K, RowsQ3K>, kGemmMinRowsQ3K);
    set_vec_dot<vec_dot_q2_K_q8_K_avx2>(k.row(DType::Q2_K));
    set_gemm(k.row(DType::Q2_K), matmul_K<block_q2_K, RowsQ2K>, kGemmMinRowsQ2K);
    set_vec_dot<vec_dot_iq4_xs_q8_K_avx2>(k.row(DType::IQ4_XS));
    set_vec_dot<vec_dot_q4_1_q8_1_avx2>(k.row(DType::Q4_1));
    set_vec_dot<vec_dot_iq4_nl_q8_0_avx2>(k.row(DType::IQ4_NL));
    set_vec_dot<vec_dot_q8_0_q8_0_avx2>(k.row(DType::Q8_0));
    set_dequantize<x86::dequantize_row_q8_0>(k.row(DType::Q8_0));
    set_vec_dot<vec_dot_q4_0_q8_0_avx2>(k.row(DType::Q4_0));
    set_vec_dot<vec_dot_q5_0_q8_0_avx2>(k.row(DType::Q5_0));
    set_vec_dot<vec_dot_q5_1_q8_1_avx2>(k.row(DType::Q5_1));
    set_gemm32<Tiles32>(k);
    set_dequantize<dequantize_row_f16_avx2>(k.row(DType::F16));
    set_vec_dot<vec_dot_f16_f32_avx2>(k.row(DType::F16));
    set_dequantize<dequantize_row_bf16_avx2>(k.row(DType::BF16));
    set_vec_dot<vec_dot_bf16_f32_avx2>(k.row(DType::BF16));
    set_vec_dot<vec_dot_f32_f32_avx2>(k.row(DType::F32));
    k.act(ActForm::q8_K).from_f32 = erased_quantize<quantize_row_q8_K_avx2>;
    k.act(ActForm::q8_0).from_f32 = erased_quantize<x86::quantize_row_q8_0>;
    k.act(ActForm::q8_1).from_f32 = erased_quantize<x86::quantize_row_q8_1>;
    k.matmul_kn_f16_f32 = matmul_kn_f16_f32_avx2;
    k.matmul_kn_f32_f32 = matmul_kn_f32_f32_avx2;
    k.softmax_scaled = softmax_scaled_avx2;
    k.silu_mul = silu_mul_avx2;
    k.rms_norm = x86::rms_norm;
    k.add = x86::add;
    k.rope_norm_with = x86::rope_norm_with;
    return k;
  }();
  return &ks;
}

}  // namespace edgellm::kernels
