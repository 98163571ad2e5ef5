// Synthetic Llama GGUF writer (see edgellm/synth.hpp).
//
// Every row of every tensor is drawn from its own Rng, seeded from (seed, tensor, row), so the
// file does not depend on the number of threads. Rows are generated and quantized in chunks by
// the thread pool and streamed to the gguf::Writer: the whole model is never in memory.
#include "edgellm/synth.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "edgellm/dtype.hpp"
#include "edgellm/gguf.hpp"
#include "edgellm/kernels/dispatch.hpp"
#include "edgellm/rng.hpp"
#include "edgellm/kernels/thread_pool.hpp"

namespace edgellm::synth {

namespace {

using kernels::Rng;

// ---- llama.cpp's Q4_K_M recipe (src/llama-quant.cpp, for a dense Llama with an untied output) --
// Q4_K by default; Q6_K for output.weight; attn_v and ffn_down get Q6_K in the layers where
// use_more_bits holds: the first and last eighth of the layers, and every third layer between.
// For 22 layers that is 0, 1, 4, 7, 10, 13, 16, 19, 20, 21.
bool use_more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

enum class Role { TokenEmbd, Norm, AttnQ, AttnK, AttnV, AttnOut, FfnGate, FfnUp, FfnDown, Output };

DType matrix_type(WeightType t, Role role, int layer, int n_layers) {
  switch (t) {
    case WeightType::Q4_K_M:
      if (role == Role::Output) return DType::Q6_K;
      if ((role == Role::AttnV || role == Role::FfnDown) && use_more_bits(layer, n_layers))
        return DType::Q6_K;
      return DType::Q4_K;
    case WeightType::Q8_0: return DType::Q8_0;
    case WeightType::Q4_0: return DType::Q4_0;
    case WeightType::F16: return DType::F16;
    case WeightType::BF16: return DType::BF16;
    case WeightType::F32: return DType::F32;
  }
  return DType::F32;
}

// llama_ftype of the mix (general.file_type), which llama.cpp prints as e.g. "Q4_K - Medium": the
// one of the mix's main type (Q4_K for Q4_K_M), from the format layer's type table.
uint32_t file_type(WeightType t) {
  const auto info = dtype_info(matrix_type(t, Role::AttnQ, 0, 1));
  return info && info->file_type >= 0 ? static_cast<uint32_t>(info->file_type) : 0;
}

// Quantizes one row of n floats into `out` (dtype_row_bytes(type, n) bytes) with the type table's
// reference quantizer.
void quantize_row(DType type, const float* x, void* out, int64_t n) {
  const kernels::TypeKernels* t = kernels::kernels_for(kernels::Isa::scalar)->type(type);
  if (!t || !t->quantize_row_ref)
    throw std::runtime_error("synth: no quantizer for type " + dtype_name(static_cast<uint32_t>(type)));
  t->quantize_row_ref(x, out, n);
}

uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64 finalizer of a combined key
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// About N(0, 1), ten times cheaper than Rng::normal (a billion weights are drawn for TinyLlama's
// shape): the sum of the four 16-bit parts of one 64-bit draw (Irwin-Hall, bounded at +-3.46),
// centred and scaled to unit variance.
float approx_normal(Rng& rng) {
  const uint64_t r = rng.next();
  const uint32_t sum = static_cast<uint32_t>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) +
                                             ((r >> 32) & 0xFFFF) + (r >> 48));
  constexpr float kMean = 4 * 32767.5f;
  constexpr float kInvSd = 1.7320508f / 65536.0f;  // sd of the sum = 65536 / sqrt(3)
  return (static_cast<float>(sum) - kMean) * kInvSd;
}

struct Tensor {
  std::string name;
  Role role;
  int layer;        // -1 outside the blocks
  int64_t n_cols;   // ne[0]: row length
  int64_t n_rows;   // ne[1] (1 for norms)
  DType type;
};

// The weights. Normal mode: matrices and embeddings ~N(0, 0.02), the scale of trained Llamas.
// Peaked mode: token t's embedding e_t has ~N(0, 1) entries, and output row perm[t] is
// (g / n_embd) e_t for a random permutation perm. The blocks' N(0, 0.02) matrices only nudge the
// residual stream, so after the final RMSNorm the hidden state is close to e_t and the logit of
// perm[t] is about g, while every other logit is a dot product of nearly orthogonal random vectors
// (about N(0, g / sqrt(n_embd))). g = ln(n_vocab) + 4 puts the top-1 probability near 0.95: the
// next token is perm[current] almost always, yet every layer still shifts the logits.
class Weights {
 public:
  Weights(const Options& o, int n_vocab) : o_(o), n_embd_(o.shape.n_embd) {
    if (o.peaked) {
      gain_ = std::log(static_cast<float>(n_vocab)) + 4.0f;
      std::vector<int> perm(static_cast<size_t>(n_vocab));
      for (int i = 0; i < n_vocab; ++i) perm[i] = i;
      Rng rng(mix(o.seed, 0xC0FFEE));
      for (int i = n_vocab - 1; i > 0; --i)
        std::swap(perm[i], perm[static_cast<int>(rng.next() % static_cast<uint64_t>(i + 1))]);
      source_.assign(static_cast<size_t>(n_vocab), 0);
      for (int t = 0; t < n_vocab; ++t) source_[perm[t]] = t;  // output row j predicts after source_[j]
    }
  }

  // Fills row `row` of tensor number `id` (n = its row length).
  void row(size_t id, const Tensor& t, int64_t row, float* out) const {
    const int64_t n = t.n_cols;
    if (t.role == Role::Norm) {
      std::fill(out, out + n, 1.0f);
    } else if (o_.peaked && t.role == Role::TokenEmbd) {
      embedding(row, out);
    } else if (o_.peaked && t.role == Role::Output) {
      embedding(source_[static_cast<size_t>(row)], out);
      const float scale = gain_ / static_cast<float>(n_embd_);
      for (int64_t i = 0; i < n; ++i) out[i] *= scale;
    } else {
      Rng rng(mix(mix(o_.seed, id), static_cast<uint64_t>(row)));
      for (int64_t i = 0; i < n; ++i) out[i] = 0.02f * approx_normal(rng);
    }
  }

 private:
  void embedding(int64_t token, float* out) const {
    Rng rng(mix(mix(o_.seed, 0xE3BED), static_cast<uint64_t>(token)));
    for (int i = 0; i < n_embd_; ++i) out[i] = approx_normal(rng);
  }

  const Options& o_;
  int n_embd_;
  float gain_ = 0;
  std::vector<int> source_;
};

// Generates, quantizes and streams every tensor's rows, in declaration order.
void write_tensors(gguf::Writer& w, const std::vector<Tensor>& tensors, const Weights& weights,
                   int n_threads) {
  kernels::ThreadPool pool(n_threads > 0 ? n_threads : kernels::physical_core_count());
  std::vector<std::vector<float>> scratch(static_cast<size_t>(pool.size()));
  std::vector<uint8_t> out;
  constexpr int64_t kChunkElements = int64_t{1} << 22;  // rows generated per pool job: ~16 MiB of f32
  for (size_t id = 0; id < tensors.size(); ++id) {
    const Tensor& t = tensors[id];
    const size_t row_bytes = *dtype_row_bytes(t.type, static_cast<uint64_t>(t.n_cols));
    const int64_t chunk_rows = std::max<int64_t>(1, kChunkElements / t.n_cols);
    for (int64_t first = 0; first < t.n_rows; first += chunk_rows) {
      const int64_t n_rows = std::min(chunk_rows, t.n_rows - first);
      out.resize(static_cast<size_t>(n_rows) * row_bytes);
      pool.run([&](int ith, int nth) {
        int64_t begin = 0, end = 0;
        kernels::ThreadPool::split(n_rows, ith, nth, begin, end);
        std::vector<float>& x = scratch[static_cast<size_t>(ith)];
        x.resize(static_cast<size_t>(t.n_cols));
        for (int64_t r = begin; r < end; ++r) {
          weights.row(id, t, first + r, x.data());
          quantize_row(t.type, x.data(), out.data() + static_cast<size_t>(r) * row_bytes, t.n_cols);
        }
      });
      w.write_tensor_data(out.data(), out.size());
    }
  }
}

void check_shape(const Shape& s, WeightType type, bool synthetic_vocab) {
  auto bad = [](const std::string& what) { throw std::runtime_error("synth: bad shape: " + what); };
  auto in = [&](const char* name, int v, int lo, int hi) {
    if (v < lo || v > hi)
      bad(std::string(name) + " = " + std::to_string(v) + ", expected " + std::to_string(lo) +
          ".." + std::to_string(hi));
  };
  in("layers", s.n_layers, 1, 1024);
  in("embd", s.n_embd, 1, 65536);
  in("ff", s.n_ff, 1, 262144);
  in("heads", s.n_heads, 1, 1024);
  in("kv-heads", s.n_kv_heads, 1, s.n_heads);
  in("vocab-size", s.n_vocab, synthetic_vocab ? 260 : 1, 1 << 22);
  in("ctx", s.n_ctx, 1, 1 << 24);
  if (s.n_embd % s.n_heads != 0) bad("embd must be a multiple of heads");
  if ((s.n_embd / s.n_heads) % 2 != 0) bad("the head size (embd / heads) must be even (RoPE pairs)");
  if (s.n_heads % s.n_kv_heads != 0) bad("heads must be a multiple of kv-heads");
  if (!(s.rope_base > 0) || !(s.rms_eps > 0)) bad("rope base and rms eps must be positive");
  const int block = type == WeightType::Q4_K_M ? 256
                    : (type == WeightType::Q8_0 || type == WeightType::Q4_0) ? 32 : 1;
  if (s.n_embd % block != 0 || s.n_ff % block != 0)
    bad("embd and ff must be multiples of " + std::to_string(block) + " for type " +
        std::string(weight_type_name(type)) + " (got " + std::to_string(s.n_embd) + ", " +
        std::to_string(s.n_ff) + ")");
}

// A byte-fallback SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens <0xXX>, then
// pieces "a", "▁a", "b", "▁b", ..., "aa", "▁aa", ... with falling scores.
void set_synthetic_vocab(gguf::Writer& w, int n_vocab) {
  gguf::Array tokens{gguf::ValueType::STRING, {}}, scores{gguf::ValueType::F32, {}},
      types{gguf::ValueType::I32, {}};
  auto add = [&](std::string piece, float score, int32_t type) {
    tokens.items.emplace_back(std::move(piece));
    scores.items.emplace_back(score);
    types.items.emplace_back(type);
  };
  enum : int32_t { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, BYTE = 6 };  // llama_token_type
  add("<unk>", 0.0f, UNKNOWN);
  add("<s>", 0.0f, CONTROL);
  add("</s>", 0.0f, CONTROL);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 0.0f, BYTE);
  }
  for (uint64_t i = 0; static_cast<int>(tokens.items.size()) < n_vocab; ++i) {
    std::string word;  // bijective base 26: a..z, aa..zz, ...
    for (uint64_t k = i / 2 + 1; k > 0; k = (k - 1) / 26) word.insert(word.begin(), char('a' + (k - 1) % 26));
    if (i % 2) word = "\xE2\x96\x81" + word;  // U+2581, SentencePiece's space
    add(std::move(word), -static_cast<float>(i), NORMAL);
  }
  w.set("tokenizer.ggml.model", std::string("llama"));
  w.set("tokenizer.ggml.pre", std::string("default"));
  w.set("tokenizer.ggml.tokens", std::move(tokens));
  w.set("tokenizer.ggml.scores", std::move(scores));
  w.set("tokenizer.ggml.token_type", std::move(types));
  w.set("tokenizer.ggml.bos_token_id", uint32_t{1});
  w.set("tokenizer.ggml.eos_token_id", uint32_t{2});
  w.set("tokenizer.ggml.unknown_token_id", uint32_t{0});
  w.set("tokenizer.ggml.add_bos_token", true);
  w.set("tokenizer.ggml.add_eos_token", false);
}

// Copies every tokenizer.* key of `path`; returns the number of tokens.
int copy_vocab(gguf::Writer& w, const std::string& path) {
  gguf::File f = gguf::File::open(path);
  const gguf::Value* tokens = f.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type() != gguf::ValueType::ARRAY)
    throw std::runtime_error("synth: " + path + " has no tokenizer.ggml.tokens array");
  const size_t n = tokens->as<gguf::Array>().items.size();
  if (n == 0 || n > (1u << 22)) throw std::runtime_error("synth: " + path + ": bad vocabulary size");
  for (const gguf::KeyValue& kv : f.metadata())
    if (kv.key.rfind("tokenizer.", 0) == 0) w.set(kv.key, kv.value);
  return static_cast<int>(n);
}

}  // namespace

std::optional<WeightType> parse_weight_type(std::string_view name) {
  for (WeightType t : {WeightType::Q4_K_M, WeightType::Q8_0, WeightType::Q4_0, WeightType::F16,
                       WeightType::BF16, WeightType::F32})
    if (name == weight_type_name(t)) return t;
  return std::nullopt;
}

std::string_view weight_type_name(WeightType t) {
  switch (t) {
    case WeightType::Q4_K_M: return "q4_k_m";
    case WeightType::Q8_0: return "q8_0";
    case WeightType::Q4_0: return "q4_0";
    case WeightType::F16: return "f16";
    case WeightType::BF16: return "bf16";
    case WeightType::F32: return "f32";
  }
  return "?";
}

Shape tinyllama_shape() { return Shape{}; }

Shape tiny_shape() {
  Shape s;
  s.n_layers = 2;
  s.n_embd = 256;
  s.n_ff = 768;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.n_vocab = 512;
  s.n_ctx = 512;
  return s;
}

Summary write_model(const std::string& path, const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  check_shape(o.shape, o.type, o.vocab_gguf.empty());
  const Shape& s = o.shape;

  gguf::Writer w;
  w.set("general.architecture", std::string("llama"));
  w.set("general.name", o.name);
  w.set("general.file_type", file_type(o.type));
  w.set("general.quantization_version", uint32_t{2});
  w.set("llama.context_length", static_cast<uint32_t>(s.n_ctx));
  w.set("llama.embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set("llama.block_count", static_cast<uint32_t>(s.n_layers));
  w.set("llama.feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set("llama.rope.dimension_count", static_cast<uint32_t>(s.n_embd / s.n_heads));
  w.set("llama.attention.head_count", static_cast<uint32_t>(s.n_heads));
  w.set("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_kv_heads));
  w.set("llama.attention.layer_norm_rms_epsilon", s.rms_eps);
  w.set("llama.rope.freq_base", s.rope_base);
  const int n_vocab = o.vocab_gguf.empty() ? s.n_vocab : copy_vocab(w, o.vocab_gguf);
  if (o.vocab_gguf.empty()) set_synthetic_vocab(w, n_vocab);
  w.set("llama.vocab_size", static_cast<uint32_t>(n_vocab));

  // Tensors in the order llama.cpp's converter writes them.
  const int64_t E = s.n_embd, F = s.n_ff, KV = int64_t{s.n_embd} / s.n_heads * s.n_kv_heads;
  std::vector<Tensor> tensors;
  auto add = [&](std::string name, Role role, int layer, int64_t cols, int64_t rows) {
    const DType type = role == Role::Norm ? DType::F32 : matrix_type(o.type, role, layer, s.n_layers);
    tensors.push_back({std::move(name), role, layer, cols, rows, type});
  };
  add("token_embd.weight", Role::TokenEmbd, -1, E, n_vocab);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", Role::Norm, l, E, 1);
    add(p + "attn_q.weight", Role::AttnQ, l, E, E);
    add(p + "attn_k.weight", Role::AttnK, l, E, KV);
    add(p + "attn_v.weight", Role::AttnV, l, E, KV);
    add(p + "attn_output.weight", Role::AttnOut, l, E, E);
    add(p + "ffn_norm.weight", Role::Norm, l, E, 1);
    add(p + "ffn_gate.weight", Role::FfnGate, l, E, F);
    add(p + "ffn_down.weight", Role::FfnDown, l, F, E);
    add(p + "ffn_up.weight", Role::FfnUp, l, E, F);
  }
  add("output_norm.weight", Role::Norm, -1, E, 1);
  add("output.weight", Role::Output, -1, E, n_vocab);

  Summary sum;
  sum.n_vocab = n_vocab;
  for (const Tensor& t : tensors) {
    if (t.role == Role::Norm) w.add_tensor(t.name, t.type, {static_cast<uint64_t>(t.n_cols)});
    else w.add_tensor(t.name, t.type, {static_cast<uint64_t>(t.n_cols), static_cast<uint64_t>(t.n_rows)});
    sum.n_params += static_cast<uint64_t>(t.n_cols * t.n_rows);
    sum.weight_bytes += *dtype_row_bytes(t.type, static_cast<uint64_t>(t.n_cols)) * static_cast<uint64_t>(t.n_rows);
  }

  const Weights weights(o, n_vocab);
  try {
    w.begin(path);
    write_tensors(w, tensors, weights, o.n_threads);
    w.finish();
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);  // no half-written model left behind
    throw;
  }

  std::error_code ec;
  sum.file_bytes = std::filesystem::file_size(path, ec);
  sum.bits_per_weight = 8.0 * static_cast<double>(sum.weight_bytes) / static_cast<double>(sum.n_params);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace edgellm::synth
