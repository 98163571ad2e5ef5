// A model loaded from GGUF: the architecture's entry in the table (arch.hpp), hyperparameters from
// the `<arch>.*` metadata and every weight tensor bound by name, shape- and type-checked, and used
// in place from the file's memory map. Fused tensors (attn_qkv, Phi-3's gate|up ffn_up) are bound
// as row ranges of the one tensor, so the forward pass sees separate Q/K/V and gate/up matrices.
//
//   auto model = edgellm::engine::Model::load("stories260K.gguf");
//   model.hparams().n_layer;                   // 5
//   model.layer(0).wq;                          // a kernels::WeightMatrix view into the mmap
//
// Weight matrices may be any mix of the types the kernels' table has rows for; norms are F32.
// Errors: gguf::GgufError for a malformed file, edgellm::Error (kind Unsupported or Format, the
// message naming the key or tensor) for a file this engine cannot run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "arch.hpp"
#include "edgellm/gguf.hpp"
#include "edgellm/kernels/dispatch.hpp"
#include "edgellm/kernels/matmul.hpp"

namespace edgellm::engine {

// Model shape, read from `<arch>.*` metadata (defaults as llama.cpp applies them).
struct HParams {
  const ArchInfo* arch = nullptr;  // general.architecture's table entry: the forward pass's switches
  int n_layer = 0;        // <arch>.block_count
  int n_embd = 0;         // <arch>.embedding_length
  int n_ff = 0;           // <arch>.feed_forward_length
  int n_head = 0;         // <arch>.attention.head_count
  int n_head_kv = 0;      // <arch>.attention.head_count_kv (default n_head)
  int head_dim = 0;       // <arch>.attention.key_length (= value_length), default n_embd / n_head
  int n_rot = 0;          // <arch>.rope.dimension_count (default head_dim; less: partial rotary)
  float rope_freq_base = 10000.0f;  // <arch>.rope.freq_base
  float rope_freq_scale = 1.0f;     // 1 / <arch>.rope.scaling.factor for linear scaling
  float rope_attn_factor = 1.0f;    // <arch>.rope.scaling.attn_factor: cos/sin scale (LongRoPE)
  int n_ctx_orig = 0;     // <arch>.rope.scaling.original_context_length (default n_ctx_train)
  float rms_eps = 1e-5f;            // <arch>.attention.layer_norm_rms_epsilon
  int n_ctx_train = 0;    // <arch>.context_length
  int n_vocab = 0;        // <arch>.vocab_size, else token_embd's row count

  // Sliding-window attention: layer l attends only to the last n_swa positions when is_swa[l].
  int n_swa = 0;                         // <arch>.attention.sliding_window (0: no such layers)
  std::vector<uint8_t> is_swa;           // [n_layer] (attention.sliding_window_pattern or the
                                         // architecture's default period)
  float rope_freq_base_swa = 10000.0f;   // RoPE of the sliding-window layers (Gemma 3: its own
  float rope_freq_scale_swa = 1.0f;      //   base, <arch>.rope.freq_base_swa, default 10000)
  int no_rope_layer_step = 0;            // layers l with (l + 1) % step == 0 skip RoPE (SmolLM3)

  float embd_scale = 1.0f;     // the embedding row's factor (Gemma: sqrt(n_embd))
  float attn_scale = 0.0f;     // q . k factor before the softmax (1/sqrt(head_dim) but for Gemma 27B)
  float attn_softcap = 0.0f;   // attention logits -> cap * tanh(logit / cap); 0: none
  float final_softcap = 0.0f;  // the same on the output logits (Gemma 2)

  int n_embd_q() const { return n_head * head_dim; }
  int n_embd_kv() const { return n_head_kv * head_dim; }  // K (and V) values per position
  bool layer_is_swa(int l) const { return n_swa > 0 && is_swa[static_cast<size_t>(l)] != 0; }
  bool layer_has_rope(int l) const { return no_rope_layer_step == 0 || (l + 1) % no_rope_layer_step != 0; }
};

// Reads and checks the hyperparameters (throws edgellm::Error or gguf::GgufError).
HParams read_hparams(const gguf::File& file);

// One transformer block's weights. WeightMatrix rows are output features. Optional vectors are
// nullptr when the file (or the architecture) has none.
struct LayerWeights {
  const float* attn_norm = nullptr;  // [n_embd]
  kernels::WeightMatrix wq;          // n_embd_q  x n_embd  (rows of attn_qkv when fused)
  kernels::WeightMatrix wk;          // n_embd_kv x n_embd
  kernels::WeightMatrix wv;          // n_embd_kv x n_embd
  const float* bq = nullptr;         // [n_embd_q]  biases (attn_{q,k,v}.bias or attn_qkv.bias)
  const float* bk = nullptr;         // [n_embd_kv]
  const float* bv = nullptr;         // [n_embd_kv]
  const float* q_norm = nullptr;     // [head_dim] (qk_norm)
  const float* k_norm = nullptr;     // [head_dim]
  kernels::WeightMatrix wo;          // n_embd    x n_embd_q
  const float* attn_post_norm = nullptr;  // [n_embd] (post_norms)
  const float* ffn_norm = nullptr;   // [n_embd]
  kernels::WeightMatrix w_gate;      // n_ff   x n_embd  (the first n_ff rows of ffn_up when fused)
  kernels::WeightMatrix w_up;        // n_ff   x n_embd
  kernels::WeightMatrix w_down;      // n_embd x n_ff
  const float* ffn_post_norm = nullptr;   // [n_embd] (post_norms)
};

class Model {
 public:
  // Opens `path` (mapped, or read into memory with LoadMode::Read) and binds it. A file that
  // cannot be opened or read, or is no regular file, is Error(Io).
  static Model load(const std::string& path, gguf::LoadMode mode = gguf::LoadMode::Map);
  // Binds the tensors of an opened file (the Model takes it over).
  explicit Model(gguf::File file);

  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const HParams& hparams() const { return hparams_; }
  const ArchInfo& arch() const { return *hparams_.arch; }
  const gguf::File& file() const { return file_; }
  // Throws Error(Io) when the mapped file changed since it was loaded (truncated, resized,
  // modified): its weights can no longer be trusted, and reading lost pages would fault. One
  // fstat; nothing to check when the file was read into memory. Context::eval calls it first.
  void check_unchanged() const;

  const kernels::WeightMatrix& token_embd() const { return token_embd_; }  // n_vocab x n_embd
  const float* output_norm() const { return output_norm_; }                 // [n_embd]
  const kernels::WeightMatrix& output() const { return output_; }          // n_vocab x n_embd
  // No output.weight (and arch().output_may_be_tied): the LM head is token_embd.
  bool output_tied() const { return output_tied_; }
  const LayerWeights& layer(int i) const { return layers_[static_cast<size_t>(i)]; }
  const float* output_bias() const { return output_bias_; }                 // [n_vocab] or nullptr
  // rope_freqs.weight (n_rot / 2 F32 divisors of the RoPE angles, Llama 3.1-style scaling), or
  // nullptr when the file has none.
  const float* rope_freqs() const { return rope_freqs_; }
  // The divisors for a context of n_ctx positions: rope_freqs, else Phi-3's LongRoPE factors
  // (rope_factors_long when n_ctx, rounded up to 256 as llama.cpp pads it, exceeds
  // rope.scaling.original_context_length, else rope_factors_short), else nullptr.
  const float* rope_factors(int n_ctx) const;

  // Bytes of all weight tensors (what the file maps in, metadata aside).
  uint64_t weight_bytes() const { return weight_bytes_; }

 private:
  gguf::File file_;
  HParams hparams_;
  kernels::WeightMatrix token_embd_, output_;
  const float* output_norm_ = nullptr;
  const float* output_bias_ = nullptr;
  const float* rope_freqs_ = nullptr;
  const float* rope_factors_long_ = nullptr;
  const float* rope_factors_short_ = nullptr;
  bool output_tied_ = false;
  std::vector<LayerWeights> layers_;
  uint64_t weight_bytes_ = 0;
};

}  // namespace edgellm::engine
