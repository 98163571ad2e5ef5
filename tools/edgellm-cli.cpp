// edgellm-cli: run a prompt (or a chat on stdin) through a model and stream the text to stdout.
// Logs, errors and the stage table go to stderr, so stdout can be piped.
//
//   edgellm-cli -m model.gguf -p "Once upon a time" -n 64 --temp 0
//   edgellm-cli -m model.gguf --chat          # one user message per stdin line, until EOF
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "edgellm/edgellm.hpp"
#include "tool_common.hpp"

namespace {

using edgellm::tools::Args;
using edgellm::tools::UsageError;

struct Options {
  std::string model;
  std::string prompt;
  bool has_prompt = false;
  int32_t n_predict = 64;
  int32_t n_threads = 0;
  int32_t n_ctx = 2048;
  edgellm_kv_type kv_type = EDGELLM_KV_F16;
  std::string backend = "auto";
  edgellm_sampler_params sampling = edgellm_sampler_default_params();
  std::vector<std::string> stop;
  bool chat = false;
  bool json = false;
  bool verbose = false;
};

void usage() {
  std::fprintf(stderr,
      "usage: edgellm-cli -m MODEL.gguf -p PROMPT [options]\n"
      "  -m, --model FILE        GGUF model\n"
      "  -p, --prompt TEXT       prompt (with --chat: the system message)\n"
      "  -n, --n-predict N       tokens to generate (-1: until end of text; default 64)\n"
      "  -t, --threads N         threads (0: physical cores; default 0)\n"
      "  -c, --ctx-size N        context size in tokens (default 2048)\n"
      "  --kv-type f16|f32|q8_0  KV cache type (default f16; q8_0: about half the memory)\n"
      "  --backend NAME          where the model runs: auto (default: the GPU of an Apple build,\n"
      "                          else the CPU), cpu, metal (builds with the Metal backend)\n"
      "  --temp T                temperature (0: greedy; default 0.8)\n"
      "  --top-k N               (default 40; 0: off)\n"
      "  --top-p P               (default 0.95; 1: off)\n"
      "  --min-p P               (default 0.05; 0: off)\n"
      "  --repeat-penalty X      (default 1.0: off)\n"
      "  --repeat-last-n N       window of the penalties (default 64)\n"
      "  --frequency-penalty X, --presence-penalty X\n"
      "  --seed N                sampling seed (default: random)\n"
      "  --stop TEXT             stop at TEXT (may repeat)\n"
      "  --chat, -i              chat with the model's template: one user message per stdin line\n"
      "  --json                  print the stage timings as JSON (to stderr)\n"
      "  -v, --verbose           library log to stderr\n");
}

Options parse(int argc, char** argv) {
  Options o;
  Args a(argc, argv);
  while (a.more()) {
    std::string opt = a.next();
    if (opt == "-m" || opt == "--model") o.model = a.value(opt);
    else if (opt == "-p" || opt == "--prompt") { o.prompt = a.value(opt); o.has_prompt = true; }
    else if (opt == "-n" || opt == "--n-predict") o.n_predict = static_cast<int32_t>(a.integer(opt, -1, 1 << 30));
    else if (opt == "-t" || opt == "--threads") o.n_threads = static_cast<int32_t>(a.integer(opt, 0, 1024));
    else if (opt == "-c" || opt == "--ctx-size") o.n_ctx = static_cast<int32_t>(a.integer(opt, 1, 1 << 24));
    else if (opt == "--kv-type") {
      std::string v = a.value(opt);
      if (v == "f16") o.kv_type = EDGELLM_KV_F16;
      else if (v == "f32") o.kv_type = EDGELLM_KV_F32;
      else if (v == "q8_0") o.kv_type = EDGELLM_KV_Q8_0;
      else throw UsageError("option --kv-type must be f16, f32 or q8_0, got '" + v + "'");
    }
    else if (opt == "--backend") o.backend = a.value(opt);
    else if (opt == "--temp") o.sampling.temperature = a.real(opt, 0.0, 100.0);
    else if (opt == "--top-k") o.sampling.top_k = static_cast<int32_t>(a.integer(opt, 0, 1 << 30));
    else if (opt == "--top-p") o.sampling.top_p = a.real(opt, 0.0, 1.0);
    else if (opt == "--min-p") o.sampling.min_p = a.real(opt, 0.0, 1.0);
    else if (opt == "--repeat-penalty") o.sampling.repeat_penalty = a.real(opt, 0.0, 100.0);
    else if (opt == "--repeat-last-n") o.sampling.penalty_last_n = static_cast<int32_t>(a.integer(opt, -1, 1 << 24));
    else if (opt == "--frequency-penalty") o.sampling.frequency_penalty = a.real(opt, -100.0, 100.0);
    else if (opt == "--presence-penalty") o.sampling.presence_penalty = a.real(opt, -100.0, 100.0);
    else if (opt == "--seed") o.sampling.seed = static_cast<uint32_t>(a.integer(opt, 0, 0xFFFFFFFFll));
    else if (opt == "--stop") o.stop.push_back(a.value(opt));
    else if (opt == "--chat" || opt == "-i" || opt == "--interactive") o.chat = true;
    else if (opt == "--json") o.json = true;
    else if (opt == "-v" || opt == "--verbose") o.verbose = true;
    else if (opt == "-h" || opt == "--help") { usage(); std::exit(0); }
    else throw UsageError("unknown option '" + opt + "' (see --help)");
  }
  if (o.model.empty()) throw UsageError("no model given (-m MODEL.gguf)");
  if (!o.chat && !o.has_prompt) throw UsageError("no prompt given (-p TEXT), and not --chat");
  if (o.sampling.repeat_penalty <= 0.0f) throw UsageError("option --repeat-penalty must be > 0");
  return o;
}

// stdout could not be written (disk full, closed terminal, ...): the text the user asked for is
// lost, so the tool fails with this (one line, exit 1) rather than reporting success.
struct WriteError : std::runtime_error {
  explicit WriteError(int err) : std::runtime_error(std::string("cannot write to stdout: ") + std::strerror(err)) {}
};

// Writes to stdout and flushes (the text streams as it comes); throws WriteError when either fails.
// Thrown from the generation callback, it stops the generation (the C++ wrapper rethrows it).
void write_stdout(std::string_view text) {
  errno = 0;
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
    throw WriteError(errno ? errno : EIO);
}

// Everything written so far reached the file, and stdout is closed cleanly (a buffered write can
// fail only here, e.g. on NFS or /dev/full).
void close_stdout() {
  errno = 0;
  const bool had_error = std::ferror(stdout) != 0;
  if (std::fflush(stdout) != 0 || had_error) throw WriteError(errno ? errno : EIO);
  if (std::fclose(stdout) != 0) throw WriteError(errno ? errno : EIO);
}

// Writes generated text to stdout as it comes.
bool print_text(std::string_view text, std::string* collect) {
  write_stdout(text);
  if (collect) collect->append(text);
  return true;
}

void print_stages(const edgellm_perf& p, bool json) {
  struct Row {
    const char* name;
    int32_t tokens;
    double ms;
  } rows[] = {{"sampling", p.n_sample, p.sample_ms},
              {"prefill", p.n_prefill_tokens, p.prefill_ms},
              {"decode", p.n_decode_tokens, p.decode_ms}};
  if (json) {
    std::fprintf(stderr, "{\"load_ms\": %.3f", p.load_ms);
    for (const Row& r : rows)
      std::fprintf(stderr, ", \"%s\": {\"tokens\": %d, \"ms\": %.3f, \"ms_per_token\": %.4f, \"tokens_per_s\": %.3f}",
                   r.name, r.tokens, r.ms, r.tokens ? r.ms / r.tokens : 0.0, r.ms > 0 ? 1e3 * r.tokens / r.ms : 0.0);
    std::fprintf(stderr, ", \"peak_memory_bytes\": %llu}\n", static_cast<unsigned long long>(p.peak_rss_bytes));
    return;
  }
  std::fprintf(stderr, "\n%-10s %8s %12s %12s %12s\n", "stage", "tokens", "total ms", "ms/token", "tokens/s");
  std::fprintf(stderr, "%-10s %8s %12.2f %12s %12s\n", "load", "-", p.load_ms, "-", "-");
  for (const Row& r : rows) {
    if (r.tokens > 0)
      std::fprintf(stderr, "%-10s %8d %12.2f %12.3f %12.2f\n", r.name, r.tokens, r.ms, r.ms / r.tokens,
                   r.ms > 0 ? 1e3 * r.tokens / r.ms : 0.0);
    else
      std::fprintf(stderr, "%-10s %8d %12.2f %12s %12s\n", r.name, 0, r.ms, "-", "-");
  }
  std::fprintf(stderr, "peak memory: %s\n", edgellm::tools::format_bytes(static_cast<double>(p.peak_rss_bytes)).c_str());
}

// One-shot: the prompt, then the continuation.
void run_prompt(const Options& o, edgellm::Model& model, edgellm::Context& ctx, edgellm::Sampler& sampler) {
  std::vector<edgellm::Token> prompt = model.tokenize(o.prompt, /*add_special=*/true, /*parse_special=*/true);
  if (static_cast<int64_t>(prompt.size()) > ctx.n_ctx())  // say so before printing anything
    throw edgellm::Exception(EDGELLM_ERR_CONTEXT_FULL, "the prompt is " + std::to_string(prompt.size()) +
                                                           " tokens, longer than the context (-c " +
                                                           std::to_string(ctx.n_ctx()) + ")");
  write_stdout(o.prompt);
  ctx.generate(sampler, prompt, o.n_predict, [](std::string_view t) { return print_text(t, nullptr); }, o.stop);
  write_stdout("\n");
}

// Chat: each stdin line is a user message. The cache keeps the conversation: each turn evaluates
// only the text its template adds after what is already there (the assistant's reply is
// re-evaluated as part of the next turn, so the cache matches the template exactly).
void run_chat(const Options& o, edgellm::Model& model, edgellm::Context& ctx, edgellm::Sampler& sampler) {
  std::string tmpl;
  if (!model.info().has_chat_template) {
    std::fprintf(stderr, "edgellm-cli: note: the model has no chat template; using chatml\n");
    tmpl = "chatml";
  }
  std::vector<edgellm::Model::Message> messages;
  if (o.has_prompt) messages.push_back({"system", o.prompt});
  size_t formatted_in_cache = 0;  // bytes of the formatted conversation already in the cache
  const bool tty = isatty(STDIN_FILENO);
  std::string line;
  while (true) {
    if (tty) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    messages.push_back({"user", line});
    std::string formatted = model.apply_chat_template(messages, /*add_generation_prompt=*/true, tmpl);
    std::string added = formatted.substr(std::min(formatted_in_cache, formatted.size()));
    std::vector<edgellm::Token> tokens = model.tokenize(added, /*add_special=*/formatted_in_cache == 0,
                                                        /*parse_special=*/true);
    // The turn must fit with room for at least one reply token. When it does not, the message is
    // not sent (the conversation and the cache stay as they were) and the chat goes on: a shorter
    // message may still fit.
    const int64_t free_tokens = int64_t(ctx.n_ctx()) - ctx.n_past();
    if (static_cast<int64_t>(tokens.size()) >= free_tokens) {
      std::fprintf(stderr,
                   "edgellm-cli: this message does not fit in the context: the turn is %zu tokens and %lld of "
                   "the %d are free (a reply needs at least one more); not sent (a shorter message, or a "
                   "larger -c)\n",
                   tokens.size(), static_cast<long long>(free_tokens), ctx.n_ctx());
      messages.pop_back();
      continue;
    }
    const int32_t reply_start = ctx.n_past() + static_cast<int32_t>(tokens.size());
    std::string reply;
    edgellm_generate_result r =
        ctx.generate(sampler, tokens, o.n_predict, [&](std::string_view t) { return print_text(t, &reply); }, o.stop);
    write_stdout("\n");
    // Drop the reply from the cache: the next turn evaluates it in the template's form.
    ctx.rewind(std::min(reply_start, ctx.n_past()));
    formatted_in_cache = formatted.size();
    messages.push_back({"assistant", reply});
    if (r.stop_reason == EDGELLM_STOP_CONTEXT_FULL) {
      std::fprintf(stderr, "edgellm-cli: the context is full (%d tokens); ending the chat\n", ctx.n_ctx());
      break;
    }
  }
}

void log_to_stderr(edgellm_log_level level, const char* message, void*) {
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::fprintf(stderr, "[edgellm %s] %s\n", names[level < 0 || level > 3 ? 3 : level], message);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    if (o.verbose) edgellm_set_log_callback(log_to_stderr, EDGELLM_LOG_DEBUG, nullptr);

    edgellm::Model model(o.model);
    edgellm_context_params cp = edgellm_context_default_params();
    cp.n_ctx = o.n_ctx;
    cp.n_threads = o.n_threads;
    cp.kv_type = o.kv_type;
    cp.backend = o.backend.c_str();
    edgellm::Context ctx(model, cp);
    if (o.verbose) std::fprintf(stderr, "edgellm-cli: backend %s\n", ctx.backend_name());
    edgellm::Sampler sampler(model, o.sampling);

    if (o.chat)
      run_chat(o, model, ctx, sampler);
    else
      run_prompt(o, model, ctx, sampler);
    close_stdout();
    print_stages(ctx.perf(), o.json);
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "edgellm-cli: error: %s\n", e.what());
    return 2;
  } catch (const edgellm::Exception& e) {
    std::fflush(stdout);  // the text so far before the error line (a failure here is moot)
    std::fprintf(stderr, "edgellm-cli: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgellm-cli: error: %s\n", e.what());
    return 1;
  }
}
