// The quantized block formats, shared by the CPU kernels (C++) and the Metal kernels (MSL, which
// includes this file unchanged): each struct's byte layout *is* the GGUF/ggml file format, so a
// tensor's bytes in the memory map (or a Metal buffer over it) are read as an array of these
// blocks with no conversion. Only what both languages accept goes here: fixed-width integer
// fields, a 16-bit float field (IEEE half bits in C++, `half` in MSL), sizes checked in both.
// The C++ helpers that read the fields are in blocks.hpp.
#pragma once

#if defined(__METAL_VERSION__)
#define EDGELLM_BLOCK_CONST constant constexpr
#define EDGELLM_BLOCK_F16 half
#else
#include <cstdint>
#define EDGELLM_BLOCK_CONST constexpr
#define EDGELLM_BLOCK_F16 fp16_t
namespace edgellm::kernels {
using fp16_t = uint16_t;  // IEEE half, stored as its bits
using bf16_t = uint16_t;  // bfloat16, stored as its bits
#endif

EDGELLM_BLOCK_CONST int QK_K = 256;  // elements per K-quant super-block
EDGELLM_BLOCK_CONST int QK8_0 = 32;
EDGELLM_BLOCK_CONST int QK4_0 = 32;
EDGELLM_BLOCK_CONST int QK4_1 = 32;
EDGELLM_BLOCK_CONST int QK4_NL = 32;
EDGELLM_BLOCK_CONST int QK5_0 = 32;
EDGELLM_BLOCK_CONST int QK5_1 = 32;
EDGELLM_BLOCK_CONST int QK8_1 = 32;

// Q4_K: 8 sub-blocks of 32 weights, w = d * sc[j] * q - dmin * m[j], q in 0..15.
// scales[12] packs eight 6-bit scales and eight 6-bit mins.
struct block_q4_K {
  EDGELLM_BLOCK_F16 d;
  EDGELLM_BLOCK_F16 dmin;
  uint8_t scales[12];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q4_K) == 144, "block_q4_K: the file format");

// Q6_K: 16 sub-blocks of 16 weights, w = d * scales[j] * (q - 32), q in 0..63 (4 low bits in ql,
// 2 high bits in qh).
struct block_q6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  EDGELLM_BLOCK_F16 d;
};
static_assert(sizeof(block_q6_K) == 210, "block_q6_K: the file format");

// Q8_K: activations for K-quant dot products. bsums[i] = sum of qs[16 i .. 16 i + 15].
struct block_q8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};
static_assert(sizeof(block_q8_K) == 292, "block_q8_K: the file format");

// Q8_0: w = d * q, 32 weights.
struct block_q8_0 {
  EDGELLM_BLOCK_F16 d;
  int8_t qs[QK8_0];
};
static_assert(sizeof(block_q8_0) == 34, "block_q8_0: the file format");

// Q4_0: w = d * (q - 8), 32 weights; qs[i] holds element i (low nibble) and i + 16 (high).
struct block_q4_0 {
  EDGELLM_BLOCK_F16 d;
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q4_0) == 18, "block_q4_0: the file format");

// Q4_1: w = d * q + m, 32 weights, q in 0..15; qs[j] holds element j (low nibble) and j + 16
// (high nibble).
struct block_q4_1 {
  EDGELLM_BLOCK_F16 d;
  EDGELLM_BLOCK_F16 m;
  uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(block_q4_1) == 20, "block_q4_1: the file format");

// IQ4_NL: w = d * kvalues_iq4nl[q], 32 weights, q in 0..15 indexing a fixed non-linear table;
// nibbles as in Q4_0.
struct block_iq4_nl {
  EDGELLM_BLOCK_F16 d;
  uint8_t qs[QK4_NL / 2];
};
static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl: the file format");

// Q5_0: w = d * (q - 16), 32 weights, q in 0..31. qs[i] holds the low 4 bits of element i (low
// nibble) and i + 16 (high nibble); bit e of qh (read as a little-endian uint32) is the 5th bit of
// element e.
struct block_q5_0 {
  EDGELLM_BLOCK_F16 d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(block_q5_0) == 22, "block_q5_0: the file format");

// Q5_1: w = d * q + m, 32 weights, q in 0..31; qh and qs as in Q5_0.
struct block_q5_1 {
  EDGELLM_BLOCK_F16 d;
  EDGELLM_BLOCK_F16 m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(block_q5_1) == 24, "block_q5_1: the file format");

// Q8_1: activations for Q5_1 dot products. a = d * q; s = d * sum(qs), rounded to fp16 once (with
// d before its own fp16 rounding), so a min term m * sum(a) costs one product per block.
struct block_q8_1 {
  EDGELLM_BLOCK_F16 d;
  EDGELLM_BLOCK_F16 s;
  int8_t qs[QK8_1];
};
static_assert(sizeof(block_q8_1) == 36, "block_q8_1: the file format");

// Q5_K: 8 sub-blocks of 32 weights, w = d * sc[j] * q - dmin * m[j], q in 0..31. scales packed as
// Q4_K's; qs as Q4_K's (the low 4 bits); bit e / 32 of qh[e % 32] is the 5th bit of element e.
struct block_q5_K {
  EDGELLM_BLOCK_F16 d;
  EDGELLM_BLOCK_F16 dmin;
  uint8_t scales[12];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q5_K) == 176, "block_q5_K: the file format");

// Q3_K: 16 sub-blocks of 16 weights, w = d * (sc[j] - 32) * (q - 4), q in 0..7, sc[j] 6 bits.
// qs as Q2_K's (the low 2 bits); bit e / 32 of hmask[e % 32] is the 3rd bit of element e. scales:
// bytes 0..7 hold the low 4 bits of sc[0..7] (low nibble) and sc[8..15] (high nibble); bits
// 2 (j / 4) .. +1 of byte 8 + j % 4 hold the top 2 bits of sc[j].
struct block_q3_K {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  EDGELLM_BLOCK_F16 d;
};
static_assert(sizeof(block_q3_K) == 110, "block_q3_K: the file format");

// Q2_K: 16 sub-blocks of 16 weights, w = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4),
// q in 0..3. Each half h of 128 elements uses qs[32 h .. 32 h + 31]: element 128 h + 32 s + l
// is bits 2 s .. 2 s + 1 of qs[32 h + l].
struct block_q2_K {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  EDGELLM_BLOCK_F16 d;
  EDGELLM_BLOCK_F16 dmin;
};
static_assert(sizeof(block_q2_K) == 84, "block_q2_K: the file format");

// IQ4_XS: 8 sub-blocks of 32 weights, w = d * (ls[j] - 32) * kvalues_iq4nl[q], q in 0..15,
// ls[j] 6 bits: its low 4 bits are nibble j % 2 of scales_l[j / 2], its top 2 bits bits 2 j, 2 j + 1
// of scales_h. Sub-block j's quants are in qs[16 j ..] with nibbles as in IQ4_NL.
struct block_iq4_xs {
  EDGELLM_BLOCK_F16 d;
  uint16_t scales_h;
  uint8_t scales_l[QK_K / 64];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs: the file format");

#if !defined(__METAL_VERSION__)
}  // namespace edgellm::kernels
#endif
