// Text in/out microbenchmarks: <build>/bin/bench-text.
//   encode  SPM (Llama-2 vocab, 32000) and Llama-3 BPE (128256) on English prose: bytes/s
//   decode  streaming, token by token
//   sample  one token from 32000 logits: greedy, llama.cpp's default chain, top-p alone
// The vocabularies come from ../shared/models (EDGELLM_SHARED_MODELS).
#include <benchmark/benchmark.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "edgellm/gguf.hpp"
#include "edgellm/rng.hpp"
#include "sampler.hpp"
#include "tokenizer.hpp"

namespace {

const std::string kModels = EDGELLM_SHARED_MODELS;

// nullptr (and the benchmark skipped with the reason) when the vocabulary cannot be loaded.
const edgellm::Tokenizer* tokenizer(benchmark::State& state, const std::string& name) {
  static std::vector<std::pair<std::string, std::unique_ptr<edgellm::Tokenizer>>> cache;
  for (auto& [n, t] : cache)
    if (n == name) return t.get();
  try {
    auto file = edgellm::gguf::File::open(kModels + "/" + name);
    auto tok = std::make_unique<edgellm::Tokenizer>(edgellm::Tokenizer::from_gguf(file));
    cache.emplace_back(name, std::move(tok));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return nullptr;
  }
  return cache.back().second.get();
}

// About 16 KB of prose: llama2.c's reference story, repeated.
const std::string& prose() {
  static const std::string text = [] {
    std::ifstream f(kModels + "/stories260K.greedy-t0-200.txt", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string one = ss.str(), all;
    if (one.empty()) one = "Once upon a time, there was a little girl named Lily. ";
    while (all.size() < 16384) all += one + "\n";
    return all;
  }();
  return text;
}

void encode(benchmark::State& state, const char* vocab) {
  const edgellm::Tokenizer* t = tokenizer(state, vocab);
  if (!t) return;
  const auto& tok = *t;
  const std::string& text = prose();
  size_t n_tokens = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text, true, false);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations() * text.size()));
  state.counters["tokens"] = double(n_tokens);
}
BENCHMARK_CAPTURE(encode, spm, "ggml-vocab-llama-spm.gguf")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(encode, llama3_bpe, "ggml-vocab-llama-bpe.gguf")->Unit(benchmark::kMicrosecond);

void decode_stream(benchmark::State& state, const char* vocab) {
  const edgellm::Tokenizer* t = tokenizer(state, vocab);
  if (!t) return;
  const auto& tok = *t;
  const auto ids = tok.encode(prose(), false, false);
  for (auto _ : state) {
    edgellm::StreamDecoder stream(tok);
    size_t n = 0;
    for (int32_t id : ids) n += stream.push(id).size();
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(int64_t(state.iterations() * ids.size()));
}
BENCHMARK_CAPTURE(decode_stream, spm, "ggml-vocab-llama-spm.gguf")->Unit(benchmark::kMicrosecond);

void sample(benchmark::State& state, edgellm::SamplerParams params) {
  const int32_t n_vocab = 32000;
  std::vector<float> logits(n_vocab);
  edgellm::kernels::Rng rng(7);
  for (float& x : logits) x = 3.0f * rng.normal();
  params.seed = 1;
  edgellm::Sampler sampler(n_vocab, params);
  for (int i = 0; i < 64; ++i) sampler.accept(i * 97);
  for (auto _ : state) benchmark::DoNotOptimize(sampler.sample(logits));
  state.SetItemsProcessed(int64_t(state.iterations()));
}
edgellm::SamplerParams greedy() {
  edgellm::SamplerParams p;
  p.temperature = 0;
  return p;
}
edgellm::SamplerParams defaults_with_penalty() {
  edgellm::SamplerParams p;  // top-k 40, top-p 0.95, min-p 0.05, temperature 0.8
  p.repeat_penalty = 1.1f;
  return p;
}
edgellm::SamplerParams top_p_only() {
  edgellm::SamplerParams p;
  p.top_k = 0;
  p.min_p = 0;
  p.top_p = 0.9f;
  return p;
}
BENCHMARK_CAPTURE(sample, greedy, greedy())->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sample, default_chain, defaults_with_penalty())->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sample, top_p_only, top_p_only())->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
