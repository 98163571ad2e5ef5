// Synthetic GGUF writer (see edgellm/synth.hpp).
//
// Every row of every tensor is drawn from its own Rng, seeded from (seed, tensor, row), so the
// file does not depend on the number of threads. Rows are generated and quantized in chunks by
// the thread pool and streamed to the gguf::Writer: the whole model is never in memory.
//
// What each architecture's file holds is what llama.cpp's converter writes for it and what its
// loader (src/models/<arch>.cpp) reads, as in engine/src/arch.cpp's table.
#include "edgellm/synth.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "edgellm/dtype.hpp"
#include "edgellm/edgellm.hpp"
#include "edgellm/gguf.hpp"
#include "edgellm/kernels/dispatch.hpp"
#include "edgellm/kernels/thread_pool.hpp"
#include "edgellm/rng.hpp"

namespace edgellm::synth {

namespace {

using kernels::Rng;

constexpr std::array<std::string_view, 7> kArchs{"llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "smollm3"};

// edgellm_quantize's file types (edgellm.h), then the two this writer adds.
constexpr std::array<std::string_view, 19> kFileTypes{
    "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q3_K_M", "Q3_K_S", "Q3_K_L", "Q2_K", "Q6_K", "Q8_0",
    "Q4_0",   "Q4_1",   "Q5_0",   "Q5_1",   "IQ4_NL", "IQ4_XS", "F16",    "BF16", "F32"};

constexpr std::array<std::string_view, 4> kPresets{"tinyllama", "tiny", "qwen2.5-1.5b", "gemma-3-1b"};

// What an architecture's blocks carry beyond a Llama block.
struct ArchTensors {
  bool qkv_bias = false;      // qwen2: attn_{q,k,v}.bias
  bool qk_norm = false;       // qwen3, gemma3: attn_{q,k}_norm
  bool post_norms = false;    // gemma2, gemma3: post_attention_norm, post_ffw_norm
  bool fused = false;         // phi3: attn_qkv, and ffn_up holding gate | up (no ffn_gate)
};

ArchTensors arch_tensors(const std::string& a) {
  ArchTensors t;
  t.qkv_bias = a == "qwen2";
  t.qk_norm = a == "qwen3" || a == "gemma3";
  t.post_norms = a == "gemma2" || a == "gemma3";
  t.fused = a == "phi3";
  return t;
}

// ---- llama.cpp's Q4_K_M recipe (src/llama-quant.cpp, for a dense Llama) -----------------------
// Q4_K by default; Q6_K for output.weight (token_embd when there is none); attn_v and ffn_down
// get Q6_K in the layers where use_more_bits holds: the first and last eighth of the layers, and
// every third layer between. For 22 layers that is 0, 1, 4, 7, 10, 13, 16, 19, 20, 21.
bool use_more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

enum class Role {
  TokenEmbd, Norm, OutputNorm, AttnQ, AttnK, AttnV, AttnQkv, AttnOut, FfnGate, FfnUp, FfnDown, Output,
  // 1-D tensors besides the RMSNorm weights, each its own distribution (Weights::row)
  Bias, QkNorm, PostNorm, RopeLong, RopeShort
};

bool is_vector(Role r) { return r == Role::Norm || r == Role::OutputNorm || r >= Role::Bias; }

DType matrix_type(WeightType t, Role role, int layer, int n_layers, bool tied) {
  switch (t) {
    case WeightType::Q4_K_M:
      if (role == Role::Output || (tied && role == Role::TokenEmbd)) return DType::Q6_K;
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
  const auto info = dtype_info(matrix_type(t, Role::AttnQ, 0, 1, false));
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
  int64_t n_rows;   // ne[1] (1 for 1-D tensors)
  DType type;
};

// The weights. Normal mode: matrices and embeddings ~N(0, 0.02), the scale of trained Llamas;
// RMSNorm weights 1, except the per-head Q/K norms ~N(1, 0.3) and the post-norms ~N(1, 0.2)
// (so that a wrong head or channel order shows); Q/K/V biases ~N(0, 0.5) (large enough to move
// the attention); LongRoPE's long factors ~N(3, 0.5), short ones ~N(1.2, 0.1) (divisors > 1 of
// the RoPE frequencies, as Phi-3.5's). Every one stays positive where it must (|N| <= 3.46).
// Peaked mode: token t's embedding e_t has ~N(0, 1) entries, and output row perm[t] is
// (g / n_embd) e_t for a random permutation perm. The blocks' N(0, 0.02) matrices only nudge the
// residual stream, so after the final RMSNorm the hidden state is close to e_t and the logit of
// perm[t] is about g, while every other logit is a dot product of nearly orthogonal random vectors
// (about N(0, g / sqrt(n_embd))). g = ln(n_vocab) + 4 puts the top-1 probability near 0.95: the
// next token is perm[current] almost always, yet every layer still shifts the logits. With a tied
// output the LM head is the embedding itself, so the final norm's weight is g / n_embd instead:
// the same logit statistics, with the token itself as the likely successor.
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
    Rng rng(mix(mix(o_.seed, id), static_cast<uint64_t>(row)));
    auto normal = [&](float center, float sd) {
      for (int64_t i = 0; i < n; ++i) out[i] = center + sd * approx_normal(rng);
    };
    switch (t.role) {
      case Role::Norm: std::fill(out, out + n, 1.0f); return;
      case Role::OutputNorm:
        std::fill(out, out + n, o_.peaked && o_.shape.tied_output ? gain_ / static_cast<float>(n_embd_) : 1.0f);
        return;
      case Role::QkNorm: normal(1.0f, 0.3f); return;
      case Role::PostNorm: normal(1.0f, 0.2f); return;
      case Role::Bias: normal(0.0f, 0.5f); return;
      case Role::RopeLong: normal(3.0f, 0.5f); return;
      case Role::RopeShort: normal(1.2f, 0.1f); return;
      default: break;
    }
    if (o_.peaked && t.role == Role::TokenEmbd) {
      embedding(row, out);
    } else if (o_.peaked && t.role == Role::Output) {
      embedding(source_[static_cast<size_t>(row)], out);
      const float scale = gain_ / static_cast<float>(n_embd_);
      for (int64_t i = 0; i < n; ++i) out[i] *= scale;
    } else {
      normal(0.0f, 0.02f);
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

[[noreturn]] void bad(const std::string& what) { throw std::runtime_error("synth: bad shape: " + what); }

int head_dim_of(const Shape& s) { return s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_heads; }

bool known_arch(std::string_view a) { return std::find(kArchs.begin(), kArchs.end(), a) != kArchs.end(); }

// The element block of a directly written mix (rows must be whole blocks).
int block_of(WeightType t) {
  return t == WeightType::Q4_K_M ? 256 : (t == WeightType::Q8_0 || t == WeightType::Q4_0) ? 32 : 1;
}

// Whether every matrix row of the shape (n_embd, n_ff or the query width long) is whole blocks.
bool rows_fit(const Shape& s, int block) {
  return s.n_embd % block == 0 && s.n_ff % block == 0 && (head_dim_of(s) * s.n_heads) % block == 0;
}

void check_shape(const Shape& s, bool synthetic_vocab) {
  auto in = [&](const char* name, int v, int lo, int hi) {
    if (v < lo || v > hi)
      bad(std::string(name) + " = " + std::to_string(v) + ", expected " + std::to_string(lo) +
          ".." + std::to_string(hi));
  };
  if (!known_arch(s.arch)) bad("unknown architecture '" + s.arch + "'");
  in("layers", s.n_layers, 1, 1024);
  in("embd", s.n_embd, 1, 65536);
  in("ff", s.n_ff, 1, 262144);
  in("heads", s.n_heads, 1, 1024);
  in("kv-heads", s.n_kv_heads, 1, s.n_heads);
  in("head-dim", s.head_dim, 0, 1024);
  in("vocab-size", s.n_vocab, synthetic_vocab ? 260 : 1, 1 << 22);
  in("ctx", s.n_ctx, 1, 1 << 24);
  if (s.head_dim == 0 && s.n_embd % s.n_heads != 0) bad("embd must be a multiple of heads (or give head-dim)");
  const int hd = head_dim_of(s);
  if (hd % 2 != 0) bad("the head size must be even (RoPE pairs)");
  if (s.n_heads % s.n_kv_heads != 0) bad("heads must be a multiple of kv-heads");
  if (!(s.rope_base > 0) || !(s.rms_eps > 0)) bad("rope base and rms eps must be positive");
  in("n_rot", s.n_rot, 0, hd);
  if (s.n_rot % 2 != 0) bad("n_rot must be even");
  if (s.arch == "llama" && s.n_rot != 0 && s.n_rot != hd) bad("llama has no partial rotary (llama.cpp refuses it)");
  in("sliding_window", s.sliding_window, 0, 1 << 24);
  in("swa_pattern", s.swa_pattern, 0, s.n_layers + 1);
  in("rope_orig_ctx", s.rope_orig_ctx, 0, 1 << 24);
  for (float f : {s.rope_base_swa, s.attn_softcap, s.final_softcap, s.rope_attn_factor})
    if (!(f >= 0) || !std::isfinite(f)) bad("rope/soft-cap values must be finite and >= 0");
  // A key the architecture does not read would be a file that means something else to a reader.
  const bool gemma = s.arch == "gemma2" || s.arch == "gemma3";
  auto only = [&](bool set, bool allowed, const char* key) {
    if (set && !allowed) bad(std::string(key) + " is not a key of " + s.arch);
  };
  only(s.sliding_window > 0, gemma, "attention.sliding_window");
  only(s.swa_pattern > 0, gemma, "attention.sliding_window_pattern");
  only(s.rope_base_swa > 0, gemma, "rope.freq_base_swa");
  only(s.attn_softcap > 0, s.arch == "gemma2", "attn_logit_softcapping");
  only(s.final_softcap > 0, gemma, "final_logit_softcapping");
  only(s.rope_orig_ctx > 0, s.arch == "phi3", "rope.scaling.original_context_length");
  only(s.rope_attn_factor > 0, s.arch == "phi3", "rope.scaling.attn_factor");
}

void check_mix(const Shape& s, WeightType type) {
  const int block = block_of(type);
  if (!rows_fit(s, block))
    bad("embd, ff and the query width (heads * head-dim) must be multiples of " + std::to_string(block) +
        " for type " + std::string(weight_type_name(type)) + " (got " + std::to_string(s.n_embd) + ", " +
        std::to_string(s.n_ff) + ", " + std::to_string(head_dim_of(s) * s.n_heads) + ")");
}

// A byte-fallback SentencePiece vocabulary of any size: <unk>, <s>, </s>, the 256 byte tokens
// <0xXX>, then pieces "a", "▁a", "b", "▁b", ..., "aa", "▁aa", ... with falling scores.
void set_synthetic_vocab(gguf::Writer& w, int n_vocab) {
  gguf::Array tokens{gguf::ValueType::STRING, {}}, scores{gguf::ValueType::F32, {}},
      types{gguf::ValueType::I32, {}};
  tokens.items.reserve(static_cast<size_t>(n_vocab));
  scores.items.reserve(static_cast<size_t>(n_vocab));
  types.items.reserve(static_cast<size_t>(n_vocab));
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

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

// The mix of this writer that is the file edgellm_quantize makes for `file_type` (same tensor
// types and bytes: both quantize with the type table's quantize_row_ref), if there is one. The
// uniform types have no recipe rules; Q4_K_M's recipe is the one written here only for llama.
std::optional<WeightType> same_mix(const std::string& file_type, const Shape& s) {
  std::optional<WeightType> t;
  if (file_type == "F32") t = WeightType::F32;
  else if (file_type == "F16") t = WeightType::F16;
  else if (file_type == "BF16") t = WeightType::BF16;
  else if (file_type == "Q8_0") t = WeightType::Q8_0;
  else if (file_type == "Q4_K_M" && s.arch == "llama") t = WeightType::Q4_K_M;
  if (t && !rows_fit(s, block_of(*t))) return std::nullopt;  // llama.cpp's fallbacks apply
  return t;
}

// Writes the model in the directly written mix o.type.
Summary write_direct(const std::string& path, const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  check_shape(o.shape, o.vocab_gguf.empty());
  check_mix(o.shape, o.type);
  const Shape& s = o.shape;
  const std::string a = s.arch + ".";
  const ArchTensors at = arch_tensors(s.arch);
  const int hd = head_dim_of(s);

  gguf::Writer w;
  w.set("general.architecture", s.arch);
  w.set("general.name", o.name);
  w.set("general.file_type", file_type(o.type));
  w.set("general.quantization_version", uint32_t{2});
  w.set(a + "context_length", static_cast<uint32_t>(s.n_ctx));
  w.set(a + "embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set(a + "block_count", static_cast<uint32_t>(s.n_layers));
  w.set(a + "feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set(a + "rope.dimension_count", static_cast<uint32_t>(s.n_rot > 0 ? s.n_rot : hd));
  w.set(a + "attention.head_count", static_cast<uint32_t>(s.n_heads));
  w.set(a + "attention.head_count_kv", static_cast<uint32_t>(s.n_kv_heads));
  if (s.head_dim > 0) {
    w.set(a + "attention.key_length", static_cast<uint32_t>(hd));
    w.set(a + "attention.value_length", static_cast<uint32_t>(hd));
  }
  w.set(a + "attention.layer_norm_rms_epsilon", s.rms_eps);
  w.set(a + "rope.freq_base", s.rope_base);
  if (s.rope_base_swa > 0) w.set(a + "rope.freq_base_swa", s.rope_base_swa);
  if (s.sliding_window > 0) w.set(a + "attention.sliding_window", static_cast<uint32_t>(s.sliding_window));
  if (s.swa_pattern > 0) w.set(a + "attention.sliding_window_pattern", static_cast<uint32_t>(s.swa_pattern));
  if (s.attn_softcap > 0) w.set(a + "attn_logit_softcapping", s.attn_softcap);
  if (s.final_softcap > 0) w.set(a + "final_logit_softcapping", s.final_softcap);
  if (s.rope_attn_factor > 0) w.set(a + "rope.scaling.attn_factor", s.rope_attn_factor);
  if (s.rope_orig_ctx > 0) w.set(a + "rope.scaling.original_context_length", static_cast<uint32_t>(s.rope_orig_ctx));
  const int n_vocab = o.vocab_gguf.empty() ? s.n_vocab : copy_vocab(w, o.vocab_gguf);
  if (o.vocab_gguf.empty()) set_synthetic_vocab(w, n_vocab);
  w.set(a + "vocab_size", static_cast<uint32_t>(n_vocab));

  // Tensors in the order llama.cpp's converter writes them (the Llama ones first, in the order
  // and so with the weights earlier versions of this writer gave them).
  const int64_t E = s.n_embd, F = s.n_ff, Q = int64_t{hd} * s.n_heads, KV = int64_t{hd} * s.n_kv_heads;
  std::vector<Tensor> tensors;
  auto add = [&](std::string name, Role role, int layer, int64_t cols, int64_t rows) {
    const DType type = is_vector(role) ? DType::F32 : matrix_type(o.type, role, layer, s.n_layers, s.tied_output);
    tensors.push_back({std::move(name), role, layer, cols, rows, type});
  };
  add("token_embd.weight", Role::TokenEmbd, -1, E, n_vocab);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", Role::Norm, l, E, 1);
    if (at.fused) {
      add(p + "attn_qkv.weight", Role::AttnQkv, l, E, Q + 2 * KV);  // rows q | k | v
    } else {
      add(p + "attn_q.weight", Role::AttnQ, l, E, Q);
      if (at.qkv_bias) add(p + "attn_q.bias", Role::Bias, l, Q, 1);
      add(p + "attn_k.weight", Role::AttnK, l, E, KV);
      if (at.qkv_bias) add(p + "attn_k.bias", Role::Bias, l, KV, 1);
      add(p + "attn_v.weight", Role::AttnV, l, E, KV);
      if (at.qkv_bias) add(p + "attn_v.bias", Role::Bias, l, KV, 1);
    }
    if (at.qk_norm) {
      add(p + "attn_q_norm.weight", Role::QkNorm, l, hd, 1);
      add(p + "attn_k_norm.weight", Role::QkNorm, l, hd, 1);
    }
    add(p + "attn_output.weight", Role::AttnOut, l, Q, E);
    if (at.post_norms) add(p + "post_attention_norm.weight", Role::PostNorm, l, E, 1);
    add(p + "ffn_norm.weight", Role::Norm, l, E, 1);
    if (!at.fused) add(p + "ffn_gate.weight", Role::FfnGate, l, E, F);
    add(p + "ffn_down.weight", Role::FfnDown, l, F, E);
    add(p + "ffn_up.weight", Role::FfnUp, l, E, at.fused ? 2 * F : F);  // phi3: rows gate | up
    if (at.post_norms) add(p + "post_ffw_norm.weight", Role::PostNorm, l, E, 1);
  }
  add("output_norm.weight", Role::OutputNorm, -1, E, 1);
  if (!s.tied_output) add("output.weight", Role::Output, -1, E, n_vocab);
  if (s.rope_orig_ctx > 0) {  // LongRoPE: one divisor per rotated pair
    const int n_rot = s.n_rot > 0 ? s.n_rot : hd;
    add("rope_factors_long.weight", Role::RopeLong, -1, n_rot / 2, 1);
    add("rope_factors_short.weight", Role::RopeShort, -1, n_rot / 2, 1);
  }

  Summary sum;
  sum.n_vocab = n_vocab;
  for (const Tensor& t : tensors) {
    if (is_vector(t.role)) w.add_tensor(t.name, t.type, {static_cast<uint64_t>(t.n_cols)});
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

// Writes the model as F32 beside `path`, then edgellm_quantize's `file_type` of it to `path`.
Summary write_requantized(const std::string& path, const Options& o, const std::string& file_type) {
  const auto t0 = std::chrono::steady_clock::now();
  Options f32 = o;
  f32.type = WeightType::F32;
  f32.file_type.clear();
  const std::string tmp = path + ".f32.part";
  Summary sum;
  try {
    sum = write_direct(tmp, f32);
    edgellm::quantize(tmp, path, file_type, {}, o.n_threads);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  const gguf::File f = gguf::File::open(path);
  sum.weight_bytes = 0;
  for (const gguf::TensorInfo& t : f.tensors()) sum.weight_bytes += t.n_bytes;
  sum.file_bytes = std::filesystem::file_size(path, ec);
  sum.bits_per_weight = 8.0 * static_cast<double>(sum.weight_bytes) / static_cast<double>(sum.n_params);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
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

std::span<const std::string_view> file_type_names() { return kFileTypes; }
std::span<const std::string_view> architectures() { return kArchs; }
std::span<const std::string_view> preset_names() { return kPresets; }

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

Shape with_arch(Shape s, std::string_view arch) {
  if (!known_arch(arch)) throw std::runtime_error("synth: unknown architecture '" + std::string(arch) + "'");
  s.arch = std::string(arch);
  if (arch == "qwen2" || arch == "qwen3") {
    s.rope_base = 1e6f;
    s.rms_eps = 1e-6f;
  } else if (arch == "gemma2") {  // Gemma 2 2B/9B: config.json's soft-caps and window
    s.rms_eps = 1e-6f;
    s.attn_softcap = 50.0f;
    s.final_softcap = 30.0f;
    s.sliding_window = 4096;
    s.tied_output = true;
  } else if (arch == "gemma3") {  // Gemma 3 1B (4B and up: window 1024)
    s.rope_base = 1e6f;
    s.rms_eps = 1e-6f;
    s.sliding_window = 512;
    s.tied_output = true;
  } else if (arch == "phi3") {  // Phi-3.5-mini: LongRoPE from 4096, attn_factor sqrt(1 + ln 32 / ln 4096)
    s.rope_orig_ctx = 4096;
    s.rope_attn_factor = 1.1902380714f;
  } else if (arch == "smollm3") {
    s.rope_base = 5e6f;
    s.rms_eps = 1e-6f;
  }
  return s;
}

std::optional<Shape> preset_shape(std::string_view name) {
  if (name == "tinyllama") return tinyllama_shape();
  if (name == "tiny") return tiny_shape();
  if (name == "qwen2.5-1.5b") {  // Qwen2.5-1.5B(-Instruct) config.json
    Shape s = with_arch(tinyllama_shape(), "qwen2");
    s.n_layers = 28;
    s.n_embd = 1536;
    s.n_ff = 8960;
    s.n_heads = 12;
    s.n_kv_heads = 2;  // head_dim 128 = 1536 / 12
    s.n_vocab = 151936;
    s.n_ctx = 32768;
    s.tied_output = true;
    return s;
  }
  if (name == "gemma-3-1b") {  // gemma-3-1b-it config.json
    Shape s = with_arch(tinyllama_shape(), "gemma3");
    s.n_layers = 26;
    s.n_embd = 1152;
    s.n_ff = 6912;
    s.n_heads = 4;
    s.n_kv_heads = 1;
    s.head_dim = 256;  // the query is 1024 wide, not n_embd
    s.n_vocab = 262144;
    s.n_ctx = 32768;
    return s;
  }
  return std::nullopt;
}

Summary write_model(const std::string& path, const Options& o) {
  if (!o.file_type.empty()) {
    const std::string ft = upper(o.file_type);
    if (std::find(kFileTypes.begin(), kFileTypes.end(), ft) == kFileTypes.end())
      throw std::runtime_error("synth: unknown file type '" + o.file_type + "'");
    check_shape(o.shape, o.vocab_gguf.empty());  // before writing gigabytes of F32
    if (const auto mix = same_mix(ft, o.shape)) {
      Options d = o;
      d.type = *mix;
      d.file_type.clear();
      return write_direct(path, d);
    }
    return write_requantized(path, o, ft);
  }
  if (o.type == WeightType::Q4_K_M && o.shape.arch != "llama") {  // its recipe, with its fallbacks
    check_shape(o.shape, o.vocab_gguf.empty());
    return write_requantized(path, o, "Q4_K_M");
  }
  return write_direct(path, o);
}

}  // namespace edgellm::synth
