#include "arch.hpp"

#include <array>
#include <stdexcept>

#include "edgellm/gguf.hpp"
#include "error.hpp"

namespace edgellm::engine {
namespace {

// Facts from llama.cpp's src/llama-arch.cpp (names), src/llama-model.cpp (RoPE types) and
// src/models/<arch>.cpp (each graph and its hparams).
constexpr ArchInfo kLlamaLike{.arch = Arch::llama,
                              .name = "llama",
                              .rope_mode = RopeMode::Norm,
                              .ffn_activation = FfnActivation::Silu,
                              .output_may_be_tied = true,
                              .embd_scale_sqrt = false,
                              .qk_norm = false,
                              .post_norms = false,
                              .fused_gate_up = false,
                              .attn_softcap = false,
                              .final_softcap_key = false,
                              .final_softcap = 0.0f,
                              .swa_pattern = 0,
                              .swa_window = 0,
                              .no_rope_layer_step = 0,
                              .gemma_attn_scale = false,
                              .rope_factors_long_short = false};

constexpr ArchInfo with(ArchInfo a, Arch arch, std::string_view name) {
  a.arch = arch;
  a.name = name;
  return a;
}

constexpr ArchInfo qwen2() {
  ArchInfo a = with(kLlamaLike, Arch::qwen2, "qwen2");  // + Q/K/V biases (optional, bound if present)
  a.rope_mode = RopeMode::Neox;
  return a;
}
constexpr ArchInfo qwen3() {
  ArchInfo a = with(kLlamaLike, Arch::qwen3, "qwen3");
  a.rope_mode = RopeMode::Neox;
  a.qk_norm = true;
  return a;
}
constexpr ArchInfo gemma2() {
  ArchInfo a = with(kLlamaLike, Arch::gemma2, "gemma2");
  a.rope_mode = RopeMode::Neox;
  a.ffn_activation = FfnActivation::Gelu;
  a.embd_scale_sqrt = true;
  a.post_norms = true;
  a.attn_softcap = true;
  a.final_softcap_key = true;
  a.final_softcap = 30.0f;
  a.swa_pattern = 2;
  a.swa_window = 4096;
  a.gemma_attn_scale = true;
  return a;
}
constexpr ArchInfo gemma3() {
  ArchInfo a = with(kLlamaLike, Arch::gemma3, "gemma3");
  a.rope_mode = RopeMode::Neox;
  a.ffn_activation = FfnActivation::Gelu;
  a.embd_scale_sqrt = true;
  a.qk_norm = true;
  a.post_norms = true;
  a.final_softcap_key = true;
  a.swa_pattern = 6;
  a.gemma_attn_scale = true;
  return a;
}
constexpr ArchInfo phi3() {
  ArchInfo a = with(kLlamaLike, Arch::phi3, "phi3");  // + fused attn_qkv (optional in general)
  a.rope_mode = RopeMode::Neox;
  a.fused_gate_up = true;
  a.rope_factors_long_short = true;
  return a;
}
constexpr ArchInfo smollm3() {
  ArchInfo a = with(kLlamaLike, Arch::smollm3, "smollm3");
  a.no_rope_layer_step = 4;
  return a;
}

constexpr std::array<ArchInfo, 7> kArchs{kLlamaLike, qwen2(), qwen3(), gemma2(), gemma3(), phi3(), smollm3()};

// Indexed by Key; the arch prefix is added in key().
constexpr std::array<std::string_view, 22> kKeySuffixes{
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "attention.layer_norm_rms_epsilon",
    "rope.dimension_count",
    "rope.freq_base",
    "rope.scaling.type",
    "rope.scaling.factor",
    "rope.scale_linear",
    "vocab_size",
    "rope.freq_base_swa",
    "rope.scaling.attn_factor",
    "rope.scaling.original_context_length",
    "attention.sliding_window",
    "attention.sliding_window_pattern",
    "attn_logit_softcapping",
    "final_logit_softcapping",
};
static_assert(kKeySuffixes.size() == static_cast<size_t>(Key::final_logit_softcapping) + 1);

struct TensorEntry {
  std::string_view name;
  bool per_layer;
};

// Indexed by Tensor.
constexpr std::array<TensorEntry, 20> kTensors{{
    {"token_embd", false},
    {"output_norm", false},
    {"output", false},
    {"rope_freqs", false},
    {"rope_factors_long", false},
    {"rope_factors_short", false},
    {"attn_norm", true},
    {"attn_q", true},
    {"attn_k", true},
    {"attn_v", true},
    {"attn_qkv", true},
    {"attn_q_norm", true},
    {"attn_k_norm", true},
    {"attn_output", true},
    {"post_attention_norm", true},
    {"ffn_norm", true},
    {"ffn_gate", true},
    {"ffn_up", true},
    {"ffn_down", true},
    {"post_ffw_norm", true},
}};
static_assert(kTensors.size() == static_cast<size_t>(Tensor::ffn_post_norm) + 1);

}  // namespace

std::span<const ArchInfo> supported_archs() { return kArchs; }

const ArchInfo& arch_info(Arch arch) {
  for (const ArchInfo& a : kArchs)
    if (a.arch == arch) return a;
  throw std::invalid_argument("arch_info: Arch value without a table entry");
}

const ArchInfo* find_arch(std::string_view name) {
  for (const ArchInfo& a : kArchs)
    if (a.name == name) return &a;
  return nullptr;
}

const ArchInfo& arch_info(std::string_view name) {
  if (const ArchInfo* a = find_arch(name)) return *a;
  std::string names;
  for (const ArchInfo& a : kArchs) {
    if (!names.empty()) names += ", ";
    names += "'";
    names += a.name;
    names += "'";
  }
  throw Error(Error::Kind::Unsupported, "model: architecture '" + printable(name) +
                                            "' is not supported (supported: " + names + ")");
}

std::string_view key_suffix(Key k) { return kKeySuffixes[static_cast<size_t>(k)]; }

std::string key(const ArchInfo& arch, Key k) {
  std::string s(arch.name);
  s += '.';
  s += key_suffix(k);
  return s;
}

std::string key(Arch arch, Key k) { return key(arch_info(arch), k); }

std::string_view tensor_base_name(Tensor t) { return kTensors[static_cast<size_t>(t)].name; }

bool is_per_layer(Tensor t) { return kTensors[static_cast<size_t>(t)].per_layer; }

std::string tensor_name(Tensor t, int layer, TensorPart part) {
  if (is_per_layer(t) != (layer >= 0) || layer < -1)
    throw std::invalid_argument("tensor_name: '" + std::string(tensor_base_name(t)) +
                                (is_per_layer(t) ? "' needs a layer" : "' takes no layer"));
  std::string s;
  if (layer >= 0) {
    s = "blk.";
    s += std::to_string(layer);
    s += '.';
  }
  s += tensor_base_name(t);
  s += part == TensorPart::weight ? ".weight" : ".bias";
  return s;
}

int tensor_layer(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int n = 0;
  size_t i = 4;
  for (; i < name.size() && i < 13 && name[i] >= '0' && name[i] <= '9'; ++i) n = n * 10 + (name[i] - '0');
  return i > 4 && i < name.size() && name[i] == '.' ? n : -1;
}

// One escaping rule for the whole library: the format layer's (its messages quote file text too).
std::string printable(std::string_view s, size_t max_bytes) { return gguf::printable(s, max_bytes); }

}  // namespace edgellm::engine
