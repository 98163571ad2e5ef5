// The argument structs of the Metal kernels, shared by the host (C++, engine/src/metal/*.cpp) and
// the kernels (MSL, shaders/*.metal): each kernel takes one of these by value at buffer(0). Only
// fixed-width fields; every byte offset that can pass 4 GiB (weight rows) is 64-bit, and kernels
// form offsets as uint64_t(row) * row_bytes.
#pragma once

#if defined(__METAL_VERSION__)
#define EDGELLM_ARGS_BEGIN
#define EDGELLM_ARGS_END
#else
#include <cstdint>
#define EDGELLM_ARGS_BEGIN namespace edgellm::engine::metal {
#define EDGELLM_ARGS_END }
#endif

EDGELLM_ARGS_BEGIN

// y[t][r] = sum_c W[r][c] * x[t][c] for t < n_tok, r < rows.
// Buffers: 1 W (first row), 2 x (float rows), 3 y (float rows).
struct MatmulArgs {
  int32_t rows;        // W rows (output features)
  int32_t cols;        // W cols (input features), a multiple of the type's block size
  uint64_t row_bytes;  // bytes per W row
  int32_t n_tok;       // activation rows
  int32_t ldx;         // floats from one x row to the next
  int32_t ldy;         // floats from one y row to the next
  int32_t pad_;
};

// y[t][:] = dequantized row tokens[t] of the table.
// Buffers: 1 table (row 0), 2 tokens (int32), 3 y (float rows).
struct EmbedArgs {
  int32_t n_tok;
  int32_t cols;
  uint64_t row_bytes;
  int32_t ldy;
  int32_t pad_;
};

// y[i] = x[i] * (1 / sqrt(mean(x[i]^2) + eps)) * weight, for rows i < n_rows (as ops.hpp's rms_norm).
// Buffers: 1 x, 2 weight (width floats), 3 y.
struct RmsNormArgs {
  int32_t n_rows;
  int32_t width;
  int32_t ld;          // floats between rows (x and y)
  float eps;
};

// In place: rotates the first n_rot dims of each head of each row by its position's angles
// (llama's NORM mode, angles as kernels::rope_norm_cos_sin).
// Buffers: 1 x, 2 freq_factors (n_rot / 2 floats; bound to any buffer when has_freq_factors == 0).
struct RopeArgs {
  int32_t n_tok;
  int32_t ld;
  int32_t n_heads;
  int32_t head_dim;
  int32_t n_rot;       // rotated dims: capped at head_dim, even
  int32_t pos0;        // position of row 0
  float freq_base;
  float freq_scale;
  int32_t has_freq_factors;
  float theta_ratio;   // r = powf(freq_base, -2 / n_rot), computed by the host's libm as the CPU's
                       // (a GPU pow is up to 16 ulp off, and t_i = pos * r^i multiplies that by i)
};

// Writes the step's keys and values of one layer into the cache (engine/src/kv_cache.hpp's
// layout: per KV head K as [n_ctx/32][head_dim][32], V as [n_ctx][head_dim]).
// Buffers: 1 k (float rows), 2 v (float rows), 3 the layer's K of head 0, 4 the layer's V of
// head 0 (cache elements, f16 or f32 by the kernel's name).
struct KvStoreArgs {
  int32_t n_tok;
  int32_t pos0;
  int32_t n_head_kv;
  int32_t head_dim;
  int32_t ldk;
  int32_t ldv;
  uint64_t head_elems;  // elements from one head's K (or V) region to the next
};

// out[t][h] = softmax(q[t][h] . K[0 .. pos0 + t] * scale) . V[0 .. pos0 + t] (causal, GQA).
// Buffers: 1 q, 2 the layer's K of head 0, 3 its V of head 0, 4 out, 5 scratch (attention.cpp
// sizes it: partial results of split-KV decode).
struct AttentionArgs {
  int32_t n_tok;
  int32_t pos0;
  int32_t n_head;
  int32_t n_head_kv;
  int32_t head_dim;
  int32_t ldq;
  int32_t ldo;
  int32_t n_splits;     // split-KV decode: KV ranges per head, reduced by a second kernel
  uint64_t head_elems;
  float scale;          // 1 / sqrt(head_dim)
  int32_t pad_;
};

// y[i] = silu(a[i]) * b[i] or a[i] + b[i] for i < n. Buffers: 1 a, 2 b, 3 y.
struct ElementwiseArgs {
  uint32_t n;
  uint32_t pad_[3];
};

EDGELLM_ARGS_END
