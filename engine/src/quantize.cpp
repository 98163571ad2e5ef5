// Requantizing a model file (quantize.hpp). The recipe follows llama.cpp's src/llama-quant.cpp
// for the file types listed in FileType (facts: which tensor gets which type; the code is ours).
#include "quantize.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <numeric>
#include <type_traits>
#include <variant>

#include "arch.hpp"  // printable(), tensor_layer()
#include "edgellm/kernels/dispatch.hpp"
#include "edgellm/kernels/thread_pool.hpp"
#include "error.hpp"

namespace edgellm::engine {

namespace {

[[noreturn]] void fail(Error::Kind kind, const std::string& what) { throw Error(kind, what); }

struct FileTypeRow {
  FileType type;
  std::string_view name;
  DType base;  // the type of every tensor the recipe says nothing special about
};

// In the order llama-quantize lists them (the usual choices first).
constexpr FileTypeRow kFileTypes[] = {
    {FileType::Q4_K_M, "Q4_K_M", DType::Q4_K}, {FileType::Q4_K_S, "Q4_K_S", DType::Q4_K},
    {FileType::Q5_K_M, "Q5_K_M", DType::Q5_K}, {FileType::Q5_K_S, "Q5_K_S", DType::Q5_K},
    {FileType::Q3_K_M, "Q3_K_M", DType::Q3_K}, {FileType::Q3_K_S, "Q3_K_S", DType::Q3_K},
    {FileType::Q3_K_L, "Q3_K_L", DType::Q3_K}, {FileType::Q2_K, "Q2_K", DType::Q2_K},
    {FileType::Q6_K, "Q6_K", DType::Q6_K},     {FileType::Q8_0, "Q8_0", DType::Q8_0},
    {FileType::Q4_0, "Q4_0", DType::Q4_0},     {FileType::Q4_1, "Q4_1", DType::Q4_1},
    {FileType::Q5_0, "Q5_0", DType::Q5_0},     {FileType::Q5_1, "Q5_1", DType::Q5_1},
    {FileType::IQ4_NL, "IQ4_NL", DType::IQ4_NL}, {FileType::IQ4_XS, "IQ4_XS", DType::IQ4_XS},
    {FileType::F16, "F16", DType::F16},
};

const FileTypeRow& row_of(FileType t) {
  for (const FileTypeRow& r : kFileTypes)
    if (r.type == t) return r;
  fail(Error::Kind::InvalidArgument, "file type " + std::to_string(static_cast<uint32_t>(t)) + " is not made here");
}

uint32_t block_size(DType t) { return dtype_info(t)->block_size; }
bool is_quantized(DType t) { return block_size(t) > 1; }

// ggml_n_dims: trailing dimensions of 1 do not count ([64, 1] is a 1-D tensor).
int effective_dims(const gguf::TensorInfo& t) {
  for (int d = 3; d > 0; --d)
    if (t.ne[d] > 1) return d + 1;
  return 1;
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// Which tensors llama.cpp quantizes at all: 2-D and 3-D weights, but no norms, no router, and none
// of the small or position tensors of other architectures.
bool allows_quantization(const gguf::TensorInfo& t) {
  if (effective_dims(t) < 2) return false;
  const std::string_view name = t.name;
  if (name.size() < 6 || name.substr(name.size() - 6) != "weight") return false;
  static constexpr std::string_view kNever[] = {
      "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
      "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
      "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
      "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
      "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
      "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
      ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger",
      "a.rvq.codebook", "mm.a.code_embd"};
  for (std::string_view part : kNever)
    if (contains(name, part)) return false;
  return name != "position_embd.weight" && name != "token_types.weight";
}

enum class Category { TokenEmbd, AttnQ, AttnV, AttnK, AttnQkv, AttnKvB, AttnOutput, FfnUp, FfnGate, FfnDown, Output, Other };

Category category_of(std::string_view name) {
  if (name == "output.weight") return Category::Output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Category::TokenEmbd;
  if (contains(name, "attn_qkv.weight")) return Category::AttnQkv;
  if (contains(name, "attn_kv_b.weight")) return Category::AttnKvB;
  if (contains(name, "attn_v.weight")) return Category::AttnV;
  if (contains(name, "attn_k.weight")) return Category::AttnK;
  if (contains(name, "attn_q.weight")) return Category::AttnQ;
  if (contains(name, "attn_output.weight")) return Category::AttnOutput;
  if (contains(name, "ffn_up")) return Category::FfnUp;
  if (contains(name, "ffn_gate")) return Category::FfnGate;
  if (contains(name, "ffn_down")) return Category::FfnDown;
  return Category::Other;
}

// Value attention: V and the fused projections that hold it.
bool is_attn_v(Category c) { return c == Category::AttnV || c == Category::AttnQkv || c == Category::AttnKvB; }

// llama.cpp's "more bits here" layers: the first and last eighth, and every third one between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// The recipe's running state: tensors are visited in llama.cpp's order (by layer, then by name),
// and the attention-V and FFN counters are the positions in that order.
struct Recipe {
  FileType ft;
  const RecipeModel& m;
  bool tied_embeddings = true;  // no output.weight: the embedding is the output too
  int n_attn_v = 0, i_attn_v = 0, i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;

  bool falcon() const { return m.arch == "falcon"; }
  int n_gqa() const { return m.n_head_kv == 0 ? 0 : m.n_head / m.n_head_kv; }
  // llama.cpp's LLM_TYPE_70B: its rules give the 8x-shared V of Llama-2-70B more bits.
  bool llama_70b() const { return m.arch == "llama" && m.n_layer == 80 && m.n_head != m.n_head_kv; }
  bool is(std::initializer_list<FileType> types) const {
    return std::find(types.begin(), types.end(), ft) != types.end();
  }

  // (layer, layers) of an FFN tensor: its position among its kind, or for experts (which are not
  // stored in layer order in every file) the number in its name.
  std::pair<int, int> layer_info(int counter, const std::string& name) const {
    if (m.n_expert <= 1) return {counter, m.n_layer};
    const int layer = tensor_layer(name);
    if (layer < 0 || layer >= m.n_layer)
      fail(Error::Kind::Format, "tensor '" + printable(name) + "': no layer number in [0, " +
                                    std::to_string(m.n_layer) + ") in its name (expected blk.N.)");
    return {layer, m.n_layer};
  }

  DType choose(DType t, const gguf::TensorInfo& tensor, Category c) {
    using enum DType;
    using F = FileType;
    if (c == Category::Output || (tied_embeddings && c == Category::TokenEmbd)) {
      if (falcon() || tensor.ne[0] % block_size(t) != 0) return Q8_0;
      return t != Q8_0 ? Q6_K : t;
    }
    if (c == Category::TokenEmbd) return t;
    if (is_attn_v(c)) {
      if (ft == F::Q2_K) t = n_gqa() >= 4 ? Q4_K : Q3_K;
      else if (ft == F::Q3_K_M) t = i_attn_v < 2 ? Q5_K : Q4_K;
      else if (ft == F::Q3_K_L) t = Q5_K;
      else if (is({F::IQ4_NL, F::IQ4_XS}) && n_gqa() >= 4) t = Q5_K;
      else if (is({F::Q4_K_M, F::Q5_K_M}) && use_more_bits(i_attn_v, n_attn_v)) t = Q6_K;
      else if (ft == F::Q4_K_S && i_attn_v < 4) t = Q5_K;
      if (llama_70b() && (t == Q3_K || t == Q4_K)) t = Q5_K;
      if (m.n_expert == 8) t = Q8_0;
      ++i_attn_v;
      return t;
    }
    if (c == Category::AttnK) return m.n_expert == 8 ? Q8_0 : t;
    if (c == Category::FfnDown) {
      const auto [i, n] = layer_info(i_ffn_down++, tensor.name);
      if (ft == F::Q2_K) t = Q3_K;
      else if (ft == F::Q3_K_M) t = i < n / 16 ? Q5_K : !falcon() || use_more_bits(i, n) ? Q4_K : Q3_K;
      else if (ft == F::Q3_K_L) t = falcon() ? Q4_K : Q5_K;
      else if (ft == F::Q4_K_M) {
        if (falcon()) t = i < n / 16 ? Q6_K : use_more_bits(i, n) ? Q5_K : Q4_K;
        else if (use_more_bits(i, n)) t = Q6_K;
      } else if (i < n / 8 && is({F::IQ4_NL, F::IQ4_XS})) t = Q5_K;  // (without an importance matrix)
      else if (ft == F::Q5_K_M && use_more_bits(i, n)) t = Q6_K;
      else if (ft == F::Q4_K_S && !falcon() && i < n / 8) t = Q5_K;
      return t;
    }
    if (c == Category::AttnOutput) {
      if (falcon()) return ft == F::Q3_K_L ? Q4_K : t;
      if (m.n_expert == 8)
        return is({F::Q2_K, F::Q3_K_S, F::Q3_K_M, F::IQ4_NL, F::Q4_K_S, F::Q4_K_M, F::IQ4_XS}) ? Q5_K : t;
      if (ft == F::Q2_K) return Q3_K;
      if (ft == F::Q3_K_M) return Q4_K;
      if (ft == F::Q3_K_L) return Q5_K;
      return t;
    }
    if (c == Category::AttnQkv) {
      if (is({F::Q3_K_M, F::Q3_K_L})) return Q4_K;
      if (ft == F::Q4_K_M) return Q5_K;
      if (ft == F::Q5_K_M) return Q6_K;
      return t;
    }
    if (c == Category::FfnGate) layer_info(i_ffn_gate++, tensor.name);  // checks the name, as llama.cpp
    if (c == Category::FfnUp) layer_info(i_ffn_up++, tensor.name);
    return t;
  }
};

// A type whose blocks do not divide the rows is replaced by one of 32-element blocks, and that by
// F16 when the rows are not a multiple of 32 either.
DType fallback(DType t, uint64_t n_cols) {
  using enum DType;
  if (n_cols % block_size(t) == 0) return t;
  DType r = t;
  switch (t) {
    case IQ4_XS: r = IQ4_NL; break;
    case Q2_K:
    case Q3_K: r = Q4_0; break;
    case Q4_K: r = Q5_0; break;
    case Q5_K: r = Q5_1; break;
    case Q6_K: r = Q8_0; break;
    default: break;  // a 32-element type already: F16 below
  }
  return n_cols % block_size(r) == 0 ? r : F16;
}

// Any integer metadata value (the first element of a per-layer array); nullopt when absent.
std::optional<int64_t> integer_key(const gguf::File& f, const std::string& key) {
  const gguf::Value* v = f.find(key);
  if (!v) return std::nullopt;
  const gguf::Value* x = v;
  if (const auto* a = std::get_if<gguf::Array>(&v->v)) {
    if (a->items.empty()) fail(Error::Kind::Format, "metadata key " + key + " is an empty array");
    x = &a->items.front();
  }
  return std::visit(
      [&](const auto& y) -> int64_t {
        using T = std::decay_t<decltype(y)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_unsigned_v<T>) {
            if (y > static_cast<uint64_t>(INT32_MAX)) fail(Error::Kind::Format, "metadata key " + key + " is too large");
          }
          return static_cast<int64_t>(y);
        } else {
          fail(Error::Kind::Format, "metadata key " + key + " is " + gguf::describe_type(*v) + ", expected an integer");
        }
      },
      x->v);
}

}  // namespace

std::optional<FileType> parse_file_type(std::string_view name) {
  for (const FileTypeRow& r : kFileTypes) {
    if (r.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i)
      same = std::toupper(static_cast<unsigned char>(name[i])) == static_cast<unsigned char>(r.name[i]);
    if (same) return r.type;
  }
  return std::nullopt;
}

std::string_view file_type_name(FileType t) { return row_of(t).name; }

std::string file_type_names() {
  std::string s;
  for (const FileTypeRow& r : kFileTypes) {
    if (!s.empty()) s += ", ";
    s += r.name;
  }
  return s;
}

RecipeModel recipe_model(const gguf::File& file) {
  RecipeModel m;
  const gguf::Value* arch = file.find("general.architecture");
  if (!arch || arch->type() != gguf::ValueType::STRING)
    fail(Error::Kind::Format, "no general.architecture string: not a model file");
  m.arch = arch->as<std::string>();
  const std::string p = m.arch + ".";
  const auto n_layer = integer_key(file, p + "block_count");
  if (!n_layer) fail(Error::Kind::Format, "no " + printable(p) + "block_count (the recipe picks types by layer)");
  if (*n_layer < 1 || *n_layer > 4096)
    fail(Error::Kind::Format, printable(p) + "block_count is " + std::to_string(*n_layer) + ", expected 1..4096");
  m.n_layer = static_cast<int>(*n_layer);
  m.n_head = static_cast<int>(integer_key(file, p + "attention.head_count").value_or(0));
  m.n_head_kv = static_cast<int>(integer_key(file, p + "attention.head_count_kv").value_or(m.n_head));
  m.n_expert = static_cast<int>(integer_key(file, p + "expert_count").value_or(0));
  if (m.n_head < 0 || m.n_head_kv < 0 || m.n_expert < 0)
    fail(Error::Kind::Format, "negative head or expert count in " + printable(p) + "*");
  return m;
}

std::vector<TensorPlan> plan_types(FileType ft, const RecipeModel& model, std::span<const gguf::TensorInfo> tensors) {
  const DType base = row_of(ft).base;
  Recipe recipe{ft, model};
  for (const gguf::TensorInfo& t : tensors) {
    const Category c = category_of(t.name);
    if (is_attn_v(c)) ++recipe.n_attn_v;
    if (c == Category::Output) recipe.tied_embeddings = false;
  }
  // llama.cpp's visiting order: by the layer in the name (none first), then by name.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = tensor_layer(tensors[a].name), lb = tensor_layer(tensors[b].name);
    return la != lb ? la < lb : tensors[a].name < tensors[b].name;
  });
  std::vector<TensorPlan> plans(tensors.size());
  for (size_t i : order) {
    const gguf::TensorInfo& t = tensors[i];
    if (!allows_quantization(t)) {
      plans[i] = {t.type, t.type};
      continue;
    }
    DType wanted = base;
    if (is_quantized(base)) wanted = recipe.choose(base, t, category_of(t.name));
    plans[i] = {is_quantized(base) ? fallback(wanted, t.ne[0]) : wanted, wanted};
  }
  return plans;
}

void quantize_file(const std::string& input, const std::string& output, FileType ft, const QuantizeOptions& options) {
  const gguf::File in = [&] {
    try {
      return gguf::File::open(input);
    } catch (const gguf::IoError& e) {
      fail(Error::Kind::Io, e.what());
    }
  }();
  const std::vector<gguf::TensorInfo>& tensors = in.tensors();
  for (const gguf::TensorInfo& t : tensors) {
    if (is_quantized(t.type))
      fail(Error::Kind::Unsupported,
           "'" + input + "' is already quantized (tensor '" + printable(t.name) + "' is " +
               dtype_name(static_cast<uint32_t>(t.type)) +
               "); quantizing again loses accuracy: start from the F32, F16 or BF16 file");
  }
  if (integer_key(in, "split.count").value_or(1) > 1)
    fail(Error::Kind::Unsupported, "'" + input + "' is one part of a split model: merge the parts first (llama-gguf-split --merge)");
  const RecipeModel model = recipe_model(in);
  const std::vector<TensorPlan> plans = plan_types(ft, model, tensors);

  const kernels::KernelSet& ref = *kernels::kernels_for(kernels::Isa::scalar);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const gguf::TensorInfo& t = tensors[i];
    if (plans[i].type == t.type) continue;
    const kernels::TypeKernels* from = ref.type(t.type);
    const kernels::TypeKernels* to = ref.type(plans[i].type);
    if (!(t.type == DType::F32 || t.type == DType::F16 || t.type == DType::BF16) || !from)
      fail(Error::Kind::Unsupported, "tensor '" + printable(t.name) + "' is " + dtype_name(static_cast<uint32_t>(t.type)) +
                                         ": only F32, F16 and BF16 tensors can be converted");
    if (!to || !to->quantize_row_ref)
      fail(Error::Kind::Unsupported, "no quantizer for " + dtype_name(static_cast<uint32_t>(plans[i].type)));
  }

  gguf::Writer w;
  try {
    // Every key in file order, the two set here moved to the end (as llama.cpp's writer does).
    for (const gguf::KeyValue& kv : in.metadata()) {
      if (kv.key == "split.no" || kv.key == "split.count" || kv.key == "split.tensors.count" ||
          kv.key == "general.quantization_version" || kv.key == "general.file_type")
        continue;
      w.set(kv.key, kv.value);
    }
    w.set("general.quantization_version", uint32_t{2});  // ggml's GGML_QNT_VERSION
    w.set("general.file_type", static_cast<uint32_t>(ft));
    for (size_t i = 0; i < tensors.size(); ++i)
      w.add_tensor(tensors[i].name, plans[i].type, std::span<const uint64_t>(tensors[i].ne, tensors[i].n_dims));
  } catch (const gguf::GgufError& e) {
    fail(Error::Kind::Format, "'" + input + "': " + e.what());
  }

  const std::string part = output + ".part";
  kernels::ThreadPool pool(options.n_threads > 0 ? options.n_threads : kernels::physical_core_count());
  std::vector<std::vector<float>> scratch(static_cast<size_t>(pool.size()));
  std::vector<uint8_t> out;
  constexpr uint64_t kChunkElements = uint64_t{1} << 22;  // rows converted per pool job: ~16 MiB of f32
  try {
    w.begin(part);
    for (size_t i = 0; i < tensors.size(); ++i) {
      const gguf::TensorInfo& t = tensors[i];
      const DType type = plans[i].type;
      uint64_t bytes_out = t.n_bytes;
      if (type == t.type) {
        w.write_tensor_data(t.data, t.n_bytes);
      } else {
        const int64_t n_cols = static_cast<int64_t>(t.ne[0]);
        const uint64_t n_rows = t.n_elements() / t.ne[0];
        const size_t in_row = *dtype_row_bytes(t.type, t.ne[0]), out_row = *dtype_row_bytes(type, t.ne[0]);
        const kernels::DequantizeRow to_f32 = ref.type(t.type)->dequantize_row;
        const kernels::QuantizeRow from_f32 = ref.type(type)->quantize_row_ref;
        const uint64_t chunk_rows = std::max<uint64_t>(1, kChunkElements / t.ne[0]);
        bytes_out = out_row * n_rows;
        for (uint64_t first = 0; first < n_rows; first += chunk_rows) {
          const int64_t rows = static_cast<int64_t>(std::min(chunk_rows, n_rows - first));
          out.resize(static_cast<size_t>(rows) * out_row);
          const uint8_t* src = t.data + first * in_row;
          pool.run([&](int ith, int nth) {
            int64_t begin = 0, end = 0;
            kernels::ThreadPool::split(rows, ith, nth, begin, end);
            std::vector<float>& x = scratch[static_cast<size_t>(ith)];
            x.resize(static_cast<size_t>(n_cols));
            for (int64_t r = begin; r < end; ++r) {
              const uint8_t* row = src + static_cast<size_t>(r) * in_row;
              const float* f32 = reinterpret_cast<const float*>(row);
              if (t.type != DType::F32) {
                to_f32(row, x.data(), n_cols);
                f32 = x.data();
              }
              from_f32(f32, out.data() + static_cast<size_t>(r) * out_row, n_cols);
            }
          });
          w.write_tensor_data(out.data(), out.size());
        }
      }
      if (options.on_tensor) {
        QuantizeProgress p;
        p.index = i;
        p.count = tensors.size();
        p.tensor = &t;
        p.plan = plans[i];
        p.bytes_out = bytes_out;
        if (!options.on_tensor(p))
          fail(Error::Kind::Cancelled, "cancelled by the progress callback after tensor " + std::to_string(i + 1) +
                                           " of " + std::to_string(tensors.size()) + "; nothing written");
      }
    }
    w.finish();
  } catch (const gguf::GgufError& e) {
    std::remove(part.c_str());  // the Writer removes an unfinished file itself; a finished one too
    fail(Error::Kind::Io, e.what());
  } catch (...) {
    std::remove(part.c_str());
    throw;
  }
  if (std::rename(part.c_str(), output.c_str()) != 0) {
    const int err = errno;
    std::remove(part.c_str());
    fail(Error::Kind::Io, "cannot rename '" + part + "' to '" + output + "': " + std::strerror(err));
  }
}

}  // namespace edgellm::engine
