// The architecture table (engine/src/arch.hpp): metadata key and tensor names, lookup of
// general.architecture and the refusal of names not in the table (escaped in the message), and
// that models written by the synthetic writer still bind through it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "arch.hpp"
#include "context.hpp"
#include "edgellm/gguf.hpp"
#include "edgellm/synth.hpp"
#include "error.hpp"
#include "model.hpp"

using namespace edgellm;
using namespace edgellm::engine;

namespace {

// What loading a file with only general.architecture = `name` throws.
Error load_error_for(const std::string& name) {
  gguf::Writer w;
  w.set(std::string(kArchitectureKey), name);
  const std::vector<uint8_t> bytes = w.to_bytes({});
  try {
    Model m(gguf::File::parse(bytes));
  } catch (const Error& e) {
    return e;
  }
  FAIL("architecture '" << printable(name) << "' was accepted");
  return Error(Error::Kind::Format, "");
}

std::string synth_model(const std::string& name) {
  const std::string dir = std::string(EDGELLM_TEST_TMP);
  std::filesystem::create_directories(dir);
  synth::Options so;
  so.shape = synth::tiny_shape();
  so.type = synth::WeightType::Q8_0;
  so.n_threads = 1;
  const std::string path = dir + "/" + name;
  synth::write_model(path, so);
  return path;
}

}  // namespace

TEST_CASE("metadata keys carry the architecture's prefix", "[engine][arch]") {
  const ArchInfo& llama = arch_info(Arch::llama);
  CHECK(key(llama, Key::block_count) == "llama.block_count");
  CHECK(key(Arch::llama, Key::block_count) == "llama.block_count");
  CHECK(key(llama, Key::context_length) == "llama.context_length");
  CHECK(key(llama, Key::embedding_length) == "llama.embedding_length");
  CHECK(key(llama, Key::feed_forward_length) == "llama.feed_forward_length");
  CHECK(key(llama, Key::attention_head_count) == "llama.attention.head_count");
  CHECK(key(llama, Key::attention_head_count_kv) == "llama.attention.head_count_kv");
  CHECK(key(llama, Key::attention_key_length) == "llama.attention.key_length");
  CHECK(key(llama, Key::attention_value_length) == "llama.attention.value_length");
  CHECK(key(llama, Key::attention_layer_norm_rms_epsilon) == "llama.attention.layer_norm_rms_epsilon");
  CHECK(key(llama, Key::rope_dimension_count) == "llama.rope.dimension_count");
  CHECK(key(llama, Key::rope_freq_base) == "llama.rope.freq_base");
  CHECK(key(llama, Key::rope_scaling_type) == "llama.rope.scaling.type");
  CHECK(key(llama, Key::rope_scaling_factor) == "llama.rope.scaling.factor");
  CHECK(key(llama, Key::rope_scale_linear) == "llama.rope.scale_linear");
  CHECK(key(llama, Key::vocab_size) == "llama.vocab_size");
  CHECK(key_suffix(Key::rope_freq_base) == "rope.freq_base");
}

TEST_CASE("tensor_layer reads the layer back from a blk.N. name, -1 from anything else", "[engine][arch]") {
  for (int layer : {0, 1, 9, 21, 123, 999999999})
    CHECK(tensor_layer(tensor_name(Tensor::ffn_down, layer)) == layer);
  CHECK(tensor_layer(tensor_name(Tensor::token_embd)) == -1);
  for (const char* bad : {"blk.", "blk.3", "blk.3x.attn_q.weight", "blk..attn_q", "blk.-1.attn_q.weight",
                          "blk.+2.attn_q.weight", "blk.1234567890.attn_q.weight", "BLK.3.attn_q.weight", "xblk.3.a"})
    CHECK(tensor_layer(bad) == -1);
}

TEST_CASE("tensor names: global ones bare, per-layer ones under blk.N.", "[engine][arch]") {
  CHECK(tensor_name(Tensor::token_embd) == "token_embd.weight");
  CHECK(tensor_name(Tensor::output_norm) == "output_norm.weight");
  CHECK(tensor_name(Tensor::output) == "output.weight");
  CHECK(tensor_name(Tensor::rope_freqs) == "rope_freqs.weight");
  CHECK(tensor_name(Tensor::attn_norm, 0) == "blk.0.attn_norm.weight");
  CHECK(tensor_name(Tensor::attn_q, 3) == "blk.3.attn_q.weight");
  CHECK(tensor_name(Tensor::attn_k, 12) == "blk.12.attn_k.weight");
  CHECK(tensor_name(Tensor::attn_v, 1) == "blk.1.attn_v.weight");
  CHECK(tensor_name(Tensor::attn_qkv, 1) == "blk.1.attn_qkv.weight");
  CHECK(tensor_name(Tensor::attn_output, 2) == "blk.2.attn_output.weight");
  CHECK(tensor_name(Tensor::ffn_norm, 2) == "blk.2.ffn_norm.weight");
  CHECK(tensor_name(Tensor::ffn_gate, 4) == "blk.4.ffn_gate.weight");
  CHECK(tensor_name(Tensor::ffn_up, 4) == "blk.4.ffn_up.weight");
  CHECK(tensor_name(Tensor::ffn_down, 21) == "blk.21.ffn_down.weight");
  CHECK(tensor_name(Tensor::attn_q, 3, TensorPart::bias) == "blk.3.attn_q.bias");
  CHECK(tensor_name(Tensor::attn_k, 0, TensorPart::bias) == "blk.0.attn_k.bias");
  CHECK(tensor_name(Tensor::attn_v, 7, TensorPart::bias) == "blk.7.attn_v.bias");
  CHECK(tensor_base_name(Tensor::ffn_gate) == "ffn_gate");
  CHECK(is_per_layer(Tensor::attn_q));
  CHECK_FALSE(is_per_layer(Tensor::token_embd));
  // A layer where none belongs, or none where one does, is the caller's bug.
  CHECK_THROWS_AS(tensor_name(Tensor::attn_q), std::invalid_argument);
  CHECK_THROWS_AS(tensor_name(Tensor::attn_q, -2), std::invalid_argument);
  CHECK_THROWS_AS(tensor_name(Tensor::token_embd, 0), std::invalid_argument);
}

TEST_CASE("llama's entry and lookup by general.architecture", "[engine][arch]") {
  const ArchInfo* found = find_arch("llama");
  REQUIRE(found != nullptr);
  CHECK(found == &arch_info(Arch::llama));
  CHECK(&arch_info(std::string_view("llama")) == found);
  CHECK(found->arch == Arch::llama);
  CHECK(found->name == "llama");
  CHECK(found->rope_mode == RopeMode::Norm);
  CHECK(found->ffn_activation == FfnActivation::Silu);
  CHECK(found->output_may_be_tied);
  CHECK_FALSE(found->embd_scale_sqrt);
  CHECK_FALSE(found->qk_norm);
  CHECK_FALSE(found->post_norms);
  CHECK_FALSE(found->fused_gate_up);
  CHECK_FALSE(found->attn_softcap);
  CHECK(found->swa_pattern == 0);
  CHECK(found->no_rope_layer_step == 0);
  CHECK(find_arch("Llama") == nullptr);  // names are exact, as llama.cpp compares them
  CHECK(find_arch("") == nullptr);
}

TEST_CASE("every architecture's entry: its name and the switches llama.cpp's graph has", "[engine][arch]") {
  struct Want {
    std::string_view name;
    RopeMode rope;
    FfnActivation act;
    bool qk_norm, post_norms, fused_gate_up, softcap;
    int swa_pattern, no_rope_step;
  };
  const Want want[] = {
      {"llama", RopeMode::Norm, FfnActivation::Silu, false, false, false, false, 0, 0},
      {"qwen2", RopeMode::Neox, FfnActivation::Silu, false, false, false, false, 0, 0},
      {"qwen3", RopeMode::Neox, FfnActivation::Silu, true, false, false, false, 0, 0},
      {"gemma2", RopeMode::Neox, FfnActivation::Gelu, false, true, false, true, 2, 0},
      {"gemma3", RopeMode::Neox, FfnActivation::Gelu, true, true, false, false, 6, 0},
      {"phi3", RopeMode::Neox, FfnActivation::Silu, false, false, true, false, 0, 0},
      {"smollm3", RopeMode::Norm, FfnActivation::Silu, false, false, false, false, 0, 4},
  };
  REQUIRE(supported_archs().size() == std::size(want));
  for (const Want& w : want) {
    INFO(w.name);
    const ArchInfo* a = find_arch(w.name);
    REQUIRE(a != nullptr);
    CHECK(&arch_info(a->arch) == a);
    CHECK(a->rope_mode == w.rope);
    CHECK(a->ffn_activation == w.act);
    CHECK(a->qk_norm == w.qk_norm);
    CHECK(a->post_norms == w.post_norms);
    CHECK(a->fused_gate_up == w.fused_gate_up);
    CHECK(a->attn_softcap == w.softcap);
    CHECK(a->swa_pattern == w.swa_pattern);
    CHECK(a->no_rope_layer_step == w.no_rope_step);
    CHECK(a->embd_scale_sqrt == (w.act == FfnActivation::Gelu));  // the Gemmas
    CHECK(key(*a, Key::block_count) == std::string(w.name) + ".block_count");
  }
  CHECK(key(arch_info(Arch::gemma2), Key::attn_logit_softcapping) == "gemma2.attn_logit_softcapping");
  CHECK(key(arch_info(Arch::gemma2), Key::final_logit_softcapping) == "gemma2.final_logit_softcapping");
  CHECK(key(arch_info(Arch::gemma3), Key::attention_sliding_window) == "gemma3.attention.sliding_window");
  CHECK(key(arch_info(Arch::gemma3), Key::attention_sliding_window_pattern) ==
        "gemma3.attention.sliding_window_pattern");
  CHECK(key(arch_info(Arch::gemma3), Key::rope_freq_base_swa) == "gemma3.rope.freq_base_swa");
  CHECK(key(arch_info(Arch::phi3), Key::rope_scaling_attn_factor) == "phi3.rope.scaling.attn_factor");
  CHECK(key(arch_info(Arch::phi3), Key::rope_scaling_orig_ctx) == "phi3.rope.scaling.original_context_length");
  CHECK(tensor_name(Tensor::attn_q_norm, 1) == "blk.1.attn_q_norm.weight");
  CHECK(tensor_name(Tensor::attn_k_norm, 1) == "blk.1.attn_k_norm.weight");
  CHECK(tensor_name(Tensor::attn_post_norm, 0) == "blk.0.post_attention_norm.weight");
  CHECK(tensor_name(Tensor::ffn_post_norm, 0) == "blk.0.post_ffw_norm.weight");
  CHECK(tensor_name(Tensor::rope_factors_long) == "rope_factors_long.weight");
  CHECK(tensor_name(Tensor::rope_factors_short) == "rope_factors_short.weight");
  CHECK(tensor_name(Tensor::output, -1, TensorPart::bias) == "output.bias");
}

TEST_CASE("an architecture not in the table is refused, its name escaped", "[engine][arch]") {
  {
    const Error e = load_error_for("gpt2");
    CHECK(e.kind() == Error::Kind::Unsupported);
    const std::string msg = e.what();
    CHECK(msg.find("architecture 'gpt2'") != std::string::npos);
    CHECK(msg.find("'llama'") != std::string::npos);  // the supported ones are listed
    CHECK(msg.find("'gemma3'") != std::string::npos);
  }
  {
    // A terminal escape sequence (red text, clear screen) and a NUL in the file's string.
    const std::string hostile = std::string("qwen\x1b[31m\x1b[2J") + '\0' + "x\\";
    const Error e = load_error_for(hostile);
    CHECK(e.kind() == Error::Kind::Unsupported);
    const std::string msg = e.what();
    CHECK(msg.find('\x1b') == std::string::npos);
    CHECK(msg.find('\0') == std::string::npos);
    CHECK(msg.find("architecture 'qwen\\x1b[31m\\x1b[2J\\x00x\\x5c'") != std::string::npos);
  }
  {
    // A huge name is cut, not copied whole into the message.
    const Error e = load_error_for(std::string(100000, 'a'));
    CHECK(std::string(e.what()).size() < 300);
    CHECK(std::string(e.what()).find(std::string(64, 'a') + "...'") != std::string::npos);
  }
  CHECK_THROWS_AS(arch_info(std::string_view("mamba")), Error);
}

TEST_CASE("printable escapes every byte outside printable ASCII", "[engine][arch]") {
  CHECK(printable("llama-3 ok") == "llama-3 ok");
  CHECK(printable(std::string_view("\x01\x7f\x80\xff", 4)) == "\\x01\\x7f\\x80\\xff");
  CHECK(printable("caf\xc3\xa9") == "caf\\xc3\\xa9");  // UTF-8 too: C1 controls are escapes
  CHECK(printable("a\\b") == "a\\x5cb");              // so an escaped name reads unambiguously
  CHECK(printable("abcdef", 3) == "abc...");
  CHECK(printable("abc", 3) == "abc");
}

TEST_CASE("a synthetic Llama model binds through the table", "[engine][arch]") {
  const synth::Shape shape = synth::tiny_shape();
  const std::string path = synth_model("arch-q8_0.gguf");
  const Model model = Model::load(path);
  const HParams& hp = model.hparams();
  REQUIRE(hp.arch != nullptr);
  CHECK(hp.arch == &arch_info(Arch::llama));
  CHECK(&model.arch() == hp.arch);
  CHECK(hp.n_layer == shape.n_layers);
  CHECK(hp.n_embd == shape.n_embd);
  CHECK(hp.n_ff == shape.n_ff);
  CHECK(hp.n_head == shape.n_heads);
  CHECK(hp.n_head_kv == shape.n_kv_heads);
  CHECK(hp.n_rot == shape.n_embd / shape.n_heads);
  CHECK(hp.n_ctx_train == shape.n_ctx);
  CHECK(hp.n_vocab == shape.n_vocab);
  CHECK_FALSE(model.output_tied());
  for (int i = 0; i < hp.n_layer; ++i) {
    const LayerWeights& L = model.layer(i);
    CHECK(L.wq.rows == hp.n_embd_q());
    CHECK(L.wk.rows == hp.n_embd_kv());
    CHECK(L.w_down.cols == hp.n_ff);
    // Llama has no Q/K/V biases.
    CHECK(L.bq == nullptr);
    CHECK(L.bk == nullptr);
    CHECK(L.bv == nullptr);
  }

  // The same file without output.weight: llama's LM head falls back to token_embd.
  const gguf::File& src = model.file();
  gguf::Writer w;
  for (const gguf::KeyValue& kv : src.metadata()) w.set(kv.key, kv.value);
  std::vector<std::span<const uint8_t>> spans;
  uint64_t dropped_bytes = 0;
  for (const gguf::TensorInfo& t : src.tensors()) {
    if (t.name == tensor_name(Tensor::output)) {
      dropped_bytes = t.n_bytes;
      continue;
    }
    w.add_tensor(t.name, t.type, std::span<const uint64_t>(t.ne, t.n_dims));
    spans.emplace_back(t.data, t.n_bytes);
  }
  REQUIRE(dropped_bytes > 0);
  const std::vector<uint8_t> bytes = w.to_bytes(spans);
  const Model tied(gguf::File::parse(bytes));
  CHECK(tied.output_tied());
  CHECK(tied.output().data == tied.token_embd().data);
  CHECK(tied.weight_bytes() == model.weight_bytes() - dropped_bytes);
}

namespace {

// `src` rewritten by `edit`, which sees each tensor and may replace it (name, ne, bytes) or drop it;
// metadata copied, then `keys` applied.
struct TensorOut {
  std::string name;
  DType type;
  std::vector<uint64_t> ne;
  std::vector<uint8_t> bytes;
};

std::vector<uint8_t> rewrite(const gguf::File& src, const std::function<void(const gguf::TensorInfo&, std::vector<TensorOut>&)>& edit,
                             const std::function<void(gguf::Writer&)>& keys = {}) {
  gguf::Writer w;
  for (const gguf::KeyValue& kv : src.metadata()) w.set(kv.key, kv.value);
  if (keys) keys(w);
  std::vector<TensorOut> outs;
  for (const gguf::TensorInfo& t : src.tensors()) edit(t, outs);
  std::vector<std::span<const uint8_t>> spans;
  for (const TensorOut& o : outs) {
    w.add_tensor(o.name, o.type, std::span<const uint64_t>(o.ne));
    spans.emplace_back(o.bytes.data(), o.bytes.size());
  }
  return w.to_bytes(spans);
}

TensorOut copy_of(const gguf::TensorInfo& t) {
  return {t.name, t.type, std::vector<uint64_t>(t.ne, t.ne + t.n_dims), std::vector<uint8_t>(t.data, t.data + t.n_bytes)};
}

// The logits of every position of `ids` (one prefill batch).
std::vector<float> logits_of(const Model& model, const std::vector<int32_t>& ids) {
  ContextOptions o;
  o.n_ctx = 64;
  o.n_threads = 1;
  o.logits_all = true;
  o.backend = "cpu";
  Context ctx(model, o);
  ctx.eval(ids);
  std::vector<float> out;
  for (int i = 0; i < static_cast<int>(ids.size()); ++i) out.insert(out.end(), ctx.logits(i), ctx.logits(i) + ctx.n_vocab());
  return out;
}

}  // namespace

// llama.cpp binds a fused attn_qkv (and its bias) for every architecture: the same weights as one
// tensor must give the same logits bit for bit (the fused rows are bound as row ranges), and biases
// must change them (they are added, not ignored).
TEST_CASE("a fused attn_qkv gives the separate tensors' logits; Q/K/V biases are applied", "[engine][arch]") {
  const Model model = Model::load(synth_model("arch-fuse-q8_0.gguf"));
  const HParams& hp = model.hparams();
  const std::vector<int32_t> ids = {1, 5, 9, 200, 33, 7};
  const std::vector<float> ref = logits_of(model, ids);

  const std::vector<uint8_t> fused = rewrite(model.file(), [&](const gguf::TensorInfo& t, std::vector<TensorOut>& outs) {
    const std::string n = t.name;
    auto ends = [&](const char* s) { return n.size() > std::strlen(s) && n.compare(n.size() - std::strlen(s), std::string::npos, s) == 0; };
    if (ends(".attn_k.weight") || ends(".attn_v.weight")) return;  // folded into attn_qkv below
    if (!ends(".attn_q.weight")) {
      outs.push_back(copy_of(t));
      return;
    }
    const std::string blk = n.substr(0, n.size() - std::strlen("attn_q.weight"));
    TensorOut qkv = copy_of(t);
    qkv.name = blk + "attn_qkv.weight";
    for (const char* part : {"attn_k.weight", "attn_v.weight"}) {
      const gguf::TensorInfo* o = model.file().find_tensor(blk + part);
      REQUIRE(o != nullptr);
      qkv.bytes.insert(qkv.bytes.end(), o->data, o->data + o->n_bytes);
      qkv.ne[1] += o->ne[1];
    }
    outs.push_back(std::move(qkv));
  });
  const Model fused_model(gguf::File::parse(fused));
  CHECK(fused_model.file().find_tensor("blk.0.attn_q.weight") == nullptr);
  CHECK(fused_model.layer(0).wk.rows == hp.n_embd_kv());
  CHECK(logits_of(fused_model, ids) == ref);

  // Separate biases: random values change the logits; zeros do not.
  for (float scale : {0.0f, 0.5f}) {
    INFO("bias scale " << scale);
    const std::vector<uint8_t> biased = rewrite(model.file(), [&](const gguf::TensorInfo& t, std::vector<TensorOut>& outs) {
      outs.push_back(copy_of(t));
      for (const char* part : {".attn_q.weight", ".attn_k.weight", ".attn_v.weight"}) {
        const std::string n = t.name;
        const size_t at = n.find(part);
        if (at == std::string::npos || at + std::strlen(part) != n.size()) continue;
        TensorOut b{n.substr(0, n.size() - std::strlen(".weight")) + ".bias", DType::F32, {t.ne[1]}, {}};
        b.bytes.resize(t.ne[1] * sizeof(float));
        auto* f = reinterpret_cast<float*>(b.bytes.data());
        for (uint64_t i = 0; i < t.ne[1]; ++i) f[i] = scale * std::sin(0.37f * float(i) + float(n.size()));
        outs.push_back(std::move(b));
      }
    });
    const Model biased_model(gguf::File::parse(biased));
    REQUIRE(biased_model.layer(0).bq != nullptr);
    REQUIRE(biased_model.layer(hp.n_layer - 1).bv != nullptr);
    if (scale == 0.0f) CHECK(logits_of(biased_model, ids) == ref);
    else CHECK(logits_of(biased_model, ids) != ref);
  }
}

// Mistral-Nemo-style Llama files: attention.key_length sets head_dim, so Q is not n_embd wide.
TEST_CASE("attention.key_length sets head_dim for a llama file (Q wider than n_embd)", "[engine][arch]") {
  const Model model = Model::load(synth_model("arch-hd-q8_0.gguf"));
  const HParams& hp = model.hparams();
  const int head_dim = 2 * hp.head_dim;  // Q: n_head * head_dim = 2 * n_embd rows
  const std::string arch = std::string(model.arch().name);
  // Q/K/V/O re-made at the wider head_dim in F32 (values from sin, so the model is well-formed).
  const std::vector<uint8_t> bytes = rewrite(
      model.file(),
      [&](const gguf::TensorInfo& t, std::vector<TensorOut>& outs) {
        const std::string n = t.name;
        auto is = [&](const char* s) { return n.find(s) != std::string::npos; };
        if (!(is(".attn_q.") || is(".attn_k.") || is(".attn_v.") || is(".attn_output."))) {
          outs.push_back(copy_of(t));
          return;
        }
        const bool out_proj = is(".attn_output.");
        const uint64_t heads = is(".attn_q.") || out_proj ? uint64_t(hp.n_head) : uint64_t(hp.n_head_kv);
        const uint64_t wide = heads * uint64_t(head_dim);
        TensorOut o{n, DType::F32, out_proj ? std::vector<uint64_t>{wide, uint64_t(hp.n_embd)} : std::vector<uint64_t>{uint64_t(hp.n_embd), wide}, {}};
        const uint64_t count = o.ne[0] * o.ne[1];
        o.bytes.resize(count * sizeof(float));
        auto* f = reinterpret_cast<float*>(o.bytes.data());
        for (uint64_t i = 0; i < count; ++i) f[i] = 0.05f * std::sin(0.731f * float(i % 9973) + float(n.size()));
        outs.push_back(std::move(o));
      },
      [&](gguf::Writer& w) {
        w.set(arch + ".attention.key_length", uint32_t(head_dim));
        w.set(arch + ".attention.value_length", uint32_t(head_dim));
        w.set(arch + ".rope.dimension_count", uint32_t(head_dim));
      });
  const Model wide(gguf::File::parse(bytes));
  CHECK(wide.hparams().head_dim == head_dim);
  CHECK(wide.hparams().n_embd_q() == 2 * hp.n_embd);
  CHECK(wide.layer(0).wo.cols == 2 * hp.n_embd);
  const std::vector<float> l = logits_of(wide, {1, 5, 9});
  CHECK(std::all_of(l.begin(), l.end(), [](float x) { return std::isfinite(x); }));
  // value_length other than key_length is refused, naming both.
  const std::vector<uint8_t> mismatched = rewrite(model.file(), [&](const gguf::TensorInfo& t, std::vector<TensorOut>& outs) { outs.push_back(copy_of(t)); },
                                                  [&](gguf::Writer& w) { w.set(arch + ".attention.value_length", uint32_t(hp.head_dim + 2)); });
  try {
    Model bad(gguf::File::parse(mismatched));
    FAIL("value_length != key_length was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Unsupported);
    CHECK(std::string(e.what()).find("value_length") != std::string::npos);
  }
}
