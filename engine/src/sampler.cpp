// Sampling chain; facts (order, penalty rule, top-p/min-p definitions) from llama.cpp's
// src/llama-sampler.cpp, code our own. Speed on a 32000-token vocabulary comes from never sorting
// more than the result: greedy is one pass over the logits, top-k selects its k straight from the
// logits with a k-element heap, top-p on an unsorted list finds its boundary by a quickselect on
// probability mass and sorts only what it keeps.
#include "sampler.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace edgellm {

namespace {

// Descending logit; ties by ascending id so the order (and so the pick) is deterministic. NaN
// sorts as -inf: the sorts need a strict weak order whatever the logits hold.
bool higher(const Candidate& a, const Candidate& b) {
  const float x = std::isnan(a.logit) ? -INFINITY : a.logit;
  const float y = std::isnan(b.logit) ? -INFINITY : b.logit;
  return x > y || (x == y && a.id < b.id);
}

float max_logit(const Candidates& c) {
  if (c.sorted) return c.data.front().logit;
  float m = -INFINITY;
  for (const Candidate& x : c.data) m = std::max(m, x.logit);
  return m;
}

// llama.cpp's repetition rule: dividing a negative logit would make the token more likely, so
// negative logits are multiplied instead.
float penalize(float logit, int32_t count, float repeat, float frequency, float presence) {
  logit = logit <= 0 ? logit * repeat : logit / repeat;
  return logit - (float(count) * frequency + presence);
}

void require(bool ok, const std::string& what) {
  if (!ok) throw SamplerError("invalid sampler parameter: " + what);
}

}  // namespace

void SamplerParams::validate() const {
  require(std::isfinite(temperature) && temperature >= 0,
          "temperature = " + std::to_string(temperature) + " (must be >= 0; 0 is greedy)");
  require(top_k >= 0, "top_k = " + std::to_string(top_k) + " (must be >= 0; 0 is off)");
  require(top_p >= 0 && top_p <= 1, "top_p = " + std::to_string(top_p) + " (must be in [0, 1])");
  require(min_p >= 0 && min_p <= 1, "min_p = " + std::to_string(min_p) + " (must be in [0, 1])");
  require(std::isfinite(repeat_penalty) && repeat_penalty > 0,
          "repeat_penalty = " + std::to_string(repeat_penalty) + " (must be > 0; 1 is off)");
  require(std::isfinite(frequency_penalty),
          "frequency_penalty = " + std::to_string(frequency_penalty) + " (must be finite)");
  require(std::isfinite(presence_penalty),
          "presence_penalty = " + std::to_string(presence_penalty) + " (must be finite)");
  require(penalty_last_n >= -1, "penalty_last_n = " + std::to_string(penalty_last_n) +
                                    " (must be >= -1; 0 is off, -1 every accepted token)");
}

void Candidates::assign(std::span<const float> logits) {
  data.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) data[i] = {int32_t(i), logits[i]};
  sorted = false;
  by_id = true;
}

// --- penalty window ---------------------------------------------------------------------------

TokenWindow::TokenWindow(int32_t n_vocab, int32_t capacity)
    : capacity_(capacity), counts_(size_t(std::max(n_vocab, 0)), 0) {}

void TokenWindow::push(int32_t id) {
  if (capacity_ == 0) return;
  if (counts_[size_t(id)]++ == 0) distinct_.push_back(id);
  ++n_;
  if (capacity_ < 0) return;
  tokens_.push_back(id);
  if (tokens_.size() > size_t(capacity_)) {
    const int32_t old = tokens_.front();
    tokens_.pop_front();
    --n_;
    if (--counts_[size_t(old)] == 0) {
      distinct_.erase(std::find(distinct_.begin(), distinct_.end(), old));  // <= window ids
    }
  }
}

void TokenWindow::clear() {
  for (int32_t id : distinct_) counts_[size_t(id)] = 0;
  distinct_.clear();
  tokens_.clear();
  n_ = 0;
}

// --- chain steps ----------------------------------------------------------------------------------

void apply_penalties(Candidates& c, const TokenWindow& window, float repeat, float frequency,
                     float presence) {
  if (c.by_id) {
    for (int32_t id : window.distinct()) {
      if (size_t(id) < c.data.size()) {
        float& l = c.data[size_t(id)].logit;
        l = penalize(l, window.count(id), repeat, frequency, presence);
      }
    }
  } else {
    for (Candidate& x : c.data) {
      if (const int32_t n = window.count(x.id); n > 0) {
        x.logit = penalize(x.logit, n, repeat, frequency, presence);
      }
    }
  }
  c.sorted = false;
}

void apply_top_k(Candidates& c, int32_t k) {
  if (k <= 0 || c.data.empty()) return;
  const size_t n = std::min(size_t(k), c.data.size());
  if (!c.sorted) {
    std::partial_sort(c.data.begin(), c.data.begin() + ptrdiff_t(n), c.data.end(), higher);
  }
  c.data.resize(n);
  c.sorted = true;
  c.by_id = false;
}

void apply_top_p(Candidates& c, float p) {
  if (p >= 1 || c.data.size() <= 1) return;
  const float m = max_logit(c);
  auto weight = [m](const Candidate& x) { return double(std::exp(x.logit - m)); };
  double total = 0;
  for (const Candidate& x : c.data) total += weight(x);
  const double target = double(p) * total;

  auto first = c.data.begin();
  size_t lo = 0, hi = c.data.size();  // the last kept candidate lies in [lo, hi)
  double above = 0;                   // mass of [0, lo), all better than the rest
  if (!c.sorted) {
    // Quickselect on mass: halve [lo, hi) around its median until it is small, keeping the
    // invariant that [0, lo) is better than [lo, hi), which is better than [hi, end).
    while (hi - lo > 64) {
      const size_t mid = lo + (hi - lo) / 2;
      std::nth_element(first + ptrdiff_t(lo), first + ptrdiff_t(mid), first + ptrdiff_t(hi), higher);
      double mass = 0;
      for (size_t i = lo; i <= mid; ++i) mass += weight(c.data[i]);
      if (above + mass >= target) {
        hi = mid + 1;
      } else {
        above += mass;
        lo = mid + 1;
      }
    }
    std::sort(first + ptrdiff_t(lo), first + ptrdiff_t(hi), higher);
  }
  size_t keep = hi;
  for (size_t i = lo; i < hi; ++i) {
    above += weight(c.data[i]);
    if (above >= target) {
      keep = i + 1;
      break;
    }
  }
  if (!c.sorted) std::sort(first, first + ptrdiff_t(lo), higher);  // one defined order
  c.data.resize(keep);
  c.sorted = true;
  c.by_id = false;
}

void apply_min_p(Candidates& c, float p) {
  if (p <= 0 || c.data.empty()) return;
  // p_i >= p * p_max  <=>  logit_i >= logit_max + log(p)
  const float m = max_logit(c);
  const float threshold = m + std::log(p);
  auto end = std::stable_partition(c.data.begin(), c.data.end(),
                                   [&](const Candidate& x) { return x.logit >= threshold; });
  if (end == c.data.begin()) return;  // only with NaN logits: keep everything
  if (end != c.data.end()) {
    c.data.erase(end, c.data.end());
    c.by_id = false;
  }
}

void apply_temperature(Candidates& c, float t) {
  // softmax(l / t) == softmax((l - max) / t): subtracting the maximum first keeps every result
  // <= 0, so no temperature overflows (l / t is +inf for l > 3.4 at t = 1e-38, and the draw
  // then picks garbage). As t -> 0 the results go to 0 for the maxima and -inf for the rest:
  // all the mass on the argmax, the distribution's exact limit.
  const float m = max_logit(c);
  if (std::isnan(m) || m == -INFINITY) {  // no finite maximum: nothing to scale against
    for (Candidate& x : c.data) x.logit /= t;
  } else if (m == INFINITY) {  // the +inf tokens take all the mass, at any temperature
    for (Candidate& x : c.data) x.logit = x.logit == INFINITY ? 0.0f : -INFINITY;
  } else {
    for (Candidate& x : c.data) x.logit = (x.logit - m) / t;
  }
}

size_t argmax(const Candidates& c) {
  size_t best = 0;
  float best_logit = -INFINITY;
  for (size_t i = 0; i < c.data.size(); ++i) {
    if (c.data[i].logit > best_logit) {
      best = i;
      best_logit = c.data[i].logit;
    }
  }
  return best;
}

std::vector<float> probabilities(const Candidates& c) {
  std::vector<float> p(c.data.size());
  if (p.empty()) return p;
  const float m = max_logit(c);
  double total = 0;
  for (size_t i = 0; i < p.size(); ++i) total += std::exp(double(c.data[i].logit) - m);
  for (size_t i = 0; i < p.size(); ++i) p[i] = float(std::exp(double(c.data[i].logit) - m) / total);
  return p;
}

size_t pick(const Candidates& c, double u) {
  const float m = max_logit(c);
  double total = 0;
  for (const Candidate& x : c.data) total += std::exp(x.logit - m);
  const double target = u * total;
  double cum = 0;
  size_t last_nonzero = 0;
  for (size_t i = 0; i < c.data.size(); ++i) {
    const double w = std::exp(c.data[i].logit - m);
    if (w <= 0) continue;  // never pick a token of probability 0
    cum += w;
    last_nonzero = i;
    if (cum > target) return i;
  }
  return last_nonzero;  // rounding left the target just out of reach
}

// --- the sampler -------------------------------------------------------------------------------------

Sampler::Sampler(int32_t n_vocab, SamplerParams params)
    : n_vocab_(n_vocab),
      params_((params.validate(), params)),
      window_(n_vocab, params.penalty_last_n),
      rng_(params.seed) {
  if (n_vocab <= 0) throw SamplerError("n_vocab = " + std::to_string(n_vocab) + " (must be > 0)");
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.size() != size_t(n_vocab_)) {
    throw SamplerError("sample: got " + std::to_string(logits.size()) + " logits, expected " +
                       std::to_string(n_vocab_));
  }
  const SamplerParams& p = params_;
  const bool penalties = p.penalty_last_n != 0 && window_.size() > 0 &&
                         (p.repeat_penalty != 1 || p.frequency_penalty != 0 || p.presence_penalty != 0);
  // The logit of token i after the penalties (a window count is an array look-up).
  auto value = [&](size_t i) {
    const int32_t n = penalties ? window_.count(int32_t(i)) : 0;
    return n > 0 ? penalize(logits[i], n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty)
                 : logits[i];
  };

  if (p.temperature == 0) {  // greedy: one pass, first of equal maxima (NaN never wins)
    size_t best = 0;
    float best_value = -INFINITY;
    for (size_t i = 0; i < logits.size(); ++i) {
      if (const float v = value(i); v > best_value) {
        best = i;
        best_value = v;
      }
    }
    return int32_t(best);
  }

  if (p.top_k > 0 && size_t(p.top_k) < logits.size()) {
    // Top-k straight from the logits: a heap of the k best so far, whose front is the worst of
    // them; most tokens cost one comparison with it.
    std::vector<Candidate>& heap = cand_.data;
    heap.clear();
    const size_t k = size_t(p.top_k);
    for (size_t i = 0; i < logits.size(); ++i) {
      const Candidate x{int32_t(i), value(i)};
      if (heap.size() < k) {
        heap.push_back(x);
        std::push_heap(heap.begin(), heap.end(), higher);
      } else if (higher(x, heap.front())) {
        std::pop_heap(heap.begin(), heap.end(), higher);
        heap.back() = x;
        std::push_heap(heap.begin(), heap.end(), higher);
      }
    }
    std::sort_heap(heap.begin(), heap.end(), higher);
    cand_.sorted = true;
    cand_.by_id = false;
  } else {
    cand_.assign(logits);
    if (penalties) {
      apply_penalties(cand_, window_, p.repeat_penalty, p.frequency_penalty, p.presence_penalty);
    }
  }
  apply_top_p(cand_, p.top_p);
  apply_min_p(cand_, p.min_p);
  apply_temperature(cand_, p.temperature);
  const double u = double(rng_.next() >> 11) * 0x1p-53;  // [0, 1) with 53 random bits
  return cand_.data[pick(cand_, u)].id;
}

void Sampler::accept(int32_t id) {
  if (id < 0 || id >= n_vocab_) {
    throw SamplerError("accept: token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                       std::to_string(n_vocab_ - 1) + ")");
  }
  window_.push(id);
}

void Sampler::reset() {
  window_.clear();
  rng_ = kernels::Rng(params_.seed);
}

}  // namespace edgellm
