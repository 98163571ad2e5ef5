// Sampler: each chain step against its definition, the whole chain's statistics against the
// distribution it should draw from, reproducibility from the seed, parameter checks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "edgellm/rng.hpp"
#include "sampler.hpp"

using namespace edgellm;

namespace {

std::vector<float> random_logits(size_t n, uint64_t seed) {
  kernels::Rng rng(seed);
  std::vector<float> l(n);
  for (float& x : l) x = 3.0f * rng.normal();
  return l;
}

std::vector<int32_t> ids_of(const Candidates& c) {
  std::vector<int32_t> ids;
  for (const Candidate& x : c.data) ids.push_back(x.id);
  return ids;
}

SamplerParams plain(float temperature, uint64_t seed = 1) {
  SamplerParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0;
  p.seed = seed;
  return p;
}

// Draws n tokens and checks each frequency against `expected` within 5 standard deviations of a
// binomial count (false-failure chance per token below 1e-6).
void check_frequencies(Sampler& s, const std::vector<float>& logits,
                       const std::vector<double>& expected, int n) {
  std::vector<int> hits(logits.size(), 0);
  for (int i = 0; i < n; ++i) hits[size_t(s.sample(logits))]++;
  for (size_t t = 0; t < expected.size(); ++t) {
    const double mean = expected[t] * n;
    const double sd = std::sqrt(n * expected[t] * (1 - expected[t]));
    INFO("token " << t << " expected p " << expected[t] << " got " << hits[t] << "/" << n);
    CHECK(std::abs(hits[t] - mean) <= 5 * sd + 1e-9);
  }
}

}  // namespace

TEST_CASE("greedy picks the argmax; top-k = 1 is greedy", "[sampler]") {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto logits = random_logits(32000, seed);
    const int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    Sampler greedy(32000, plain(0.0f, seed));
    CHECK(greedy.sample(logits) == best);
    SamplerParams k1 = plain(1.5f, seed);
    k1.top_k = 1;
    Sampler topk1(32000, k1);
    for (int i = 0; i < 5; ++i) CHECK(topk1.sample(logits) == best);
  }
}

TEST_CASE("the same seed reproduces the same sequence", "[sampler]") {
  const auto logits = random_logits(32000, 7);
  SamplerParams p;  // llama.cpp's defaults: top-k 40, top-p 0.95, min-p 0.05, temperature 0.8
  p.temperature = 1.5f;
  p.min_p = 0;
  p.seed = 1234;
  p.repeat_penalty = 1.1f;
  auto run = [&](Sampler& s) {
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) {
      out.push_back(s.sample(logits));
      s.accept(out.back());
    }
    return out;
  };
  Sampler a(32000, p), b(32000, p);
  const auto ra = run(a);
  CHECK(ra == run(b));
  a.reset();
  CHECK(run(a) == ra);  // reset restarts the stream and forgets the window
  p.seed = 1235;
  Sampler c(32000, p);
  CHECK(run(c) != ra);
  // Not degenerate: several different tokens were drawn.
  CHECK(std::set<int32_t>(ra.begin(), ra.end()).size() > 5);
}

TEST_CASE("sampling frequencies match the distribution", "[sampler]") {
  const std::vector<double> p = {0.1, 0.2, 0.3, 0.4};
  std::vector<float> logits;
  for (double x : p) logits.push_back(float(std::log(x)));

  Sampler t1(4, plain(1.0f, 99));
  check_frequencies(t1, logits, p, 200000);

  // Temperature 0.5 squares the probabilities (then renormalizes).
  std::vector<double> sq;
  for (double x : p) sq.push_back(x * x / 0.3);
  Sampler t05(4, plain(0.5f, 100));
  check_frequencies(t05, logits, sq, 200000);

  // top-k 2 keeps 0.3 and 0.4 and renormalizes.
  SamplerParams k2 = plain(1.0f, 101);
  k2.top_k = 2;
  Sampler topk(4, k2);
  check_frequencies(topk, logits, {0, 0, 0.3 / 0.7, 0.4 / 0.7}, 100000);

  // Tokens of probability 0 are never drawn.
  std::vector<float> with_inf = logits;
  with_inf[1] = -INFINITY;
  Sampler zero(4, plain(1.0f, 102));
  check_frequencies(zero, with_inf, {0.1 / 0.8, 0, 0.3 / 0.8, 0.4 / 0.8}, 100000);
}

TEST_CASE("pick walks the cumulative distribution", "[sampler]") {
  Candidates c;
  const std::vector<float> l = {std::log(0.25f), std::log(0.5f), std::log(0.25f)};
  c.assign(l);
  CHECK(pick(c, 0.0) == 0);
  CHECK(pick(c, 0.2499) == 0);
  CHECK(pick(c, 0.2501) == 1);
  CHECK(pick(c, 0.7499) == 1);
  CHECK(pick(c, 0.7501) == 2);
  CHECK(pick(c, 0.999999) == 2);
}

TEST_CASE("penalties change the logits as llama.cpp specifies", "[sampler]") {
  const std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.0f, 3.0f};
  TokenWindow w(5, 3);
  for (int32_t id : {0, 1, 0}) w.push(id);
  Candidates c;
  c.assign(logits);
  apply_penalties(c, w, 2.0f, 0.5f, 0.25f);
  CHECK(c.data[0].logit == Approx(2.0f / 2 - 2 * 0.5f - 0.25f));   // positive: divided
  CHECK(c.data[1].logit == Approx(-2.0f * 2 - 1 * 0.5f - 0.25f));  // negative: multiplied
  CHECK(c.data[2].logit == 1.0f);                                  // not in the window
  CHECK(c.data[4].logit == 3.0f);

  // The window slides: after two more tokens the first 0 and the 1 have left it.
  w.push(3);
  w.push(3);
  CHECK(w.count(0) == 1);
  CHECK(w.count(1) == 0);
  CHECK(w.count(3) == 2);
  CHECK(w.size() == 3);
  Candidates d;
  d.assign(logits);
  apply_top_k(d, 5);  // not by id any more: the general path
  apply_penalties(d, w, 2.0f, 0.0f, 0.0f);
  for (const Candidate& x : d.data) {
    if (x.id == 0) CHECK(x.logit == 1.0f);
    if (x.id == 1) CHECK(x.logit == -2.0f);
    if (x.id == 3) CHECK(x.logit == 0.0f);  // 0 * 2 stays 0
  }

  // In the sampler: a repeated token loses to the runner-up under greedy.
  SamplerParams p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  p.penalty_last_n = 4;
  Sampler s(5, p);
  CHECK(s.sample(logits) == 4);
  s.accept(4);
  CHECK(s.sample(logits) == 0);  // 3/2 = 1.5 < 2
  // Window 0 turns penalties off.
  p.penalty_last_n = 0;
  Sampler off(5, p);
  off.accept(4);
  CHECK(off.sample(logits) == 4);
  CHECK_THROWS_AS(off.accept(5), SamplerError);
  CHECK_THROWS_AS(off.accept(-1), SamplerError);
  try {
    off.accept(5);
    FAIL("no exception");
  } catch (const edgellm::Error& e) {  // one family: the C API maps the kind to its status
    CHECK(e.kind() == edgellm::Error::Kind::InvalidArgument);
  }
}

TEST_CASE("top-k keeps the k best, sorted", "[sampler]") {
  const auto logits = random_logits(32000, 3);
  Candidates c;
  c.assign(logits);
  apply_top_k(c, 40);
  REQUIRE(c.data.size() == 40);
  CHECK(c.sorted);
  auto sorted = logits;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  for (size_t i = 0; i < 40; ++i) CHECK(c.data[i].logit == sorted[i]);
  Candidates all;
  all.assign(logits);
  apply_top_k(all, 0);
  CHECK(all.data.size() == 32000);
  apply_top_k(all, 100000);
  CHECK(all.data.size() == 32000);
}

TEST_CASE("top-p keeps the smallest set with enough mass", "[sampler]") {
  // Probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 (in scrambled order).
  const std::vector<float> logits = {std::log(0.0625f), std::log(0.25f), std::log(0.5f),
                                     std::log(0.0625f), std::log(0.125f)};
  auto top_p = [&](float p) {
    Candidates c;
    c.assign(logits);
    apply_top_p(c, p);
    return ids_of(c);
  };
  CHECK(top_p(0.45f) == std::vector<int32_t>{2});
  CHECK(top_p(0.6f) == std::vector<int32_t>{2, 1});
  CHECK(top_p(0.74f) == std::vector<int32_t>{2, 1});
  CHECK(top_p(0.8f) == std::vector<int32_t>{2, 1, 4});
  CHECK(top_p(0.0f) == std::vector<int32_t>{2});
  CHECK(top_p(1.0f).size() == 5);

  // Large vocabulary, mass spread thin: the set must go past the first 256 sorted candidates.
  const auto wide = random_logits(32000, 11);
  for (float p : {0.3f, 0.9f, 0.99f}) {
    Candidates c;
    c.assign(wide);
    apply_top_p(c, p);
    const auto probs_all = [&] {
      Candidates a;
      a.assign(wide);
      return probabilities(a);
    }();
    std::vector<float> sorted = probs_all;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    double mass = 0;
    for (const Candidate& x : c.data) mass += probs_all[size_t(x.id)];
    double without_last = mass - probs_all[size_t(c.data.back().id)];
    INFO("p = " << p << " kept " << c.data.size());
    CHECK(mass >= p - 1e-5);
    CHECK(without_last < p + 1e-5);  // minimal
    CHECK(std::is_sorted(c.data.begin(), c.data.end(),
                         [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; }));
  }
}

TEST_CASE("min-p keeps p >= min_p * p_max", "[sampler]") {
  const std::vector<float> logits = {std::log(0.4f), std::log(0.05f), std::log(0.3f),
                                     std::log(0.15f), std::log(0.1f)};
  auto min_p = [&](float p) {
    Candidates c;
    c.assign(logits);
    apply_min_p(c, p);
    return ids_of(c);
  };
  CHECK(min_p(0.3f) == std::vector<int32_t>{0, 2, 3});  // threshold 0.12
  CHECK(min_p(0.2f) == std::vector<int32_t>{0, 2, 3, 4});  // threshold 0.08
  CHECK(min_p(1.0f) == std::vector<int32_t>{0});
  CHECK(min_p(0.0f).size() == 5);
}

TEST_CASE("invalid parameters are clear errors", "[sampler]") {
  auto bad = [](auto change) {
    SamplerParams p;
    change(p);
    return p;
  };
  CHECK_THROWS_AS(Sampler(10, bad([](SamplerParams& p) { p.temperature = -0.5f; })), SamplerError);
  CHECK_THROWS_AS(Sampler(10, bad([](SamplerParams& p) { p.temperature = NAN; })), SamplerError);
  CHECK_THROWS_AS(Sampler(10, bad([](SamplerParams& p) { p.top_p = 1.5f; })), SamplerError);
  CHECK_THROWS_AS(Sampler(10, bad([](SamplerParams& p) { p.top_p = -0.1f; })), SamplerError);
  CHECK_THROWS_AS(Sampler(10, bad([](SamplerParams& p) { p.min_p = 2.0f; })), SamplerError);
  CHECK_THROWS_AS(Sampler(10, bad([](SamplerParams& p) { p.top_k = -1; })), SamplerError);
  CHECK_THROWS_AS(Sampler(10, bad([](SamplerParams& p) { p.repeat_penalty = 0.0f; })), SamplerError);
  CHECK_THROWS_AS(Sampler(10, bad([](SamplerParams& p) { p.frequency_penalty = INFINITY; })),
                  SamplerError);
  CHECK_THROWS_AS(Sampler(10, bad([](SamplerParams& p) { p.penalty_last_n = -2; })), SamplerError);
  CHECK_THROWS_AS(Sampler(0, SamplerParams{}), SamplerError);
  try {
    Sampler(10, bad([](SamplerParams& p) { p.top_p = 1.5f; }));
  } catch (const SamplerError& e) {
    CHECK(std::string(e.what()).find("top_p") != std::string::npos);
  }
  Sampler ok(10, SamplerParams{});
  std::vector<float> short_row(9, 0.0f);
  CHECK_THROWS_AS(ok.sample(short_row), SamplerError);
}

TEST_CASE("the sampler equals the chain of free functions", "[sampler]") {
  // Sampler takes shortcuts (greedy in one pass, top-k straight from the logits); the result must
  // be what the plain chain gives, draw for draw.
  for (int32_t top_k : {0, 1, 40, 31999, 32000}) {
    SamplerParams p;
    p.temperature = 0.9f;
    p.top_k = top_k;
    p.top_p = 0.9f;
    p.min_p = 0.02f;
    p.repeat_penalty = 1.3f;
    p.frequency_penalty = 0.1f;
    p.presence_penalty = 0.2f;
    p.penalty_last_n = 16;
    p.seed = 77 + uint64_t(top_k);
    Sampler s(32000, p);
    kernels::Rng rng(p.seed);
    TokenWindow window(32000, p.penalty_last_n);
    for (int step = 0; step < 60; ++step) {
      const auto logits = random_logits(32000, 1000 + uint64_t(step % 7));
      Candidates c;
      c.assign(logits);
      apply_penalties(c, window, p.repeat_penalty, p.frequency_penalty, p.presence_penalty);
      apply_top_k(c, p.top_k);
      apply_top_p(c, p.top_p);
      apply_min_p(c, p.min_p);
      apply_temperature(c, p.temperature);
      const int32_t expected = c.data[pick(c, double(rng.next() >> 11) * 0x1p-53)].id;
      const int32_t got = s.sample(logits);
      INFO("top_k " << top_k << " step " << step);
      REQUIRE(got == expected);
      s.accept(got);
      window.push(got);
    }
  }
}

TEST_CASE("non-finite logits still give a valid token", "[sampler]") {
  auto logits = random_logits(1000, 5);
  for (size_t i = 0; i < logits.size(); i += 3) logits[i] = NAN;
  for (size_t i = 1; i < logits.size(); i += 7) logits[i] = -INFINITY;
  std::vector<float> all_inf(1000, -INFINITY);
  std::vector<float> all_nan(1000, NAN);
  for (int mode = 0; mode < 4; ++mode) {
    SamplerParams p;
    p.temperature = mode == 0 ? 0.0f : 1.0f;
    p.top_k = mode == 2 ? 0 : 40;
    p.top_p = mode == 3 ? 1.0f : 0.9f;
    p.repeat_penalty = 1.2f;
    Sampler s(1000, p);
    for (const auto* row : {&logits, &all_inf, &all_nan}) {
      for (int i = 0; i < 20; ++i) {
        const int32_t id = s.sample(*row);
        REQUIRE((id >= 0 && id < 1000));
        s.accept(id);
      }
    }
    // With some finite logits, a NaN or -inf token is never drawn.
    for (int i = 0; i < 50; ++i) {
      const int32_t id = s.sample(logits);
      CHECK(std::isfinite(logits[size_t(id)]));
    }
  }
}

TEST_CASE("tiny temperatures give the argmax, not an overflow", "[sampler]") {
  // logits / t overflows float for t this small (1e-38 * 3.4e38 = 3.4): the distribution's limit
  // as t -> 0 is all mass on the argmax, so every draw must be it, whatever the other steps.
  const auto logits = random_logits(32000, 11);
  const int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  REQUIRE(logits[size_t(best)] > 4.0f);  // so logits[best] / 1e-38 is beyond FLT_MAX
  for (float t : {1e-38f, FLT_MIN, 1e-45f /* denormal */, FLT_MIN / 1024, 1e-30f}) {
    for (int32_t top_k : {0, 40}) {
      for (float min_p : {0.0f, 0.05f}) {
        SamplerParams p = plain(t, 3);
        p.top_k = top_k;
        p.min_p = min_p;
        p.top_p = top_k ? 0.95f : 1.0f;
        Sampler s(32000, p);
        for (int i = 0; i < 20; ++i) {
          INFO("temperature " << t << " top_k " << top_k << " min_p " << min_p << " draw " << i);
          REQUIRE(s.sample(logits) == best);
        }
      }
    }
    // The free step on its own: the result's softmax is the limit distribution (all on the max).
    Candidates c;
    c.assign(logits);
    apply_temperature(c, t);
    const auto probs = probabilities(c);
    INFO("temperature " << t);
    CHECK(probs[size_t(best)] == 1.0f);
    CHECK(pick(c, 0.0) == size_t(best));
    CHECK(pick(c, 0.999999) == size_t(best));
  }
  // Two equal maxima share the mass (the exact limit), and nothing else is ever drawn.
  std::vector<float> tie(100, 1.0f);
  tie[7] = tie[42] = 50.0f;
  Sampler s(100, plain(1e-40f, 9));
  std::set<int32_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(s.sample(tie));
  CHECK(seen == std::set<int32_t>{7, 42});
  // Temperature 0 is greedy as before (the first of equal maxima), and invalid ones are refused
  // as InvalidArgument.
  Sampler g(100, plain(0.0f));
  CHECK(g.sample(tie) == 7);
  CHECK(Sampler(32000, plain(0.0f)).sample(logits) == best);
  for (float bad : {-1e-38f, -1.0f, NAN, INFINITY, -FLT_MIN}) {
    INFO("temperature " << bad);
    try {
      Sampler x(10, plain(bad));
      FAIL("accepted");
    } catch (const SamplerError& e) {
      CHECK(e.kind() == Error::Kind::InvalidArgument);
      CHECK(std::string(e.what()).find("temperature") != std::string::npos);
    }
  }
}
