// The forward pass of a Llama-family model, read top to bottom as llama2.c's forward():
//
//   x = embedding(token)                    (* sqrt(n_embd): Gemma)
//   for each layer:
//     xb = rmsnorm(x, attn_norm);  q, k, v = xb @ Wq, Wk, Wv (+ biases: Qwen2)
//     q, k = rmsnorm per head (Qwen3, Gemma 3);  RoPE(q, k) (NORM or NEOX pairs; not on SmolLM3's
//     every 4th layer);  cache(k, v)
//     att = softmax(cap(q . K * scale)) . V   (per head, over the cache or its sliding window, causal)
//     x += rmsnorm?(att @ Wo)                 (the post-norm: Gemma 2/3)
//     xb = rmsnorm(x, ffn_norm);   x += rmsnorm?((act(xb @ Wgate) * (xb @ Wup)) @ Wdown)
//   logits = cap(rmsnorm(x, output_norm) @ Woutput (+ bias))
//
// with act = silu (SwiGLU) or gelu (GeGLU: Gemma), the architecture's switches in arch.hpp, done
// for a batch of n tokens at once, as a sequence of backend ops (backend.hpp) written once for
// every backend: every row-wise op runs per row, every matmul takes all n rows (one quantization
// of its input shared by Q/K/V and by gate/up). With n == 1 (decode) the matmuls are GEMVs, with
// n > 1 (prefill) GEMMs: the kernels' matmul() picks, per weight type.
#include "context.hpp"

#include <unistd.h>
#if defined(__linux__)
#include <sys/sysinfo.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "arch.hpp"
#include "backend_cpu.hpp"
#include "edgellm/dtype.hpp"
#include "edgellm/kernels/thread_pool.hpp"
#include "error.hpp"
#include "log.hpp"

namespace edgellm::engine {

namespace {

size_t sz(int64_t n) { return static_cast<size_t>(n); }

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

ContextOptions checked(const Model& model, ContextOptions o) {
  if (o.n_ctx < 0 || o.n_threads < 0 || o.n_batch <= 0)
    throw Error(Error::Kind::InvalidArgument,
                "context: n_ctx and n_threads must be >= 0 and n_batch > 0 (got n_ctx " +
                    std::to_string(o.n_ctx) + ", n_threads " + std::to_string(o.n_threads) +
                    ", n_batch " + std::to_string(o.n_batch) + ")");
  if (o.n_ctx == 0) o.n_ctx = model.hparams().n_ctx_train;
  if (o.n_threads == 0) o.n_threads = kernels::physical_core_count();
  if (o.n_threads > 1024) throw Error(Error::Kind::InvalidArgument, "context: n_threads > 1024");
  if (const int cpus = kernels::available_cpu_count(); o.n_threads > cpus)
    log().warn("context: n_threads {} is more than the {} CPUs this process may run on: the threads "
               "take turns and wait for each other instead of spinning, which is much slower per token "
               "(use at most {})",
               o.n_threads, cpus, cpus);
  if (o.n_batch > o.n_ctx) o.n_batch = o.n_ctx;
  return o;
}

// ---- The memory a context needs, checked before anything is allocated -------------------------

// a * b and a + b, or nothing when the result does not fit in 64 bits.
std::optional<uint64_t> mul(std::optional<uint64_t> a, uint64_t b) {
  uint64_t r;
  if (!a || __builtin_mul_overflow(*a, b, &r)) return std::nullopt;
  return r;
}
std::optional<uint64_t> add(std::optional<uint64_t> a, std::optional<uint64_t> b) {
  uint64_t r;
  if (!a || !b || __builtin_add_overflow(*a, *b, &r)) return std::nullopt;
  return r;
}

// RAM plus swap: no larger zero-filled buffer can ever be backed (0 when unknown).
uint64_t machine_memory_bytes() {
  uint64_t total = 0;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) total = uint64_t(pages) * uint64_t(page);
#if defined(__linux__)
  struct sysinfo si {};
  if (sysinfo(&si) == 0) total += uint64_t(si.totalswap) * uint64_t(si.mem_unit);
#endif
  return total;
}

// Every buffer a context allocates once, by its size in n_ctx, n_batch and the model's shape
// (the KV cache as KvLayout lays it out, the activation buffers of forward(), the logits, the CPU
// backend's attention scores), in 64-bit arithmetic that cannot wrap. A total that does not fit
// this machine's address space is an invalid argument; one larger than its memory is out of
// memory. Either way the message names n_ctx and the bytes, before anything was allocated.
void check_memory(const HParams& hp, const ContextOptions& o) {
  // One position of one KV head, as KvLayout::row_bytes() (head_dim is at most 1024 here).
  const uint64_t row = o.kv_type == KvType::Q8_0 ? uint64_t(hp.head_dim) / KvLayout::kQ8Block * KvLayout::kQ8BlockBytes
                                                 : uint64_t(hp.head_dim) * (o.kv_type == KvType::F16 ? 2 : 4);
  const uint64_t ctx_blocks = (uint64_t(o.n_ctx) + KvLayout::kKeyBlock - 1) / KvLayout::kKeyBlock;
  const std::optional<uint64_t> kv =
      mul(mul(mul(mul(uint64_t{2}, uint64_t(hp.n_layer)), uint64_t(hp.n_head_kv)), ctx_blocks * KvLayout::kKeyBlock), row);
  const uint64_t widths = 3 * uint64_t(hp.n_embd) + 2 * uint64_t(hp.n_embd_q()) + 2 * uint64_t(hp.n_embd_kv()) +
                          2 * uint64_t(hp.n_ff);
  const std::optional<uint64_t> acts = mul(mul(uint64_t(o.n_batch), widths), sizeof(float));
  const std::optional<uint64_t> logits =
      mul(mul(uint64_t(o.logits_all ? o.n_batch : 1), uint64_t(hp.n_vocab)), sizeof(float));
  const uint64_t group = hp.n_head_kv > 0 ? uint64_t(hp.n_head / hp.n_head_kv) : 1;
  const std::optional<uint64_t> scores = mul(mul(mul(uint64_t(o.n_threads), group), uint64_t(o.n_ctx)), sizeof(float));
  const std::optional<uint64_t> total = add(add(add(kv, acts), logits), scores);
  auto bytes = [](std::optional<uint64_t> n) { return n ? std::to_string(*n) : std::string("more than 2^64"); };
  const std::string what = "context: n_ctx " + std::to_string(o.n_ctx) + " needs " + bytes(total) + " bytes (KV cache " +
                           bytes(kv) + ", attention scores of " + std::to_string(o.n_threads) + " threads " +
                           bytes(scores) + ", activations " + bytes(acts) + ", logits " + bytes(logits) + ")";
  // A buffer may be no larger than PTRDIFF_MAX (std::vector's max_size for bytes).
  if (!total || *total > uint64_t(std::numeric_limits<std::ptrdiff_t>::max()) ||
      *total > uint64_t(std::numeric_limits<size_t>::max()))
    throw Error(Error::Kind::InvalidArgument, what + ": more than this machine's address space; lower n_ctx");
  if (const uint64_t have = machine_memory_bytes(); have > 0 && *total > have)
    throw Error(Error::Kind::OutOfMemory, what + ", more than the " + std::to_string(have) +
                                              " bytes of memory (RAM and swap) this machine has; lower n_ctx");
}

ContextOptions checked_with_memory(const Model& model, const ContextOptions& options) {
  ContextOptions o = checked(model, options);
  check_memory(model.hparams(), o);
  return o;
}

// The first weight matrix of the model (token_embd, output, each layer's wq .. w_down) whose type
// the backend's kernels do not read, as "<tensor name> is <type>"; empty when they read them all.
std::string unsupported_weight(const Model& model, const Backend& backend) {
  auto is = [](const std::string& name, const kernels::WeightMatrix& w) {
    return name + " is " + dtype_name(static_cast<uint32_t>(w.type));
  };
  if (!backend.supports(model.token_embd().type)) return is(tensor_name(Tensor::token_embd), model.token_embd());
  if (!model.output_tied() && !backend.supports(model.output().type))
    return is(tensor_name(Tensor::output), model.output());
  for (int l = 0; l < model.hparams().n_layer; ++l) {
    const LayerWeights& L = model.layer(l);
    const std::pair<Tensor, const kernels::WeightMatrix*> matrices[] = {
        {Tensor::attn_q, &L.wq},        {Tensor::attn_k, &L.wk},   {Tensor::attn_v, &L.wv},
        {Tensor::attn_output, &L.wo},   {Tensor::ffn_gate, &L.w_gate}, {Tensor::ffn_up, &L.w_up},
        {Tensor::ffn_down, &L.w_down}};
    for (const auto& [t, w] : matrices)
      if (!backend.supports(w->type)) return is(tensor_name(t, l), *w);
  }
  return {};
}

// The forward-pass features (backend.hpp) this model's graph uses beyond a Llama block's.
std::vector<Feature> features_used(const Model& model, const ContextOptions& o) {
  const HParams& hp = model.hparams();
  const ArchInfo& a = model.arch();
  std::vector<Feature> used;
  bool bias = false;
  for (int l = 0; l < hp.n_layer; ++l) bias = bias || model.layer(l).bq || model.layer(l).bk || model.layer(l).bv;
  if (bias) used.push_back(Feature::matmul_bias);
  if (a.rope_mode == RopeMode::Neox) used.push_back(Feature::rope_neox);
  if (hp.n_swa > 0 || hp.rope_attn_factor != 1.0f || hp.no_rope_layer_step > 0 ||
      model.rope_factors(hp.n_ctx_train) != model.rope_freqs())
    used.push_back(Feature::rope_sets);
  if (a.qk_norm) used.push_back(Feature::head_norm);
  if (hp.embd_scale != 1.0f) used.push_back(Feature::scale);
  if (a.ffn_activation == FfnActivation::Gelu) used.push_back(Feature::gelu_mul);
  if (hp.attn_softcap > 0) used.push_back(Feature::attn_softcap);
  if (hp.n_swa > 0) used.push_back(Feature::sliding_window);
  if (o.kv_type == KvType::Q8_0) used.push_back(Feature::kv_q8_0);
  return used;
}

// What of the model the backend cannot run: the first weight type its kernels do not read, or
// the first feature it lacks; empty when it runs it all.
std::string unsupported_part(const Model& model, const ContextOptions& o, const Backend& backend) {
  std::string bad = unsupported_weight(model, backend);
  if (!bad.empty()) return "tensor " + bad + ", which its kernels do not read";
  for (Feature f : features_used(model, o))
    if (!backend.supports(f))
      return (f == Feature::kv_q8_0 ? std::string("this context needs ") : "the " + std::string(model.arch().name) + " graph needs ") +
             std::string(feature_name(f)) + ", which it does not run";
  return {};
}

// The backend the options name, checked against the model's weight types and graph: a named
// backend that cannot run them is refused; "auto" then falls back to the CPU.
std::unique_ptr<Backend> backend_for(const Model& model, const ContextOptions& o) {
  std::unique_ptr<Backend> be = make_backend(o.backend, {o.n_threads, o.kernels});
  const std::string bad = unsupported_part(model, o, *be);
  if (bad.empty()) return be;
  const std::string name(be->name());
  if (o.backend == "auto" && name != "cpu") {
    log().info("context: backend {} cannot run this model ({}); using the CPU", name, bad);
    return make_backend("cpu", {o.n_threads, o.kernels});
  }
  throw Error(Error::Kind::Unsupported, "backend " + name + ": " + bad + "; use backend \"cpu\"");
}

}  // namespace

Context::Context(const Model& model, const ContextOptions& options)
    : model_(model),
      options_(checked_with_memory(model, options)),
      backend_(backend_for(model, options_)),
      kv_(model.hparams().n_layer, options_.n_ctx, model.hparams().n_head_kv, model.hparams().head_dim,
          options_.kv_type) {
  const HParams& hp = model_.hparams();
  // The forward pass's buffers, n_batch rows each (widths as the shape comments in forward()).
  ActShapes shapes;
  shapes.rows = options_.n_batch;
  auto width = [&](ActBuf b, int64_t w) { shapes.width[static_cast<size_t>(b)] = w; };
  width(ActBuf::x, hp.n_embd);
  width(ActBuf::xb, hp.n_embd);
  width(ActBuf::xb2, hp.n_embd);
  width(ActBuf::q, hp.n_embd_q());
  width(ActBuf::k, hp.n_embd_kv());
  width(ActBuf::v, hp.n_embd_kv());
  width(ActBuf::att, hp.n_embd_q());
  width(ActBuf::gate, hp.n_ff);
  width(ActBuf::up, hp.n_ff);
  const gguf::File& f = model_.file();
  // check_memory() vouched for the sizes; the allocator may still say no (other processes, limits).
  try {
    backend_->map_weights(f.image().data(), f.image().size());
    backend_->alloc_activations(shapes);
    backend_->alloc_kv(kv_.layout());
    // RoPE set 0 for every layer, set 1 for the sliding-window layers (their own base: Gemma 3).
    const RopeMode mode = model_.arch().rope_mode;
    const float* factors = model_.rope_factors(options_.n_ctx);
    backend_->set_rope(0, {mode, hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale, hp.rope_attn_factor, factors});
    backend_->set_rope(1, {mode, hp.n_rot, hp.rope_freq_base_swa, hp.rope_freq_scale_swa, hp.rope_attn_factor, factors});
    logits_.resize((options_.logits_all ? sz(options_.n_batch) : 1) * sz(hp.n_vocab));
  } catch (const std::bad_alloc&) {
    throw Error(Error::Kind::OutOfMemory, "context: out of memory allocating the buffers of n_ctx " +
                                              std::to_string(options_.n_ctx) + " (KV cache " +
                                              std::to_string(kv_.bytes()) + " bytes); lower n_ctx");
  } catch (const std::length_error& e) {
    throw Error(Error::Kind::OutOfMemory, "context: the buffers of n_ctx " + std::to_string(options_.n_ctx) +
                                              " (KV cache " + std::to_string(kv_.bytes()) +
                                              " bytes) are too large: " + e.what());
  }
}

Context::~Context() = default;

int Context::n_threads() const { return backend_->n_threads(); }

const kernels::KernelSet* Context::cpu_kernels() const {
  const auto* cpu = dynamic_cast<const CpuBackend*>(backend_.get());
  return cpu ? &cpu->kernels() : nullptr;
}

// ---- The one place that chooses the path ----------------------------------------------------------

void Context::eval(std::span<const int32_t> tokens) {
  model_.check_unchanged();  // a mapped file truncated or modified since load: Error(Io), not SIGBUS
  if (tokens.size() == 1) decode(tokens[0]);
  else prefill(tokens);  // (an empty batch is refused there)
}

void Context::check_tokens(std::span<const int32_t> tokens) const {
  if (tokens.empty()) throw Error(Error::Kind::InvalidArgument, "eval: empty batch (no tokens)");
  const int n_vocab = model_.hparams().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab)
      throw Error(Error::Kind::InvalidArgument, "eval: token " + std::to_string(i) + " has id " +
                                                    std::to_string(tokens[i]) +
                                                    ", outside the vocabulary [0, " +
                                                    std::to_string(n_vocab) + ")");
  }
  const int64_t need = int64_t{kv_.n_past()} + static_cast<int64_t>(tokens.size());
  if (need > kv_.n_ctx())
    throw Error(Error::Kind::ContextFull,
                "eval: " + std::to_string(tokens.size()) + " tokens at position " +
                    std::to_string(kv_.n_past()) + " need " + std::to_string(need) +
                    " positions, the context has n_ctx = " + std::to_string(kv_.n_ctx()));
}

void Context::prefill(std::span<const int32_t> tokens) {
  check_tokens(tokens);
  const uint64_t t0 = now_ns();
  const int n = static_cast<int>(tokens.size());
  const int n_vocab = model_.hparams().n_vocab;
  if (options_.logits_all && logits_.size() < sz(n) * sz(n_vocab)) logits_.resize(sz(n) * sz(n_vocab));
  n_logits_ = 0;
  // In chunks of at most n_batch tokens; each chunk sees the ones before it through the cache.
  for (int done = 0; done < n;) {
    const int m = std::min(options_.n_batch, n - done);
    const bool last_chunk = done + m == n;
    if (options_.logits_all) forward(tokens.data() + done, m, 0, logits_.data() + sz(done) * sz(n_vocab));
    else forward(tokens.data() + done, m, last_chunk ? m - 1 : m, logits_.data());
    done += m;
  }
  n_logits_ = options_.logits_all ? n : 1;
  n_eval_ = n;
  prefill_stats_.calls++;
  prefill_stats_.tokens += sz(n);
  prefill_stats_.ns += now_ns() - t0;
}

void Context::decode(int32_t token) {
  check_tokens({&token, 1});
  const uint64_t t0 = now_ns();
  n_logits_ = 0;
  forward(&token, 1, 0, logits_.data());
  n_logits_ = 1;
  n_eval_ = 1;
  decode_stats_.calls++;
  decode_stats_.tokens++;
  decode_stats_.ns += now_ns() - t0;
}

const float* Context::logits(int i) const {
  if (n_logits_ == 0) return nullptr;
  const int idx = i < 0 ? n_eval_ + i : i;
  if (idx < 0 || idx >= n_eval_) return nullptr;
  const int row = n_logits_ == n_eval_ ? idx : (idx == n_eval_ - 1 ? 0 : -1);
  if (row < 0) return nullptr;
  return logits_.data() + sz(row) * sz(model_.hparams().n_vocab);
}

void Context::clear() {
  kv_.clear();
  n_logits_ = n_eval_ = 0;
}

void Context::truncate(int n_past) {
  kv_.truncate(n_past);
  n_logits_ = n_eval_ = 0;
}

// ---- Forward pass ----------------------------------------------------------------------------------

void Context::forward(const int32_t* tokens, int n, int logits_from, float* logits) {
  const HParams& hp = model_.hparams();
  Backend& be = *backend_;
  const int pos0 = kv_.n_past();
  using B = ActBuf;

  be.begin(n, pos0);
  be.embed(model_.token_embd(), tokens, B::x);  // x[n][E]
  if (hp.embd_scale != 1.0f) be.scale(B::x, hp.embd_scale);

  for (int l = 0; l < hp.n_layer; ++l) {
    const LayerWeights& L = model_.layer(l);
    const bool swa = hp.layer_is_swa(l);

    // Attention block.
    be.rms_norm(B::x, 0, n, L.attn_norm, hp.rms_eps, B::xb);                    // xb[n][E]
    const MatmulTo qkv[] = {{&L.wq, B::q, L.bq}, {&L.wk, B::k, L.bk}, {&L.wv, B::v, L.bv}};
    be.matmul(B::xb, 0, n, qkv);      // q[n][Q] = xb Wq^T + bq;  k, v[n][KV] = xb Wk^T + bk, xb Wv^T + bv
    if (L.q_norm) {
      be.head_norm(B::q, hp.n_head, L.q_norm, hp.rms_eps);                      // per head of head_dim
      be.head_norm(B::k, hp.n_head_kv, L.k_norm, hp.rms_eps);
    }
    if (hp.layer_has_rope(l)) {
      be.rope(B::q, hp.n_head, swa ? 1 : 0);
      be.rope(B::k, hp.n_head_kv, swa ? 1 : 0);
    }
    be.kv_store(l, B::k, B::v);                                                 // cache[pos0 ..]
    be.attention(l, hp.n_head, B::q, B::att, {hp.attn_scale, hp.attn_softcap, swa ? hp.n_swa : 0});  // att[n][Q]
    const MatmulTo wo[] = {{&L.wo, B::xb2}};
    be.matmul(B::att, 0, n, wo);      // xb2[n][E] = att Wo^T
    if (L.attn_post_norm) be.rms_norm(B::xb2, 0, n, L.attn_post_norm, hp.rms_eps, B::xb2);
    be.add(B::x, B::xb2, B::x);

    // Feed-forward block (SwiGLU or GeGLU).
    be.rms_norm(B::x, 0, n, L.ffn_norm, hp.rms_eps, B::xb);
    const MatmulTo gate_up[] = {{&L.w_gate, B::gate}, {&L.w_up, B::up}};
    be.matmul(B::xb, 0, n, gate_up);  // gate, up[n][F] = xb Wgate^T, xb Wup^T
    if (model_.arch().ffn_activation == FfnActivation::Gelu) be.gelu_mul(B::gate, B::up, B::gate);
    else be.silu_mul(B::gate, B::up, B::gate);
    const MatmulTo down[] = {{&L.w_down, B::xb2}};
    be.matmul(B::gate, 0, n, down);   // xb2[n][E] = gate Wdown^T
    if (L.ffn_post_norm) be.rms_norm(B::xb2, 0, n, L.ffn_post_norm, hp.rms_eps, B::xb2);
    be.add(B::x, B::xb2, B::x);
  }

  // Final norm and LM head, for rows logits_from .. n-1 only.
  const int rows = n - logits_from;
  if (rows > 0) {
    be.rms_norm(B::x, logits_from, rows, model_.output_norm(), hp.rms_eps, B::xb);
    be.lm_head(model_.output(), B::xb, logits_from, rows, logits);  // logits[rows][V] = xb Wout^T
  }
  be.finish();
  // The output bias and the final soft-cap, on the host logits (valid after finish()).
  if (rows > 0 && (model_.output_bias() || hp.final_softcap > 0)) {
    const size_t n_vocab = sz(hp.n_vocab);
    const float* bias = model_.output_bias();
    const float cap = hp.final_softcap;
    for (int r = 0; r < rows; ++r) {
      float* row = logits + sz(r) * n_vocab;
      if (bias)
        for (size_t t = 0; t < n_vocab; ++t) row[t] += bias[t];
      if (cap > 0)
        for (size_t t = 0; t < n_vocab; ++t) row[t] = cap * std::tanh(row[t] * (1.0f / cap));
    }
  }
  // The positions are in the cache now.
  kv_.set_n_past(pos0 + n);
}

}  // namespace edgellm::engine
