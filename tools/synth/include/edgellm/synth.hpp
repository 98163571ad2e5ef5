// Synthetic models: writes a GGUF file of any shape of every architecture the engine runs (llama,
// qwen2, qwen3, gemma2, gemma3, phi3, smollm3) with seeded random weights, for tests and
// benchmarks (no trained model small enough to ship can carry K-quants). Each architecture's file
// has all its tensors and keys as its GGUF converter writes them: Q/K/V biases (qwen2), per-head
// Q/K norms (qwen3, gemma3), post-norms (gemma2, gemma3), fused attn_qkv and gate|up plus
// LongRoPE factors (phi3), no output.weight when the output is tied, keys under "<arch>.".
// The default shape is TinyLlama-1.1B-Chat's, and the default type mix is llama.cpp's Q4_K_M
// recipe, so the file is what `llama-quantize ... Q4_K_M` would make of a model of that shape.
//
//   edgellm::synth::Options o;                  // TinyLlama shape, Q4_K_M, synthetic vocab
//   o.vocab_gguf = "ggml-vocab-llama-spm.gguf";  // or copy a real tokenizer
//   auto s = edgellm::synth::write_model("tinyllama-q4_k_m.gguf", o);
//
//   o.shape = *edgellm::synth::preset_shape("qwen2.5-1.5b");  // a qwen2 file of that shape
//   o.file_type = "Q5_K_M";                                    // any edgellm-quantize type
//
// Errors (bad shape, unreadable vocab file, disk full, ...) throw std::runtime_error.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace edgellm::synth {

// The mixes this writer makes itself. Q4_K_M: llama.cpp's recipe (Q4_K; Q6_K for output.weight,
// or token_embd when the output is tied, and for attn_v / ffn_down of the layers its
// use_more_bits rule picks); written directly for llama, and for the other architectures (whose
// recipe has more rules: fused attn_qkv, rows that are not a multiple of 256) as F32 requantized
// by edgellm_quantize. The others put every matrix in one type, for every architecture (Q4_0 is
// then not llama-quantize's Q4_0, which gives output.weight Q6_K). Norms, biases and the other
// 1-D tensors are always F32.
enum class WeightType { Q4_K_M, Q8_0, Q4_0, F16, BF16, F32 };

std::optional<WeightType> parse_weight_type(std::string_view name);  // "q4_k_m", "q8_0", ...
std::string_view weight_type_name(WeightType t);

// Options::file_type's names: every file type edgellm_quantize writes, plus BF16 and F32.
std::span<const std::string_view> file_type_names();

// general.architecture of every architecture the writer (and the engine) knows.
std::span<const std::string_view> architectures();

struct Shape {
  std::string arch = "llama";  // general.architecture, also the metadata keys' prefix
  int n_layers = 22;
  int n_embd = 2048;
  int n_ff = 5632;
  int n_heads = 32;
  int n_kv_heads = 4;
  int head_dim = 0;     // 0: n_embd / n_heads; otherwise also written as attention.key_length and
                        // value_length (Gemma: 256 whatever the width)
  int n_vocab = 32000;  // replaced by the copied tokenizer's size when a vocab file is given
  int n_ctx = 2048;
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_output = false;  // no output.weight: the LM head is token_embd (Qwen2.5 small, Gemma)

  // Architecture keys, each written only when set (not 0); a key the architecture does not read
  // is refused. Unset, llama.cpp's defaults for the architecture apply.
  int n_rot = 0;                // rope.dimension_count < head_dim: partial rotary (not llama)
  int sliding_window = 0;       // attention.sliding_window (gemma2, gemma3)
  int swa_pattern = 0;          // attention.sliding_window_pattern (gemma2: 2, gemma3: 6 by default)
  float rope_base_swa = 0;      // rope.freq_base_swa (gemma2, gemma3)
  float attn_softcap = 0;       // attn_logit_softcapping (gemma2)
  float final_softcap = 0;      // final_logit_softcapping (gemma2, gemma3)
  int rope_orig_ctx = 0;        // phi3 LongRoPE: rope.scaling.original_context_length, and the
                                // rope_factors_long / _short tensors are written
  float rope_attn_factor = 0;   // phi3: rope.scaling.attn_factor
};

Shape tinyllama_shape();  // TinyLlama-1.1B-Chat (the defaults above)
Shape tiny_shape();       // 2 layers, 256 wide, 4 / 2 heads, FFN 768, vocab 512, ctx 512

// `base` as architecture `arch`, with the keys real models of it carry: qwen2 / qwen3 RoPE base
// 1e6; gemma2 soft-caps 50 / 30 and window 4096; gemma3 base 1e6 (local layers: llama.cpp's
// 10000) and window 512; phi3 LongRoPE (original context 4096, attn_factor 1.19); smollm3 base
// 5e6; gemma tied. Throws std::runtime_error for an architecture not in architectures().
Shape with_arch(Shape base, std::string_view arch);

// Shapes of real models (architecture, sizes, keys): "tinyllama" (the default), "tiny",
// "qwen2.5-1.5b", "gemma-3-1b"; std::nullopt for another name.
std::optional<Shape> preset_shape(std::string_view name);
std::span<const std::string_view> preset_names();

struct Options {
  Shape shape = tinyllama_shape();
  WeightType type = WeightType::Q4_K_M;
  // Any of file_type_names() (any case): the file edgellm_quantize makes of this model's F32
  // file with that type (written beside `path` as path + ".f32.part", then removed), or written
  // directly where `type`'s mix is that same file. Empty: `type`.
  std::string file_type;
  // Peaked: weights that make each next token nearly certain (a fixed random successor per
  // token; with a tied output, the token itself), so greedy outputs of two correct engines agree;
  // otherwise N(0, 0.02) matrices, whose next-token distributions are almost flat.
  bool peaked = false;
  uint64_t seed = 1;
  std::string vocab_gguf;  // copy every tokenizer.* key of this GGUF; empty: synthetic SPM vocab
  int n_threads = 0;       // 0: the physical cores
  std::string name = "edgellm-synth";
};

struct Summary {
  uint64_t file_bytes = 0;
  uint64_t weight_bytes = 0;  // tensor data only (what llama.cpp reports as the model size)
  uint64_t n_params = 0;
  double bits_per_weight = 0;  // weight_bytes * 8 / n_params
  double seconds = 0;
  int n_vocab = 0;
};

Summary write_model(const std::string& path, const Options& options);

}  // namespace edgellm::synth
