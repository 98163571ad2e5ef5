// Picks the next token from a row of logits.
//
// The chain is llama.cpp's default one (common/sampling), in this order:
//   penalties -> top-k -> top-p -> min-p -> temperature -> random pick
// Each step is a free function on a Candidates list (so each is testable and reusable); Sampler
// holds the parameters, the window of recent tokens the penalties look at, a seeded random stream
// and a reusable candidate buffer. temperature == 0 is greedy: the argmax after the penalties
// (top-k/top-p/min-p always keep the top token, so they cannot change it).
//
//   Sampler s(tokenizer.n_vocab(), {.temperature = 0.7f, .top_k = 40, .seed = 42});
//   int32_t id = s.sample(logits);   // logits: n_vocab floats
//   s.accept(id);                    // feed the penalty window (prompt tokens too, if wanted)
//
// The same seed, parameters, accepted tokens and logits give the same tokens on every platform:
// the random numbers come from edgellm::kernels::Rng, not from the standard library.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "edgellm/rng.hpp"
#include "error.hpp"  // SamplerError

namespace edgellm {

struct SamplerParams {
  float temperature = 0.8f;      // 0: greedy; must be >= 0
  int32_t top_k = 40;            // 0: off; must be >= 0
  float top_p = 0.95f;           // 1: off; in [0, 1] (0 keeps only the top token)
  float min_p = 0.05f;           // 0: off; in [0, 1]: keep p >= min_p * p_max
  float repeat_penalty = 1.0f;   // 1: off; > 0. Positive logits are divided by it, negative
                                 // ones multiplied, for every token in the window
  float frequency_penalty = 0;   // subtracted once per occurrence in the window
  float presence_penalty = 0;    // subtracted once if the token occurs in the window at all
  int32_t penalty_last_n = 64;   // window of accepted tokens; 0: penalties off; -1: all of them
  uint64_t seed = 0;

  void validate() const;  // throws SamplerError naming the bad parameter and its valid range
};

struct Candidate {
  int32_t id;
  float logit;
};

// Candidate tokens. `sorted`: in descending logit order (ties by id). `by_id`: data[i].id == i
// for the whole vocabulary (the state before anything was filtered or reordered).
struct Candidates {
  std::vector<Candidate> data;
  bool sorted = false;
  bool by_id = false;

  void assign(std::span<const float> logits);  // every token, by_id
};

// Occurrence counts of the tokens in a penalty window, kept per token id.
class TokenWindow {
 public:
  explicit TokenWindow(int32_t n_vocab = 0, int32_t capacity = 64);  // capacity -1: unbounded
  void push(int32_t id);
  void clear();
  int32_t count(int32_t id) const { return counts_[size_t(id)]; }
  std::span<const int32_t> distinct() const { return distinct_; }  // ids with count > 0
  size_t size() const { return n_; }

 private:
  int32_t capacity_;
  std::deque<int32_t> tokens_;  // the window itself (only kept when bounded)
  std::vector<int32_t> counts_;
  std::vector<int32_t> distinct_;
  size_t n_ = 0;
};

// The chain's steps, in llama.cpp's semantics. Each keeps at least one candidate.
void apply_penalties(Candidates& c, const TokenWindow& window, float repeat, float frequency,
                     float presence);
void apply_top_k(Candidates& c, int32_t k);        // k <= 0: no-op; leaves c sorted
void apply_top_p(Candidates& c, float p);          // p >= 1: no-op; smallest prefix with mass >= p
void apply_min_p(Candidates& c, float p);          // p <= 0: no-op; keeps order
// t > 0: logit -> (logit - max) / t, the same distribution as logit / t without overflow (any
// t down to the smallest denormal gives the argmax); keeps order.
void apply_temperature(Candidates& c, float t);
size_t argmax(const Candidates& c);  // index into c.data; first of equal maxima; NaN never wins
// Softmax of the logits, then the first index whose running probability mass reaches u * total.
// u in [0, 1). Returns an index into c.data.
size_t pick(const Candidates& c, double u);
std::vector<float> probabilities(const Candidates& c);  // softmax of c's logits, in c's order

// Holds state (window, random stream, buffers): one Sampler per generation stream.
class Sampler {
 public:
  Sampler(int32_t n_vocab, SamplerParams params = {});  // throws SamplerError

  // One token id from n_vocab logits (throws SamplerError on a wrong length). Does not accept it.
  int32_t sample(std::span<const float> logits);
  void accept(int32_t id);  // throws SamplerError for an id outside the vocabulary
  void reset();             // forget accepted tokens, restart the random stream from the seed

  const SamplerParams& params() const { return params_; }
  int32_t n_vocab() const { return n_vocab_; }

 private:
  int32_t n_vocab_;
  SamplerParams params_;
  TokenWindow window_;
  kernels::Rng rng_;
  Candidates cand_;
};

}  // namespace edgellm
