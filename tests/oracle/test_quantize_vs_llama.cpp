// edgellm_quantize against llama.cpp's own quantizer (llama_model_quantize through the oracle,
// run live): for every file type, on stories260K (64- and 172-wide rows: the width fallbacks down
// to F16), a 16-layer synthetic model (256-wide, 4 query heads per KV head: every use_more_bits,
// n/8, n/16 and n_gqa >= 4 branch of the recipe) and one whose rows are 320 and 864 wide (multiples
// of 32, not of 256), our file holds the same metadata and, tensor by tensor, the same type, shape
// and bytes as llama.cpp's. Without an importance matrix both quantize every row with the type's
// reference quantizer, so equal bytes is the expected result, not a coincidence. Also from F16 and
// BF16 inputs, and each output loads in llama.cpp and in edgellm.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "edgellm/edgellm.hpp"
#include "edgellm/gguf.hpp"
#include "edgellm/synth.hpp"
#include "oracle.hpp"

namespace {

namespace synth = edgellm::synth;
namespace gguf = edgellm::gguf;

const std::string kTmp = EDGELLM_TEST_TMP;
const std::string kStories = std::string(EDGELLM_SHARED_MODELS) + "/stories260K.gguf";

const char* const kFileTypes[] = {"Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q3_K_M", "Q3_K_S",
                                  "Q3_K_L", "Q2_K",   "Q6_K",   "Q8_0",   "Q4_0",   "Q4_1",
                                  "Q5_0",   "Q5_1",   "IQ4_NL", "IQ4_XS", "F16"};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A synthetic model in the given element type (F32 / F16 / BF16) and shape.
std::string synthetic(const std::string& name, synth::Shape shape, synth::WeightType type) {
  synth::Options o;
  o.shape = shape;
  o.type = type;
  o.seed = 3;
  o.n_threads = 2;
  std::filesystem::create_directories(kTmp);
  const std::string path = kTmp + "/" + name + ".gguf";
  synth::write_model(path, o);
  return path;
}

synth::Shape deep_shape() {  // 16 layers: n/16 = 1, n/8 = 2, 7n/8 = 14; 4 query heads per KV head
  synth::Shape s = synth::tiny_shape();
  s.n_layers = 16;
  s.n_ff = 512;
  s.n_heads = 4;
  s.n_kv_heads = 1;
  return s;
}

synth::Shape odd_shape() {  // rows of 320 and 864: 32-element blocks fit, 256-element ones do not
  synth::Shape s = synth::tiny_shape();
  s.n_layers = 3;
  s.n_embd = 320;
  s.n_ff = 864;
  s.n_heads = 5;
  s.n_kv_heads = 5;
  return s;
}

std::string ours(const std::string& in, const std::string& tag, const std::string& type) {
  const std::string out = kTmp + "/q-" + tag + "-" + lower(type) + "-ours.gguf";
  edgellm::quantize(in, out, type, {}, 2);
  return out;
}

std::string theirs(const std::string& in, const std::string& tag, const std::string& type) {
  const std::string out = kTmp + "/q-" + tag + "-" + lower(type) + "-llama.gguf";
  edgellm::oracle::run({"quantize", "-m", in, "-o", out, "--ftype", lower(type), "-t", "1"});
  return out;
}

// Our file against llama.cpp's: metadata (keys, order, values) and every tensor. Returns the
// tensor types of ours by name.
std::map<std::string, edgellm::DType> compare_files(const std::string& a_path, const std::string& b_path) {
  const gguf::File a = gguf::File::open(a_path), b = gguf::File::open(b_path);
  REQUIRE(a.metadata().size() == b.metadata().size());
  for (size_t i = 0; i < a.metadata().size(); ++i) {
    INFO("metadata " << i << ": ours " << a.metadata()[i].key << ", llama.cpp's " << b.metadata()[i].key);
    CHECK(a.metadata()[i].key == b.metadata()[i].key);
    CHECK(a.metadata()[i].value == b.metadata()[i].value);
  }
  REQUIRE(a.tensors().size() == b.tensors().size());
  std::map<std::string, edgellm::DType> types;
  int differing = 0;
  for (const gguf::TensorInfo& t : a.tensors()) {
    INFO("tensor " << t.name);
    const gguf::TensorInfo* u = b.find_tensor(t.name);
    REQUIRE(u != nullptr);
    CHECK(edgellm::dtype_name(static_cast<uint32_t>(t.type)) == edgellm::dtype_name(static_cast<uint32_t>(u->type)));
    CHECK(t.n_dims == u->n_dims);
    for (int d = 0; d < 4; ++d) CHECK(t.ne[d] == u->ne[d]);
    REQUIRE(t.n_bytes == u->n_bytes);
    if (std::memcmp(t.data, u->data, t.n_bytes) != 0) ++differing;
    types[t.name] = t.type;
  }
  CHECK(differing == 0);
  return types;
}

// edgellm loads the file and computes finite logits for a few tokens.
void check_runs_in_edgellm(const std::string& path) {
  edgellm::Model model(path);
  edgellm_context_params p = edgellm_context_default_params();
  p.n_ctx = 64;
  p.n_threads = 1;
  edgellm::Context ctx(model, p);
  ctx.eval({1, 300, 301, 302});
  const float* l = ctx.logits();
  bool finite = true;
  for (int i = 0; i < model.info().n_vocab; ++i) finite = finite && std::isfinite(l[i]);
  CHECK(finite);
}

void check_all_types(const std::string& in, const std::string& tag) {
  for (const char* type : kFileTypes) {
    INFO(tag << " " << type);
    const std::string a = ours(in, tag, type), b = theirs(in, tag, type);
    compare_files(a, b);
    check_runs_in_edgellm(a);
    // llama.cpp loads our file (and names its file type as for its own).
    const std::string info_ours = edgellm::oracle::run({"info", "-m", a});
    CHECK(edgellm::oracle::json_str(info_ours, "model_type") ==
          edgellm::oracle::json_str(edgellm::oracle::run({"info", "-m", b}), "model_type"));
  }
}

}  // namespace

TEST_CASE("stories260K: every file type equals llama.cpp's quantization, tensor by tensor and byte for byte", "[quantize]") {
  check_all_types(kStories, "stories");
  // The fallbacks llama.cpp applies to its 64- and 172-wide rows, written out: Q4_K -> Q5_0 on the
  // 64-wide matrices, and F16 for the 172-wide ffn_down (no 32-element type fits).
  const auto types = compare_files(ours(kStories, "stories", "Q4_K_M"), theirs(kStories, "stories", "Q4_K_M"));
  CHECK(types.at("blk.0.attn_q.weight") == edgellm::DType::Q5_0);
  CHECK(types.at("blk.0.ffn_down.weight") == edgellm::DType::F16);
  CHECK(types.at("output.weight") == edgellm::DType::Q8_0);
  CHECK(types.at("blk.0.attn_norm.weight") == edgellm::DType::F32);
}

TEST_CASE("a 16-layer synthetic model: every file type equals llama.cpp's quantization", "[quantize]") {
  const std::string f32 = synthetic("q-deep-f32", deep_shape(), synth::WeightType::F32);
  check_all_types(f32, "deep");
  // A few of the recipe's choices written out, so that a rule both sides lacked would still show.
  using edgellm::DType;
  const auto q4km = compare_files(ours(f32, "deep", "Q4_K_M"), theirs(f32, "deep", "Q4_K_M"));
  CHECK(q4km.at("output.weight") == DType::Q6_K);
  CHECK(q4km.at("token_embd.weight") == DType::Q4_K);
  CHECK(q4km.at("blk.0.attn_v.weight") == DType::Q6_K);   // i < n/8
  CHECK(q4km.at("blk.2.attn_v.weight") == DType::Q4_K);
  CHECK(q4km.at("blk.4.ffn_down.weight") == DType::Q6_K);  // (i - n/8) % 3 == 2
  CHECK(q4km.at("blk.15.ffn_down.weight") == DType::Q6_K); // i >= 7n/8
  const auto q2k = compare_files(ours(f32, "deep", "Q2_K"), theirs(f32, "deep", "Q2_K"));
  CHECK(q2k.at("blk.3.attn_v.weight") == DType::Q4_K);     // n_gqa >= 4
  CHECK(q2k.at("blk.3.ffn_down.weight") == DType::Q3_K);
  CHECK(q2k.at("blk.3.attn_output.weight") == DType::Q3_K);
  CHECK(q2k.at("blk.3.attn_q.weight") == DType::Q2_K);
  const auto q3km = compare_files(ours(f32, "deep", "Q3_K_M"), theirs(f32, "deep", "Q3_K_M"));
  CHECK(q3km.at("blk.1.attn_v.weight") == DType::Q5_K);    // the first two
  CHECK(q3km.at("blk.2.attn_v.weight") == DType::Q4_K);
  CHECK(q3km.at("blk.0.ffn_down.weight") == DType::Q5_K);  // i < n/16
  CHECK(q3km.at("blk.1.ffn_down.weight") == DType::Q4_K);
  CHECK(q3km.at("blk.1.ffn_gate.weight") == DType::Q3_K);
}

TEST_CASE("rows of 320 and 864: the 32-element fallbacks, as llama.cpp's", "[quantize]") {
  const std::string f32 = synthetic("q-odd-f32", odd_shape(), synth::WeightType::F32);
  check_all_types(f32, "odd");
  using edgellm::DType;
  const auto q4km = compare_files(ours(f32, "odd", "Q4_K_M"), theirs(f32, "odd", "Q4_K_M"));
  CHECK(q4km.at("blk.1.attn_q.weight") == DType::Q5_0);    // Q4_K -> Q5_0
  CHECK(q4km.at("blk.2.ffn_down.weight") == DType::Q8_0);  // Q6_K (i >= 7n/8) -> Q8_0
  CHECK(q4km.at("blk.1.ffn_down.weight") == DType::Q5_0);
  CHECK(q4km.at("output.weight") == DType::Q8_0);
  const auto q5km = compare_files(ours(f32, "odd", "Q5_K_S"), theirs(f32, "odd", "Q5_K_S"));
  CHECK(q5km.at("blk.1.ffn_up.weight") == DType::Q5_1);    // Q5_K -> Q5_1
  const auto q3ks = compare_files(ours(f32, "odd", "Q3_K_S"), theirs(f32, "odd", "Q3_K_S"));
  CHECK(q3ks.at("blk.1.ffn_up.weight") == DType::Q4_0);    // Q3_K -> Q4_0
  const auto iq4xs = compare_files(ours(f32, "odd", "IQ4_XS"), theirs(f32, "odd", "IQ4_XS"));
  CHECK(iq4xs.at("blk.1.ffn_up.weight") == DType::IQ4_NL); // IQ4_XS -> IQ4_NL
}

TEST_CASE("F16 and BF16 inputs: the same files as llama.cpp's", "[quantize]") {
  for (auto [name, type] : {std::pair{"f16", synth::WeightType::F16}, std::pair{"bf16", synth::WeightType::BF16}}) {
    const std::string in = synthetic(std::string("q-deep-") + name, deep_shape(), type);
    for (const char* ft : {"Q4_K_M", "Q8_0", "IQ4_NL", "F16"}) {
      INFO(name << " -> " << ft);
      compare_files(ours(in, std::string("deep-") + name, ft), theirs(in, std::string("deep-") + name, ft));
    }
  }
}
