// The KV cache: for every layer, the keys and values of every position seen so far, allocated once
// for n_ctx positions.
//
// Layout per layer and KV head (head_dim values per position):
//   K: [n_ctx / 32][head_dim][32]   transposed in blocks of 32 positions, so the scores of the
//                          query heads sharing it are k-major products queries . K^T
//                          (KernelSet::matmul_kn_*, k = head_dim) over contiguous 32-column
//                          blocks (a plain [head_dim][n_ctx] K^T puts the 64 rows a block reads
//                          n_ctx elements apart: 4 KiB strides that thrash L1, measured 2x slower
//                          decode attention at depth 1024);
//   V: [n_ctx][head_dim]   so their outputs are the k-major product weights . V (k = positions).
// Both products convert each cached element once for every query head of the group and need no
// horizontal sums. Elements are F16 (default, as llama.cpp) or F32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "edgellm/kernels/dispatch.hpp"

namespace edgellm::engine {

enum class KvType { F16, F32 };

class KvCache {
 public:
  KvCache(int n_layer, int n_ctx, int n_head_kv, int head_dim, KvType type);

  int n_ctx() const { return n_ctx_; }
  int n_layer() const { return n_layer_; }
  int n_head_kv() const { return n_head_kv_; }
  int head_dim() const { return head_dim_; }
  KvType type() const { return type_; }
  size_t bytes() const { return data_.size(); }

  // Positions filled so far (the next token goes at n_past).
  int n_past() const { return n_past_; }
  // Marks positions [0, n) as filled (called by the forward pass after it stored them).
  void set_n_past(int n) { n_past_ = n; }
  void clear() { n_past_ = 0; }
  // Forgets every position >= pos (0 <= pos <= n_past), to rewind a conversation. The data stays;
  // the next tokens overwrite it.
  void truncate(int pos);

  // Stores one position's keys and values (n_head_kv * head_dim floats each, heads contiguous).
  void store(int layer, int pos, const float* k, const float* v);

  // scores[j * ld + t] = dot(q_j, K[kv_head][t]) for t < n_pos and the n_q query heads q_j
  // (head_dim floats each, contiguous at q) that share kv_head.
  void k_dots(const kernels::KernelSet& ks, int layer, int kv_head, const float* q, int n_q,
              int n_pos, float* scores, int64_t ld) const;
  // out[j * head_dim + d] = sum_t w[j * ld + t] * V[kv_head][t][d] for t < n_pos, j < n_q.
  void v_weighted_sum(const kernels::KernelSet& ks, int layer, int kv_head, const float* w,
                      int n_q, int64_t ld, int n_pos, float* out) const;

 private:
  size_t elem_bytes() const { return type_ == KvType::F16 ? 2 : 4; }
  // KernelSet::matmul_kn_* for this cache's element type; w is a byte address in data_.
  void matmul_kn(const kernels::KernelSet& ks, int64_t n, const uint8_t* w, int64_t ldw, int64_t n_cols,
                 const float* x, int64_t ldx, int64_t n_x, float* y, int64_t ldy) const;
  static constexpr int kKeyBlock = 32;  // positions per K^T block
  // n_ctx rounded up to whole K^T blocks (the V block is as large, for one head size).
  size_t head_bytes() const {
    return size_t((n_ctx_ + kKeyBlock - 1) / kKeyBlock * kKeyBlock) * size_t(head_dim_) * elem_bytes();
  }
  uint8_t* k_head(int layer, int kv_head);  // [n_ctx / 32][head_dim][32]
  uint8_t* v_head(int layer, int kv_head);  // [n_ctx][head_dim]
  const uint8_t* k_head(int layer, int h) const { return const_cast<KvCache*>(this)->k_head(layer, h); }
  const uint8_t* v_head(int layer, int h) const { return const_cast<KvCache*>(this)->v_head(layer, h); }

  int n_layer_, n_ctx_, n_head_kv_, head_dim_;
  KvType type_;
  int n_past_ = 0;
  std::vector<uint8_t> data_;  // per layer: the K blocks of every head, then their V blocks
};

}  // namespace edgellm::engine
