// The forward pass of a Llama model, read top to bottom as llama2.c's forward():
//
//   x = embedding(token)
//   for each layer:
//     xb = rmsnorm(x, attn_norm);  q, k, v = xb @ Wq, Wk, Wv;  RoPE(q, k);  cache(k, v)
//     att = softmax(q . K / sqrt(head_dim)) . V   (per head, over the cache, causal)
//     x += att @ Wo
//     xb = rmsnorm(x, ffn_norm);   x += (silu(xb @ Wgate) * (xb @ Wup)) @ Wdown
//   logits = rmsnorm(x, output_norm) @ Woutput
//
// done for a batch of n tokens at once: every row-wise step runs per row, every matmul takes all
// n rows (one Activations quantization shared by Q/K/V and by gate/up). With n == 1 (decode) the
// matmuls are GEMVs, with n > 1 (prefill) GEMMs.
#include "context.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "edgellm/kernels/ops.hpp"
#include "error.hpp"

namespace edgellm::engine {

using kernels::matmul;
using kernels::MatmulOut;
using kernels::ThreadPool;

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
  if (o.n_batch > o.n_ctx) o.n_batch = o.n_ctx;
  if (!o.kernels) o.kernels = &kernels::active_kernels();
  return o;
}

}  // namespace

Context::Context(const Model& model, const ContextOptions& options)
    : model_(model),
      options_(checked(model, options)),
      ks_(*options_.kernels),
      pool_(std::make_unique<ThreadPool>(options_.n_threads)),
      kv_(model.hparams().n_layer, options_.n_ctx, model.hparams().n_head_kv, model.hparams().head_dim,
          options_.kv_type) {
  const HParams& hp = model_.hparams();
  const size_t nb = sz(options_.n_batch);
  x_.resize(nb * sz(hp.n_embd));
  xb_.resize(nb * sz(hp.n_embd));
  xb2_.resize(nb * sz(hp.n_embd));
  q_.resize(nb * sz(hp.n_embd_q()));
  k_.resize(nb * sz(hp.n_embd_kv()));
  v_.resize(nb * sz(hp.n_embd_kv()));
  att_.resize(nb * sz(hp.n_embd_q()));
  hb_.resize(nb * sz(hp.n_ff));
  hb2_.resize(nb * sz(hp.n_ff));
  rope_.resize(nb * sz(hp.n_rot));
  scores_.resize(sz(options_.n_threads) * sz(hp.n_head / hp.n_head_kv) * sz(options_.n_ctx));
  logits_.resize((options_.logits_all ? nb : 1) * sz(hp.n_vocab));
}

Context::~Context() = default;

int Context::n_threads() const { return pool_->size(); }

// ---- The one place that chooses the path ----------------------------------------------------------

void Context::eval(std::span<const int32_t> tokens) {
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
  const int pos0 = kv_.n_past();
  const int64_t E = hp.n_embd, Q = hp.n_embd_q(), KV = hp.n_embd_kv(), F = hp.n_ff;
  float *x = x_.data(), *xb = xb_.data(), *xb2 = xb2_.data();

  for (int i = 0; i < n; ++i) model_.embed(tokens[i], x + i * E, ks_);
  // RoPE angles of each row's position, shared by every layer.
  for (int i = 0; i < n; ++i)
    kernels::rope_norm_cos_sin(pos0 + i, hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale,
                               &rope_[sz(i) * sz(hp.n_rot)], model_.rope_freqs());

  for (int l = 0; l < hp.n_layer; ++l) {
    const LayerWeights& L = model_.layer(l);

    // Attention block.
    for (int i = 0; i < n; ++i) kernels::rms_norm(x + i * E, L.attn_norm, xb + i * E, E, hp.rms_eps);
    act_.reset(xb, n, E);
    const MatmulOut qkv[] = {{&L.wq, q_.data(), Q}, {&L.wk, k_.data(), KV}, {&L.wv, v_.data(), KV}};
    matmul(ks_, *pool_, qkv, act_);
    for (int i = 0; i < n; ++i) {
      const float* cs = &rope_[sz(i) * sz(hp.n_rot)];
      kernels::rope_norm_with(&q_[sz(i * Q)], hp.n_head, hp.head_dim, hp.n_rot, cs);
      kernels::rope_norm_with(&k_[sz(i * KV)], hp.n_head_kv, hp.head_dim, hp.n_rot, cs);
      kv_.store(l, pos0 + i, &k_[sz(i * KV)], &v_[sz(i * KV)]);
    }
    attention(l, n, pos0);
    act_.reset(att_.data(), n, Q);
    matmul(ks_, *pool_, L.wo, act_, xb2, E);
    kernels::add(x, xb2, x, n * E);

    // Feed-forward block (SwiGLU).
    for (int i = 0; i < n; ++i) kernels::rms_norm(x + i * E, L.ffn_norm, xb + i * E, E, hp.rms_eps);
    act_.reset(xb, n, E);
    const MatmulOut gate_up[] = {{&L.w_gate, hb_.data(), F}, {&L.w_up, hb2_.data(), F}};
    matmul(ks_, *pool_, gate_up, act_);
    ks_.silu_mul(hb_.data(), hb2_.data(), hb_.data(), n * F);
    act_.reset(hb_.data(), n, F);
    matmul(ks_, *pool_, L.w_down, act_, xb2, E);
    kernels::add(x, xb2, x, n * E);
  }
  // The positions are in the cache now.
  kv_.set_n_past(pos0 + n);

  // Final norm and LM head, for rows logits_from .. n-1 only.
  const int rows = n - logits_from;
  if (rows <= 0) return;
  for (int i = 0; i < rows; ++i)
    kernels::rms_norm(x + (logits_from + i) * E, model_.output_norm(), xb + i * E, E, hp.rms_eps);
  act_.reset(xb, rows, E);
  matmul(ks_, *pool_, model_.output(), act_, logits, hp.n_vocab);
}

// att[i][h] = softmax(q[i][h] . K[0 .. pos0+i] / sqrt(head_dim)) . V[0 .. pos0+i]: row i sees the
// cache and the batch's rows up to itself (the causal mask). The query heads sharing a KV head
// (GQA) are adjacent in q, so one item (row, KV head, run of those query heads) computes their
// scores and outputs as two small matmuls over the cache. A group is split into runs only when
// there would be fewer items than threads (decode with few KV heads). Items are dealt to the
// threads in turn, so the long rows at the end of a prefill batch are spread over all of them.
void Context::attention(int layer, int n, int pos0) {
  const HParams& hp = model_.hparams();
  const int group = hp.n_head / hp.n_head_kv;
  const int64_t Q = hp.n_embd_q(), ld = kv_.n_ctx();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
  const int64_t n_groups = int64_t{n} * hp.n_head_kv;
  const int runs = static_cast<int>(std::min<int64_t>(group, (pool_->size() + n_groups - 1) / n_groups));
  const int run_len = (group + runs - 1) / runs;
  pool_->run([&](int ith, int nth) {
    float* scores = &scores_[sz(ith) * sz(group) * sz(ld)];  // [group][n_ctx]
    for (int64_t j = ith; j < n_groups * runs; j += nth) {
      const int64_t item = j / runs;
      const int i = static_cast<int>(item / hp.n_head_kv), g = static_cast<int>(item % hp.n_head_kv);
      const int h0 = static_cast<int>(j % runs) * run_len, nq = std::min(run_len, group - h0);
      if (nq <= 0) continue;
      const int n_pos = pos0 + i + 1;
      const int64_t first = i * Q + (int64_t{g} * group + h0) * hp.head_dim;  // first query head
      kv_.k_dots(ks_, layer, g, &q_[sz(first)], nq, n_pos, scores, ld);
      for (int h = 0; h < nq; ++h) ks_.softmax_scaled(scores + h * ld, n_pos, scale);
      kv_.v_weighted_sum(ks_, layer, g, scores, nq, ld, n_pos, &att_[sz(first)]);
    }
  });
}

}  // namespace edgellm::engine
