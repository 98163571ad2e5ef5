#include "model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "edgellm/kernels/quants.hpp"
#include "error.hpp"

namespace edgellm::engine {
namespace {

[[noreturn]] void fail(Error::Kind kind, const std::string& what) { throw Error(kind, what); }

// An integer key of any integer type (converters write u32, i32 or u64); `fallback` when absent.
int64_t get_int(const gguf::File& f, const std::string& key, int64_t fallback, bool required) {
  const gguf::Value* v = f.find(key);
  if (!v) {
    if (required) fail(Error::Kind::Format, "model: missing metadata key '" + key + "'");
    return fallback;
  }
  return std::visit(
      [&](const auto& x) -> int64_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_same_v<T, uint64_t>) {
            if (x > uint64_t{INT64_MAX}) fail(Error::Kind::Format, "model: '" + key + "' is too large");
          }
          return static_cast<int64_t>(x);
        } else {
          fail(Error::Kind::Format, "model: '" + key + "' is a " + gguf::describe_type(*v) +
                                        ", expected an integer");
        }
      },
      v->v);
}

// A float key stored as f32 or f64.
float get_float(const gguf::File& f, const std::string& key, float fallback) {
  const gguf::Value* v = f.find(key);
  if (!v) return fallback;
  if (const float* x = std::get_if<float>(&v->v)) return *x;
  if (const double* x = std::get_if<double>(&v->v)) return static_cast<float>(*x);
  fail(Error::Kind::Format, "model: '" + key + "' is a " + gguf::describe_type(*v) + ", expected a float");
}

// A positive count that fits an int (shapes are multiplied together later).
int positive(const std::string& key, int64_t v) {
  if (v <= 0 || v > (int64_t{1} << 24))
    fail(Error::Kind::Format, "model: '" + key + "' = " + std::to_string(v) + " is out of range");
  return static_cast<int>(v);
}

// The scalar table has a row for every type any ISA computes with (each ISA table starts from it).
bool weight_type_supported(DType t) { return kernels::matmul_supports(*kernels::kernels_for(kernels::Isa::scalar), t); }

// "q4_0, q8_0, ...": the weight types the type table has rows for, for messages.
std::string supported_weight_types() {
  std::string s;
  for (uint32_t id = 0; id < kernels::KernelSet::kTypeSlots; ++id) {
    if (!weight_type_supported(static_cast<DType>(id))) continue;
    if (!s.empty()) s += ", ";
    s += dtype_name(id);
  }
  return s;
}

std::string shape_string(const gguf::TensorInfo& t) {
  std::string s = "[";
  for (uint32_t i = 0; i < t.n_dims; ++i) {
    if (i) s += ", ";
    s += std::to_string(t.ne[i]);
  }
  s += "]";
  return s;
}

const gguf::TensorInfo& find(const gguf::File& f, const std::string& name) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  if (!t) fail(Error::Kind::Format, "model: tensor '" + name + "' is missing");
  return *t;
}

void check_shape(const gguf::TensorInfo& t, uint64_t ne0, uint64_t ne1) {
  if (t.ne[0] != ne0 || t.ne[1] != ne1 || t.ne[2] != 1 || t.ne[3] != 1) {
    std::string want = "[";
    want += std::to_string(ne0);
    if (ne1 != 1) {
      want += ", ";
      want += std::to_string(ne1);
    }
    want += "]";
    fail(Error::Kind::Format, "model: tensor '" + t.name + "' has shape " + shape_string(t) +
                                  ", expected " + want);
  }
}

// A weight matrix of `rows` output features by `cols` input features (ggml ne = [cols, rows]).
kernels::WeightMatrix bind_matrix(const gguf::TensorInfo& t, int64_t cols, int64_t rows) {
  check_shape(t, static_cast<uint64_t>(cols), static_cast<uint64_t>(rows));
  if (!weight_type_supported(t.type))
    fail(Error::Kind::Unsupported, "model: tensor '" + t.name + "' has type " +
                                       dtype_name(static_cast<uint32_t>(t.type)) +
                                       ", which this engine cannot compute with (supported: " +
                                       supported_weight_types() + ")");
  const auto row_bytes = dtype_row_bytes(t.type, static_cast<uint64_t>(cols));
  if (!row_bytes || *row_bytes * static_cast<uint64_t>(rows) != t.n_bytes)
    fail(Error::Kind::Format, "model: tensor '" + t.name + "': rows of " + std::to_string(cols) +
                                  " are not whole " + dtype_name(static_cast<uint32_t>(t.type)) +
                                  " blocks");
  kernels::WeightMatrix w;
  w.type = t.type;
  w.data = t.data;
  w.rows = rows;
  w.cols = cols;
  w.row_bytes = static_cast<size_t>(*row_bytes);
  return w;
}

// A vector of n F32 values (norm weights, biases, rope_freqs).
const float* bind_norm(const gguf::TensorInfo& t, int64_t n) {
  check_shape(t, static_cast<uint64_t>(n), 1);
  if (t.type != DType::F32)
    fail(Error::Kind::Unsupported, "model: tensor '" + t.name + "' has type " +
                                       dtype_name(static_cast<uint32_t>(t.type)) + ", expected f32");
  return reinterpret_cast<const float*>(t.data);
}

// An integer or bool as 0/1 (the items of attention.sliding_window_pattern's per-layer form).
bool as_flag(const gguf::Value& v, const std::string& key) {
  return std::visit(
      [&](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T>) return x != 0;
        else fail(Error::Kind::Format, "model: '" + key + "' holds a " + gguf::describe_type(v) +
                                           ", expected bools or integers");
      },
      v.v);
}

// Which layers use the sliding window: the per-layer array or the period n of
// attention.sliding_window_pattern (layer l slides when l % n < n - 1; n == 0: every layer), else
// the architecture's period, as llama.cpp's set_swa_pattern.
std::vector<uint8_t> swa_layers(const gguf::File& f, const ArchInfo& arch, int n_layer) {
  const std::string k = key(arch, Key::attention_sliding_window_pattern);
  std::vector<uint8_t> is_swa(static_cast<size_t>(n_layer), 0);
  int64_t period = arch.swa_pattern;
  if (const gguf::Value* v = f.find(k)) {
    if (const gguf::Array* a = std::get_if<gguf::Array>(&v->v)) {
      if (a->items.size() < is_swa.size())
        fail(Error::Kind::Format, "model: '" + k + "' has " + std::to_string(a->items.size()) +
                                      " entries, fewer than the " + std::to_string(n_layer) + " layers");
      for (size_t l = 0; l < is_swa.size(); ++l) is_swa[l] = as_flag(a->items[l], k) ? 1 : 0;
      return is_swa;
    }
    period = get_int(f, k, 0, true);
    if (period < 0 || period > n_layer + 1)
      fail(Error::Kind::Format, "model: '" + k + "' = " + std::to_string(period) + " is out of range");
  }
  for (int l = 0; l < n_layer; ++l) is_swa[static_cast<size_t>(l)] = period == 0 || l % period < period - 1;
  return is_swa;
}

// A float key that must be finite and >= 0 (softcaps, scales).
float non_negative(const gguf::File& f, const std::string& key, float fallback) {
  const float v = get_float(f, key, fallback);
  if (!std::isfinite(v) || v < 0)
    fail(Error::Kind::Format, "model: '" + key + "' = " + std::to_string(v) + " is out of range");
  return v;
}

// Rows [first, first + n) of a bound matrix (a fused tensor's parts: rows are contiguous).
kernels::WeightMatrix row_range(const kernels::WeightMatrix& w, int64_t first, int64_t n) {
  kernels::WeightMatrix part = w;
  part.data = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(first) * w.row_bytes;
  part.rows = n;
  return part;
}

}  // namespace

HParams read_hparams(const gguf::File& f) {
  const std::string* arch_name = nullptr;
  if (const gguf::Value* v = f.find(std::string(kArchitectureKey))) arch_name = std::get_if<std::string>(&v->v);
  if (!arch_name)
    fail(Error::Kind::Format, "model: '" + std::string(kArchitectureKey) + "' is missing or not a string");
  const ArchInfo& arch = arch_info(*arch_name);
  auto k = [&](Key which) { return key(arch, which); };

  HParams hp;
  hp.arch = &arch;
  auto need = [&](Key which) { return positive(k(which), get_int(f, k(which), 0, true)); };
  hp.n_layer = need(Key::block_count);
  hp.n_embd = need(Key::embedding_length);
  hp.n_ff = need(Key::feed_forward_length);
  hp.n_head = need(Key::attention_head_count);
  hp.n_head_kv = positive(k(Key::attention_head_count_kv),
                          get_int(f, k(Key::attention_head_count_kv), hp.n_head, false));
  if (hp.n_head % hp.n_head_kv != 0)
    fail(Error::Kind::Format, "model: head_count " + std::to_string(hp.n_head) +
                                  " is not a multiple of head_count_kv " + std::to_string(hp.n_head_kv));
  // head_dim: attention.key_length when the file has it (Qwen3, Gemma, Mistral-Nemo-style Llama
  // files: the Q projection need not be n_embd wide), else n_embd / n_head.
  const bool has_key_length = f.find(k(Key::attention_key_length)) != nullptr;
  if (!has_key_length && hp.n_embd % hp.n_head != 0)
    fail(Error::Kind::Format, "model: embedding_length " + std::to_string(hp.n_embd) +
                                  " is not a multiple of head_count " + std::to_string(hp.n_head) +
                                  " and attention.key_length is absent");
  hp.head_dim = positive(k(Key::attention_key_length),
                         get_int(f, k(Key::attention_key_length), hp.n_embd / hp.n_head, false));
  const int value_length = positive(k(Key::attention_value_length),
                                    get_int(f, k(Key::attention_value_length), hp.head_dim, false));
  if (value_length != hp.head_dim)
    fail(Error::Kind::Unsupported, "model: attention.value_length " + std::to_string(value_length) +
                                       " differs from key_length " + std::to_string(hp.head_dim) +
                                       ", which this engine does not run");
  if (hp.head_dim % 2 != 0 || hp.head_dim > 1024)
    fail(Error::Kind::Unsupported, "model: head_dim " + std::to_string(hp.head_dim) +
                                       " is not supported (even, at most 1024)");
  hp.n_rot = positive(k(Key::rope_dimension_count), get_int(f, k(Key::rope_dimension_count), hp.head_dim, false));
  if (hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0)
    fail(Error::Kind::Format, "model: rope.dimension_count " + std::to_string(hp.n_rot) +
                                  " must be even and at most head_dim " + std::to_string(hp.head_dim));
  // llama.cpp refuses partial rotary for Llama (n_rot must be head_dim there).
  if (arch.arch == Arch::llama && hp.n_rot != hp.head_dim)
    fail(Error::Kind::Format, "model: rope.dimension_count " + std::to_string(hp.n_rot) +
                                  " differs from head_dim " + std::to_string(hp.head_dim) +
                                  ", which a llama model cannot have");
  hp.rope_freq_base = get_float(f, k(Key::rope_freq_base), 10000.0f);
  hp.rms_eps = get_float(f, k(Key::attention_layer_norm_rms_epsilon), 1e-5f);
  if (!(hp.rope_freq_base > 0) || !(hp.rms_eps >= 0) || !std::isfinite(hp.rms_eps))
    fail(Error::Kind::Format, "model: rope.freq_base or layer_norm_rms_epsilon out of range");

  // RoPE scaling: none or linear (positions divided by the factor); others change the angles.
  const std::string scaling_key = k(Key::rope_scaling_type);
  const gguf::Value* scaling_value = f.find(scaling_key);
  std::string scaling = "none";
  if (scaling_value) {
    const std::string* s = std::get_if<std::string>(&scaling_value->v);
    if (!s) fail(Error::Kind::Format, "model: '" + scaling_key + "' is not a string");
    scaling = *s;
  }
  // The factor: rope.scaling.factor, else the older rope.scale_linear; 0 or absent means unset
  // (as llama.cpp reads it) unless the type says linear, which needs a finite factor > 0.
  std::string factor_key = k(Key::rope_scaling_factor);
  if (!f.find(factor_key)) factor_key = k(Key::rope_scale_linear);
  const bool has_factor = f.find(factor_key) != nullptr;
  const float factor = get_float(f, factor_key, 0.0f);
  if (has_factor && (!std::isfinite(factor) || factor < 0 || (factor == 0 && scaling == "linear")))
    fail(Error::Kind::Format, "model: '" + factor_key + "' = " + std::to_string(factor) +
                                  " is not a valid RoPE scaling factor (it must be finite and > 0)");
  // LongRoPE (Phi-3) scales by its factor tensors and attn_factor, not by rope.scaling.factor.
  const bool longrope = scaling == "longrope" && arch.rope_factors_long_short;
  if (scaling == "linear" || (scaling == "none" && factor > 0 && !scaling_value)) {
    if (has_factor) hp.rope_freq_scale = 1.0f / factor;  // linear without a factor: 1
  } else if (scaling != "none" && !longrope) {
    fail(Error::Kind::Unsupported, "model: RoPE scaling '" + printable(scaling) + "' is not supported (only none and linear" +
                                       (arch.rope_factors_long_short ? ", longrope)" : ")"));
  }
  if (!(hp.rope_freq_scale > 0) || !std::isfinite(hp.rope_freq_scale))
    fail(Error::Kind::Format, "model: rope scaling factor out of range");

  hp.n_ctx_train = positive(k(Key::context_length), get_int(f, k(Key::context_length), 2048, false));
  hp.n_ctx_orig = positive(k(Key::rope_scaling_orig_ctx), get_int(f, k(Key::rope_scaling_orig_ctx), hp.n_ctx_train, false));
  hp.rope_attn_factor = non_negative(f, k(Key::rope_scaling_attn_factor), 1.0f);

  // Sliding-window layers (Gemma 2: window 4096 by default; Gemma 3: only with the key). Their
  // RoPE: Gemma 2 the global one unless rope.freq_base_swa; Gemma 3 base 10000 (llama.cpp's
  // default) unless the key, scale 1.
  if (arch.swa_pattern > 0) {
    const int64_t window = get_int(f, k(Key::attention_sliding_window), arch.swa_window, false);
    if (window < 0 || window > (int64_t{1} << 24))
      fail(Error::Kind::Format, "model: '" + k(Key::attention_sliding_window) + "' = " + std::to_string(window) +
                                    " is out of range");
    hp.n_swa = static_cast<int>(window);
    if (hp.n_swa > 0) {
      hp.is_swa = swa_layers(f, arch, hp.n_layer);
      const bool same_as_global = arch.arch == Arch::gemma2;
      hp.rope_freq_base_swa = get_float(f, k(Key::rope_freq_base_swa), same_as_global ? hp.rope_freq_base : 10000.0f);
      hp.rope_freq_scale_swa = same_as_global ? hp.rope_freq_scale : 1.0f;
      if (!(hp.rope_freq_base_swa > 0) || !std::isfinite(hp.rope_freq_base_swa))
        fail(Error::Kind::Format, "model: '" + k(Key::rope_freq_base_swa) + "' out of range");
    }
  }
  hp.no_rope_layer_step = arch.no_rope_layer_step;

  hp.embd_scale = arch.embd_scale_sqrt ? std::sqrt(static_cast<float>(hp.n_embd)) : 1.0f;
  // Gemma's 27B sizes scale by n_embd / n_head, as llama.cpp decides by their layer counts.
  const bool gemma_27b = arch.gemma_attn_scale && ((arch.arch == Arch::gemma2 && hp.n_layer == 46) ||
                                                   (arch.arch == Arch::gemma3 && hp.n_layer == 62));
  hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(gemma_27b ? hp.n_embd / hp.n_head : hp.head_dim));
  if (arch.attn_softcap) hp.attn_softcap = non_negative(f, k(Key::attn_logit_softcapping), 50.0f);
  if (arch.final_softcap_key) hp.final_softcap = non_negative(f, k(Key::final_logit_softcapping), arch.final_softcap);

  int64_t n_vocab = get_int(f, k(Key::vocab_size), 0, false);
  if (n_vocab == 0) {
    if (const gguf::TensorInfo* t = f.find_tensor(tensor_name(Tensor::token_embd)))
      n_vocab = static_cast<int64_t>(t->ne[1]);
    else if (const gguf::Value* v = f.find("tokenizer.ggml.tokens"))
      if (const gguf::Array* a = std::get_if<gguf::Array>(&v->v)) n_vocab = static_cast<int64_t>(a->items.size());
  }
  hp.n_vocab = positive("vocabulary size", n_vocab);
  return hp;
}

Model Model::load(const std::string& path, gguf::LoadMode mode) {
  gguf::File file = [&] {
    try {
      return gguf::File::open(path, mode);
    } catch (const gguf::IoError& e) {
      fail(Error::Kind::Io, e.what());
    }
  }();
  return Model(std::move(file));
}

void Model::check_unchanged() const {
  try {
    file_.check_unchanged();
  } catch (const gguf::IoError& e) {
    fail(Error::Kind::Io, e.what());
  }
}

Model::Model(gguf::File file) : file_(std::move(file)), hparams_(read_hparams(file_)) {
  const HParams& hp = hparams_;
  const ArchInfo& arch = *hp.arch;
  const gguf::File& f = file_;
  auto count = [&](const gguf::TensorInfo& t) -> const gguf::TensorInfo* {
    weight_bytes_ += t.n_bytes;
    return &t;
  };
  auto global = [&](Tensor t) -> const gguf::TensorInfo& { return *count(find(f, tensor_name(t))); };
  auto optional_global = [&](Tensor t, TensorPart part = TensorPart::weight) -> const gguf::TensorInfo* {
    const gguf::TensorInfo* info = f.find_tensor(tensor_name(t, -1, part));
    return info ? count(*info) : nullptr;
  };

  token_embd_ = bind_matrix(global(Tensor::token_embd), hp.n_embd, hp.n_vocab);
  output_norm_ = bind_norm(global(Tensor::output_norm), hp.n_embd);
  const gguf::TensorInfo* out = f.find_tensor(tensor_name(Tensor::output));
  if (out || !arch.output_may_be_tied) {
    output_ = bind_matrix(out ? *count(*out) : global(Tensor::output), hp.n_embd, hp.n_vocab);
  } else {
    output_ = token_embd_;
    output_tied_ = true;
  }
  if (const gguf::TensorInfo* b = optional_global(Tensor::output, TensorPart::bias)) output_bias_ = bind_norm(*b, hp.n_vocab);

  if (const gguf::TensorInfo* freqs = optional_global(Tensor::rope_freqs)) rope_freqs_ = bind_norm(*freqs, hp.n_rot / 2);
  if (arch.rope_factors_long_short) {
    if (const gguf::TensorInfo* t = optional_global(Tensor::rope_factors_long)) rope_factors_long_ = bind_norm(*t, hp.n_rot / 2);
    if (const gguf::TensorInfo* t = optional_global(Tensor::rope_factors_short)) rope_factors_short_ = bind_norm(*t, hp.n_rot / 2);
  }

  // Bound block_count by the layers the file's tensor names cover before sizing anything by it
  // (a small file claiming millions of layers, or one layer too many, is refused at once).
  uint64_t layers_in_file = 0;
  for (const gguf::TensorInfo& t : f.tensors()) {
    const int layer = tensor_layer(t.name);
    if (layer >= 0) layers_in_file = std::max(layers_in_file, uint64_t(layer) + 1);
  }
  if (uint64_t(hp.n_layer) > layers_in_file)
    fail(Error::Kind::Format, "model: '" + key(arch, Key::block_count) + "' = " + std::to_string(hp.n_layer) +
                                  " but the file's " + std::to_string(f.tensors().size()) + " tensors hold " +
                                  (layers_in_file ? "layers blk.0 to blk." + std::to_string(layers_in_file - 1) + " only"
                                                  : "no layer (blk.N) tensor"));
  layers_.resize(static_cast<size_t>(hp.n_layer));
  const int64_t n_q = hp.n_embd_q(), n_kv = hp.n_embd_kv();
  for (int i = 0; i < hp.n_layer; ++i) {
    auto t = [&](Tensor which, TensorPart part = TensorPart::weight) -> const gguf::TensorInfo& {
      return *count(find(f, tensor_name(which, i, part)));
    };
    auto optional = [&](Tensor which, TensorPart part = TensorPart::weight) -> const gguf::TensorInfo* {
      const gguf::TensorInfo* info = f.find_tensor(tensor_name(which, i, part));
      return info ? count(*info) : nullptr;
    };
    LayerWeights& L = layers_[static_cast<size_t>(i)];
    L.attn_norm = bind_norm(t(Tensor::attn_norm), hp.n_embd);
    // Q/K/V: one fused attn_qkv (rows q | k | v) when the file has it, else three tensors; biases
    // wherever the file has them.
    if (const gguf::TensorInfo* qkv = optional(Tensor::attn_qkv)) {
      const kernels::WeightMatrix fused = bind_matrix(*qkv, hp.n_embd, n_q + 2 * n_kv);
      L.wq = row_range(fused, 0, n_q);
      L.wk = row_range(fused, n_q, n_kv);
      L.wv = row_range(fused, n_q + n_kv, n_kv);
      if (const gguf::TensorInfo* b = optional(Tensor::attn_qkv, TensorPart::bias)) {
        const float* bias = bind_norm(*b, n_q + 2 * n_kv);
        L.bq = bias;
        L.bk = bias + n_q;
        L.bv = bias + n_q + n_kv;
      }
    } else {
      L.wq = bind_matrix(t(Tensor::attn_q), hp.n_embd, n_q);
      L.wk = bind_matrix(t(Tensor::attn_k), hp.n_embd, n_kv);
      L.wv = bind_matrix(t(Tensor::attn_v), hp.n_embd, n_kv);
    }
    if (!L.bq) {
      if (const gguf::TensorInfo* b = optional(Tensor::attn_q, TensorPart::bias)) L.bq = bind_norm(*b, n_q);
      if (const gguf::TensorInfo* b = optional(Tensor::attn_k, TensorPart::bias)) L.bk = bind_norm(*b, n_kv);
      if (const gguf::TensorInfo* b = optional(Tensor::attn_v, TensorPart::bias)) L.bv = bind_norm(*b, n_kv);
    }
    if (arch.qk_norm) {
      L.q_norm = bind_norm(t(Tensor::attn_q_norm), hp.head_dim);
      L.k_norm = bind_norm(t(Tensor::attn_k_norm), hp.head_dim);
    }
    L.wo = bind_matrix(t(Tensor::attn_output), n_q, hp.n_embd);
    if (arch.post_norms) {
      L.attn_post_norm = bind_norm(t(Tensor::attn_post_norm), hp.n_embd);
      L.ffn_post_norm = bind_norm(t(Tensor::ffn_post_norm), hp.n_embd);
    }
    L.ffn_norm = bind_norm(t(Tensor::ffn_norm), hp.n_embd);
    if (arch.fused_gate_up) {  // ffn_up rows: gate | up (llama.cpp's SwiGLU over the halves)
      const kernels::WeightMatrix fused = bind_matrix(t(Tensor::ffn_up), hp.n_embd, 2 * int64_t{hp.n_ff});
      L.w_gate = row_range(fused, 0, hp.n_ff);
      L.w_up = row_range(fused, hp.n_ff, hp.n_ff);
    } else {
      L.w_gate = bind_matrix(t(Tensor::ffn_gate), hp.n_embd, hp.n_ff);
      L.w_up = bind_matrix(t(Tensor::ffn_up), hp.n_embd, hp.n_ff);
    }
    L.w_down = bind_matrix(t(Tensor::ffn_down), hp.n_ff, hp.n_embd);
  }
}

const float* Model::rope_factors(int n_ctx) const {
  if (rope_freqs_) return rope_freqs_;
  const int64_t padded = (int64_t{n_ctx} + 255) / 256 * 256;
  return padded > hparams_.n_ctx_orig ? rope_factors_long_ : rope_factors_short_;
}

}  // namespace edgellm::engine
