// The backend interface: the ops the forward pass is made of, on one device. Context::forward is
// written once against it (context.cpp); each backend decides how an op runs (CPU: the kernel
// table + thread pool, now; Metal: one command buffer per step, next).
//
// Buffers. The backend owns every buffer the forward pass touches: the activation buffers (one per
// ActBuf, each n_batch rows of a fixed width, made by alloc_activations), the KV cache (laid out by
// KvLayout, made by alloc_kv) and the view of the model's weights (map_weights: the mmap'd file,
// used in place, never copied, so a weight is named by its host address inside that mapping).
// Ops name activations by ActBuf and a first row, never by pointer, so a GPU backend keeps them in
// device memory.
//
// A forward step is begin(), a sequence of ops, finish(). An op may run when it is called or only
// be recorded (a GPU encodes the whole step into one command buffer); only after finish() are the
// step's results (logits, the KV cache) complete. No op reads results back to the host except
// lm_head, whose output is valid after finish().
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "arch.hpp"
#include "edgellm/kernels/matmul.hpp"
#include "kv_cache.hpp"

namespace edgellm::engine {

// The forward pass's activation buffers ([rows][width] floats each; shape comments in context.cpp).
enum class ActBuf : uint8_t { x, xb, xb2, q, k, v, att, gate, up, kCount };
inline constexpr int kActBufs = static_cast<int>(ActBuf::kCount);

struct ActShapes {
  int64_t rows = 0;                // rows of every buffer: the most tokens one step runs
  int64_t width[kActBufs] = {};    // floats per row, by ActBuf
};

// Rotary embedding of one set of layers (rope_norm_cos_sin's parameters and the pairing).
struct RopeParams {
  RopeMode mode = RopeMode::Norm;
  int n_rot = 0;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  float attn_factor = 1.0f;             // cos and sin are multiplied by it (LongRoPE's mscale)
  const float* freq_factors = nullptr;  // n_rot / 2 divisors (rope_freqs, LongRoPE factors) or nullptr
};
// Set 0: every layer's RoPE; set 1: the sliding-window layers' (Gemma 3 gives them another base).
inline constexpr int kRopeSets = 2;

// Attention of one layer: softmax(scale * q . k, capped) over the visible positions.
struct AttnParams {
  float scale = 0.0f;    // applied to q . k (1/sqrt(head_dim) for most models)
  float softcap = 0.0f;  // > 0: logit -> softcap * tanh(logit / softcap) after the scale (Gemma 2)
  int window = 0;        // > 0: query at p sees positions p - window + 1 .. p (sliding window)
};

// One product of a matmul group: out[row][:] = W . in[row] + bias (W: rows = out's width).
struct MatmulTo {
  const kernels::WeightMatrix* w;
  ActBuf out;
  const float* bias = nullptr;  // [W.rows] in the weights' mapping, or nullptr
};

// The forward pass's ops beyond a Llama block's; a backend says which it runs (supports()), and
// a model that needs one it lacks runs on the CPU ("auto") or is refused (a named backend).
enum class Feature : uint8_t {
  matmul_bias,     // MatmulTo::bias (Qwen2, Phi-3 files with biases)
  rope_neox,       // RopeMode::Neox
  rope_sets,       // a second RoPE set, attn_factor != 1, or layers without RoPE
  head_norm,       // head_norm()
  scale,           // scale()
  gelu_mul,        // gelu_mul()
  attn_softcap,    // AttnParams::softcap
  sliding_window,  // AttnParams::window
  kv_q8_0,         // a KvType::Q8_0 cache
  kCount
};
std::string_view feature_name(Feature f);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;  // "cpu", "metal"
  virtual int n_threads() const = 0;
  // True if matmul / embed / lm_head read weights of this type on this backend (Context checks
  // every weight matrix of its model against it before the first step).
  virtual bool supports(DType type) const = 0;
  virtual bool supports(Feature feature) const = 0;

  // ---- setup, once per context ----
  // The model's weights: [data, data + bytes) is the file mapping every WeightMatrix and norm
  // vector points into.
  virtual void map_weights(const void* data, size_t bytes) = 0;
  virtual void alloc_activations(const ActShapes& shapes) = 0;
  virtual void alloc_kv(const KvLayout& layout) = 0;
  virtual void set_rope(int set, const RopeParams& rope) = 0;  // set < kRopeSets

  // ---- one forward step of n tokens at positions pos0 .. pos0 + n - 1 ----
  virtual void begin(int n, int pos0) = 0;
  // out[i] = row tokens[i] of the embedding table (dequantized); tokens are valid ids.
  virtual void embed(const kernels::WeightMatrix& table, const int32_t* tokens, ActBuf out) = 0;
  // out[row0 + i] = rms_norm(in[row0 + i]) * weight, for i < n_rows; weight has the rows' width.
  virtual void rms_norm(ActBuf in, int row0, int n_rows, const float* weight, float eps, ActBuf out) = 0;
  // For each product: out[i] = W . in[row0 + i], i < n_rows, all sharing one quantization of in.
  virtual void matmul(ActBuf in, int row0, int n_rows, std::span<const MatmulTo> products) = 0;
  // Rotates the first n_rot dims of each of n_heads heads of every row by its position's angles,
  // with RoPE set `set` (its mode pairs dims (2i, 2i+1), NORM, or (i, i + n_rot/2), NEOX).
  virtual void rope(ActBuf x, int n_heads, int set) = 0;
  // Each of the n_heads heads of every row: rms_norm(head) * weight (weight: head_dim values).
  virtual void head_norm(ActBuf x, int n_heads, const float* weight, float eps) = 0;
  // x *= s over the step's rows.
  virtual void scale(ActBuf x, float s) = 0;
  // Writes the step's keys and values (rows of n_head_kv heads) at their positions of `layer`.
  virtual void kv_store(int layer, ActBuf k, ActBuf v) = 0;
  // out[i][h] = softmax(cap(scale * q[i][h] . K[t])) . V[t] over t = first .. pos0 + i (first: 0,
  // or the window's start) for the query heads h (GQA: n_head / n_head_kv share a KV head):
  // causal attention over the cache.
  virtual void attention(int layer, int n_head, ActBuf q, ActBuf out, const AttnParams& params) = 0;
  // out = silu(gate) * up over the step's rows (`width` floats per row).
  virtual void silu_mul(ActBuf gate, ActBuf up, ActBuf out) = 0;
  // out = gelu(gate) * up (GELU's tanh form).
  virtual void gelu_mul(ActBuf gate, ActBuf up, ActBuf out) = 0;
  // out = a + b over the step's rows.
  virtual void add(ActBuf a, ActBuf b, ActBuf out) = 0;
  // logits[i] = W . in[row0 + i] for i < n_rows, into host memory (valid after finish()).
  virtual void lm_head(const kernels::WeightMatrix& w, ActBuf in, int row0, int n_rows, float* logits) = 0;
  virtual void finish() = 0;
};

struct BackendOptions {
  int n_threads = 1;                            // CPU threads (also a GPU backend's host work)
  const kernels::KernelSet* kernels = nullptr;  // CPU: nullptr = kernels::active_kernels()
};

// The backend a name chooses: "cpu", "metal" (a build with the Metal backend: EDGELLM_HAVE_METAL),
// or "auto": the best this build and machine have, Metal on an Apple build (EDGELLM_METAL) whose
// machine has a GPU, else the CPU (the emulated device of a test build is never chosen by "auto").
// Throws edgellm::Error(InvalidArgument) for an unknown name, Error(Unsupported) for "metal" in a
// build without it or on a machine without a usable GPU.
std::unique_ptr<Backend> make_backend(std::string_view name, const BackendOptions& options);

// The names make_backend takes on this build ("auto, cpu" or "auto, cpu, metal").
std::string backend_names();

}  // namespace edgellm::engine
