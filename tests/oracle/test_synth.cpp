// Synthetic models (edgellm/synth.hpp): the files our writer makes carry llama.cpp's Q4_K_M type
// recipe, load in llama.cpp (run live through the oracle) and give finite logits; the peaked mode
// really is peaked; a copied tokenizer tokenizes like the original; every architecture's file
// has its tensors and keys; the mixes written directly for a file type are edgellm_quantize's.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "edgellm/edgellm.hpp"
#include "edgellm/gguf.hpp"
#include "edgellm/synth.hpp"
#include "oracle.hpp"

namespace {

namespace synth = edgellm::synth;
using edgellm::DType;

const std::string kTmp = EDGELLM_TEST_TMP;
const std::string kSpm = std::string(EDGELLM_SHARED_MODELS) + "/ggml-vocab-llama-spm.gguf";

synth::Options tiny(synth::WeightType type = synth::WeightType::Q4_K_M) {
  synth::Options o;
  o.shape = synth::tiny_shape();
  o.type = type;
  o.n_threads = 2;
  return o;
}

std::string write(const std::string& name, const synth::Options& o) {
  std::filesystem::create_directories(kTmp);
  const std::string path = kTmp + "/" + name;
  synth::write_model(path, o);
  return path;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

DType type_of(const edgellm::gguf::File& f, const std::string& name) {
  const auto* t = f.find_tensor(name);
  if (!t) throw std::runtime_error("no tensor " + name);
  return t->type;
}

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

}  // namespace

// The layers whose attn_v and ffn_down llama.cpp's Q4_K_M puts in Q6_K, written out here from its
// rule (src/llama-quant.cpp, use_more_bits: i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2), not from
// our code. 22 layers is TinyLlama's shape (the list in docs/FACTS.md).
TEST_CASE("Q4_K_M: tensor types follow llama.cpp's recipe") {
  const std::vector<std::pair<int, std::set<int>>> cases = {
      {22, {0, 1, 4, 7, 10, 13, 16, 19, 20, 21}}, {8, {0, 3, 6, 7}}, {2, {1}}};
  for (const auto& [n_layers, q6_layers] : cases) {
    INFO(n_layers << " layers");
    synth::Options o = tiny();
    o.shape.n_layers = n_layers;
    const std::string path = write("recipe.gguf", o);
    const auto f = edgellm::gguf::File::open(path);
    REQUIRE(f.tensors().size() == static_cast<size_t>(3 + 9 * n_layers));
    CHECK(type_of(f, "token_embd.weight") == DType::Q4_K);
    CHECK(type_of(f, "output.weight") == DType::Q6_K);
    CHECK(type_of(f, "output_norm.weight") == DType::F32);
    for (int l = 0; l < n_layers; ++l) {
      INFO("layer " << l);
      const std::string p = "blk." + std::to_string(l) + ".";
      const DType more = q6_layers.count(l) ? DType::Q6_K : DType::Q4_K;
      CHECK(type_of(f, p + "attn_v.weight") == more);
      CHECK(type_of(f, p + "ffn_down.weight") == more);
      for (const char* t : {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"})
        CHECK(type_of(f, p + t + ".weight") == DType::Q4_K);
      CHECK(type_of(f, p + "attn_norm.weight") == DType::F32);
      CHECK(type_of(f, p + "ffn_norm.weight") == DType::F32);
    }
    CHECK(f.get<uint32_t>("general.file_type") == 15);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
    CHECK(f.get<uint32_t>("llama.block_count") == static_cast<uint32_t>(n_layers));
  }
}

TEST_CASE("tensor shapes and metadata of the tiny model") {
  const std::string path = write("shape.gguf", tiny());
  const auto f = edgellm::gguf::File::open(path);
  CHECK(f.get<std::string>("general.architecture") == "llama");
  CHECK(f.get<uint32_t>("llama.embedding_length") == 256);
  CHECK(f.get<uint32_t>("llama.feed_forward_length") == 768);
  CHECK(f.get<uint32_t>("llama.attention.head_count") == 4);
  CHECK(f.get<uint32_t>("llama.attention.head_count_kv") == 2);
  CHECK(f.get<uint32_t>("llama.rope.dimension_count") == 64);
  const auto* k = f.find_tensor("blk.0.attn_k.weight");
  REQUIRE(k);
  CHECK(k->ne[0] == 256);
  CHECK(k->ne[1] == 128);  // 2 KV heads of 64
  const auto* down = f.find_tensor("blk.1.ffn_down.weight");
  REQUIRE(down);
  CHECK(down->ne[0] == 768);
  CHECK(down->ne[1] == 256);
  CHECK(f.get_array<std::string>("tokenizer.ggml.tokens").size() == 512);
}

TEST_CASE("every weight type loads in llama.cpp and gives finite logits") {
  using W = synth::WeightType;
  const std::vector<std::pair<W, DType>> types = {{W::Q4_K_M, DType::Q4_K}, {W::Q8_0, DType::Q8_0},
                                                  {W::Q4_0, DType::Q4_0},   {W::F16, DType::F16},
                                                  {W::BF16, DType::BF16},   {W::F32, DType::F32}};
  for (const auto& [type, matrix] : types) {
    INFO("type " << synth::weight_type_name(type));
    const std::string path = write("types.gguf", tiny(type));
    CHECK(type_of(edgellm::gguf::File::open(path), "blk.0.attn_q.weight") == matrix);
    const std::string info = edgellm::oracle::run({"info", "-m", path, "--cpu", edgellm::oracle::kDefaultVariant, "-t", "1"});
    CHECK(info.find("\"n_vocab\":512") != std::string::npos);
    if (type == W::Q4_K_M) CHECK(info.find("Q4_K - Medium") != std::string::npos);
    const auto l = edgellm::oracle::logits(path, {1, 300, 301, 302, 303}, edgellm::oracle::kDefaultVariant, true);
    REQUIRE(l.n_rows == 5);
    REQUIRE(l.n_vocab == 512);
    CHECK(all_finite(l.values));
    // Not degenerate: the logits differ between positions and within a row.
    CHECK(l.at(0, 7) != l.at(4, 7));
    CHECK(*std::max_element(l.row(4), l.row(5)) > *std::min_element(l.row(4), l.row(5)));
  }
}

TEST_CASE("peaked: llama.cpp's top-1 probability is above 0.5 at most positions") {
  synth::Options o = tiny();
  o.peaked = true;
  const std::string path = write("peaked.gguf", o);
  std::vector<int32_t> ids = {1};
  for (int i = 0; i < 63; ++i) ids.push_back(static_cast<int32_t>(3 + (i * 37) % 509));
  const auto l = edgellm::oracle::logits(path, ids, edgellm::oracle::kDefaultVariant, true);
  REQUIRE(l.n_rows == 64);
  int peaked = 0;
  for (int r = 0; r < l.n_rows; ++r) {
    const float* row = l.row(r);
    const float top = *std::max_element(row, row + l.n_vocab);
    double z = 0;
    for (int v = 0; v < l.n_vocab; ++v) z += std::exp(static_cast<double>(row[v] - top));
    peaked += 1.0 / z > 0.5;
  }
  INFO(peaked << " of 64 positions have p(top-1) > 0.5");
  CHECK(peaked >= 48);
}

TEST_CASE("a copied tokenizer tokenizes exactly like its source in llama.cpp") {
  synth::Options o = tiny();
  o.vocab_gguf = kSpm;
  const std::string path = write("spm.gguf", o);
  const auto f = edgellm::gguf::File::open(path);
  CHECK(f.get_array<std::string>("tokenizer.ggml.tokens").size() == 32000);
  CHECK(f.get<uint32_t>("llama.vocab_size") == 32000);
  CHECK(f.find_tensor("token_embd.weight")->ne[1] == 32000);
  for (const char* text : {"Hello world", " Äpfel and 3.14 <s>", "  tabs\tand\nnewlines"})
    CHECK(edgellm::oracle::tokenize(path, text, true, false) ==
          edgellm::oracle::tokenize(kSpm, text, true, false));
  const auto l = edgellm::oracle::logits(path, {1, 15043, 3186});
  CHECK(l.n_vocab == 32000);
  CHECK(all_finite(l.values));
}

TEST_CASE("the synthetic vocabulary works in llama.cpp") {
  const std::string path = write("vocab.gguf", tiny());
  const std::string text = "hello, synthetic world";
  const auto ids = edgellm::oracle::tokenize(path, text, false, false);
  REQUIRE(!ids.empty());
  CHECK(edgellm::oracle::detokenize(path, ids) == text);
  CHECK(edgellm::oracle::tokenize(path, "x", true, false).front() == 1);  // BOS
}

TEST_CASE("same seed, same file, whatever the thread count; another seed, another file") {
  synth::Options o = tiny();
  o.n_threads = 1;
  const std::string a = slurp(write("seed-a.gguf", o));
  o.n_threads = 2;
  const std::string b = slurp(write("seed-b.gguf", o));
  o.seed = 2;
  const std::string c = slurp(write("seed-c.gguf", o));
  CHECK(a.size() > 1000000);
  CHECK(a == b);
  CHECK(a.size() == c.size());
  CHECK(a != c);
}

TEST_CASE("bad shapes and inputs are errors, and leave no file") {
  const std::string path = kTmp + "/bad.gguf";
  std::filesystem::remove(path);
  synth::Options o = tiny();
  o.shape.n_embd = 320;  // not a multiple of 256: no K-quants
  CHECK_THROWS_WITH(synth::write_model(path, o), Catch::Contains("multiples of 256"));
  o = tiny();
  o.shape.n_kv_heads = 3;
  CHECK_THROWS_WITH(synth::write_model(path, o), Catch::Contains("kv-heads"));
  o = tiny();
  o.vocab_gguf = kTmp + "/no-such-vocab.gguf";
  CHECK_THROWS(synth::write_model(path, o));
  o = tiny();
  CHECK_THROWS(synth::write_model(kTmp + "/no-such-dir/x.gguf", o));
  CHECK(!std::filesystem::exists(path));
  CHECK(synth::parse_weight_type("q4_k_m") == synth::WeightType::Q4_K_M);
  CHECK(!synth::parse_weight_type("q5_k"));
}

// What each architecture's file holds, as llama.cpp's converter writes it (and its loader,
// src/models/<arch>.cpp, requires): the extra tensors with their shapes, the keys under "<arch>.".
TEST_CASE("every architecture: its tensors and keys, and the engine loads the file") {
  for (std::string_view arch_view : synth::architectures()) {
    const std::string arch(arch_view);
    INFO("architecture " << arch);
    synth::Options o = tiny(synth::WeightType::Q8_0);
    o.shape = synth::with_arch(synth::tiny_shape(), arch);
    const std::string path = write("arch-" + arch + ".gguf", o);
    const auto f = edgellm::gguf::File::open(path);
    CHECK(f.get<std::string>("general.architecture") == arch);
    CHECK(f.get<uint32_t>(arch + ".block_count") == 2);
    CHECK(f.get<uint32_t>(arch + ".embedding_length") == 256);
    CHECK(f.get<float>(arch + ".rope.freq_base") == o.shape.rope_base);
    for (const auto& kv : f.metadata())
      if (arch != "llama") CHECK(kv.key.rfind("llama.", 0) == std::string::npos);
    auto ne = [&](const std::string& name) {
      const auto* t = f.find_tensor(name);
      return t ? std::vector<uint64_t>(t->ne, t->ne + t->n_dims) : std::vector<uint64_t>{};
    };
    using V = std::vector<uint64_t>;
    const bool qwen2 = arch == "qwen2", qk_norm = arch == "qwen3" || arch == "gemma3",
               gemma = arch == "gemma2" || arch == "gemma3", phi3 = arch == "phi3";
    CHECK(ne("blk.1.attn_q.bias") == (qwen2 ? V{256} : V{}));
    CHECK(ne("blk.1.attn_k.bias") == (qwen2 ? V{128} : V{}));
    CHECK(ne("blk.1.attn_v.bias") == (qwen2 ? V{128} : V{}));
    CHECK(ne("blk.1.attn_q_norm.weight") == (qk_norm ? V{64} : V{}));
    CHECK(ne("blk.1.attn_k_norm.weight") == (qk_norm ? V{64} : V{}));
    CHECK(ne("blk.1.post_attention_norm.weight") == (gemma ? V{256} : V{}));
    CHECK(ne("blk.1.post_ffw_norm.weight") == (gemma ? V{256} : V{}));
    CHECK(ne("blk.1.attn_qkv.weight") == (phi3 ? V{256, 256 + 2 * 128} : V{}));
    CHECK(ne("blk.1.attn_q.weight") == (phi3 ? V{} : V{256, 256}));
    CHECK(ne("blk.1.ffn_gate.weight") == (phi3 ? V{} : V{256, 768}));
    CHECK(ne("blk.1.ffn_up.weight") == (phi3 ? V{256, 2 * 768} : V{256, 768}));
    CHECK(ne("rope_factors_long.weight") == (phi3 ? V{32} : V{}));
    CHECK(ne("rope_factors_short.weight") == (phi3 ? V{32} : V{}));
    CHECK(ne("output.weight") == (gemma ? V{} : V{256, 512}));  // Gemma's LM head is token_embd
    CHECK((f.find(arch + ".attention.sliding_window") != nullptr) == gemma);
    CHECK((f.find(arch + ".attn_logit_softcapping") != nullptr) == (arch == "gemma2"));
    CHECK((f.find(arch + ".rope.scaling.original_context_length") != nullptr) == phi3);
    if (qk_norm) {  // not all ones: a wrong element order shows
      const auto* t = f.find_tensor("blk.0.attn_q_norm.weight");
      const float* w = reinterpret_cast<const float*>(t->data);
      CHECK(*std::min_element(w, w + 64) < 0.9f);
      CHECK(*std::max_element(w, w + 64) > 1.1f);
    }
    edgellm::Model m(path);
    CHECK(std::string(m.info().architecture) == arch);
    CHECK(m.info().n_layer == 2);
  }
}

// The mixes written directly for a file type are the files edgellm_quantize makes of the F32
// model: same tensor types, same bytes (a tied llama's token_embd takes output.weight's Q6_K).
TEST_CASE("file_type: a directly written mix is edgellm_quantize's file of the F32 model") {
  for (const bool tied : {false, true}) {
    synth::Options f32 = tiny(synth::WeightType::F32);
    f32.shape.tied_output = tied;
    const std::string src = write("direct-f32.gguf", f32);
    for (const char* type : {"Q4_K_M", "Q8_0", "F16"}) {
      INFO(type << (tied ? ", tied" : ""));
      synth::Options o = f32;
      o.file_type = type;
      const std::string direct = write("direct.gguf", o);
      const std::string quantized = kTmp + "/direct-q.gguf";
      edgellm::quantize(src, quantized, type, {}, 2);
      const auto a = edgellm::gguf::File::open(direct), b = edgellm::gguf::File::open(quantized);
      REQUIRE(a.tensors().size() == b.tensors().size());
      for (const auto& t : a.tensors()) {
        INFO(t.name);
        const auto* u = b.find_tensor(t.name);
        REQUIRE(u);
        CHECK(t.type == u->type);
        REQUIRE(t.n_bytes == u->n_bytes);
        CHECK(std::memcmp(t.data, u->data, t.n_bytes) == 0);
      }
      CHECK(a.get<uint32_t>("general.file_type") == b.get<uint32_t>("general.file_type"));
      if (tied && std::string(type) == "Q4_K_M") CHECK(type_of(a, "token_embd.weight") == DType::Q6_K);
    }
  }
}

TEST_CASE("file_type: every name writes a file the engine loads, unknown names and keys are errors") {
  synth::Options o = tiny();
  o.shape = synth::with_arch(synth::tiny_shape(), "qwen2");
  for (std::string_view type : synth::file_type_names()) {
    INFO(type);
    o.file_type = std::string(type);
    const std::string path = write("ftype.gguf", o);
    CHECK(!std::filesystem::exists(path + ".f32.part"));
    edgellm::Model m(path);
    CHECK(m.info().n_vocab == 512);
  }
  const std::string path = kTmp + "/bad-ftype.gguf";
  std::filesystem::remove(path);
  o.file_type = "Q4_K_X";
  CHECK_THROWS_WITH(synth::write_model(path, o), Catch::Contains("unknown file type"));
  o.file_type.clear();
  o.shape.sliding_window = 8;  // qwen2 has no such key
  CHECK_THROWS_WITH(synth::write_model(path, o), Catch::Contains("not a key of qwen2"));
  o.shape = synth::tiny_shape();
  o.shape.arch = "mamba";
  CHECK_THROWS_WITH(synth::write_model(path, o), Catch::Contains("unknown architecture"));
  CHECK_THROWS(synth::with_arch(synth::tiny_shape(), "mamba"));
  CHECK(!std::filesystem::exists(path));
  CHECK(!synth::preset_shape("qwen9"));
  for (std::string_view name : synth::preset_names()) CHECK(synth::preset_shape(name));
}
