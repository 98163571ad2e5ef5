// The Metal backend's ops (backend.hpp says what each computes; encode.hpp's functions pick the
// kernels). Every op only records dispatches; finish() runs them and copies the logits out.
#include "metal/backend_metal.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "error.hpp"

namespace edgellm::engine {

namespace {

[[noreturn]] void invalid(const std::string& what) { throw Error(Error::Kind::InvalidArgument, "metal: " + what); }

size_t page_size() {
  const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<size_t>(page) : 4096;
}

}  // namespace

MetalBackend::MetalBackend(const BackendOptions& options) : MetalBackend(options, metal::make_device()) {}

MetalBackend::MetalBackend(const BackendOptions& options, std::unique_ptr<metal::Device> device)
    : dev_(std::move(device)), n_threads_(std::max(1, options.n_threads)) {
  if (!dev_) invalid("no device");
  // Every kernel's SIMD-group functions (reductions, simdgroup matrices) assume 32 lanes.
  if (const uint32_t w = dev_->simd_width(); w != metal::kSimdWidth)
    throw Error(Error::Kind::Unsupported, "metal: the device '" + dev_->name() + "' runs SIMD-groups of " +
                                              std::to_string(w) + " threads; the Metal kernels need " +
                                              std::to_string(metal::kSimdWidth) +
                                              " (as every Apple GPU has); use backend \"cpu\"");
}

// ---- setup --------------------------------------------------------------------------------------

void MetalBackend::map_weights(const void* data, size_t bytes) {
  weights_base_ = static_cast<const uint8_t*>(data);
  weights_bytes_ = bytes;
  if (reinterpret_cast<uintptr_t>(data) % page_size() == 0) {
    // The file mapping (or LoadMode::Read's page-aligned copy), used in place. A device that needs
    // whole pages rounds the length up itself: both are allocated in whole pages.
    weights_ = dev_->wrap(data, bytes);
  } else {
    // Only bytes handed over in memory can start mid-page; the device cannot wrap those.
    weights_ = dev_->alloc(std::max<size_t>(bytes, 1));
    if (bytes) std::memcpy(dev_->contents(weights_), data, bytes);
  }
}

void MetalBackend::alloc_activations(const ActShapes& shapes) {
  shapes_ = shapes;
  for (int b = 0; b < kActBufs; ++b)
    act_[b] = dev_->alloc(static_cast<size_t>(shapes.rows) * static_cast<size_t>(shapes.width[b]) * sizeof(float));
  tokens_ = dev_->alloc(static_cast<size_t>(shapes.rows) * sizeof(int32_t));
}

void MetalBackend::alloc_kv(const KvLayout& layout) {
  layout_ = layout;
  kv_ = dev_->alloc(layout.bytes());
}

void MetalBackend::no_kernel(const char* op) {
  throw Error(Error::Kind::Unsupported, std::string("metal: no kernel for ") + op + " yet");
}

void MetalBackend::set_rope(int set, const RopeParams& rope) {
  if (set != 0) return;  // only set 0 is used without Feature::rope_sets
  if (rope.mode != RopeMode::Norm || rope.attn_factor != 1.0f) no_kernel("NEOX or scaled RoPE");
  rope_ = rope;
  // rope_freqs.weight is a tensor of the file, so it lies in the weights buffer.
  freq_factors_ = rope.freq_factors ? weights_at(rope.freq_factors, uint64_t(std::max(rope.n_rot / 2, 0)) * sizeof(float),
                                                 "rope_freqs")
                                    : metal::BufView{};
}

// ---- views ----------------------------------------------------------------------------------------

metal::BufView MetalBackend::act(ActBuf b, int64_t row) const {
  return {act_[static_cast<size_t>(b)], static_cast<uint64_t>(row) * static_cast<uint64_t>(width(b)) * sizeof(float)};
}

metal::BufView MetalBackend::weights_at(const void* p, uint64_t bytes, const char* what) const {
  const uintptr_t base = reinterpret_cast<uintptr_t>(weights_base_), at = reinterpret_cast<uintptr_t>(p);
  if (!weights_ || at < base || at - base > weights_bytes_ || bytes > weights_bytes_ - (at - base))
    invalid(std::string(what) + ": " + std::to_string(bytes) + " bytes at " +
            std::to_string(static_cast<long long>(at - base)) + " from the start of the model's mapping are not inside its " +
            std::to_string(weights_bytes_) + " bytes (map_weights)");
  return {weights_, at - base};
}

metal::WeightView MetalBackend::weight(const kernels::WeightMatrix& w, const char* what) const {
  uint64_t bytes = 0;
  if (w.rows < 0 || __builtin_mul_overflow(static_cast<uint64_t>(w.rows), uint64_t{w.row_bytes}, &bytes))
    invalid(std::string(what) + ": " + std::to_string(w.rows) + " rows of " + std::to_string(w.row_bytes) + " bytes");
  return {w.type, weights_at(w.data, bytes, what), w.rows, w.cols, w.row_bytes};
}

metal::KvView MetalBackend::kv_view(int layer) const {
  if (layer < 0 || layer >= layout_.n_layer)
    invalid("layer " + std::to_string(layer) + " of a cache of " + std::to_string(layout_.n_layer));
  metal::KvView kv;
  kv.k0 = {kv_, layout_.k_offset(layer, 0)};
  kv.v0 = {kv_, layout_.v_offset(layer, 0)};
  kv.head_elems = layout_.head_bytes() / layout_.elem_bytes();  // heads of a layer are adjacent
  kv.f16 = layout_.type == KvType::F16;
  kv.n_head_kv = layout_.n_head_kv;
  kv.head_dim = layout_.head_dim;
  kv.n_ctx = layout_.n_ctx;
  return kv;
}

void MetalBackend::check_step(const char* op) const {
  if (!open_) invalid(std::string(op) + " outside a step (begin() first)");
}

// ---- one step ---------------------------------------------------------------------------------------

void MetalBackend::begin(int n, int pos0) {
  if (n <= 0 || n > shapes_.rows || pos0 < 0 || pos0 + n > layout_.n_ctx)
    throw Error(Error::Kind::InvalidArgument, "backend: a step of " + std::to_string(n) + " tokens at position " +
                                                  std::to_string(pos0) + " does not fit its buffers");
  if (open_) {
    // The last step failed between begin() and finish() (an op threw): what it recorded wrote only
    // scratch buffers and cache positions >= its pos0, which the context never counted as filled.
    // Run it out, so this step's command buffer holds this step's dispatches only.
    open_ = false;
    logits_to_ = nullptr;
    dev_->commit_and_wait();
  }
  n_ = n;
  pos0_ = pos0;
  open_ = true;
}

void MetalBackend::embed(const kernels::WeightMatrix& table, const int32_t* tokens, ActBuf out) {
  check_step("embed");
  // Safe to overwrite: the step before has finished (finish() waits for the GPU).
  std::memcpy(dev_->contents(tokens_), tokens, static_cast<size_t>(n_) * sizeof(int32_t));
  if (table.cols != width(out)) invalid("embed: a table of " + std::to_string(table.cols) + " columns into rows of " +
                                        std::to_string(width(out)));
  metal::encode_embed(*dev_, weight(table, "token_embd"), {tokens_, 0}, n_, act(out), static_cast<int>(width(out)));
}

void MetalBackend::rms_norm(ActBuf in, int row0, int n_rows, const float* weight, float eps, ActBuf out) {
  check_step("rms_norm");
  const int64_t w = width(in);
  if (width(out) != w || row0 < 0 || n_rows < 0 || row0 + n_rows > n_)
    invalid("rms_norm: rows " + std::to_string(row0) + " .. " + std::to_string(row0 + n_rows) + " of a step of " +
            std::to_string(n_));
  metal::encode_rms_norm(*dev_, act(in, row0), weights_at(weight, uint64_t(w) * sizeof(float), "norm weight"),
                         act(out, row0), n_rows, static_cast<int>(w), static_cast<int>(w), eps);
}

void MetalBackend::matmul(ActBuf in, int row0, int n_rows, std::span<const MatmulTo> products) {
  check_step("matmul");
  if (row0 < 0 || n_rows < 0 || row0 + n_rows > n_)
    invalid("matmul: rows " + std::to_string(row0) + " .. " + std::to_string(row0 + n_rows) + " of a step of " +
            std::to_string(n_));
  // Each product reads the same float rows: there is no shared quantization to make first.
  for (const MatmulTo& p : products) {
    if (p.w->cols != width(in) || p.w->rows > width(p.out))
      invalid("matmul: a " + std::to_string(p.w->rows) + " x " + std::to_string(p.w->cols) + " weight from rows of " +
              std::to_string(width(in)) + " into rows of " + std::to_string(width(p.out)));
    if (p.bias) no_kernel("a matmul bias");
    metal::encode_matmul(*dev_, weight(*p.w, "weight matrix"), act(in, row0), static_cast<int>(width(in)),
                         act(p.out), static_cast<int>(width(p.out)), n_rows);
  }
}

void MetalBackend::rope(ActBuf x, int n_heads, int set) {
  check_step("rope");
  if (set != 0) no_kernel("a second RoPE set");
  if (n_heads <= 0 || width(x) % n_heads != 0)
    invalid("rope: " + std::to_string(n_heads) + " heads in rows of " + std::to_string(width(x)));
  const metal::RopeShape shape{n_,          static_cast<int>(width(x)), n_heads,          static_cast<int>(width(x) / n_heads),
                               rope_.n_rot, pos0_,                      rope_.freq_base, rope_.freq_scale};
  metal::encode_rope(*dev_, act(x), shape, freq_factors_);
}

void MetalBackend::kv_store(int layer, ActBuf k, ActBuf v) {
  check_step("kv_store");
  metal::encode_kv_store(*dev_, kv_view(layer), act(k), static_cast<int>(width(k)), act(v), static_cast<int>(width(v)),
                         n_, pos0_);
}

void MetalBackend::attention(int layer, int n_head, ActBuf q, ActBuf out, const AttnParams& params) {
  check_step("attention");
  const metal::KvView kv = kv_view(layer);
  if (params.softcap > 0 || params.window > 0 || params.scale != 1.0f / std::sqrt(static_cast<float>(kv.head_dim)))
    no_kernel("soft-capped, sliding-window or rescaled attention");
  if (n_head <= 0 || n_head % kv.n_head_kv != 0 || int64_t{n_head} * kv.head_dim > std::min(width(q), width(out)))
    invalid("attention: " + std::to_string(n_head) + " query heads over " + std::to_string(kv.n_head_kv) +
            " KV heads of " + std::to_string(kv.head_dim) + " in rows of " + std::to_string(width(q)));
  // Sized for the largest step once (n_head is the model's): the buffer outlives the step.
  if (const size_t need = metal::attention_scratch_bytes(kv, n_head, static_cast<int>(shapes_.rows));
      need > scratch_bytes_) {
    scratch_ = dev_->alloc(need);
    scratch_bytes_ = need;
  }
  metal::encode_attention(*dev_, kv, n_head, act(q), static_cast<int>(width(q)), act(out), static_cast<int>(width(out)),
                          n_, pos0_, {scratch_, 0});
}

void MetalBackend::silu_mul(ActBuf gate, ActBuf up, ActBuf out) {
  check_step("silu_mul");
  metal::encode_silu_mul(*dev_, act(gate), act(up), act(out), int64_t{n_} * width(gate));
}

void MetalBackend::add(ActBuf a, ActBuf b, ActBuf out) {
  check_step("add");
  metal::encode_add(*dev_, act(a), act(b), act(out), int64_t{n_} * width(a));
}

void MetalBackend::lm_head(const kernels::WeightMatrix& w, ActBuf in, int row0, int n_rows, float* logits) {
  check_step("lm_head");
  if (row0 < 0 || n_rows <= 0 || row0 + n_rows > n_ || w.cols != width(in))
    invalid("lm_head: rows " + std::to_string(row0) + " .. " + std::to_string(row0 + n_rows) + " of a step of " +
            std::to_string(n_) + " through a " + std::to_string(w.rows) + " x " + std::to_string(w.cols) + " weight");
  if (!logits_ || n_rows > logits_rows_ || w.rows != logits_cols_) {
    // Grown to what a step asks for (one row without logits_all), at least doubling up to n_batch
    // rows: the device frees no buffer, so what is left behind stays below the final size.
    logits_rows_ = std::max<int64_t>(n_rows, std::min<int64_t>(shapes_.rows, 2 * logits_rows_));
    logits_cols_ = w.rows;
    logits_ = dev_->alloc(static_cast<size_t>(logits_rows_) * static_cast<size_t>(logits_cols_) * sizeof(float));
  }
  metal::encode_matmul(*dev_, weight(w, "output"), act(in, row0), static_cast<int>(width(in)), {logits_, 0},
                       static_cast<int>(w.rows), n_rows);
  logits_to_ = logits;
  logits_floats_ = static_cast<size_t>(n_rows) * static_cast<size_t>(w.rows);
}

void MetalBackend::finish() {
  check_step("finish");
  open_ = false;
  float* to = logits_to_;
  logits_to_ = nullptr;
  dev_->commit_and_wait();
  if (to) std::memcpy(to, dev_->contents(logits_), logits_floats_ * sizeof(float));
}

}  // namespace edgellm::engine
