// Synthetic Llama models: writes a GGUF file of any Llama shape with seeded random weights, for
// tests and benchmarks (no trained model small enough to ship can carry K-quants). The default
// shape is TinyLlama-1.1B-Chat's, and the default type mix is llama.cpp's Q4_K_M recipe, so the
// file is what `llama-quantize ... Q4_K_M` would make of a model of that shape.
//
//   edgellm::synth::Options o;                  // TinyLlama shape, Q4_K_M, synthetic vocab
//   o.vocab_gguf = "ggml-vocab-llama-spm.gguf";  // or copy a real tokenizer
//   auto s = edgellm::synth::write_model("tinyllama-q4_k_m.gguf", o);
//
// Errors (bad shape, unreadable vocab file, disk full, ...) throw std::runtime_error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgellm::synth {

// Q4_K_M: llama.cpp's recipe (Q4_K; Q6_K for output.weight and for attn_v / ffn_down of the layers
// its use_more_bits rule picks). The others put every matrix in one type. Norms are always F32.
enum class WeightType { Q4_K_M, Q8_0, Q4_0, F16, BF16, F32 };

std::optional<WeightType> parse_weight_type(std::string_view name);  // "q4_k_m", "q8_0", ...
std::string_view weight_type_name(WeightType t);

struct Shape {
  int n_layers = 22;
  int n_embd = 2048;
  int n_ff = 5632;
  int n_heads = 32;
  int n_kv_heads = 4;
  int n_vocab = 32000;  // replaced by the copied tokenizer's size when a vocab file is given
  int n_ctx = 2048;
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
};

Shape tinyllama_shape();  // TinyLlama-1.1B-Chat (the defaults above)
Shape tiny_shape();       // 2 layers, 256 wide, 4 / 2 heads, FFN 768, vocab 512, ctx 512

struct Options {
  Shape shape = tinyllama_shape();
  WeightType type = WeightType::Q4_K_M;
  // Peaked: weights that make each next token nearly certain (a fixed random successor per
  // token), so greedy outputs of two correct engines agree; otherwise N(0, 0.02) matrices, whose
  // next-token distributions are almost flat.
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
