// The forward pass against llama.cpp, run live (bin/llama-oracle): stories260K as shipped and with
// RoPE variants written into it with the GGUF writer (linear scaling; a rope_freqs tensor), since
// no small real model uses them. Logits of every position are compared.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../oracle/oracle.hpp"
#include "context.hpp"
#include "edgellm/gguf.hpp"
#include "model.hpp"

using namespace edgellm;
using namespace edgellm::engine;

namespace {

const std::string kStories = std::string(EDGELLM_SHARED_MODELS) + "/stories260K.gguf";

// stories260K with extra metadata and an optional rope_freqs.weight, written to `path`.
void write_variant(const std::string& path, const std::vector<gguf::KeyValue>& extra,
                   const std::vector<float>& rope_freqs) {
  const gguf::File src = gguf::File::open(kStories);
  gguf::Writer w;
  for (const gguf::KeyValue& kv : src.metadata()) w.set(kv.key, kv.value);
  for (const gguf::KeyValue& kv : extra) w.set(kv.key, kv.value);
  for (const gguf::TensorInfo& t : src.tensors())
    w.add_tensor(t.name, t.type, std::span<const uint64_t>(t.ne, t.n_dims));
  if (!rope_freqs.empty()) w.add_tensor("rope_freqs.weight", DType::F32, {rope_freqs.size()});
  std::filesystem::create_directories(EDGELLM_TEST_TMP);
  w.begin(path);
  for (const gguf::TensorInfo& t : src.tensors()) w.write_tensor_data(t.data, t.n_bytes);
  if (!rope_freqs.empty()) w.write_tensor_data(rope_freqs.data(), rope_freqs.size() * sizeof(float));
  w.finish();
}

// Largest |ours - llama.cpp| over every position and token, relative to each row's logit range.
double compare_with_llama(const std::string& path, const std::vector<int32_t>& tokens) {
  const oracle::Logits ref = oracle::logits(path, tokens, oracle::kDefaultVariant, true);
  REQUIRE(ref.n_rows == int(tokens.size()));
  Model model = Model::load(path);
  ContextOptions o;
  o.n_ctx = 64;
  o.logits_all = true;
  Context ctx(model, o);
  ctx.eval(tokens);
  double worst = 0;
  for (int r = 0; r < ref.n_rows; ++r) {
    const float* a = ctx.logits(r);
    const float* b = ref.row(r);
    const auto [lo, hi] = std::minmax_element(b, b + ref.n_vocab);
    double d = 0;
    for (int v = 0; v < ref.n_vocab; ++v) d = std::max(d, double(std::fabs(a[v] - b[v])));
    worst = std::max(worst, d / double(*hi - *lo));
    CHECK(std::max_element(a, a + ref.n_vocab) - a == std::max_element(b, b + ref.n_vocab) - b);
  }
  return worst;
}

std::vector<int32_t> prompt() {
  std::ifstream in(std::string(EDGELLM_SHARED_MODELS) + "/stories260K.greedy-t0-200.ids");
  REQUIRE(in.good());
  std::vector<int32_t> ids{1};
  int32_t x;
  while (ids.size() < 40 && in >> x) ids.push_back(x);
  REQUIRE(ids.size() == 40);
  return ids;
}

}  // namespace

// Tolerance: 1e-3 of the logit range. llama.cpp keeps K/V in F16 as we do, but also rounds Q and
// the softmax weights to F16 (we keep them in f32); measured differences are below 3e-4.
TEST_CASE("stories260K: every position's logits match llama.cpp's", "[engine][oracle]") {
  const double d = compare_with_llama(kStories, prompt());
  INFO("max |ours - llama.cpp| / range = " << d);
  CHECK(d <= 1e-3);
}

TEST_CASE("RoPE linear scaling and rope_freqs match llama.cpp", "[engine][oracle]") {
  const std::string dir = EDGELLM_TEST_TMP;
  const std::string linear = dir + "/stories-rope-linear.gguf";
  write_variant(linear, {{"llama.rope.scaling.type", std::string("linear")},
                         {"llama.rope.scaling.factor", 4.0f}}, {});
  REQUIRE(Model::load(linear).hparams().rope_freq_scale == 0.25f);
  const double d_linear = compare_with_llama(linear, prompt());
  INFO("linear: max |ours - llama.cpp| / range = " << d_linear);
  CHECK(d_linear <= 1e-3);

  const std::string freqs = dir + "/stories-rope-freqs.gguf";
  write_variant(freqs, {}, {1.0f, 2.5f, 8.0f, 40.0f});  // n_rot / 2 = 4 divisors
  REQUIRE(Model::load(freqs).rope_freqs() != nullptr);
  const double d_freqs = compare_with_llama(freqs, prompt());
  INFO("rope_freqs: max |ours - llama.cpp| / range = " << d_freqs);
  CHECK(d_freqs <= 1e-3);

  // The variants really change the model (else the comparisons above would prove nothing).
  ContextOptions o;
  o.n_ctx = 64;
  Model plain = Model::load(kStories), scaled = Model::load(freqs);
  Context a(plain, o), b(scaled, o);
  a.eval(prompt());
  b.eval(prompt());
  double diff = 0;
  for (int v = 0; v < 512; ++v) diff = std::max(diff, double(std::fabs(a.logits()[v] - b.logits()[v])));
  CHECK(diff > 0.1);
}
