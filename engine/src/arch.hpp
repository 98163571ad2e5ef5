// The architectures this engine runs, as one table: each entry's GGUF name (`general.architecture`)
// and the switches the loader and the forward pass read, plus the GGUF metadata keys and tensor
// names, so no other file spells an "<arch>." key prefix or "blk.N." itself. Facts (key and tensor names, each
// architecture's RoPE mode) as in llama.cpp's src/llama-arch.cpp; code our own.
//
//   const ArchInfo& a = arch_info(file_arch_name);            // throws Error(Unsupported)
//   key(a, Key::block_count);                                 // a.name + ".block_count"
//   tensor_name(Tensor::attn_q, 3);                           // "blk.3.attn_q.weight"
//   tensor_name(Tensor::attn_q, 3, TensorPart::bias);         // "blk.3.attn_q.bias"
//
// A new architecture is a new Arch value, a table row, and whatever its switches need in the
// loader (model.cpp) and the forward pass (context.cpp); docs/EXTENDING.md lists the steps.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace edgellm::engine {

// The general (unprefixed) key naming the architecture.
inline constexpr std::string_view kArchitectureKey = "general.architecture";

enum class Arch { llama, qwen2, qwen3, gemma2, gemma3, phi3, smollm3 };

// How RoPE pairs the rotated dimensions of a head.
enum class RopeMode {
  Norm,  // adjacent pairs (2i, 2i+1): ggml mode 0 (LLAMA_ROPE_TYPE_NORM); Llama, SmolLM3
  Neox,  // halves (i, i + n_rot/2): ggml mode 2 (NEOX); Qwen2/3, Gemma 2/3, Phi-3
};

// The activation of the gate in the gated FFN, act(gate(x)) * up(x).
enum class FfnActivation {
  Silu,  // SwiGLU; Llama, Qwen, Phi-3, SmolLM3
  Gelu,  // GeGLU (tanh approximation); Gemma
};

// What the loader and the forward pass do differently from a Llama block. Q/K/V biases, a fused
// attn_qkv tensor and an output bias are optional for every architecture (bound when the file has
// them), as llama.cpp binds them; what is listed here is either required or changes the graph.
struct ArchInfo {
  Arch arch;
  std::string_view name;  // general.architecture, also the metadata keys' prefix
  RopeMode rope_mode;
  FfnActivation ffn_activation;
  bool output_may_be_tied;   // no output.weight: the LM head is token_embd
  bool embd_scale_sqrt;      // the embedding row is multiplied by sqrt(n_embd) (Gemma)
  bool qk_norm;              // blk.N.attn_{q,k}_norm: per-head RMSNorm of Q and K before RoPE
  bool post_norms;           // blk.N.{attn,ffn}_post_norm: RMSNorm of each block's output before
                             // its residual add (Gemma 2/3)
  bool fused_gate_up;        // blk.N.ffn_up holds gate and up, 2*n_ff rows, no ffn_gate (Phi-3)
  bool attn_softcap;         // attention logits -> cap * tanh(logit / cap) (Gemma 2; cap 50
                             // unless attn_logit_softcapping says otherwise)
  bool final_softcap_key;    // reads final_logit_softcapping (Gemma): output logits ->
  float final_softcap;       //   cap * tanh(logit / cap); this default when the key is absent (0: none)
  int swa_pattern;           // sliding-window layers: every layer l with l % n < n - 1 (Gemma 2:
                             // 2, Gemma 3: 6), unless attention.sliding_window_pattern says; 0: none
  int swa_window;            // the window when attention.sliding_window is absent; 0: no sliding
                             // window without the key (Gemma 3)
  int no_rope_layer_step;    // layers l with (l + 1) % step == 0 skip RoPE (SmolLM3: 4); 0: none
  bool gemma_attn_scale;     // Q scaled by 1/sqrt(n_embd / n_head) instead of 1/sqrt(head_dim) for
                             // the 27B sizes (llama.cpp: Gemma 2 with 46 layers, Gemma 3 with 62)
  bool rope_factors_long_short;  // rope_factors_long/short (Phi-3 LongRoPE), chosen by n_ctx
};

// Every architecture this engine runs.
std::span<const ArchInfo> supported_archs();

const ArchInfo& arch_info(Arch arch);
// The entry named `name`, or nullptr.
const ArchInfo* find_arch(std::string_view name);
// The entry named `name`; throws Error(Unsupported) naming it (escaped) and the supported ones.
const ArchInfo& arch_info(std::string_view name);

// Per-architecture metadata keys, "<arch>.<suffix>".
enum class Key {
  context_length,                    // context_length
  embedding_length,                  // embedding_length
  block_count,                       // block_count
  feed_forward_length,               // feed_forward_length
  attention_head_count,              // attention.head_count
  attention_head_count_kv,           // attention.head_count_kv
  attention_key_length,              // attention.key_length (head_dim when not n_embd/n_head)
  attention_value_length,            // attention.value_length
  attention_layer_norm_rms_epsilon,  // attention.layer_norm_rms_epsilon
  rope_dimension_count,              // rope.dimension_count
  rope_freq_base,                    // rope.freq_base
  rope_scaling_type,                 // rope.scaling.type
  rope_scaling_factor,               // rope.scaling.factor
  rope_scale_linear,                 // rope.scale_linear (older files)
  vocab_size,                        // vocab_size
  rope_freq_base_swa,                // rope.freq_base_swa (sliding-window layers)
  rope_scaling_attn_factor,          // rope.scaling.attn_factor (LongRoPE's cos/sin scale)
  rope_scaling_orig_ctx,             // rope.scaling.original_context_length
  attention_sliding_window,          // attention.sliding_window
  attention_sliding_window_pattern,  // attention.sliding_window_pattern (period, or one bool per layer)
  attn_logit_softcapping,            // attn_logit_softcapping
  final_logit_softcapping,           // final_logit_softcapping
};

std::string_view key_suffix(Key k);  // "block_count"
std::string key(const ArchInfo& arch, Key k);  // arch.name + "." + key_suffix(k)
std::string key(Arch arch, Key k);

// Tensor names. Global tensors take no layer; per-layer ones live under "blk.<layer>.".
enum class Tensor {
  token_embd,
  output_norm,
  output,
  rope_freqs,
  rope_factors_long,   // Phi-3 LongRoPE: n_rot / 2 divisors for contexts beyond the original one
  rope_factors_short,  //   ... and for contexts within it
  attn_norm,
  attn_q,
  attn_k,
  attn_v,
  attn_qkv,        // fused Q/K/V rows (Phi-3; optional for every architecture)
  attn_q_norm,     // [head_dim] per-head RMSNorm weights (qk_norm)
  attn_k_norm,
  attn_output,
  attn_post_norm,  // "post_attention_norm" (post_norms)
  ffn_norm,
  ffn_gate,
  ffn_up,
  ffn_down,
  ffn_post_norm,   // "post_ffw_norm"
};

enum class TensorPart { weight, bias };

std::string_view tensor_base_name(Tensor t);  // "attn_q"
bool is_per_layer(Tensor t);
// "token_embd.weight", "blk.3.attn_q.weight", "blk.3.attn_q.bias". A per-layer tensor needs
// layer >= 0 and a global one layer == -1 (std::invalid_argument otherwise: a caller's bug).
std::string tensor_name(Tensor t, int layer = -1, TensorPart part = TensorPart::weight);
// The inverse for the layer: N of a name that starts "blk.N." (N decimal, at most 9 digits), -1
// for any other name.
int tensor_layer(std::string_view name);

// `s` fit for an error message: bytes outside printable ASCII, and the backslash, as \xNN (so a
// file's string cannot carry terminal escape sequences into a log), cut after max_bytes with "...".
std::string printable(std::string_view s, size_t max_bytes = 64);

}  // namespace edgellm::engine
