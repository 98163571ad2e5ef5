#include "describe.hpp"

#include <algorithm>
#include <vector>

#include "edgellm/dtype.hpp"
#include "edgellm/gguf.hpp"
#include "model.hpp"

namespace edgellm::engine {

namespace {

// llama.cpp's size class of a model ("1B"; each architecture's load_arch_hparams decides by the
// layer count and sometimes the width), "?B" when it has none.
std::string size_class(const HParams& hp) {
  const int n_layer = hp.n_layer, n_embd = hp.n_embd;
  switch (hp.arch->arch) {
    case Arch::llama:
      switch (n_layer) {
        case 16: case 22: return "1B";
        case 26: case 28: return "3B";
        case 30: return "256M";
        case 32: return hp.n_vocab == 49152 ? "3B" : (hp.n_vocab < 40000 ? "7B" : "8B");
        case 36: return "8B";
        case 40: return "13B";
        case 48: return "34B";
        case 60: return "30B";
        case 80: return hp.n_head == hp.n_head_kv ? "65B" : "70B";
        default: return "?B";
      }
    case Arch::qwen2:
      switch (n_layer) {
        case 24: return n_embd == 1024 ? "0.5B" : "1B";
        case 28: return n_embd == 1536 ? "1.5B" : "7B";
        case 32: return "7B";
        case 36: return "3B";
        case 40: return hp.n_head == 20 ? "4B" : "13B";
        case 48: return "14B";
        case 64: return "32B";
        case 80: return "70B";
        default: return "?B";
      }
    case Arch::qwen3:
      switch (n_layer) {
        case 28: return n_embd == 1024 ? "0.6B" : "1.7B";
        case 36: return n_embd == 2560 ? "4B" : "8B";
        case 40: return "14B";
        case 64: return "32B";
        default: return "?B";
      }
    case Arch::gemma2:
      switch (n_layer) {
        case 26: return "2B";
        case 42: return "9B";
        case 46: return "27B";
        default: return "?B";
      }
    case Arch::gemma3:
      switch (n_layer) {
        case 18: return "270M";
        case 26: return "1B";
        case 32: return "8B";
        case 34: return "4B";
        case 48: return "12B";
        case 62: return "27B";
        default: return "?B";
      }
    case Arch::phi3:
      switch (n_layer) {
        case 24: return "1B";
        case 32: return "3B";
        case 40: return "14B";
        default: return "?B";
      }
    case Arch::smollm3: return n_layer == 36 ? "3B" : "?B";
  }
  return "?B";
}

// llama.cpp's names of general.file_type values ("Q4_K - Medium").
std::string file_type_name(uint32_t ft) {
  switch (ft) {
    case 0: return "all F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K - Medium";
    case 11: return "Q3_K - Small";
    case 12: return "Q3_K - Medium";
    case 13: return "Q3_K - Large";
    case 14: return "Q4_K - Small";
    case 15: return "Q4_K - Medium";
    case 16: return "Q5_K - Small";
    case 17: return "Q5_K - Medium";
    case 18: return "Q6_K";
    case 19: return "IQ2_XXS - 2.0625 bpw";
    case 20: return "IQ2_XS - 2.3125 bpw";
    case 21: return "Q2_K - Small";
    case 22: return "IQ3_XS - 3.3 bpw";
    case 23: return "IQ3_XXS - 3.0625 bpw";
    case 24: return "IQ1_S - 1.5625 bpw";
    case 25: return "IQ4_NL - 4.5 bpw";
    case 26: return "IQ3_S - 3.4375 bpw";
    case 27: return "IQ3_S mix - 3.66 bpw";
    case 28: return "IQ2_S - 2.5 bpw";
    case 29: return "IQ2_M - 2.7 bpw";
    case 30: return "IQ4_XS - 4.25 bpw";
    case 31: return "IQ1_M - 1.75 bpw";
    case 32: return "BF16";
    case 36: return "TQ1_0 - 1.69 bpw ternary";
    case 37: return "TQ2_0 - 2.06 bpw ternary";
    default: return "unknown type " + std::to_string(ft);
  }
}

// Without general.file_type, llama.cpp names the file after its most common weight type.
uint32_t guess_file_type(const gguf::File& f) {
  std::vector<uint64_t> count(64, 0);
  for (const auto& t : f.tensors())
    if (t.n_dims >= 2 && static_cast<uint32_t>(t.type) < count.size()) ++count[static_cast<uint32_t>(t.type)];
  const auto most = static_cast<uint32_t>(std::max_element(count.begin(), count.end()) - count.begin());
  const auto info = dtype_info(most);
  return info && info->file_type >= 0 ? static_cast<uint32_t>(info->file_type) : 1000 + most;
}

}  // namespace

ModelDescription describe_model(const gguf::File& f, const HParams& hp) {
  ModelDescription d;
  d.architecture = f.get_or<std::string>("general.architecture", "");
  for (const auto& t : f.tensors()) {
    d.size_bytes += t.n_bytes;
    d.n_params += t.n_elements();
  }
  // A decoded token reads one row of the embedding table, unless the table is also the output
  // matrix (no output.weight), which reads it all.
  d.decode_bytes = d.size_bytes;
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (embd && f.find_tensor("output.weight") && embd->ne[1] > 0)
    d.decode_bytes = d.size_bytes - embd->n_bytes + embd->n_bytes / embd->ne[1];
  if (const auto* v = f.find("tokenizer.chat_template"); v && v->type() == gguf::ValueType::STRING)
    d.chat_template = v->as<std::string>();
  const auto ft = f.find("general.file_type");
  const uint32_t file_type = ft && ft->type() == gguf::ValueType::U32 ? ft->as<uint32_t>() : guess_file_type(f);
  d.description = d.architecture + " " + size_class(hp) + " " +
                  file_type_name(file_type);
  return d;
}

}  // namespace edgellm::engine
