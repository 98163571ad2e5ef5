// The Metal backend's primitives, host side: each function chooses its kernel, grid, threadgroup
// size and threadgroup memory and records the dispatch(es) on a Device (device.hpp). One source
// file per primitive, beside its .metal file (MLX's layout):
//   matmul.cpp     encode_matmul: the GEMV / GEMM switch (the one place that picks)
//   mul_mv.cpp     shaders/mul_mv.metal   decode and small batches (1 .. kMaxMvTokens rows)
//   mul_mm.cpp     shaders/mul_mm.metal   prefill: tiled, simdgroup-matrix products
//   rows.cpp       shaders/rows.metal     embed, rms_norm, rope, silu_mul, add
//   attention.cpp  shaders/attention.metal kv_store, attention (split-KV decode + prefill)
// Plain C++ (no Metal API): the same code runs against the real GPU and the emulator.
#pragma once

#include <cstddef>
#include <cstdint>

#include "edgellm/dtype.hpp"
#include "metal/device.hpp"

namespace edgellm::engine::metal {

// A weight matrix inside a device buffer: rows x cols, row r at data + r * row_bytes.
struct WeightView {
  DType type = DType::F32;
  BufView data;
  int64_t rows = 0, cols = 0;
  uint64_t row_bytes = 0;
};

// The weight types the Metal kernels read (matmul and embed): Q4_K, Q6_K, Q8_0, Q4_0, F16, F32.
bool supports(DType type);

// ---- matmul: y[t][r] = W[r][:] . x[t][:], t < n_tok -----------------------------------------
inline constexpr int kMaxMvTokens = 8;  // up to this many rows: mat-vec kernels; more: tiled
inline constexpr int kMmTileK = 32;     // the tiled kernels' K step: they need cols % kMmTileK == 0
void encode_matmul(Device& dev, const WeightView& w, BufView x, int ldx, BufView y, int ldy, int n_tok);
void encode_mul_mv(Device& dev, const WeightView& w, BufView x, int ldx, BufView y, int ldy, int n_tok);
void encode_mul_mm(Device& dev, const WeightView& w, BufView x, int ldx, BufView y, int ldy, int n_tok);

// ---- row-wise ops (rows.cpp) -----------------------------------------------------------------
// y[t][:] = dequantized row tokens[t] of table (tokens: n_tok int32 in a device buffer).
void encode_embed(Device& dev, const WeightView& table, BufView tokens, int n_tok, BufView y, int ldy);
// y[i] = rms_norm(x[i]) * weight for i < n_rows (rows ld floats apart).
void encode_rms_norm(Device& dev, BufView x, BufView weight, BufView y, int n_rows, int width, int ld, float eps);
// In place, rows t < n_tok at positions pos0 + t. freq_factors: buf 0 for none.
struct RopeShape {
  int n_tok, ld, n_heads, head_dim, n_rot, pos0;
  float freq_base, freq_scale;
};
void encode_rope(Device& dev, BufView x, const RopeShape& shape, BufView freq_factors);
// y = silu(gate) * up, y = a + b over n floats.
void encode_silu_mul(Device& dev, BufView gate, BufView up, BufView y, int64_t n);
void encode_add(Device& dev, BufView a, BufView b, BufView y, int64_t n);

// ---- KV cache and attention (attention.cpp) ----------------------------------------------------
// The cache of one layer: K and V of KV head 0 at k0 / v0, head_elems elements between heads,
// f16 (or f32) elements, laid out as engine/src/kv_cache.hpp says.
struct KvView {
  BufView k0, v0;
  uint64_t head_elems = 0;
  bool f16 = true;
  int n_head_kv = 0, head_dim = 0, n_ctx = 0;
};
void encode_kv_store(Device& dev, const KvView& kv, BufView k, int ldk, BufView v, int ldv, int n_tok, int pos0);
// Bytes of scratch encode_attention needs for steps of up to n_tok rows (allocate once, at the
// context's n_batch).
size_t attention_scratch_bytes(const KvView& kv, int n_head, int n_tok);
void encode_attention(Device& dev, const KvView& kv, int n_head, BufView q, int ldq, BufView out, int ldo, int n_tok,
                      int pos0, BufView scratch);

}  // namespace edgellm::engine::metal
