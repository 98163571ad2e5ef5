// An inference context: a backend (the device the forward pass runs on, with its buffers and the
// KV cache memory, all allocated once) and the KV cache's positions, for running a Model over
// tokens.
//
//   auto model = edgellm::engine::Model::load("stories260K.gguf");
//   edgellm::engine::Context ctx(model, {.n_ctx = 256});
//   ctx.eval(prompt);                       // prefill: the batch through the GEMM path
//   int next = argmax(ctx.logits(), n_vocab);
//   ctx.eval({&next, 1});                   // decode: one token through the GEMV path
//
// eval() either runs every token or (on an error) changes nothing. Not thread-safe: one thread
// at a time per Context; several Contexts may share one Model.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend.hpp"
#include "edgellm/kernels/dispatch.hpp"
#include "kv_cache.hpp"
#include "model.hpp"

namespace edgellm::engine {

struct ContextOptions {
  int n_ctx = 0;          // positions in the KV cache; 0: the model's context_length
  int n_threads = 0;      // 0: the physical cores
  int n_batch = 512;      // most tokens one prefill step runs (longer batches go in chunks)
  KvType kv_type = KvType::F16;
  bool logits_all = false;  // keep the logits of every token of an eval, not only the last
  // Where the forward pass runs: "cpu", "metal" (builds with the Metal backend: the Apple GPU, or
  // the emulated one of a test build), or "auto": Metal on an Apple build whose machine has a GPU
  // and whose kernels read every weight type of the model, else the CPU. "metal" with a weight
  // type its kernels do not read, or in a build without it, is Unsupported; an unknown name is
  // InvalidArgument.
  std::string backend = "auto";
  const kernels::KernelSet* kernels = nullptr;  // CPU backend: nullptr = kernels::active_kernels()
};

// Time spent in one path of the forward pass.
struct StageStats {
  uint64_t calls = 0;
  uint64_t tokens = 0;
  uint64_t ns = 0;
  double ms_per_token() const { return tokens ? double(ns) / 1e6 / double(tokens) : 0.0; }
  double tokens_per_second() const { return ns ? double(tokens) * 1e9 / double(ns) : 0.0; }
};

class Context {
 public:
  // The model must outlive the context. Throws edgellm::Error on bad options.
  explicit Context(const Model& model, const ContextOptions& options = {});
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Runs tokens at positions n_past() .. n_past() + size - 1: prefill() for more than one token,
  // decode() for one. Throws edgellm::Error (and changes nothing) for an empty batch, a token id
  // outside [0, n_vocab) or tokens that do not fit in n_ctx.
  void eval(std::span<const int32_t> tokens);
  // The batch path: every matmul is a GEMM over the batch's rows; causal attention over the
  // cache and the batch's earlier tokens. Same errors as eval().
  void prefill(std::span<const int32_t> tokens);
  // The one-token path: every matmul is a GEMV. Same errors as eval().
  void decode(int32_t token);

  // n_vocab logits of token i of the last eval (i < 0 counts from the end; -1: the last). Without
  // logits_all only the last token has logits. nullptr when there are none for i.
  const float* logits(int i = -1) const;
  int n_logits() const { return n_logits_; }  // rows of logits the last eval kept

  int n_past() const { return kv_.n_past(); }
  int n_ctx() const { return kv_.n_ctx(); }
  int n_threads() const;
  int n_vocab() const { return model_.hparams().n_vocab; }
  bool logits_all() const { return options_.logits_all; }
  const Model& model() const { return model_; }
  const Backend& backend() const { return *backend_; }
  // The CPU backend's kernel table, nullptr on another backend.
  const kernels::KernelSet* cpu_kernels() const;
  const KvCache& kv_cache() const { return kv_; }

  // Forget the whole cache / every position >= n_past (0 <= n_past <= n_past()). Drops logits.
  void clear();
  void truncate(int n_past);

  const StageStats& prefill_stats() const { return prefill_stats_; }
  const StageStats& decode_stats() const { return decode_stats_; }
  void reset_stats() { prefill_stats_ = decode_stats_ = {}; }

 private:
  void check_tokens(std::span<const int32_t> tokens) const;
  // The forward pass of n (<= n_batch) tokens at positions n_past() onwards (which it then adds
  // to the cache); writes the logits of rows logits_from .. n-1 to `logits` (none if n).
  void forward(const int32_t* tokens, int n, int logits_from, float* logits);

  const Model& model_;
  ContextOptions options_;
  std::unique_ptr<Backend> backend_;
  KvCache kv_;
  std::vector<float> logits_;  // [rows kept][n_vocab]
  int n_logits_ = 0;  // rows in logits_ from the last eval
  int n_eval_ = 0;    // tokens in the last eval

  StageStats prefill_stats_, decode_stats_;
};

}  // namespace edgellm::engine
