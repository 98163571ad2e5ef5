// The generation loop behind edgellm_generate: evaluate the prompt, then sample, stream and
// evaluate one token at a time until end of generation, n_predict tokens, a stop string, a full
// context, the callback or a cancel request stops it.
//
//   engine::GenerateOptions o;  o.n_predict = 64;  o.stop_strings = {"\n\n"};
//   o.on_text = [](std::string_view text, int32_t token) { std::cout << text; return true; };
//   engine::GenerateResult r;  engine::SampleStats stats;
//   engine::generate(ctx, sampler, tokenizer, prompt, o, r, stats);
//
// Text reaches on_text only when it is final: whole UTF-8 characters (edgellm::StreamDecoder) and
// never text that may still be (the start of) a stop string.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edgellm {
class Sampler;
class Tokenizer;
}  // namespace edgellm

namespace edgellm::engine {

class Context;

// Time spent sampling (the C API's perf counters).
struct SampleStats {
  int32_t n = 0;
  double ms = 0;
};

// One token from a row of ctx.n_vocab() logits, timed into stats; not accepted. Throws
// SamplerError (InvalidArgument) when the sampler was made for another vocabulary size.
int32_t sample(Sampler& sampler, const Context& ctx, const float* logits, SampleStats& stats);

enum class StopReason { Eog, NPredict, StopString, ContextFull, Callback, Cancelled };

struct GenerateOptions {
  int32_t n_predict = -1;                // < 0: until end of generation or a full context
  std::vector<std::string> stop_strings;  // empty ones are ignored
  // Final text and the token that completed it; return false to stop. May be empty.
  std::function<bool(std::string_view text, int32_t token)> on_text;
  // Checked before each token; a request that stops the loop is consumed (reset to false).
  std::atomic<bool>* cancel = nullptr;
};

struct GenerateResult {
  int32_t n_prompt = 0;     // prompt tokens evaluated
  int32_t n_generated = 0;  // tokens sampled (an end-of-generation token counts)
  StopReason stop = StopReason::NPredict;
  int32_t last_eval = 0;    // tokens in the last eval (the prompt, or 1): what Context::logits indexes
};

// Evaluates the prompt at ctx's current position, then generates. `result` is filled in as it
// goes, so it is meaningful also when an exception (edgellm::Error: tokens out of range, the
// prompt does not fit, a sampler for another vocabulary, ...) stops the call; those three are
// refused before anything happens (ctx unchanged). Cancelled is a result, not an exception. Every
// sampled token is accepted by the sampler; the last one is not evaluated.
void generate(Context& ctx, Sampler& sampler, const Tokenizer& tokenizer, std::span<const int32_t> prompt,
              const GenerateOptions& options, GenerateResult& result, SampleStats& stats);

}  // namespace edgellm::engine
