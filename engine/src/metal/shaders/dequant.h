// Dequantization helpers shared by the Metal kernels (MSL; included by mul_mm.metal, rows.metal).
//
// One entry per weight type the Metal backend reads (encode.hpp's supports()):
//
//   dequant16 dequantize_row_piece_q4_K(device const uchar * row, int piece);
//   dequant16 dequantize_row_piece_q6_K(device const uchar * row, int piece);
//   dequant16 dequantize_row_piece_q8_0(device const uchar * row, int piece);
//   dequant16 dequantize_row_piece_q4_0(device const uchar * row, int piece);
//   dequant16 dequantize_row_piece_f16 (device const uchar * row, int piece);
//   dequant16 dequantize_row_piece_f32 (device const uchar * row, int piece);
//
// `row` is the first byte of a weight row (its first block; for a table, `base + uint64_t(r) *
// row_bytes`), `piece` counts pieces of kDequantPiece = 16 consecutive elements along the row:
// the result holds elements 16 piece .. 16 piece + 15 as float, in order (out.v[i] is element
// 16 piece + i). A row of `cols` elements has cols / 16 pieces (cols is a multiple of the type's
// block size, so of 16 for every type here; F16/F32 rows must be a multiple of 16 long).
//
// The values are those of the CPU's dequantize_row_*_ref (docs/FORMATS.md's formulas, the same
// float operations in the same order); they are float, not half, because a dequantized weight
// can exceed half's range (Q4_K: d * sc * q up to 65504 * 63 * 15). A Metal compiler may fuse
// `a * b - c` into one fma, so a value can differ from the CPU's by one rounding (2^-24 relative).
//
// No swizzles, no overloads on address space (docs/METAL.md rules 5, 6): this header is also
// compiled as C++ by the emulator.
#pragma once

#include "../../../../kernels/include/edgellm/kernels/block_formats.h"

constant constexpr int kDequantPiece = 16;  // elements per piece

struct dequant16 {
  float v[16];
};

// Q4_K: 16 pieces per block; piece p of a block lies in sub-block p / 2 (32 elements), its
// quants are 16 bytes of group p / 4 (low nibbles for even sub-blocks, high for odd).
inline dequant16 dequantize_row_piece_q4_K(device const uchar * row, int piece) {
  device const block_q4_K * b = (device const block_q4_K *)row + piece / 16;
  const int p = piece % 16;
  const int j = p / 2;
  uint sc, m;
  if (j < 4) {
    sc = b->scales[j] & 63;
    m = b->scales[j + 4] & 63;
  } else {
    sc = (b->scales[j + 4] & 0xF) | ((b->scales[j - 4] >> 6) << 4);
    m = (b->scales[j + 4] >> 4) | ((b->scales[j] >> 6) << 4);
  }
  const float dj = float(b->d) * float(sc);
  const float mj = float(b->dmin) * float(m);
  device const uchar * q = b->qs + 32 * (p / 4) + 16 * (p & 1);
  const uint shift = 4 * uint(j & 1);
  dequant16 out;
  for (int i = 0; i < 16; ++i) out.v[i] = dj * float((uint(q[i]) >> shift) & 15) - mj;
  return out;
}

// Q6_K: 16 pieces per block, piece p uses scales[p]. Its elements 16 p + i (i < 16) are, with
// h = p / 8 and k = (p % 8) / 2 (the 32-element quarter of the half h), l = 16 (p & 1) + i:
// low 4 bits from ql[64 h + 32 (k & 1) + l] (low nibble for k < 2, high otherwise), top 2 bits
// from bits 2k, 2k + 1 of qh[32 h + l].
inline dequant16 dequantize_row_piece_q6_K(device const uchar * row, int piece) {
  device const block_q6_K * b = (device const block_q6_K *)row + piece / 16;
  const int p = piece % 16;
  const int h = p / 8;
  const int k = (p % 8) / 2;
  const int l0 = 16 * (p & 1);
  device const uchar * ql = b->ql + 64 * h + 32 * (k & 1) + l0;
  device const uchar * qh = b->qh + 32 * h + l0;
  const uint shift_lo = k >= 2 ? 4 : 0;
  const uint shift_hi = 2 * uint(k);
  const float scale = float(b->d) * float(b->scales[p]);
  dequant16 out;
  for (int i = 0; i < 16; ++i) {
    const int q = int(((uint(ql[i]) >> shift_lo) & 15) | (((uint(qh[i]) >> shift_hi) & 3) << 4));
    out.v[i] = scale * float(q - 32);
  }
  return out;
}

// Q8_0: 2 pieces per block, w = q * d.
inline dequant16 dequantize_row_piece_q8_0(device const uchar * row, int piece) {
  device const block_q8_0 * b = (device const block_q8_0 *)row + piece / 2;
  device const int8_t * q = b->qs + 16 * (piece & 1);
  const float d = float(b->d);
  dequant16 out;
  for (int i = 0; i < 16; ++i) out.v[i] = float(q[i]) * d;
  return out;
}

// Q4_0: 2 pieces per block: piece 0 is the low nibbles of qs[0..15] (elements 0..15), piece 1
// their high nibbles (elements 16..31); w = (q - 8) * d.
inline dequant16 dequantize_row_piece_q4_0(device const uchar * row, int piece) {
  device const block_q4_0 * b = (device const block_q4_0 *)row + piece / 2;
  const uint shift = 4 * uint(piece & 1);
  const float d = float(b->d);
  dequant16 out;
  for (int i = 0; i < 16; ++i) out.v[i] = float(int((uint(b->qs[i]) >> shift) & 15) - 8) * d;
  return out;
}

inline dequant16 dequantize_row_piece_f16(device const uchar * row, int piece) {
  device const half * h = (device const half *)row + 16 * piece;
  dequant16 out;
  for (int i = 0; i < 16; ++i) out.v[i] = float(h[i]);
  return out;
}

inline dequant16 dequantize_row_piece_f32(device const uchar * row, int piece) {
  device const float * f = (device const float *)row + 16 * piece;
  dequant16 out;
  for (int i = 0; i < 16; ++i) out.v[i] = f[i];
  return out;
}
