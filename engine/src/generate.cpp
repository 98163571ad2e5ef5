#include "generate.hpp"

#include <algorithm>
#include <chrono>

#include "context.hpp"
#include "sampler.hpp"
#include "tokenizer.hpp"

namespace edgellm::engine {

namespace {

// Generated text on its way to the callback: the decoder gives whole UTF-8 characters; of those,
// the longest tail that could still grow into a stop string is held back.
class TextOut {
 public:
  TextOut(const Tokenizer& tokenizer, const GenerateOptions& o)
      : decoder_(tokenizer, /*special=*/false, /*starts_text=*/false), o_(o) {
    for (const std::string& s : o.stop_strings)
      if (!s.empty()) stops_.push_back(s);
  }

  // Adds a token's text. False when the text reached a stop string (stop_hit() then) or the
  // callback asked to stop.
  bool add(int32_t token) {
    held_ += decoder_.push(token);
    size_t cut = std::string::npos;
    for (const std::string& s : stops_) cut = std::min(cut, held_.find(s));
    if (cut != std::string::npos) {
      stop_hit_ = true;
      held_.resize(cut);
      emit(held_.size(), token);
      return false;
    }
    size_t keep = 0;
    for (const std::string& s : stops_)
      for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
        if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
    return emit(held_.size() - keep, token);
  }

  // End of generation: whatever is held (a cut character included) is final.
  void finish(int32_t token) {
    held_ += decoder_.flush();
    emit(held_.size(), token);
  }

  bool stop_hit() const { return stop_hit_; }

 private:
  bool emit(size_t n, int32_t token) {
    if (n == 0 || callback_stopped_) return !callback_stopped_;
    const bool go_on = o_.on_text ? o_.on_text(std::string_view(held_.data(), n), token) : true;
    held_.erase(0, n);
    callback_stopped_ = !go_on;
    return go_on;
  }

  StreamDecoder decoder_;
  const GenerateOptions& o_;
  std::vector<std::string> stops_;
  std::string held_;
  bool stop_hit_ = false;
  bool callback_stopped_ = false;
};

}  // namespace

namespace {

void check_sampler(const Sampler& sampler, const Context& ctx) {
  if (sampler.n_vocab() != ctx.n_vocab())
    throw SamplerError("the sampler was made for another vocabulary (" + std::to_string(sampler.n_vocab()) +
                       " tokens, the model has " + std::to_string(ctx.n_vocab()) + ")");
}

}  // namespace

int32_t sample(Sampler& sampler, const Context& ctx, const float* logits, SampleStats& stats) {
  check_sampler(sampler, ctx);
  const auto t0 = std::chrono::steady_clock::now();
  const int32_t t = sampler.sample(std::span<const float>(logits, static_cast<size_t>(ctx.n_vocab())));
  stats.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ++stats.n;
  return t;
}

void generate(Context& ctx, Sampler& sampler, const Tokenizer& tokenizer, std::span<const int32_t> prompt,
              const GenerateOptions& o, GenerateResult& r, SampleStats& stats) {
  r = GenerateResult{};
  // Everything that can be refused is refused before the first side effect: the sampler here,
  // the prompt's ids and room by eval(), which changes nothing when they are wrong.
  check_sampler(sampler, ctx);
  // The prompt in one batch (prefill) at the current position.
  ctx.eval(prompt);
  r.n_prompt = static_cast<int32_t>(prompt.size());
  r.last_eval = r.n_prompt;

  TextOut out(tokenizer, o);
  int32_t last = -1;
  while (o.n_predict < 0 || r.n_generated < o.n_predict) {
    if (o.cancel && o.cancel->exchange(false)) {
      r.stop = StopReason::Cancelled;
      break;
    }
    last = sample(sampler, ctx, ctx.logits(-1), stats);
    sampler.accept(last);
    ++r.n_generated;
    if (tokenizer.is_eog(last)) {
      r.stop = StopReason::Eog;
      break;
    }
    if (!out.add(last)) {
      r.stop = out.stop_hit() ? StopReason::StopString : StopReason::Callback;
      break;
    }
    if (o.n_predict >= 0 && r.n_generated >= o.n_predict) break;  // the last token needs no eval
    if (ctx.n_past() >= ctx.n_ctx()) {
      r.stop = StopReason::ContextFull;
      break;
    }
    ctx.eval(std::span<const int32_t>(&last, 1));
    r.last_eval = 1;
  }
  if (r.stop != StopReason::StopString && r.stop != StopReason::Callback) out.finish(last);
}

}  // namespace edgellm::engine
