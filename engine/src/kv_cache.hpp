// The KV cache: for every layer, the keys and values of every position seen so far, allocated once
// for n_ctx positions.
//
// Layout per layer and KV head (head_dim values per position):
//   K: [n_ctx][head_dim]   the head's keys of all positions are one matrix, so the scores of all
//                          query heads sharing it are one small matmul (positions x queries);
//   V: [head_dim][n_ctx]   transposed, so each attention output value is one contiguous dot
//                          product of the softmax weights with a row of V (again one matmul).
// Elements are F16 (default, as llama.cpp) or F32; the products use the KernelSet's F16/F32 tiles.
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
  size_t head_bytes() const { return size_t(n_ctx_) * size_t(head_dim_) * elem_bytes(); }
  uint8_t* k_head(int layer, int kv_head);  // [n_ctx][head_dim]
  uint8_t* v_head(int layer, int kv_head);  // [head_dim][n_ctx]
  const uint8_t* k_head(int layer, int h) const { return const_cast<KvCache*>(this)->k_head(layer, h); }
  const uint8_t* v_head(int layer, int h) const { return const_cast<KvCache*>(this)->v_head(layer, h); }

  int n_layer_, n_ctx_, n_head_kv_, head_dim_;
  KvType type_;
  int n_past_ = 0;
  std::vector<uint8_t> data_;  // per layer: the K blocks of every head, then their V blocks
};

}  // namespace edgellm::engine
