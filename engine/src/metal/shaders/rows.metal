// Row-wise kernels of the forward pass: embed, rms_norm, rope, silu_mul, add (host side: rows.cpp).
// Each computes what the CPU backend's op computes (engine/src/backend_cpu.cpp, kernels/ops.hpp);
// how close, per kernel:
//   embed     bit-exact with dequantize_row_*_ref (every product of dequant.h is exact in float:
//             a fused multiply-add rounds the same once)
//   rms_norm  the sum of squares in float, another order than the CPU's double: |y - y_ref| <=
//             4e-6 |y_ref| for widths up to 4096 at 1024 threads (rows.cpp's bound)
//   rope      the CPU's angle recurrence exactly (same float products, r from the host's powf);
//             precise cos/sin (<= 4 ulp on Apple GPUs; the emulator's are the CPU's): |x' - x'_ref|
//             <= 1e-6 (|x0| + |x1|)
//   silu_mul  precise exp and divide: |y - y_ref| <= 2e-6 |y_ref| + 1e-30
//   add       exact
#include <metal_stdlib>
using namespace metal;

#include "args.h"
#include "dequant.h"

// ---- embed: y[t][:] = dequantized row tokens[t] ------------------------------------------------
// One thread per 16-element piece of a row (dequant.h): grid (pieces / threads, n_tok).

inline void embed_store(constant EmbedArgs & args, device float * y, uint t, uint piece, dequant16 w) {
  device float * out = y + uint64_t(t) * uint64_t(args.ldy) + 16 * piece;
  for (int i = 0; i < 16; ++i) out[i] = w.v[i];
}

inline device const uchar * embed_row(constant EmbedArgs & args, device const uchar * table,
                                      device const int32_t * tokens, uint t) {
  return table + uint64_t(uint(tokens[t])) * args.row_bytes;
}

kernel void kernel_embed_q4_K(constant EmbedArgs & args [[buffer(0)]], device const uchar * table [[buffer(1)]],
                              device const int32_t * tokens [[buffer(2)]], device float * y [[buffer(3)]],
                              uint3 gid [[thread_position_in_grid]]) {
  if (gid.x >= uint(args.cols / 16) || gid.y >= uint(args.n_tok)) return;
  embed_store(args, y, gid.y, gid.x, dequantize_row_piece_q4_K(embed_row(args, table, tokens, gid.y), gid.x));
}

kernel void kernel_embed_q6_K(constant EmbedArgs & args [[buffer(0)]], device const uchar * table [[buffer(1)]],
                              device const int32_t * tokens [[buffer(2)]], device float * y [[buffer(3)]],
                              uint3 gid [[thread_position_in_grid]]) {
  if (gid.x >= uint(args.cols / 16) || gid.y >= uint(args.n_tok)) return;
  embed_store(args, y, gid.y, gid.x, dequantize_row_piece_q6_K(embed_row(args, table, tokens, gid.y), gid.x));
}

kernel void kernel_embed_q8_0(constant EmbedArgs & args [[buffer(0)]], device const uchar * table [[buffer(1)]],
                              device const int32_t * tokens [[buffer(2)]], device float * y [[buffer(3)]],
                              uint3 gid [[thread_position_in_grid]]) {
  if (gid.x >= uint(args.cols / 16) || gid.y >= uint(args.n_tok)) return;
  embed_store(args, y, gid.y, gid.x, dequantize_row_piece_q8_0(embed_row(args, table, tokens, gid.y), gid.x));
}

kernel void kernel_embed_q4_0(constant EmbedArgs & args [[buffer(0)]], device const uchar * table [[buffer(1)]],
                              device const int32_t * tokens [[buffer(2)]], device float * y [[buffer(3)]],
                              uint3 gid [[thread_position_in_grid]]) {
  if (gid.x >= uint(args.cols / 16) || gid.y >= uint(args.n_tok)) return;
  embed_store(args, y, gid.y, gid.x, dequantize_row_piece_q4_0(embed_row(args, table, tokens, gid.y), gid.x));
}

// F16 / F32 rows may have any length: the last, partial piece is copied element by element.
kernel void kernel_embed_f16(constant EmbedArgs & args [[buffer(0)]], device const uchar * table [[buffer(1)]],
                             device const int32_t * tokens [[buffer(2)]], device float * y [[buffer(3)]],
                             uint3 gid [[thread_position_in_grid]]) {
  const uint piece = gid.x, t = gid.y;
  if (piece >= uint((args.cols + 15) / 16) || t >= uint(args.n_tok)) return;
  device const uchar * row = embed_row(args, table, tokens, t);
  if (16 * (piece + 1) <= uint(args.cols)) {
    embed_store(args, y, t, piece, dequantize_row_piece_f16(row, int(piece)));
  } else {
    device const half * h = (device const half *)row;
    device float * out = y + uint64_t(t) * uint64_t(args.ldy);
    for (uint i = 16 * piece; i < uint(args.cols); ++i) out[i] = float(h[i]);
  }
}

kernel void kernel_embed_f32(constant EmbedArgs & args [[buffer(0)]], device const uchar * table [[buffer(1)]],
                             device const int32_t * tokens [[buffer(2)]], device float * y [[buffer(3)]],
                             uint3 gid [[thread_position_in_grid]]) {
  const uint piece = gid.x, t = gid.y;
  if (piece >= uint((args.cols + 15) / 16) || t >= uint(args.n_tok)) return;
  device const uchar * row = embed_row(args, table, tokens, t);
  if (16 * (piece + 1) <= uint(args.cols)) {
    embed_store(args, y, t, piece, dequantize_row_piece_f32(row, int(piece)));
  } else {
    device const float * f = (device const float *)row;
    device float * out = y + uint64_t(t) * uint64_t(args.ldy);
    for (uint i = 16 * piece; i < uint(args.cols); ++i) out[i] = f[i];
  }
}

// ---- rms_norm: y = (x * scale) * weight, scale = 1 / sqrt(mean(x^2) + eps) -------------------
// One threadgroup per row. Each thread sums the squares of its strided elements in float, the
// SIMD-groups reduce with simd_sum, and every thread adds the SIMD-group totals in the same order
// (threadgroup memory: one float per SIMD-group), so all threads hold the same scale. In place
// (y == x) works: every read of the sum happens before the barrier, and the second pass reads
// only the element it writes.
kernel void kernel_rms_norm(constant RmsNormArgs & args [[buffer(0)]], device const float * x [[buffer(1)]],
                            device const float * weight [[buffer(2)]], device float * y [[buffer(3)]],
                            threadgroup float * partial [[threadgroup(0)]],
                            uint row [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                            uint n_threads [[threads_per_threadgroup]], ushort lane [[thread_index_in_simdgroup]],
                            ushort sg [[simdgroup_index_in_threadgroup]],
                            ushort n_sg [[simdgroups_per_threadgroup]]) {
  const int width = args.width;
  device const float * xr = x + uint64_t(row) * uint64_t(args.ld);
  device float * yr = y + uint64_t(row) * uint64_t(args.ld);
  float sum = 0.0f;
  for (int i = int(tid); i < width; i += int(n_threads)) sum += xr[i] * xr[i];
  sum = simd_sum(sum);
  if (lane == 0) partial[sg] = sum;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float total = 0.0f;
  for (int i = 0; i < int(n_sg); ++i) total += partial[i];
  const float mean = width > 0 ? precise::divide(total, float(width)) : 0.0f;
  const float scale = precise::divide(1.0f, precise::sqrt(mean + args.eps));
  for (int i = int(tid); i < width; i += int(n_threads)) yr[i] = (xr[i] * scale) * weight[i];
}

// ---- rope (NORM mode): rotates pairs (2i, 2i + 1) of the first n_rot dims of every head --------
// One thread per (pair of a head, row): grid (n_heads * n_rot / 2 / threads, n_tok). The angle is
// the CPU's recurrence t_0 = float(pos), t_{i+1} = t_i * r (i products, the same roundings), then
// theta = freq_scale * (t_i / freq_factors[i]) with a correctly rounded division.
kernel void kernel_rope(constant RopeArgs & args [[buffer(0)]], device float * x [[buffer(1)]],
                        device const float * freq_factors [[buffer(2)]], uint3 gid [[thread_position_in_grid]]) {
  const int n_pairs = args.n_rot / 2;
  if (n_pairs <= 0 || gid.x >= uint(args.n_heads * n_pairs) || gid.y >= uint(args.n_tok)) return;
  const int head = int(gid.x) / n_pairs, i = int(gid.x) % n_pairs;
  float t = float(args.pos0 + int(gid.y));
  for (int k = 0; k < i; ++k) t *= args.theta_ratio;
  if (args.has_freq_factors != 0) t = precise::divide(t, freq_factors[i]);
  const float theta = args.freq_scale * t;
  const float c = precise::cos(theta), s = precise::sin(theta);
  device float * p = x + uint64_t(gid.y) * uint64_t(args.ld) + uint64_t(head) * uint64_t(args.head_dim) + 2 * i;
  const float x0 = p[0], x1 = p[1];
  p[0] = x0 * c - x1 * s;
  p[1] = x0 * s + x1 * c;
}

// ---- element-wise: one thread per element ------------------------------------------------------
kernel void kernel_silu_mul(constant ElementwiseArgs & args [[buffer(0)]], device const float * gate [[buffer(1)]],
                            device const float * up [[buffer(2)]], device float * y [[buffer(3)]],
                            uint i [[thread_position_in_grid]]) {
  if (i >= args.n) return;
  const float g = gate[i];
  y[i] = precise::divide(g, 1.0f + precise::exp(-g)) * up[i];
}

kernel void kernel_add(constant ElementwiseArgs & args [[buffer(0)]], device const float * a [[buffer(1)]],
                       device const float * b [[buffer(2)]], device float * y [[buffer(3)]],
                       uint i [[thread_position_in_grid]]) {
  if (i >= args.n) return;
  y[i] = a[i] + b[i];
}
