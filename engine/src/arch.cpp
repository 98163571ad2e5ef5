#include "arch.hpp"

#include <array>
#include <stdexcept>

#include "edgellm/gguf.hpp"
#include "error.hpp"

namespace edgellm::engine {
namespace {

constexpr std::array<ArchInfo, 1> kArchs{{
    {.arch = Arch::llama,
     .name = "llama",
     .rope_mode = RopeMode::Norm,
     .ffn_activation = FfnActivation::Silu,
     .qkv_bias = false,
     .output_may_be_tied = true,
     .embd_scale_sqrt = false,
     .fused_qkv = false,
     .fused_gate_up = false},
}};

// Indexed by Key; the arch prefix is added in key().
constexpr std::array<std::string_view, 15> kKeySuffixes{
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
};
static_assert(kKeySuffixes.size() == static_cast<size_t>(Key::vocab_size) + 1);

struct TensorEntry {
  std::string_view name;
  bool per_layer;
};

// Indexed by Tensor.
constexpr std::array<TensorEntry, 14> kTensors{{
    {"token_embd", false},
    {"output_norm", false},
    {"output", false},
    {"rope_freqs", false},
    {"attn_norm", true},
    {"attn_q", true},
    {"attn_k", true},
    {"attn_v", true},
    {"attn_qkv", true},
    {"attn_output", true},
    {"ffn_norm", true},
    {"ffn_gate", true},
    {"ffn_up", true},
    {"ffn_down", true},
}};
static_assert(kTensors.size() == static_cast<size_t>(Tensor::ffn_down) + 1);

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

// One escaping rule for the whole library: the format layer's (its messages quote file text too).
std::string printable(std::string_view s, size_t max_bytes) { return gguf::printable(s, max_bytes); }

}  // namespace edgellm::engine
