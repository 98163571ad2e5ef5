// The CPU backend: the kernel table of one ISA (kernels::KernelSet, chosen at run time), a
// persistent thread pool, the activation buffers and the KV cache in host memory. Every op runs
// when it is called; begin() / finish() only mark the step.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "backend.hpp"
#include "edgellm/kernels/dispatch.hpp"
#include "edgellm/kernels/matmul.hpp"
#include "edgellm/kernels/thread_pool.hpp"

namespace edgellm::engine {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& options);

  std::string_view name() const override { return "cpu"; }
  int n_threads() const override { return pool_->size(); }
  bool supports(DType type) const override { return kernels::matmul_supports(ks_, type); }
  bool supports(Feature) const override { return true; }
  const kernels::KernelSet& kernels() const { return ks_; }

  void map_weights(const void*, size_t) override {}  // weights are read in place from the mmap
  void alloc_activations(const ActShapes& shapes) override;
  void alloc_kv(const KvLayout& layout) override;
  void set_rope(int set, const RopeParams& rope) override;

  void begin(int n, int pos0) override;
  void embed(const kernels::WeightMatrix& table, const int32_t* tokens, ActBuf out) override;
  void rms_norm(ActBuf in, int row0, int n_rows, const float* weight, float eps, ActBuf out) override;
  void matmul(ActBuf in, int row0, int n_rows, std::span<const MatmulTo> products) override;
  void rope(ActBuf x, int n_heads, int set) override;
  void head_norm(ActBuf x, int n_heads, const float* weight, float eps) override;
  void scale(ActBuf x, float s) override;
  void kv_store(int layer, ActBuf k, ActBuf v) override;
  void attention(int layer, int n_head, ActBuf q, ActBuf out, const AttnParams& params) override;
  void silu_mul(ActBuf gate, ActBuf up, ActBuf out) override;
  void gelu_mul(ActBuf gate, ActBuf up, ActBuf out) override;
  void add(ActBuf a, ActBuf b, ActBuf out) override;
  void lm_head(const kernels::WeightMatrix& w, ActBuf in, int row0, int n_rows, float* logits) override;
  void finish() override {}

 private:
  float* buf(ActBuf b) { return act_[static_cast<size_t>(b)].data(); }
  int64_t width(ActBuf b) const { return shapes_.width[static_cast<size_t>(b)]; }
  uint8_t* k_head(int layer, int h) { return kv_.data() + layout_.k_offset(layer, h); }
  uint8_t* v_head(int layer, int h) { return kv_.data() + layout_.v_offset(layer, h); }
  // The products of rows [row0, row0 + n_rows) of `in` (matmul and lm_head).
  void multiply(ActBuf in, int row0, int n_rows, std::span<const kernels::MatmulOut> outs);
  // KernelSet::matmul_kn_* for the cache's element type; w is a byte address in the cache.
  void matmul_kn(int64_t n, const uint8_t* w, int64_t ldw, int64_t n_cols, const float* x, int64_t ldx,
                 int64_t n_x, float* y, int64_t ldy) const;

  const kernels::KernelSet& ks_;
  std::unique_ptr<kernels::ThreadPool> pool_;
  kernels::Activations act_q_;  // the quantized forms of a matmul's input
  ActShapes shapes_;
  std::vector<float> act_[kActBufs];
  KvLayout layout_;
  std::vector<uint8_t> kv_;
  RopeParams rope_[kRopeSets];
  std::vector<float> rope_cs_[kRopeSets];  // cos/sin per row of the step  [n][n_rot]
  // Attention (see attention()): one unit's scores and outputs over an F16 / F32 or a Q8_0 cache,
  // the capped softmax they share, and the combination of a row's chunks.
  void attend(int layer, int g, int t_lo, int t_hi, const float* q, int nq, float* scores, float* out,
              kernels::SoftmaxStats* stats, const AttnParams& params);
  void attend_q8_0(int layer, int g, int nr, const int* t_lo, const int* t_hi, const float* q, int64_t ldq, int nq,
                   float* scores, float* out, int64_t ldo, kernels::SoftmaxStats* stats, const AttnParams& params,
                   uint8_t* q8, float* v_rows);
  kernels::SoftmaxStats softmax_scores(float* s, int n, const AttnParams& params) const;
  void combine_chunks(const float* parts, const kernels::SoftmaxStats* stats, int n_chunks, int group,
                      float* out) const;
  static constexpr int kChunk = 1024;           // positions per chunk of a split row
  static constexpr int64_t kSplitBelowItems = 16;  // (row, KV head) items below which rows are split
  static constexpr int kQ8RowBlock = 4;  // rows per unit over a Q8_0 cache when rows are whole
  std::vector<float> scores_;   // attention scores per thread  [n_threads][rows per unit][group][n_ctx]
  std::vector<float> parts_;    // a split row's chunk outputs  [units][group][head_dim]
  std::vector<kernels::SoftmaxStats> part_stats_;  // and their softmax stats  [units][group]
  std::unique_ptr<std::atomic<int>[]> pending_;    // chunks of each (row, KV head) still running
  size_t pending_size_ = 0;
  // Q8_0 cache: per thread, a unit's queries as Q8_0 rows, dequantized V rows and partial outputs.
  std::vector<uint8_t> q8_scratch_;  // [n_threads][kQ8RowBlock * group][row_bytes]
  std::vector<float> v_rows_;        // [n_threads][kVChunk + kQ8RowBlock * group][head_dim]
  static constexpr int kVChunk = 64;  // V rows dequantized per k-major product (Q8_0 cache)
  int n_ = 0, pos0_ = 0;        // the step begin() opened
  bool rope_ready_[kRopeSets] = {};  // rope_cs_[set] holds this step's angles
};

}  // namespace edgellm::engine
