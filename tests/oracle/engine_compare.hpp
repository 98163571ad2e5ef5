// Test helper: our engine against llama.cpp (the oracle) on one model file, as the oracle tests
// define "as close to llama.cpp as it is to itself" (see test_engine_vs_llama.cpp's header):
// per-position logits through the prefill and the decode path, and greedy generations.
//
//   compare_file_with_llama("q8_0", path);                        // CHECKs inside
//   CHECK(our_greedy(path, {1, 300}, 64) == oracle::greedy(path, {1, 300}, 64));
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "edgellm/edgellm.hpp"
#include "edgellm/rng.hpp"
#include "oracle.hpp"

namespace edgellm::oracle_compare {

inline const std::string kTmp = EDGELLM_TEST_TMP;
inline constexpr int kSeqLen = 64;
inline constexpr double kFloorKld = 1e-5;    // below this, two engines agree for any practical purpose
inline constexpr double kFloorLogit = 1e-3;

// Distance of `b` from the reference `a`, both [n_rows][n_vocab].
struct Distance {
  double max_abs = 0;   // largest |logit difference| anywhere
  double mean_kld = 0;  // mean over positions of KL(softmax(a) || softmax(b))
};

inline Distance distance(const float* a, const float* b, int n_rows, int n_vocab) {
  Distance d;
  for (int r = 0; r < n_rows; ++r) {
    const float* x = a + static_cast<size_t>(r) * n_vocab;
    const float* y = b + static_cast<size_t>(r) * n_vocab;
    const double mx = *std::max_element(x, x + n_vocab), my = *std::max_element(y, y + n_vocab);
    double zx = 0, zy = 0;
    for (int v = 0; v < n_vocab; ++v) {
      zx += std::exp(x[v] - mx);
      zy += std::exp(y[v] - my);
      d.max_abs = std::max(d.max_abs, static_cast<double>(std::fabs(x[v] - y[v])));
    }
    double kld = 0;
    for (int v = 0; v < n_vocab; ++v) {
      const double lx = x[v] - mx - std::log(zx), ly = y[v] - my - std::log(zy);
      kld += std::exp(lx) * (lx - ly);
    }
    d.mean_kld += kld / n_rows;
  }
  return d;
}

// BOS (id `bos`) then random ids from [3, n_vocab).
inline std::vector<int32_t> random_sequence(int n, int n_vocab, uint64_t seed, int32_t bos = 1) {
  edgellm::kernels::Rng rng(seed);
  std::vector<int32_t> ids = {bos};
  while (static_cast<int>(ids.size()) < n) ids.push_back(3 + static_cast<int32_t>(rng.next() % (n_vocab - 3)));
  return ids;
}

inline edgellm_context_params context_params(bool logits_all, int n_ctx = 512) {
  edgellm_context_params p = edgellm_context_default_params();
  p.n_ctx = n_ctx;
  p.n_threads = 1;
  p.logits_all = logits_all;
  return p;
}

// Our logits for every position: the whole sequence as one batch (prefill), or the first half as a
// batch and then one token at a time (decode).
inline std::vector<float> our_logits(const std::string& path, const std::vector<int32_t>& ids, bool decode,
                                     int n_vocab) {
  edgellm::Model model(path);
  edgellm::Context ctx(model, context_params(true));
  std::vector<float> out;
  auto take = [&](int n) {
    for (int i = 0; i < n; ++i) {
      const float* l = ctx.logits(i);
      out.insert(out.end(), l, l + n_vocab);
    }
  };
  if (!decode) {
    ctx.eval(ids);
    take(static_cast<int>(ids.size()));
  } else {
    const size_t half = ids.size() / 2;
    ctx.eval(std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<long>(half)));
    take(static_cast<int>(half));
    for (size_t i = half; i < ids.size(); ++i) {
      ctx.eval({ids[i]});
      take(1);
    }
  }
  return out;
}

// Greedy: the prompt as one batch, then n tokens one at a time, each the argmax of our logits.
inline std::vector<int32_t> our_greedy(const std::string& path, const std::vector<int32_t>& prompt, int n) {
  edgellm::Model model(path);
  const int n_vocab = model.info().n_vocab;
  edgellm::Context ctx(model, context_params(false));
  std::vector<int32_t> out;
  ctx.eval(prompt);
  for (int i = 0; i < n; ++i) {
    const float* l = ctx.logits();
    out.push_back(static_cast<int32_t>(std::max_element(l, l + n_vocab) - l));
    if (i + 1 < n) ctx.eval({out.back()});
  }
  return out;
}

// The distances of our logits (prefill and decode) from llama.cpp's on `ids`, and llama.cpp's own
// spread: its haswell build, flash attention off, no repacking.
struct Comparison {
  Distance prefill, decode;
  double bound_abs = kFloorLogit, bound_kld = kFloorKld;
  std::string spread;  // "; haswell build: max, kld; ..." for messages
  std::string cpu;     // the reference build's name
};

inline Comparison compare_logits(const std::string& path, const std::vector<int32_t>& ids) {
  const int n = static_cast<int>(ids.size());
  const auto ref = oracle::logits(path, ids, oracle::kDefaultVariant, true);
  REQUIRE(ref.n_rows == n);
  const int V = ref.n_vocab;
  Comparison c;
  c.cpu = ref.cpu;
  struct Alternative {
    const char* what;
    std::string variant;
    std::vector<std::string> extra;
  };
  const Alternative alternatives[] = {{"haswell build", "haswell", {}},
                                      {"flash attention off", oracle::kDefaultVariant, {"--fa", "off"}},
                                      {"no repacking", oracle::kDefaultVariant, {"--no-repack"}}};
  std::ostringstream spread;
  for (const Alternative& a : alternatives) {
    const auto other = oracle::logits(path, ids, a.variant, true, oracle::kDefaultThreads, a.extra);
    const Distance d = distance(ref.values.data(), other.values.data(), n, V);
    c.bound_abs = std::max(c.bound_abs, d.max_abs);
    c.bound_kld = std::max(c.bound_kld, d.mean_kld);
    spread << "; " << a.what << ": " << d.max_abs << ", " << d.mean_kld;
  }
  c.spread = spread.str();
  for (bool decode : {false, true}) {
    const auto ours = our_logits(path, ids, decode, V);
    REQUIRE(ours.size() == ref.values.size());
    (decode ? c.decode : c.prefill) = distance(ref.values.data(), ours.data(), n, V);
  }
  return c;
}

// Ours against llama.cpp (its default build and settings) for one model file: the largest
// |logit difference| and the mean KLD, each within llama.cpp's own spread.
inline void compare_file_with_llama(const std::string& name, const std::string& path,
                                    const std::vector<int32_t>& ids) {
  const Comparison c = compare_logits(path, ids);
  for (bool decode : {false, true}) {
    const Distance& d = decode ? c.decode : c.prefill;
    WARN(name << (decode ? " decode" : " prefill") << ": ours vs llama.cpp " << c.cpu << ": max|dlogit| " << d.max_abs
              << ", mean KLD " << d.mean_kld << "; llama.cpp vs itself (max|dlogit|, mean KLD)" << c.spread);
    CHECK(d.max_abs <= c.bound_abs);
    CHECK(d.mean_kld <= c.bound_kld);
  }
}

inline void compare_file_with_llama(const std::string& name, const std::string& path) {
  compare_file_with_llama(name, path, random_sequence(kSeqLen, 512, 11));
}

// A model quantized by llama.cpp itself (llama_model_quantize through the oracle): its recipe for
// the file type, or with `pure` every matrix in the one type where its rows allow.
inline std::string quantized_by_llama(const std::string& from, const std::string& to, const std::string& ftype,
                                      bool pure) {
  std::vector<std::string> args = {"quantize", "-m", from, "-o", to, "--ftype", ftype, "-t", "1"};
  if (pure) args.push_back("--pure");
  oracle::run(args);
  return to;
}

}  // namespace edgellm::oracle_compare
