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
    // column pos % 32 of K^T block pos / 32; row pos of V
    const size_t k0 = size_t(pos / kKeyBlock) * size_t(head_dim_) * kKeyBlock + size_t(pos % kKeyBlock);
    uint8_t* vd = v_head(layer, h) + size_t(pos) * size_t(head_dim_) * elem_bytes();
    if (type_ == KvType::F32) {
      auto* kd = reinterpret_cast<float*>(k_head(layer, h)) + k0;
      for (int d = 0; d < head_dim_; ++d) kd[size_t(d) * kKeyBlock] = kh[d];
      std::memcpy(vd, vh, size_t(head_dim_) * sizeof(float));
    } else {
      auto* kd = reinterpret_cast<kernels::fp16_t*>(k_head(layer, h)) + k0;
      for (int d = 0; d < head_dim_; ++d) kd[size_t(d) * kKeyBlock] = kernels::fp32_to_fp16(kh[d]);
      kernels::quantize_row_f16_ref(vh, reinterpret_cast<kernels::fp16_t*>(vd), head_dim_);
    }
  }
}

void KvCache::k_dots(const kernels::KernelSet& ks, int layer, int kv_head, const float* q, int n_q,
                     int n_pos, float* scores, int64_t ld) const {
  // Each K^T block is a [head_dim x 32] matrix of 32 positions; the queries are n_q rows.
  const size_t block_bytes = size_t(head_dim_) * kKeyBlock * elem_bytes();
  for (int t0 = 0; t0 < n_pos; t0 += kKeyBlock) {
    const int cols = n_pos - t0 < kKeyBlock ? n_pos - t0 : kKeyBlock;
    matmul_kn(ks, head_dim_, k_head(layer, kv_head) + size_t(t0 / kKeyBlock) * block_bytes, kKeyBlock, cols, q,
              head_dim_, n_q, scores + t0, ld);
  }
}

void KvCache::v_weighted_sum(const kernels::KernelSet& ks, int layer, int kv_head, const float* w,
                             int n_q, int64_t ld, int n_pos, float* out) const {
  // V of this head is a [n_pos x head_dim] matrix; the softmax weights are n_q rows.
  matmul_kn(ks, n_pos, v_head(layer, kv_head), head_dim_, head_dim_, w, ld, n_q, out, head_dim_);
}

void KvCache::matmul_kn(const kernels::KernelSet& ks, int64_t n, const uint8_t* w, int64_t ldw, int64_t n_cols,
                        const float* x, int64_t ldx, int64_t n_x, float* y, int64_t ldy) const {
  if (type_ == KvType::F32)
    ks.matmul_kn_f32_f32(n, reinterpret_cast<const float*>(w), ldw, n_cols, x, ldx, n_x, y, ldy);
  else
    ks.matmul_kn_f16_f32(n, reinterpret_cast<const kernels::fp16_t*>(w), ldw, n_cols, x, ldx, n_x, y, ldy);
}

}  // namespace edgellm::engine
