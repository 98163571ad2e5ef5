// The KV cache: for every layer, the keys and values of every position seen so far, allocated once
// for n_ctx positions.
//
// Layout per layer (n_embd_kv = n_head_kv * head_dim values per position):
//   K: [n_ctx][n_embd_kv]   a position's keys are one row, so a query's score against position t
//                           is a dot product over one contiguous head slice;
//   V: [n_embd_kv][n_ctx]   transposed, so each output value of attention is one contiguous dot
//                           product of the softmax weights with a row of V.
// Elements are F16 (default, as llama.cpp) or F32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "edgellm/kernels/dispatch.hpp"

namespace edgellm::engine {

enum class KvType { F16, F32 };

class KvCache {
 public:
  KvCache(int n_layer, int n_ctx, int n_embd_kv, KvType type);

  int n_ctx() const { return n_ctx_; }
  int n_layer() const { return n_layer_; }
  int n_embd_kv() const { return n_embd_kv_; }
  KvType type() const { return type_; }
  size_t bytes() const { return data_.size(); }

  // Positions filled so far (the next token goes at n_past).
  int n_past() const { return n_past_; }
  // Marks positions [0, n) as filled (called by the forward pass after it stored them).
  void set_n_past(int n);
  void clear() { n_past_ = 0; }
  // Forgets every position >= pos (0 <= pos <= n_past), to rewind a conversation. The data stays;
  // the next tokens overwrite it.
  void truncate(int pos);

  // Stores one position's keys and values (n_embd_kv floats each) for a layer.
  void store(int layer, int pos, const float* k, const float* v);

  // score[t] = dot(q, K[t][kv_head]) for t < n_pos (q: head_dim floats).
  void k_dots(const kernels::KernelSet& ks, int layer, int kv_head, int head_dim, const float* q,
              int n_pos, float* score) const;
  // out[d] = sum_t w[t] * V[t][kv_head][d] for d < head_dim, t < n_pos.
  void v_weighted_sum(const kernels::KernelSet& ks, int layer, int kv_head, int head_dim,
                      const float* w, int n_pos, float* out) const;

 private:
  size_t elem_bytes() const { return type_ == KvType::F16 ? 2 : 4; }
  uint8_t* k_row(int layer, int pos);
  uint8_t* v_row(int layer, int i);  // row i of the transposed V (one K/V element index)
  const uint8_t* k_row(int layer, int pos) const { return const_cast<KvCache*>(this)->k_row(layer, pos); }
  const uint8_t* v_row(int layer, int i) const { return const_cast<KvCache*>(this)->v_row(layer, i); }

  int n_layer_, n_ctx_, n_embd_kv_;
  KvType type_;
  int n_past_ = 0;
  std::vector<uint8_t> data_;  // per layer: K block then V block
};

}  // namespace edgellm::engine
