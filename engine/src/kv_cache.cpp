#include "kv_cache.hpp"

#include <string>

#include "error.hpp"

namespace edgellm::engine {

KvCache::KvCache(int n_layer, int n_ctx, int n_head_kv, int head_dim, KvType type)
    : layout_{n_layer, n_ctx, n_head_kv, head_dim, type} {
  if (n_layer <= 0 || n_ctx <= 0 || n_head_kv <= 0 || head_dim <= 0)
    throw Error(Error::Kind::InvalidArgument,
                "KvCache: n_layer, n_ctx, n_head_kv and head_dim must be > 0");
  if (type == KvType::Q8_0 && head_dim % static_cast<int>(KvLayout::kQ8Block) != 0)
    throw Error(Error::Kind::Unsupported, "KV cache type q8_0 needs head_dim a multiple of 32; this model's is " +
                                              std::to_string(head_dim) + " (use f16)");
}

void KvCache::truncate(int pos) {
  if (pos < 0 || pos > n_past_)
    throw Error(Error::Kind::InvalidArgument, "KvCache::truncate: position " + std::to_string(pos) +
                                                  " is outside [0, " + std::to_string(n_past_) + "]");
  n_past_ = pos;
}

}  // namespace edgellm::engine
