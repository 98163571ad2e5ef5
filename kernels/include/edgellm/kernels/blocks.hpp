// Quantized block formats. Each struct's byte layout *is* the GGUF/ggml file format, so a tensor's
// bytes in the memory map are read as an array of these blocks with no conversion.
#pragma once

#include <cstdint>

namespace edgellm::kernels {

constexpr int QK_K = 256;  // elements per K-quant super-block
constexpr int QK8_0 = 32;
constexpr int QK4_0 = 32;
constexpr int QK4_1 = 32;
constexpr int QK4_NL = 32;
constexpr int QK5_0 = 32;
constexpr int QK5_1 = 32;
constexpr int QK8_1 = 32;

using fp16_t = uint16_t;  // IEEE half, stored as its bits
using bf16_t = uint16_t;  // bfloat16, stored as its bits

// Q4_K: 8 sub-blocks of 32 weights, w = d * sc[j] * q - dmin * m[j], q in 0..15.
// scales[12] packs eight 6-bit scales and eight 6-bit mins.
struct block_q4_K {
  fp16_t d;
  fp16_t dmin;
  uint8_t scales[12];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q4_K) == 144);

// The 6-bit scale and min of Q4_K sub-block j (0..7). Bytes 0..3 hold scales 0..3 in their low 6
// bits, bytes 4..7 mins 0..3; bytes 8..11 hold the low 4 bits of scale (low nibble) and min (high
// nibble) 4..7, whose top 2 bits sit in the top 2 bits of bytes 0..3 (scales) and 4..7 (mins).
inline void q4_K_scale_min(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// Q6_K: 16 sub-blocks of 16 weights, w = d * scales[j] * (q - 32), q in 0..63 (4 low bits in ql,
// 2 high bits in qh).
struct block_q6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  fp16_t d;
};
static_assert(sizeof(block_q6_K) == 210);

// Q8_K: activations for K-quant dot products. bsums[i] = sum of qs[16 i .. 16 i + 15].
struct block_q8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};
static_assert(sizeof(block_q8_K) == 292);

// Q8_0: w = d * q, 32 weights.
struct block_q8_0 {
  fp16_t d;
  int8_t qs[QK8_0];
};
static_assert(sizeof(block_q8_0) == 34);

// Q4_0: w = d * (q - 8), 32 weights; qs[i] holds element i (low nibble) and i + 16 (high).
struct block_q4_0 {
  fp16_t d;
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q4_0) == 18);

// Q4_1: w = d * q + m, 32 weights, q in 0..15; qs[j] holds element j (low nibble) and j + 16
// (high nibble).
struct block_q4_1 {
  fp16_t d;
  fp16_t m;
  uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(block_q4_1) == 20);

// IQ4_NL: w = d * kvalues_iq4nl[q], 32 weights, q in 0..15 indexing a fixed non-linear table;
// nibbles as in Q4_0.
struct block_iq4_nl {
  fp16_t d;
  uint8_t qs[QK4_NL / 2];
};
static_assert(sizeof(block_iq4_nl) == 18);

// The IQ4_NL levels (ggml-common.h's kvalues_iq4nl).
inline constexpr int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                             1,    13,   25,  38,  53,  69,  89,  113};

// Q5_0: w = d * (q - 16), 32 weights, q in 0..31. qs[i] holds the low 4 bits of element i (low
// nibble) and i + 16 (high nibble); bit e of qh (read as a little-endian uint32) is the 5th bit of
// element e.
struct block_q5_0 {
  fp16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(block_q5_0) == 22);

// Q5_1: w = d * q + m, 32 weights, q in 0..31; qh and qs as in Q5_0.
struct block_q5_1 {
  fp16_t d;
  fp16_t m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(block_q5_1) == 24);

// Q8_1: activations for Q5_1 dot products. a = d * q; s = d * sum(qs), rounded to fp16 once (with
// d before its own fp16 rounding), so a min term m * sum(a) costs one product per block.
struct block_q8_1 {
  fp16_t d;
  fp16_t s;
  int8_t qs[QK8_1];
};
static_assert(sizeof(block_q8_1) == 36);

// The 5th bits of a Q5_0 / Q5_1 block's 32 quants, bit e for element e.
inline uint32_t q5_high_bits(const uint8_t* qh) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
         static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
}

}  // namespace edgellm::kernels
