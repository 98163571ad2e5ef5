// The KV cache as the engine sees it: where every layer's keys and values go (KvLayout) and how many
// positions are filled (KvCache). The memory itself belongs to the backend (Backend::alloc_kv),
// and so does the attention math over it.
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
// horizontal sums. Elements are F16 (default, as llama.cpp) or F32. Per layer: the K blocks of
// every head, then their V blocks.
//
// Q8_0 (llama.cpp's -ctk/-ctv q8_0: about half of F16's bytes): K and V both [n_ctx][head_dim]
// rows of head_dim / 32 Q8_0 blocks, each position's key quantized along head_dim as llama.cpp
// quantizes it; the scores are Q8_0 x Q8_0 integer dot products with the query quantized to
// Q8_0 (as llama.cpp's CPU flash attention does), the outputs sums of dequantized V rows.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgellm::engine {

enum class KvType { F16, F32, Q8_0 };

struct KvLayout {
  static constexpr int kKeyBlock = 32;  // positions per K^T block

  int n_layer = 0, n_ctx = 0, n_head_kv = 0, head_dim = 0;
  KvType type = KvType::F16;

  static constexpr size_t kQ8Block = 32, kQ8BlockBytes = 34;  // block_q8_0: fp16 scale + 32 int8

  // Bytes of one element (F16 / F32; 0 for Q8_0, whose unit is row_bytes()).
  size_t elem_bytes() const { return type == KvType::F16 ? 2 : type == KvType::F32 ? 4 : 0; }
  // Bytes of one position's head_dim values (a V row; a K row of a Q8_0 cache).
  size_t row_bytes() const {
    return type == KvType::Q8_0 ? size_t(head_dim) / kQ8Block * kQ8BlockBytes : size_t(head_dim) * elem_bytes();
  }
  bool k_transposed() const { return type != KvType::Q8_0; }  // K in 32-position K^T blocks
  // One head's K (or V) region: n_ctx rounded up to whole K^T blocks.
  size_t head_bytes() const { return (size_t(n_ctx) + kKeyBlock - 1) / kKeyBlock * kKeyBlock * row_bytes(); }
  size_t bytes() const { return size_t(2) * size_t(n_layer) * size_t(n_head_kv) * head_bytes(); }
  size_t k_offset(int layer, int kv_head) const {  // [n_ctx / 32][head_dim][32]
    return (size_t(layer) * 2 * size_t(n_head_kv) + size_t(kv_head)) * head_bytes();
  }
  size_t v_offset(int layer, int kv_head) const {  // [n_ctx][head_dim]
    return (size_t(layer) * 2 * size_t(n_head_kv) + size_t(n_head_kv) + size_t(kv_head)) * head_bytes();
  }
  // Element index of (pos, d) in a head's K region: column pos % 32 of K^T block pos / 32.
  static size_t k_index(int pos, int d, int head_dim) {
    return size_t(pos / kKeyBlock) * size_t(head_dim) * kKeyBlock + size_t(d) * kKeyBlock + size_t(pos % kKeyBlock);
  }
  size_t k_block_bytes() const { return size_t(head_dim) * kKeyBlock * elem_bytes(); }  // F16 / F32
};

class KvCache {
 public:
  // Throws edgellm::Error(InvalidArgument) unless every count is > 0, and Error(Unsupported) for
  // a Q8_0 cache whose head_dim is not a multiple of 32.
  KvCache(int n_layer, int n_ctx, int n_head_kv, int head_dim, KvType type);

  const KvLayout& layout() const { return layout_; }
  int n_ctx() const { return layout_.n_ctx; }
  int n_layer() const { return layout_.n_layer; }
  int n_head_kv() const { return layout_.n_head_kv; }
  int head_dim() const { return layout_.head_dim; }
  KvType type() const { return layout_.type; }
  size_t bytes() const { return layout_.bytes(); }

  // Positions filled so far (the next token goes at n_past).
  int n_past() const { return n_past_; }
  // Marks positions [0, n) as filled (called by the forward pass after it stored them).
  void set_n_past(int n) { n_past_ = n; }
  void clear() { n_past_ = 0; }
  // Forgets every position >= pos (0 <= pos <= n_past), to rewind a conversation. The data stays;
  // the next tokens overwrite it.
  void truncate(int pos);

 private:
  KvLayout layout_;
  int n_past_ = 0;
};

}  // namespace edgellm::engine
