#include "kv_cache.hpp"

#include <cstring>
#include <string>

#include "edgellm/kernels/quants.hpp"
#include "error.hpp"

namespace edgellm::engine {

KvCache::KvCache(int n_layer, int n_ctx, int n_embd_kv, KvType type)
    : n_layer_(n_layer), n_ctx_(n_ctx), n_embd_kv_(n_embd_kv), type_(type) {
  if (n_layer <= 0 || n_ctx <= 0 || n_embd_kv <= 0)
    throw Error(Error::Kind::InvalidArgument, "KvCache: n_layer, n_ctx and n_embd_kv must be > 0");
  data_.resize(size_t(2) * size_t(n_layer) * size_t(n_ctx) * size_t(n_embd_kv) * elem_bytes());
}

void KvCache::set_n_past(int n) { n_past_ = n; }

void KvCache::truncate(int pos) {
  if (pos < 0 || pos > n_past_)
    throw Error(Error::Kind::InvalidArgument, "KvCache::truncate: position " + std::to_string(pos) +
                                                  " is outside [0, " + std::to_string(n_past_) + "]");
  n_past_ = pos;
}

uint8_t* KvCache::k_row(int layer, int pos) {
  const size_t layer_bytes = size_t(2) * size_t(n_ctx_) * size_t(n_embd_kv_) * elem_bytes();
  return data_.data() + size_t(layer) * layer_bytes + size_t(pos) * size_t(n_embd_kv_) * elem_bytes();
}

uint8_t* KvCache::v_row(int layer, int i) {
  const size_t block = size_t(n_ctx_) * size_t(n_embd_kv_) * elem_bytes();
  return data_.data() + size_t(layer) * 2 * block + block + size_t(i) * size_t(n_ctx_) * elem_bytes();
}

void KvCache::store(int layer, int pos, const float* k, const float* v) {
  if (type_ == KvType::F32) {
    std::memcpy(k_row(layer, pos), k, size_t(n_embd_kv_) * sizeof(float));
    for (int i = 0; i < n_embd_kv_; ++i) reinterpret_cast<float*>(v_row(layer, i))[pos] = v[i];
  } else {
    kernels::quantize_row_f16_ref(k, reinterpret_cast<kernels::fp16_t*>(k_row(layer, pos)), n_embd_kv_);
    for (int i = 0; i < n_embd_kv_; ++i)
      reinterpret_cast<kernels::fp16_t*>(v_row(layer, i))[pos] = kernels::fp32_to_fp16(v[i]);
  }
}

void KvCache::k_dots(const kernels::KernelSet& ks, int layer, int kv_head, int head_dim,
                     const float* q, int n_pos, float* score) const {
  const size_t offset = size_t(kv_head) * size_t(head_dim) * elem_bytes();
  for (int t = 0; t < n_pos; ++t) {
    const uint8_t* k = k_row(layer, t) + offset;
    score[t] = type_ == KvType::F32
                   ? ks.vec_dot_f32_f32(head_dim, reinterpret_cast<const float*>(k), q)
                   : ks.vec_dot_f16_f32(head_dim, reinterpret_cast<const kernels::fp16_t*>(k), q);
  }
}

void KvCache::v_weighted_sum(const kernels::KernelSet& ks, int layer, int kv_head, int head_dim,
                             const float* w, int n_pos, float* out) const {
  for (int d = 0; d < head_dim; ++d) {
    const uint8_t* v = v_row(layer, kv_head * head_dim + d);
    out[d] = type_ == KvType::F32
                 ? ks.vec_dot_f32_f32(n_pos, reinterpret_cast<const float*>(v), w)
                 : ks.vec_dot_f16_f32(n_pos, reinterpret_cast<const kernels::fp16_t*>(v), w);
  }
}

}  // namespace edgellm::engine
