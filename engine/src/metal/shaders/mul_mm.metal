// Matrix-matrix products for prefill: y[t][r] = sum_c W[r][c] * x[t][c] for n_tok > kMaxMvTokens
// activation rows (MatmulArgs; buffers 1 W row 0, 2 x, 3 y). Host side: mul_mm.cpp.
//
// A threadgroup of 128 threads (4 SIMD-groups) computes a tile of 64 weight rows x 32 tokens. It
// walks K in steps of 32 columns: the threads dequantize the 64 x 32 weight tile (each thread one
// 16-element piece: dequant.h) and load the 32 x 32 activation tile into threadgroup memory, a
// barrier, then each SIMD-group multiplies its 32 rows x 16 tokens with 8x8 simdgroup matrices
// (2 x 4 accumulators), a barrier before the next step overwrites the tiles.
//
// Both tiles are float, products and sums float: a dequantized weight can exceed half's range
// (Q4_K up to 65504 * 63 * 15, F16 rows of 65504 against activations of 10), and so can an
// activation (a residual-stream value past 65504 would become Inf as half). Threadgroup memory is
// 8 KiB (W) + 4 KiB (x); the output tile is staged through the W region when it is partial.
//
// Requirements (encode_mul_mm checks them): cols a multiple of 32 (every type's block size
// divides or is a multiple of 32: K-quant rows are whole 256-blocks); rows, n_tok >= 1.
// Partial tiles: weight rows past `rows` are clamped to the last row (their outputs are
// discarded), activation rows past n_tok are zeros, and only y[t][r] with t < n_tok, r < rows is
// written; every barrier and simdgroup operation is reached by all threads.
#include <metal_stdlib>
using namespace metal;

#include "args.h"
#include "dequant.h"

constant constexpr int kMmRows = 64;    // weight rows per threadgroup
constant constexpr int kMmToks = 32;    // tokens per threadgroup
constant constexpr int kMmK = 32;       // columns per step
constant constexpr int kMmThreads = 128;

template <dequant16 (*dequantize)(device const uchar *, int)>
void mul_mm_impl(constant MatmulArgs & args, device const uchar * w, device const float * x, device float * y,
                 threadgroup float * shmem, uint3 tgpig, ushort tid, ushort sg) {
  threadgroup float * sw = shmem;                    // [kMmK][kMmRows]: the W tile, transposed
  threadgroup float * sx = shmem + kMmK * kMmRows;   // [kMmToks][kMmK]: the x tile
  const int r0 = int(tgpig.x) * kMmRows;
  const int t0 = int(tgpig.y) * kMmToks;

  // This thread's part of the W tile: row wr, elements 16 wh .. 16 wh + 15 of each step.
  const int wr = int(tid) / 2;
  const int wh = int(tid) % 2;
  device const uchar * w_row = w + uint64_t(min(r0 + wr, args.rows - 1)) * args.row_bytes;
  // Its part of the x tile: token xt, elements xc .. xc + 7 of each step (0 past n_tok).
  const int xt = int(tid) / 4;
  const int xc = 8 * (int(tid) % 4);
  const bool x_live = t0 + xt < args.n_tok;
  device const float * x_row = x + uint64_t(x_live ? t0 + xt : 0) * uint64_t(args.ldx) + xc;

  // This SIMD-group's 32 rows x 16 tokens of the tile; acc[i][j] is tokens sg_t + 8i, rows
  // sg_r + 8j (C = X W^T: rows of C are tokens, as y's rows are).
  const int sg_r = 32 * (int(sg) % 2);
  const int sg_t = 16 * (int(sg) / 2);
  simdgroup_float8x8 acc[2][4];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

  for (int k0 = 0; k0 < args.cols; k0 += kMmK) {
    threadgroup_barrier(mem_flags::mem_threadgroup);  // the previous step's reads are done
    const dequant16 wv = dequantize(w_row, k0 / kDequantPiece + wh);
    for (int i = 0; i < 16; ++i) sw[(16 * wh + i) * kMmRows + wr] = wv.v[i];
    for (int i = 0; i < 8; ++i) sx[xt * kMmK + xc + i] = x_live ? x_row[k0 + i] : 0.0f;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    for (int kk = 0; kk < kMmK; kk += 8) {
      simdgroup_float8x8 a[2];
      simdgroup_float8x8 b[4];
      for (int i = 0; i < 2; ++i) simdgroup_load(a[i], sx + (sg_t + 8 * i) * kMmK + kk, kMmK);
      for (int j = 0; j < 4; ++j) simdgroup_load(b[j], sw + kk * kMmRows + sg_r + 8 * j, kMmRows);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 4; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
    }
  }

  // The same for every thread of the threadgroup, so the barriers below are uniform.
  const bool full = r0 + kMmRows <= args.rows && t0 + kMmToks <= args.n_tok;
  if (full) {
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 4; ++j)
        simdgroup_store(acc[i][j], y + uint64_t(t0 + sg_t + 8 * i) * uint64_t(args.ldy) + (r0 + sg_r + 8 * j),
                        ulong(args.ldy));
  } else {
    threadgroup float * st = shmem;  // [kMmToks][kMmRows], over the W tile
    threadgroup_barrier(mem_flags::mem_threadgroup);  // the last step's reads of sw are done
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 4; ++j) simdgroup_store(acc[i][j], st + (sg_t + 8 * i) * kMmRows + sg_r + 8 * j, kMmRows);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int e = int(tid); e < kMmToks * kMmRows; e += kMmThreads) {
      const int t = t0 + e / kMmRows;
      const int r = r0 + e % kMmRows;
      if (t < args.n_tok && r < args.rows) y[uint64_t(t) * uint64_t(args.ldy) + r] = st[e];
    }
  }
}

kernel void kernel_mul_mm_q4_K(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                               device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                               threadgroup float * shmem [[threadgroup(0)]],
                               uint3 tgpig [[threadgroup_position_in_grid]],
                               ushort tid [[thread_index_in_threadgroup]],
                               ushort sg [[simdgroup_index_in_threadgroup]]) {
  mul_mm_impl<dequantize_row_piece_q4_K>(args, w, x, y, shmem, tgpig, tid, sg);
}

kernel void kernel_mul_mm_q6_K(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                               device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                               threadgroup float * shmem [[threadgroup(0)]],
                               uint3 tgpig [[threadgroup_position_in_grid]],
                               ushort tid [[thread_index_in_threadgroup]],
                               ushort sg [[simdgroup_index_in_threadgroup]]) {
  mul_mm_impl<dequantize_row_piece_q6_K>(args, w, x, y, shmem, tgpig, tid, sg);
}

kernel void kernel_mul_mm_q8_0(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                               device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                               threadgroup float * shmem [[threadgroup(0)]],
                               uint3 tgpig [[threadgroup_position_in_grid]],
                               ushort tid [[thread_index_in_threadgroup]],
                               ushort sg [[simdgroup_index_in_threadgroup]]) {
  mul_mm_impl<dequantize_row_piece_q8_0>(args, w, x, y, shmem, tgpig, tid, sg);
}

kernel void kernel_mul_mm_q4_0(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                               device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                               threadgroup float * shmem [[threadgroup(0)]],
                               uint3 tgpig [[threadgroup_position_in_grid]],
                               ushort tid [[thread_index_in_threadgroup]],
                               ushort sg [[simdgroup_index_in_threadgroup]]) {
  mul_mm_impl<dequantize_row_piece_q4_0>(args, w, x, y, shmem, tgpig, tid, sg);
}

kernel void kernel_mul_mm_f16(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                              device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                              threadgroup float * shmem [[threadgroup(0)]],
                              uint3 tgpig [[threadgroup_position_in_grid]],
                              ushort tid [[thread_index_in_threadgroup]],
                              ushort sg [[simdgroup_index_in_threadgroup]]) {
  mul_mm_impl<dequantize_row_piece_f16>(args, w, x, y, shmem, tgpig, tid, sg);
}

kernel void kernel_mul_mm_f32(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                              device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                              threadgroup float * shmem [[threadgroup(0)]],
                              uint3 tgpig [[threadgroup_position_in_grid]],
                              ushort tid [[thread_index_in_threadgroup]],
                              ushort sg [[simdgroup_index_in_threadgroup]]) {
  mul_mm_impl<dequantize_row_piece_f32>(args, w, x, y, shmem, tgpig, tid, sg);
}
