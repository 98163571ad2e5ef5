// Mat-vec products for decode and small batches: y[t][r] = sum_c W[r][c] * x[t][c] for
// t < n_tok <= 8 (encode.hpp's kMaxMvTokens), W rows in a weight type, x and y float rows
// (MatmulArgs; buffers 1 W row 0, 2 x, 3 y). Host side: mul_mv.cpp, which mirrors the
// kMv* constants below.
//
// Decode reads every weight byte once per token and does little else, so the kernels are laid
// out for memory bandwidth:
// - A SIMD-group computes kMvRowsPerSimdgroup (4) consecutive rows; a threadgroup is
//   kMvSimdgroups (2) SIMD-groups, 8 rows. Rows past `rows` (the last threadgroup) are computed
//   on the last row and not stored, so every lane reaches every simd_sum.
// - The 32 lanes split each row's blocks: kLanesPerBlock lanes share a block, each reading its
//   own contiguous bytes of it, so consecutive lanes read consecutive bytes; a SIMD-group steps
//   32 / kLanesPerBlock blocks at a time (lanes whose block is past the row's end idle: K tail).
//   F16/F32 rows are 256-element "blocks" read element-interleaved (lane l: elements l, l + 32,
//   ...), with a guarded last partial block, so any cols >= 1 works.
// - A lane's part of a block is a few chunks of 8 elements that share one scale (and, Q4_K, one
//   min): it converts the 8 quants of each of its rows to float once, then for every token loads
//   the 8 activations (once for all rows) and accumulates scale * sum(q x) (- min * sum(x)). So
//   the weight bytes are read once for all n_tok tokens, and each activation once per 4 rows.
// - Float accumulators per (token, row), one simd_sum each at the end, lane 0 stores.
// The token count is a template parameter (a switch on n_tok in each kernel), so the
// accumulators are a fixed-size register array.
//
// Alignment (encode_mul_mv checks it): W at a multiple of 4 bytes for Q4_K and F32 (32-bit
// loads), of 2 for the others (16-bit loads: Q6_K, Q8_0 and Q4_0 blocks are 210, 34 and 18 bytes,
// so a block is only 2-aligned); x and y at multiples of 4.
#include <metal_stdlib>
using namespace metal;

#include "args.h"
#include "../../../../kernels/include/edgellm/kernels/block_formats.h"

constant constexpr int kMvRowsPerSimdgroup = 4;
constant constexpr int kMvSimdgroups = 2;
constant constexpr int kMvChunk = 8;  // elements per chunk (one scale each)

// ---- per-type layouts: which elements of a block a lane reads, and how they dequantize ----
//
// Each layout L has kBlockElems / kBlockBytes (one block), kLanesPerBlock, kChunks (chunks of
// kMvChunk elements per lane and block; kLanesPerBlock * kChunks * kMvChunk == kBlockElems),
// kXStride (elements between a chunk's consecutive elements), kHasMin, kAnyCols (a partial last
// block is allowed: floats only), and
//   int  chunk_offset(slot, c): the block element of chunk c's first element for lane slot
//        `slot` (0 .. kLanesPerBlock - 1);
//   void chunk(block, slot, c, q, scale, min): chunk c's 8 quants as float (exact small
//        integers for the quantized types) with w[k] = scale * q[k] - min;
//   float element(row, e): element e of a row (the partial last block, kAnyCols only).
// The quantized layouts share the defaults of mv_whole_blocks.

struct mv_whole_blocks {
  static constant constexpr int kXStride = 1;
  static constant constexpr int kHasMin = 0;
  static constant constexpr int kAnyCols = 0;
  static float element(device const uchar *, int) { return 0.0f; }  // never called: kAnyCols = 0
};

// Q4_K: 8 lanes per block, lane slot s reads qs[16 s .. 16 s + 15] (group g = s / 2 of 32 bytes,
// half s % 2): low nibbles are elements 64 g + 16 (s % 2) + i of sub-block 2 g, high nibbles
// 32 elements later, of sub-block 2 g + 1. Chunk c: nibble c / 2 of bytes 8 (c % 2) .. + 7.
// w = d * sc * q - dmin * m, summed as (d sc) sum(q x) - (dmin m) sum(x).
struct mv_q4_K : mv_whole_blocks {
  static constant constexpr int kBlockElems = QK_K;
  static constant constexpr int kBlockBytes = sizeof(block_q4_K);
  static constant constexpr int kLanesPerBlock = 8;
  static constant constexpr int kChunks = 4;
  static constant constexpr int kHasMin = 1;

  static int chunk_offset(int s, int c) { return 64 * (s / 2) + 32 * (c / 2) + 16 * (s % 2) + 8 * (c % 2); }

  static void chunk(device const uchar * bp, int s, int c, thread float * q, thread float & scale, thread float & mn) {
    device const block_q4_K * b = (device const block_q4_K *)bp;
    const int j = 2 * (s / 2) + c / 2;  // sub-block
    uint sc, m;
    if (j < 4) {
      sc = uint(b->scales[j]) & 63;
      m = uint(b->scales[j + 4]) & 63;
    } else {
      sc = (uint(b->scales[j + 4]) & 15) | ((uint(b->scales[j - 4]) >> 6) << 4);
      m = (uint(b->scales[j + 4]) >> 4) | ((uint(b->scales[j]) >> 6) << 4);
    }
    scale = float(b->d) * float(sc);
    mn = float(b->dmin) * float(m);
    device const uint * qw = (device const uint *)(b->qs + 16 * s + 8 * (c % 2));
    const uint shift = 4 * uint(c / 2);
    const uint w0 = qw[0], w1 = qw[1];
    for (int k = 0; k < 4; ++k) {
      q[k] = float((w0 >> (8 * k + shift)) & 15);
      q[4 + k] = float((w1 >> (8 * k + shift)) & 15);
    }
  }
};

// Q6_K: 8 lanes per block, lane slot s takes half h = s / 4 and l0 = 8 (s % 4): elements
// 128 h + 32 c + l0 + i (i < 8) for chunk c = 0..3. Their low 4 bits are nibble c / 2 of
// ql[64 h + 32 (c % 2) + l0 + i], their top 2 bits bits 2c, 2c + 1 of qh[32 h + l0 + i]; the
// 8 share scales[8 h + 2 c + (s % 4) / 2]. w = (d * sc) * (q - 32).
struct mv_q6_K : mv_whole_blocks {
  static constant constexpr int kBlockElems = QK_K;
  static constant constexpr int kBlockBytes = sizeof(block_q6_K);
  static constant constexpr int kLanesPerBlock = 8;
  static constant constexpr int kChunks = 4;

  static int chunk_offset(int s, int c) { return 128 * (s / 4) + 32 * c + 8 * (s % 4); }

  static void chunk(device const uchar * bp, int s, int c, thread float * q, thread float & scale, thread float & mn) {
    device const block_q6_K * b = (device const block_q6_K *)bp;
    const int h = s / 4;
    const int l0 = 8 * (s % 4);
    device const ushort * ql = (device const ushort *)(b->ql + 64 * h + 32 * (c % 2) + l0);
    device const ushort * qh = (device const ushort *)(b->qh + 32 * h + l0);
    const uint shift_lo = 4 * uint(c / 2);
    const uint shift_hi = 2 * uint(c);
    scale = float(b->d) * float(b->scales[8 * h + 2 * c + (s % 4) / 2]);
    mn = 0.0f;
    for (int k = 0; k < 4; ++k) {  // 16-bit word k holds bytes 2k (low) and 2k + 1
      const uint lo = ql[k], hi = qh[k];
      for (int e = 0; e < 2; ++e) {
        const uint v = ((lo >> (8 * e + shift_lo)) & 15) | (((hi >> (8 * e + shift_hi)) & 3) << 4);
        q[2 * k + e] = float(int(v) - 32);
      }
    }
  }
};

// Q8_0: 2 lanes per block, lane slot s reads qs[16 s .. 16 s + 15]; chunk c is elements
// 16 s + 8 c + i. w = d * q.
struct mv_q8_0 : mv_whole_blocks {
  static constant constexpr int kBlockElems = QK8_0;
  static constant constexpr int kBlockBytes = sizeof(block_q8_0);
  static constant constexpr int kLanesPerBlock = 2;
  static constant constexpr int kChunks = 2;

  static int chunk_offset(int s, int c) { return 16 * s + 8 * c; }

  static void chunk(device const uchar * bp, int s, int c, thread float * q, thread float & scale, thread float & mn) {
    device const block_q8_0 * b = (device const block_q8_0 *)bp;
    device const ushort * qw = (device const ushort *)(b->qs + 16 * s + 8 * c);  // qs is at byte 2
    scale = float(b->d);
    mn = 0.0f;
    for (int k = 0; k < 4; ++k) {
      const uint u = qw[k];
      for (int e = 0; e < 2; ++e) {
        const int v = int((u >> (8 * e)) & 255);
        q[2 * k + e] = float(v - ((v & 128) << 1));  // the byte as int8
      }
    }
  }
};

// Q4_0: 2 lanes per block, lane slot s reads qs[8 s .. 8 s + 7]; chunk 0 is their low nibbles
// (elements 8 s + i), chunk 1 their high nibbles (elements 16 + 8 s + i). w = d * (q - 8).
struct mv_q4_0 : mv_whole_blocks {
  static constant constexpr int kBlockElems = QK4_0;
  static constant constexpr int kBlockBytes = sizeof(block_q4_0);
  static constant constexpr int kLanesPerBlock = 2;
  static constant constexpr int kChunks = 2;

  static int chunk_offset(int s, int c) { return 16 * c + 8 * s; }

  static void chunk(device const uchar * bp, int s, int c, thread float * q, thread float & scale, thread float & mn) {
    device const block_q4_0 * b = (device const block_q4_0 *)bp;
    device const ushort * qw = (device const ushort *)(b->qs + 8 * s);  // qs is at byte 2
    const uint shift = 4 * uint(c);
    scale = float(b->d);
    mn = 0.0f;
    for (int k = 0; k < 4; ++k) {
      const uint u = qw[k];
      q[2 * k] = float(int((u >> shift) & 15) - 8);
      q[2 * k + 1] = float(int((u >> (8 + shift)) & 15) - 8);
    }
  }
};

// F16 / F32: 256-element blocks, all 32 lanes on one; lane slot s reads elements s + 32 i
// (i < 8), so each load of the SIMD-group is 32 consecutive elements. The last block may be
// partial (element(row, e) reads one element; used only for e < cols).
struct mv_f16 {
  static constant constexpr int kBlockElems = 256;
  static constant constexpr int kBlockBytes = 256 * sizeof(half);
  static constant constexpr int kLanesPerBlock = 32;
  static constant constexpr int kChunks = 1;
  static constant constexpr int kXStride = 32;
  static constant constexpr int kHasMin = 0;
  static constant constexpr int kAnyCols = 1;

  static int chunk_offset(int s, int) { return s; }

  static void chunk(device const uchar * bp, int s, int, thread float * q, thread float & scale, thread float & mn) {
    device const half * p = (device const half *)bp + s;
    scale = 1.0f;
    mn = 0.0f;
    for (int k = 0; k < kMvChunk; ++k) q[k] = float(p[32 * k]);
  }

  static float element(device const uchar * row, int e) { return float(((device const half *)row)[e]); }
};

struct mv_f32 {
  static constant constexpr int kBlockElems = 256;
  static constant constexpr int kBlockBytes = 256 * sizeof(float);
  static constant constexpr int kLanesPerBlock = 32;
  static constant constexpr int kChunks = 1;
  static constant constexpr int kXStride = 32;
  static constant constexpr int kHasMin = 0;
  static constant constexpr int kAnyCols = 1;

  static int chunk_offset(int s, int) { return s; }

  static void chunk(device const uchar * bp, int s, int, thread float * q, thread float & scale, thread float & mn) {
    device const float * p = (device const float *)bp + s;
    scale = 1.0f;
    mn = 0.0f;
    for (int k = 0; k < kMvChunk; ++k) q[k] = p[32 * k];
  }

  static float element(device const uchar * row, int e) { return ((device const float *)row)[e]; }
};

// ---- the kernel body, one instantiation per layout and token count ----

template <typename L, int NT>
void mul_mv_impl(constant MatmulArgs & args, device const uchar * w, device const float * x, device float * y,
                 uint tgpig, ushort sgitg, ushort tiisg) {
  constexpr int NR = kMvRowsPerSimdgroup;
  const int lane = int(tiisg);
  const int row0 = int(tgpig) * (NR * kMvSimdgroups) + int(sgitg) * NR;

  // Rows past the end read the last row (uniform control flow); their sums are not stored.
  device const uchar * wrow[NR];
  for (int r = 0; r < NR; ++r) wrow[r] = w + uint64_t(min(row0 + r, args.rows - 1)) * args.row_bytes;

  float acc[NT][NR];
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < NR; ++r) acc[t][r] = 0.0f;

  const int nb = args.cols / L::kBlockElems;  // whole blocks
  const int slot = lane % L::kLanesPerBlock;
  for (int ib = lane / L::kLanesPerBlock; ib < nb; ib += 32 / L::kLanesPerBlock) {
    for (int c = 0; c < L::kChunks; ++c) {
      float q[NR][kMvChunk];
      float scale[NR], mn[NR];
      for (int r = 0; r < NR; ++r) L::chunk(wrow[r] + ib * L::kBlockBytes, slot, c, q[r], scale[r], mn[r]);
      device const float * xc = x + ib * L::kBlockElems + L::chunk_offset(slot, c);
      for (int t = 0; t < NT; ++t) {
        device const float * xt = xc + t * args.ldx;
        float xv[kMvChunk];
        float sx = 0.0f;
        for (int k = 0; k < kMvChunk; ++k) {
          xv[k] = xt[k * L::kXStride];
          sx += xv[k];
        }
        for (int r = 0; r < NR; ++r) {
          float p = 0.0f;
          for (int k = 0; k < kMvChunk; ++k) p += q[r][k] * xv[k];
          acc[t][r] += L::kHasMin ? scale[r] * p - mn[r] * sx : scale[r] * p;
        }
      }
    }
  }

  // F16 / F32: the partial last block (cols % 256 elements), guarded per element.
  const int tail0 = nb * L::kBlockElems;
  if (L::kAnyCols && tail0 < args.cols) {
    float q[NR][kMvChunk];
    for (int r = 0; r < NR; ++r)
      for (int k = 0; k < kMvChunk; ++k) {
        const int e = tail0 + lane + 32 * k;
        q[r][k] = e < args.cols ? L::element(wrow[r], e) : 0.0f;
      }
    for (int t = 0; t < NT; ++t) {
      device const float * xt = x + t * args.ldx;
      float xv[kMvChunk];
      for (int k = 0; k < kMvChunk; ++k) {
        const int e = tail0 + lane + 32 * k;
        xv[k] = e < args.cols ? xt[e] : 0.0f;
      }
      for (int r = 0; r < NR; ++r) {
        float p = 0.0f;
        for (int k = 0; k < kMvChunk; ++k) p += q[r][k] * xv[k];
        acc[t][r] += p;
      }
    }
  }

  for (int t = 0; t < NT; ++t) {
    for (int r = 0; r < NR; ++r) {
      const float s = simd_sum(acc[t][r]);
      if (lane == 0 && row0 + r < args.rows) y[t * args.ldy + row0 + r] = s;
    }
  }
}

// n_tok (1 .. kMaxMvTokens, checked by encode_mul_mv) as a template parameter; uniform.
template <typename L>
void mul_mv(constant MatmulArgs & args, device const uchar * w, device const float * x, device float * y,
            uint tgpig, ushort sgitg, ushort tiisg) {
  switch (args.n_tok) {
    case 1: mul_mv_impl<L, 1>(args, w, x, y, tgpig, sgitg, tiisg); break;
    case 2: mul_mv_impl<L, 2>(args, w, x, y, tgpig, sgitg, tiisg); break;
    case 3: mul_mv_impl<L, 3>(args, w, x, y, tgpig, sgitg, tiisg); break;
    case 4: mul_mv_impl<L, 4>(args, w, x, y, tgpig, sgitg, tiisg); break;
    case 5: mul_mv_impl<L, 5>(args, w, x, y, tgpig, sgitg, tiisg); break;
    case 6: mul_mv_impl<L, 6>(args, w, x, y, tgpig, sgitg, tiisg); break;
    case 7: mul_mv_impl<L, 7>(args, w, x, y, tgpig, sgitg, tiisg); break;
    case 8: mul_mv_impl<L, 8>(args, w, x, y, tgpig, sgitg, tiisg); break;
    default: break;
  }
}

kernel void kernel_mul_mv_q4_K(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                               device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                               uint tgpig [[threadgroup_position_in_grid]],
                               ushort sgitg [[simdgroup_index_in_threadgroup]],
                               ushort tiisg [[thread_index_in_simdgroup]]) {
  mul_mv<mv_q4_K>(args, w, x, y, tgpig, sgitg, tiisg);
}

kernel void kernel_mul_mv_q6_K(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                               device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                               uint tgpig [[threadgroup_position_in_grid]],
                               ushort sgitg [[simdgroup_index_in_threadgroup]],
                               ushort tiisg [[thread_index_in_simdgroup]]) {
  mul_mv<mv_q6_K>(args, w, x, y, tgpig, sgitg, tiisg);
}

kernel void kernel_mul_mv_q8_0(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                               device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                               uint tgpig [[threadgroup_position_in_grid]],
                               ushort sgitg [[simdgroup_index_in_threadgroup]],
                               ushort tiisg [[thread_index_in_simdgroup]]) {
  mul_mv<mv_q8_0>(args, w, x, y, tgpig, sgitg, tiisg);
}

kernel void kernel_mul_mv_q4_0(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                               device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                               uint tgpig [[threadgroup_position_in_grid]],
                               ushort sgitg [[simdgroup_index_in_threadgroup]],
                               ushort tiisg [[thread_index_in_simdgroup]]) {
  mul_mv<mv_q4_0>(args, w, x, y, tgpig, sgitg, tiisg);
}

kernel void kernel_mul_mv_f16(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                              device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                              uint tgpig [[threadgroup_position_in_grid]],
                              ushort sgitg [[simdgroup_index_in_threadgroup]],
                              ushort tiisg [[thread_index_in_simdgroup]]) {
  mul_mv<mv_f16>(args, w, x, y, tgpig, sgitg, tiisg);
}

kernel void kernel_mul_mv_f32(constant MatmulArgs & args [[buffer(0)]], device const uchar * w [[buffer(1)]],
                              device const float * x [[buffer(2)]], device float * y [[buffer(3)]],
                              uint tgpig [[threadgroup_position_in_grid]],
                              ushort sgitg [[simdgroup_index_in_threadgroup]],
                              ushort tiisg [[thread_index_in_simdgroup]]) {
  mul_mv<mv_f32>(args, w, x, y, tgpig, sgitg, tiisg);
}
