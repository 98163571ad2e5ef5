// Host side of the KV cache and attention kernels (shaders/attention.metal): kv_store, and attention
// as split-KV decode (up to kMaxDecodeTokens rows: kernel_attn_decode_* + kernel_attn_reduce) or
// prefill (more rows: kernel_attn_prefill_*). head_dim up to kMaxHeadDim (the kernels hold a row's
// dims in 8 registers per lane).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "error.hpp"
#include "kv_cache.hpp"
#include "metal/encode.hpp"
#include "metal/shaders/args.h"

namespace edgellm::engine::metal {

// Test hooks (tests/metal/test_metal_attention.cpp declares them too): each path on its own, and
// the split count decode would choose.
void encode_attention_decode(Device& dev, const KvView& kv, int n_head, BufView q, int ldq, BufView out, int ldo,
                             int n_tok, int pos0, BufView scratch, int n_splits);
void encode_attention_prefill(Device& dev, const KvView& kv, int n_head, BufView q, int ldq, BufView out, int ldo,
                              int n_tok, int pos0);
int attention_decode_splits(int n_pos);

namespace {

constexpr int kMaxHeadDim = 256;      // attention.metal's kMaxHeadDim
constexpr int kMaxDecodeTokens = 8;   // rows up to which attention runs split-KV decode
constexpr int kMaxSplits = 32;        // kernel_attn_reduce: one lane per split
constexpr int kSplitBlocks = 2;       // K blocks (32 positions each) a split gets at least
constexpr int kPrefillRows = 8;       // attention.metal's kPrefillRows (SIMD-groups per threadgroup)
constexpr int kKeyBlock = KvLayout::kKeyBlock;

[[noreturn]] void invalid(const std::string& what) { throw Error(Error::Kind::InvalidArgument, what); }

uint32_t div_up(int64_t n, int64_t m) { return static_cast<uint32_t>((n + m - 1) / m); }

uint64_t elem_bytes(const KvView& kv) { return kv.f16 ? 2 : 4; }

// The cache's shape, as every kernel here reads it.
void check_cache(const KvView& kv, const char* op) {
  const std::string where = std::string("metal ") + op + ": ";
  if (kv.head_dim > kMaxHeadDim)
    throw Error(Error::Kind::Unsupported, where + "head_dim " + std::to_string(kv.head_dim) +
                                              " is more than the Metal kernels' " + std::to_string(kMaxHeadDim));
  if (kv.head_dim <= 0 || kv.n_head_kv <= 0 || kv.n_ctx <= 0)
    invalid(where + "a cache of " + std::to_string(kv.n_head_kv) + " KV heads of " + std::to_string(kv.head_dim) +
            " dims and " + std::to_string(kv.n_ctx) + " positions");
  const uint64_t need = uint64_t(div_up(kv.n_ctx, kKeyBlock)) * kKeyBlock * uint64_t(kv.head_dim);
  if (kv.head_elems < need)
    invalid(where + "head_elems " + std::to_string(kv.head_elems) + " is less than one head's " +
            std::to_string(need) + " elements (n_ctx rounded up to 32, times head_dim)");
}

void check_step(const KvView& kv, int n_tok, int pos0, const char* op) {
  if (n_tok < 0 || pos0 < 0 || int64_t{pos0} + n_tok > kv.n_ctx)
    invalid(std::string("metal ") + op + ": a step of " + std::to_string(n_tok) + " rows at position " +
            std::to_string(pos0) + " does not fit a cache of " + std::to_string(kv.n_ctx) + " positions");
}

AttentionArgs attention_args(const KvView& kv, int n_head, int ldq, int ldo, int n_tok, int pos0, int n_splits) {
  check_cache(kv, "attention");
  check_step(kv, n_tok, pos0, "attention");
  if (n_head <= 0 || n_head % kv.n_head_kv != 0)
    invalid("metal attention: " + std::to_string(n_head) + " query heads do not share " +
            std::to_string(kv.n_head_kv) + " KV heads evenly");
  const int64_t width = int64_t{n_head} * kv.head_dim;
  if (ldq < width || ldo < width)
    invalid("metal attention: rows of q (" + std::to_string(ldq) + " floats) or out (" + std::to_string(ldo) +
            ") are narrower than " + std::to_string(n_head) + " heads of " + std::to_string(kv.head_dim));
  AttentionArgs a{};
  a.n_tok = n_tok;
  a.pos0 = pos0;
  a.n_head = n_head;
  a.n_head_kv = kv.n_head_kv;
  a.head_dim = kv.head_dim;
  a.ldq = ldq;
  a.ldo = ldo;
  a.n_splits = n_splits;
  a.head_elems = kv.head_elems;
  a.scale = 1.0f / std::sqrt(static_cast<float>(kv.head_dim));  // as the CPU backend's
  return a;
}

// Scratch floats per (row, head, split) entry of decode: m, l, then o[head_dim].
uint64_t split_entry_floats(const KvView& kv) { return uint64_t(kv.head_dim) + 2; }

}  // namespace

void encode_kv_store(Device& dev, const KvView& kv, BufView k, int ldk, BufView v, int ldv, int n_tok, int pos0) {
  check_cache(kv, "kv_store");
  check_step(kv, n_tok, pos0, "kv_store");
  const int64_t width = int64_t{kv.n_head_kv} * kv.head_dim;
  if (ldk < width || ldv < width)
    invalid("metal kv_store: rows of k (" + std::to_string(ldk) + " floats) or v (" + std::to_string(ldv) +
            ") are narrower than " + std::to_string(kv.n_head_kv) + " heads of " + std::to_string(kv.head_dim));
  if (n_tok == 0) return;
  KvStoreArgs args{n_tok, pos0, kv.n_head_kv, kv.head_dim, ldk, ldv, kv.head_elems};
  DispatchDesc d = dispatch_of(kv.f16 ? "kernel_kv_store_f16" : "kernel_kv_store_f32", args, {k, v, kv.k0, kv.v0});
  d.tg = {static_cast<uint32_t>(std::min<int64_t>(256, div_up(width, kSimdWidth) * int64_t{kSimdWidth})), 1, 1};
  d.grid = {div_up(width, d.tg.x), static_cast<uint32_t>(n_tok), 1};
  dev.encode(d);
}

size_t attention_scratch_bytes(const KvView& kv, int n_head, int n_tok) {
  const int rows = std::clamp(n_tok, 0, kMaxDecodeTokens);
  return size_t(rows) * size_t(std::max(n_head, 0)) * kMaxSplits * size_t(split_entry_floats(kv)) * sizeof(float);
}

// At least kSplitBlocks K blocks per split, at most kMaxSplits splits.
int attention_decode_splits(int n_pos) {
  const int blocks = static_cast<int>(div_up(std::max(n_pos, 1), kKeyBlock));
  return std::clamp(static_cast<int>(div_up(blocks, kSplitBlocks)), 1, kMaxSplits);
}

void encode_attention_decode(Device& dev, const KvView& kv, int n_head, BufView q, int ldq, BufView out, int ldo,
                             int n_tok, int pos0, BufView scratch, int n_splits) {
  const AttentionArgs args = attention_args(kv, n_head, ldq, ldo, n_tok, pos0, n_splits);
  if (n_tok > kMaxDecodeTokens)
    invalid("metal attention: split-KV decode takes up to " + std::to_string(kMaxDecodeTokens) + " rows, not " +
            std::to_string(n_tok));
  if (n_splits < 1 || n_splits > kMaxSplits)
    invalid("metal attention: " + std::to_string(n_splits) + " splits (1 .. " + std::to_string(kMaxSplits) + ")");
  if (n_tok == 0) return;
  if (scratch.buf == 0) invalid("metal attention: decode needs a scratch buffer (attention_scratch_bytes)");
  DispatchDesc d =
      dispatch_of(kv.f16 ? "kernel_attn_decode_f16" : "kernel_attn_decode_f32", args, {q, kv.k0, kv.v0, out, scratch});
  d.tg = {kSimdWidth, 1, 1};
  d.grid = {static_cast<uint32_t>(n_head), static_cast<uint32_t>(n_tok), static_cast<uint32_t>(n_splits)};
  dev.encode(d);
  d.kernel = "kernel_attn_reduce";  // the same arguments and buffers: out and scratch
  d.grid.z = 1;
  dev.encode(d);
}

void encode_attention_prefill(Device& dev, const KvView& kv, int n_head, BufView q, int ldq, BufView out, int ldo,
                              int n_tok, int pos0) {
  const AttentionArgs args = attention_args(kv, n_head, ldq, ldo, n_tok, pos0, 1);
  if (n_tok == 0) return;
  // attention.metal's prefill_tile: K and V tiles of 32 positions unless they pass 32 KiB.
  const uint64_t tile32 = 2 * uint64_t(kv.head_dim) * kKeyBlock * elem_bytes(kv);
  const uint64_t tp = tile32 <= kMaxThreadgroupMemory ? kKeyBlock : 16;
  const int64_t slots = int64_t{n_tok} * (n_head / kv.n_head_kv);
  DispatchDesc d =
      dispatch_of(kv.f16 ? "kernel_attn_prefill_f16" : "kernel_attn_prefill_f32", args, {q, kv.k0, kv.v0, out});
  d.tg_mem_bytes = static_cast<uint32_t>(2 * uint64_t(kv.head_dim) * tp * elem_bytes(kv));  // a multiple of 64
  d.tg = {kPrefillRows * kSimdWidth, 1, 1};
  d.grid = {div_up(slots, kPrefillRows), static_cast<uint32_t>(kv.n_head_kv), 1};
  dev.encode(d);
}

void encode_attention(Device& dev, const KvView& kv, int n_head, BufView q, int ldq, BufView out, int ldo, int n_tok,
                      int pos0, BufView scratch) {
  if (n_tok <= kMaxDecodeTokens)
    encode_attention_decode(dev, kv, n_head, q, ldq, out, ldo, n_tok, pos0, scratch,
                            attention_decode_splits(pos0 + n_tok));
  else
    encode_attention_prefill(dev, kv, n_head, q, ldq, out, ldo, n_tok, pos0);
}

}  // namespace edgellm::engine::metal
