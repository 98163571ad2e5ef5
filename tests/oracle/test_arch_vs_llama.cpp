// Every architecture of the table against llama.cpp, live: synthetic models of qwen2, qwen3,
// gemma2, gemma3, phi3 and smollm3 made from the synthetic Llama writer's F32 model (the same
// weights, renamed keys, and each architecture's extra tensors and keys added the way its GGUF
// converter writes them: Q/K/V biases, per-head Q/K norms, post-norms, soft-caps, a sliding window
// shorter than the sequence, fused attn_qkv and gate|up, LongRoPE factors, partial rotary), so
// what differs from Llama is exactly what the architecture's graph does differently. Each file:
//   - per-position logits (prefill and decode paths) within llama.cpp's own spread, as
//     test_engine_vs_llama.cpp defines it, at 64 positions (8x the sliding window);
//   - the same in Q4_K_M (our edgellm_quantize, llama.cpp's recipe);
//   - peaked weights: 48 greedy tokens identical to llama.cpp's.
// Plus each architecture in a real model's head layout (heads, KV heads, head_dim).
// Checked once by hand (issue 11's note): NEOX swapped for NORM, the biases dropped, the
// attention soft-cap dropped, each make this test fail.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "edgellm/gguf.hpp"
#include "edgellm/rng.hpp"
#include "edgellm/synth.hpp"
#include "engine_compare.hpp"
#include "oracle.hpp"

using namespace edgellm::oracle_compare;
namespace synth = edgellm::synth;
namespace gguf = edgellm::gguf;

namespace {

struct ArchCase {
  const char* arch;
  int n_layers;  // enough for the layer pattern: gemma3's 5 local : 1 global, smollm3's every 4th
};
const ArchCase kArchs[] = {{"qwen2", 2}, {"qwen3", 2}, {"gemma2", 2}, {"gemma3", 7}, {"phi3", 2}, {"smollm3", 4}};

// A head layout of a real model: heads, KV heads, head_dim (n_embd = heads * head_dim here).
struct Layout {
  const char* like;
  const char* arch;
  int n_heads, n_kv_heads, head_dim;
};
const Layout kLayouts[] = {{"Qwen2.5-0.5B", "qwen2", 14, 2, 64},   {"Qwen3-0.6B", "qwen3", 16, 8, 128},
                           {"Gemma-2-2B", "gemma2", 8, 4, 256},    {"Gemma-3-1B", "gemma3", 4, 1, 256},
                           {"Phi-3.5-mini", "phi3", 32, 32, 96},   {"SmolLM3-3B", "smollm3", 16, 4, 128}};

std::string unique(const std::string& path) { return path + "." + std::to_string(::getpid()); }

// The synthetic Llama model (F32) of this shape.
std::string llama_f32(const synth::Shape& shape, bool peaked, const std::string& name) {
  synth::Options o;
  o.shape = shape;
  o.type = synth::WeightType::F32;
  o.peaked = peaked;
  o.seed = 5;
  o.n_threads = 2;
  std::filesystem::create_directories(kTmp);
  const std::string path = kTmp + "/arch-llama-" + name + ".gguf";
  synth::write_model(unique(path), o);
  std::filesystem::rename(unique(path), path);
  return path;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Writes `src` (a synthetic Llama) as architecture `arch` to `out`.
void convert(const std::string& src_path, const std::string& arch, const std::string& out) {
  const gguf::File src = gguf::File::open(src_path);
  edgellm::kernels::Rng rng(99);
  auto vec = [&](size_t n, float center, float spread) {
    std::vector<float> v(n);
    for (float& x : v) x = center + spread * rng.normal();
    return v;
  };
  gguf::Writer w;
  uint32_t n_embd = 0, n_head = 0;
  for (const gguf::KeyValue& kv : src.metadata()) {
    std::string key = kv.key;
    if (key == "general.architecture") {
      w.set(key, arch);
      continue;
    }
    if (key.rfind("llama.", 0) == 0) key = arch + key.substr(5);
    if (kv.key == "llama.embedding_length") n_embd = kv.value.as<uint32_t>();
    if (kv.key == "llama.attention.head_count") n_head = kv.value.as<uint32_t>();
    w.set(key, kv.value);
  }
  REQUIRE(n_embd > 0);
  const uint32_t head_dim = n_embd / n_head;
  if (arch == "gemma2") {
    w.set("gemma2.attn_logit_softcapping", 0.05f);  // small enough to bite on synthetic logits
    w.set("gemma2.final_logit_softcapping", 0.5f);
    w.set("gemma2.attention.sliding_window", uint32_t{8});
  } else if (arch == "gemma3") {
    w.set("gemma3.attention.sliding_window", uint32_t{8});
    w.set("gemma3.rope.freq_base", 1e6f);  // global layers; the local ones keep 10000
  } else if (arch == "phi3") {
    w.set("phi3.rope.scaling.attn_factor", 1.19f);
    w.set("phi3.rope.scaling.original_context_length", uint32_t{64});  // n_ctx 512 > 64: the long factors
    w.set("phi3.rope.dimension_count", head_dim / 2);                   // partial rotary
  } else if (arch == "qwen2" || arch == "qwen3") {
    w.set(arch + ".rope.freq_base", 1e6f);
  }

  struct Out {
    std::string name;
    std::vector<uint64_t> ne;
    std::vector<float> data;
  };
  std::vector<Out> outs;
  auto f32 = [](const gguf::TensorInfo& t) {
    const auto* p = reinterpret_cast<const float*>(t.data);
    return std::vector<float>(p, p + t.n_elements());
  };
  auto tensor = [&](const std::string& name) -> const gguf::TensorInfo& {
    const gguf::TensorInfo* t = src.find_tensor(name);
    REQUIRE(t != nullptr);
    return *t;
  };
  for (const gguf::TensorInfo& t : src.tensors()) {
    REQUIRE(t.type == edgellm::DType::F32);
    const std::string& n = t.name;
    const std::vector<uint64_t> ne(t.ne, t.ne + t.n_dims);
    if (arch == "gemma2" && n == "output.weight") continue;  // Gemma 2's LM head is token_embd
    if (arch == "phi3") {
      if (ends_with(n, ".attn_k.weight") || ends_with(n, ".attn_v.weight") || ends_with(n, ".ffn_gate.weight")) continue;
      if (ends_with(n, ".attn_q.weight")) {  // rows q | k | v
        const std::string blk = n.substr(0, n.size() - std::string("attn_q.weight").size());
        Out o{blk + "attn_qkv.weight", ne, f32(t)};
        for (const char* part : {"attn_k.weight", "attn_v.weight"}) {
          const gguf::TensorInfo& p = tensor(blk + part);
          const auto d = f32(p);
          o.data.insert(o.data.end(), d.begin(), d.end());
          o.ne[1] += p.ne[1];
        }
        outs.push_back(std::move(o));
        continue;
      }
      if (ends_with(n, ".ffn_up.weight")) {  // rows gate | up
        const std::string blk = n.substr(0, n.size() - std::string("ffn_up.weight").size());
        const gguf::TensorInfo& gate = tensor(blk + "ffn_gate.weight");
        Out o{n, ne, f32(gate)};
        const auto up = f32(t);
        o.data.insert(o.data.end(), up.begin(), up.end());
        o.ne[1] *= 2;
        outs.push_back(std::move(o));
        continue;
      }
    }
    outs.push_back({n, ne, f32(t)});
    const bool qkv = ends_with(n, ".attn_q.weight") || ends_with(n, ".attn_k.weight") || ends_with(n, ".attn_v.weight");
    if (arch == "qwen2" && qkv)
      outs.push_back({n.substr(0, n.size() - 7) + ".bias", {t.ne[1]}, vec(t.ne[1], 0.0f, 0.5f)});
    if (ends_with(n, ".attn_norm.weight")) {
      const std::string blk = n.substr(0, n.size() - std::string("attn_norm.weight").size());
      if (arch == "qwen3" || arch == "gemma3") {
        outs.push_back({blk + "attn_q_norm.weight", {head_dim}, vec(head_dim, 1.0f, 0.3f)});
        outs.push_back({blk + "attn_k_norm.weight", {head_dim}, vec(head_dim, 1.0f, 0.3f)});
      }
      if (arch == "gemma2" || arch == "gemma3") {
        outs.push_back({blk + "post_attention_norm.weight", {n_embd}, vec(n_embd, 1.0f, 0.2f)});
        outs.push_back({blk + "post_ffw_norm.weight", {n_embd}, vec(n_embd, 1.0f, 0.2f)});
      }
    }
  }
  if (arch == "phi3") {
    const uint32_t n_rot = head_dim / 2;
    outs.push_back({"rope_factors_long.weight", {n_rot / 2}, vec(n_rot / 2, 3.0f, 0.5f)});
    outs.push_back({"rope_factors_short.weight", {n_rot / 2}, vec(n_rot / 2, 1.2f, 0.1f)});
  }
  for (const Out& o : outs) w.add_tensor(o.name, edgellm::DType::F32, std::span<const uint64_t>(o.ne));
  w.begin(unique(out));
  for (const Out& o : outs) w.write_tensor_data(o.data.data(), o.data.size() * sizeof(float));
  w.finish();
  std::filesystem::rename(unique(out), out);
}

std::string arch_model(const std::string& arch, const synth::Shape& shape, bool peaked, const std::string& tag) {
  const std::string llama = llama_f32(shape, peaked, arch + "-" + tag);
  const std::string path = kTmp + "/arch-" + arch + "-" + tag + ".gguf";
  convert(llama, arch, path);
  return path;
}

synth::Shape tiny(int n_layers) {
  synth::Shape s = synth::tiny_shape();
  s.n_layers = n_layers;
  return s;
}

}  // namespace

TEST_CASE("every architecture: logits within llama.cpp's spread, F32 and our Q4_K_M, prefill and decode") {
  for (const ArchCase& a : kArchs) {
    INFO("architecture " << a.arch);
    const std::string path = arch_model(a.arch, tiny(a.n_layers), false, "f32");
    {
      edgellm::Model m(path);
      CHECK(std::string(m.info().architecture) == a.arch);
    }
    compare_file_with_llama(std::string(a.arch) + " f32", path);
    const std::string q4 = kTmp + "/arch-" + a.arch + "-q4_k_m.gguf";
    edgellm::quantize(path, unique(q4), "Q4_K_M", {}, 2);
    std::filesystem::rename(unique(q4), q4);
    compare_file_with_llama(std::string(a.arch) + " q4_k_m", q4);
  }
}

TEST_CASE("every architecture, peaked: 48 greedy tokens identical to llama.cpp's") {
  for (const ArchCase& a : kArchs) {
    INFO("architecture " << a.arch);
    const std::string path = arch_model(a.arch, tiny(a.n_layers), true, "peaked");
    const std::vector<int32_t> prompt = {1, 300, 301};
    const auto theirs = edgellm::oracle::greedy(path, prompt, 48);
    CHECK(our_greedy(path, prompt, 48) == theirs);
  }
}

TEST_CASE("every architecture in a real model's head layout: logits within llama.cpp's spread") {
  for (const Layout& l : kLayouts) {
    INFO(l.like);
    synth::Shape s = synth::tiny_shape();
    s.n_heads = l.n_heads;
    s.n_kv_heads = l.n_kv_heads;
    s.n_embd = l.n_heads * l.head_dim;
    s.n_layers = std::string(l.arch) == "gemma3" ? 7 : std::string(l.arch) == "smollm3" ? 4 : 2;
    const std::string path = arch_model(l.arch, s, false, std::string("like-") + l.like);
    {
      edgellm::Model m(path);
      CHECK(m.info().n_head == l.n_heads);
    }
    compare_file_with_llama(l.like, path, random_sequence(40, 512, 13));
  }
}
