#include "kv_cache.hpp"

#include <cstring>
#include <string>

#include "edgellm/kernels/quants.hpp"
#include "error.hpp"

namespace edgellm::engine {

KvCache::KvCache(int n_layer, int n_ctx, int n_head_kv, int head_dim, KvType type)
    : n_layer_(n_layer), n_ctx_(n_ctx), n_head_kv_(n_head_kv), head_dim_(head_dim), type_(type) {
  if (n_layer <= 0 || n_ctx <= 0 || n_head_kv <= 0 || head_dim <= 0)
    throw Error(Error::Kind::InvalidArgument,
                "KvCache: n_layer, n_ctx, n_head_kv and head_dim must be > 0");
  data_.resize(size_t(2) * size_t(n_layer) * size_t(n_head_kv) * head_bytes());
}

void KvCache::truncate(int pos) {
  if (pos < 0 || pos > n_past_)
    throw Error(Error::Kind::InvalidArgument, "KvCache::truncate: position " + std::to_string(pos) +
                                                  " is outside [0, " + std::to_string(n_past_) + "]");
  n_past_ = pos;
}

uint8_t* KvCache::k_head(int layer, int kv_head) {
  return data_.data() + (size_t(layer) * 2 * size_t(n_head_kv_) + size_t(kv_head)) * head_bytes();
}

uint8_t* KvCache::v_head(int layer, int kv_head) {
  return data_.data() +
         (size_t(layer) * 2 * size_t(n_head_kv_) + size_t(n_head_kv_) + size_t(kv_head)) * head_bytes();
}

void KvCache::store(int layer, int pos, const float* k, const float* v) {
  for (int h = 0; h < n_head_kv_; ++h) {
    const float* kh = k + h * head_dim_;
    const float* vh = v + h * head_dim_;
    uint8_t* kd = k_head(layer, h) + size_t(pos) * size_t(head_dim_) * elem_bytes();
    uint8_t* vd = v_head(layer, h);
    if (type_ == KvType::F32) {
      std::memcpy(kd, kh, size_t(head_dim_) * sizeof(float));
      for (int d = 0; d < head_dim_; ++d) reinterpret_cast<float*>(vd)[size_t(d) * size_t(n_ctx_) + size_t(pos)] = vh[d];
    } else {
      kernels::quantize_row_f16_ref(kh, reinterpret_cast<kernels::fp16_t*>(kd), head_dim_);
      for (int d = 0; d < head_dim_; ++d)
        reinterpret_cast<kernels::fp16_t*>(vd)[size_t(d) * size_t(n_ctx_) + size_t(pos)] = kernels::fp32_to_fp16(vh[d]);
    }
  }
}

void KvCache::k_dots(const kernels::KernelSet& ks, int layer, int kv_head, const float* q, int n_q,
                     int n_pos, float* scores, int64_t ld) const {
  // K of this head is a [n_pos x head_dim] matrix; the queries are n_q activation rows.
  const auto tile = type_ == KvType::F32 ? ks.matmul_f32_f32 : ks.matmul_f16_f32;
  tile(head_dim_, k_head(layer, kv_head), size_t(head_dim_) * elem_bytes(), n_pos, q,
       size_t(head_dim_) * sizeof(float), n_q, scores, ld);
}

void KvCache::v_weighted_sum(const kernels::KernelSet& ks, int layer, int kv_head, const float* w,
                             int n_q, int64_t ld, int n_pos, float* out) const {
  // V^T of this head is a [head_dim x n_pos] matrix (rows n_ctx apart); the weights are n_q rows.
  const auto tile = type_ == KvType::F32 ? ks.matmul_f32_f32 : ks.matmul_f16_f32;
  tile(n_pos, v_head(layer, kv_head), size_t(n_ctx_) * elem_bytes(), head_dim_, w,
       size_t(ld) * sizeof(float), n_q, out, head_dim_);
}

}  // namespace edgellm::engine
