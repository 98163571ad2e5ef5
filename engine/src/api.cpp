// The C API (edgellm.h) over the engine's C++ classes. This file is the boundary: every entry point
// catches every exception (std::bad_alloc included) and turns it into a status plus a thread-local
// message "function: what went wrong"; arguments are checked here before they reach the engine.
#include "edgellm/edgellm.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgellm/gguf.hpp"
#include "chat_template.hpp"
#include "log.hpp"
#include "sampler.hpp"
#include "tokenizer.hpp"
#include "context.hpp"
#include "edgellm/kernels/thread_pool.hpp"
#include "error.hpp"
#include "model.hpp"

namespace edgellm {
const char* version_string();
}

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// ---- Errors ------------------------------------------------------------------------------------

thread_local std::string t_last_error;

// An error detected here, at the boundary (bad argument, full context, ...).
struct ApiError {
  edgellm_status status;
  std::string message;
};

[[noreturn]] void fail(edgellm_status status, std::string message) { throw ApiError{status, std::move(message)}; }

edgellm_status record(edgellm_status status, const char* where, std::string_view why) noexcept {
  try {
    t_last_error.assign(where);
    t_last_error += ": ";
    t_last_error += why;
  } catch (...) {
    // Out of memory while describing the error: keep whatever fits in the old buffer.
    t_last_error.clear();
  }
  edgellm::log().debug("{}: {}", where, why);
  return status;
}

edgellm_status engine_status(edgellm::Error::Kind kind) {
  switch (kind) {
    case edgellm::Error::Kind::InvalidArgument: return EDGELLM_ERR_INVALID_ARGUMENT;
    case edgellm::Error::Kind::ContextFull: return EDGELLM_ERR_CONTEXT_FULL;
    case edgellm::Error::Kind::Unsupported: return EDGELLM_ERR_UNSUPPORTED;
    case edgellm::Error::Kind::Format: return EDGELLM_ERR_FORMAT;
  }
  return EDGELLM_ERR_INTERNAL;
}

// The value a C caller put in an enum field. A C enum may hold any int; reading one outside the
// enumerators as the C++ enum type is undefined, so the bits are read as an int.
template <class E>
int enum_bits(const E& e) {
  static_assert(sizeof(E) == sizeof(int));
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// Runs body() and maps every exception to a status and the thread's last-error message.
template <class Body>
edgellm_status guarded(const char* where, Body&& body) noexcept {
  try {
    body();
    return EDGELLM_OK;
  } catch (const ApiError& e) {
    return record(e.status, where, e.message);
  } catch (const edgellm::gguf::GgufError& e) {
    return record(EDGELLM_ERR_FORMAT, where, e.what());
  } catch (const edgellm::Error& e) {
    return record(engine_status(e.kind()), where, e.what());
  } catch (const edgellm::TokenizerError& e) {
    return record(EDGELLM_ERR_UNSUPPORTED, where, e.what());
  } catch (const edgellm::ChatTemplateError& e) {
    return record(EDGELLM_ERR_UNSUPPORTED, where, e.what());
  } catch (const edgellm::SamplerError& e) {
    return record(EDGELLM_ERR_INVALID_ARGUMENT, where, e.what());
  } catch (const std::bad_alloc&) {
    return record(EDGELLM_ERR_OUT_OF_MEMORY, where, "out of memory");
  } catch (const std::exception& e) {
    return record(EDGELLM_ERR_INTERNAL, where, e.what());
  } catch (...) {
    return record(EDGELLM_ERR_INTERNAL, where, "unknown exception");
  }
}

#define REQUIRE_ARG(cond, what)                                   \
  do {                                                            \
    if (!(cond)) fail(EDGELLM_ERR_INVALID_ARGUMENT, what);        \
  } while (0)

// Copies text and a NUL to the caller's buffer, or reports the size it needs.
void copy_out(std::string_view text, char* buf, size_t capacity, size_t* length) {
  REQUIRE_ARG(length != nullptr, "length is NULL");
  REQUIRE_ARG(buf != nullptr || capacity == 0, "buf is NULL but capacity is not 0");
  *length = text.size();
  if (capacity < text.size() + 1)
    fail(EDGELLM_ERR_BUFFER_TOO_SMALL, "buffer of " + std::to_string(capacity) + " bytes is too small: " +
                                           std::to_string(text.size() + 1) + " needed (with the NUL)");
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
}

// The ABI rule (edgellm.h): a struct's first struct_size bytes are the caller's; fields beyond
// them are ones the caller's header did not have, and keep the library's defaults.
template <class T>
size_t checked_struct_size(const T& s, const char* type) {
  const size_t n = s.struct_size;
  if (n < sizeof(size_t))
    fail(EDGELLM_ERR_INVALID_ARGUMENT, std::string(type) + ".struct_size is " + std::to_string(n) +
                                           ": initialize the struct (" + type +
                                           " p = ..._default_params(), or p.struct_size = sizeof p)");
  if (n > sizeof(T))
    fail(EDGELLM_ERR_INVALID_ARGUMENT, std::string(type) + ".struct_size is " + std::to_string(n) +
                                           " but this library (" + edgellm::version_string() + ") knows " +
                                           std::to_string(sizeof(T)) +
                                           " bytes: the program was built against a newer edgellm.h");
  return n;
}

// The caller's params (NULL: the defaults), read under the ABI rule.
template <class T>
T read_params(const T* in, T defaults, const char* type) {
  if (!in) return defaults;
  std::memcpy(static_cast<void*>(&defaults), in, checked_struct_size(*in, type));
  defaults.struct_size = sizeof(T);
  return defaults;
}

// Writes a struct the library fills in: only the first struct_size bytes the caller has.
template <class T>
void write_out(T* out, T value, const char* type) {
  const size_t n = checked_struct_size(*out, type);
  value.struct_size = n;
  std::memcpy(static_cast<void*>(out), &value, n);
}

// *_params_init: the defaults, cut to the caller's struct_size (a larger struct_size, from a
// newer header, is kept so that the call that gets the struct can refuse it).
template <class T>
void init_params(T* out, size_t struct_size, T defaults) {
  if (!out || struct_size < sizeof(size_t)) return;
  defaults.struct_size = struct_size;
  std::memcpy(static_cast<void*>(out), &defaults, std::min(struct_size, sizeof(T)));
}

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

// ---- Streaming text: whole UTF-8 characters, and never what may become a stop string ----------

class TextStream {
 public:
  TextStream(const edgellm_generate_params& p) : p_(p) {
    for (size_t i = 0; i < p.n_stop_strings; ++i)
      if (p.stop_strings[i] && *p.stop_strings[i]) stops_.emplace_back(p.stop_strings[i]);
  }

  // Adds a token's text. Returns false when the text reached a stop string (stop_hit() then) or
  // the callback asked to stop.
  bool add(std::string_view piece, edgellm_token token) {
    held_.append(piece);
    size_t cut = std::string::npos;
    for (const auto& s : stops_) cut = std::min(cut, held_.find(s));
    if (cut != std::string::npos) {
      stop_hit_ = true;
      held_.resize(cut);
      emit(held_.size(), token);
      return false;
    }
    // Hold back the longest tail that could still grow into a stop string.
    size_t keep = 0;
    for (const auto& s : stops_)
      for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
        if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
    return emit(edgellm::utf8_complete_prefix(std::string_view(held_).substr(0, held_.size() - keep)), token);
  }

  // End of generation: whatever is held is final.
  void finish(edgellm_token token) { emit(held_.size(), token); }

  bool stop_hit() const { return stop_hit_; }
  bool callback_stopped() const { return callback_stopped_; }

 private:
  bool emit(size_t n, edgellm_token token) {
    if (n == 0 || callback_stopped_) return !callback_stopped_;
    bool go_on = true;
    if (p_.callback) go_on = p_.callback(held_.data(), n, token, p_.user_data);
    held_.erase(0, n);
    if (!go_on) callback_stopped_ = true;
    return go_on;
  }

  const edgellm_generate_params& p_;
  std::vector<std::string> stops_;
  std::string held_;
  bool stop_hit_ = false;
  bool callback_stopped_ = false;
};

// llama.cpp's size class for a Llama-family layer count ("1B"), "?B" when it has none.
std::string size_class(int32_t n_layer, int32_t n_vocab, int32_t n_head, int32_t n_head_kv) {
  switch (n_layer) {
    case 16: case 22: return "1B";
    case 26: case 28: return "3B";
    case 30: return "256M";
    case 32: return n_vocab == 49152 ? "3B" : (n_vocab < 40000 ? "7B" : "8B");
    case 36: return "8B";
    case 40: return "13B";
    case 48: return "34B";
    case 60: return "30B";
    case 80: return n_head == n_head_kv ? "65B" : "70B";
    default: return "?B";
  }
}

// llama.cpp's names of general.file_type values ("Q4_K - Medium").
std::string file_type_name(uint32_t ft) {
  switch (ft) {
    case 0: return "all F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K - Medium";
    case 11: return "Q3_K - Small";
    case 12: return "Q3_K - Medium";
    case 13: return "Q3_K - Large";
    case 14: return "Q4_K - Small";
    case 15: return "Q4_K - Medium";
    case 16: return "Q5_K - Small";
    case 17: return "Q5_K - Medium";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "unknown type " + std::to_string(ft);
  }
}

// Without general.file_type, llama.cpp names the file after its most common weight type.
uint32_t guess_file_type(const edgellm::gguf::File& f) {
  std::vector<uint64_t> count(64, 0);
  for (const auto& t : f.tensors())
    if (t.n_dims >= 2 && static_cast<uint32_t>(t.type) < count.size()) ++count[static_cast<uint32_t>(t.type)];
  const auto most = static_cast<uint32_t>(std::max_element(count.begin(), count.end()) - count.begin());
  switch (static_cast<edgellm::DType>(most)) {
    case edgellm::DType::F32: return 0;
    case edgellm::DType::F16: return 1;
    case edgellm::DType::Q4_0: return 2;
    case edgellm::DType::Q8_0: return 7;
    case edgellm::DType::Q4_K: return 15;
    case edgellm::DType::Q6_K: return 18;
    case edgellm::DType::BF16: return 32;
    default: return 1000 + most;
  }
}

std::atomic<edgellm_log_callback> g_log_fn{nullptr};

void forward_log(int level, const char* message, void* user) {
  if (edgellm_log_callback fn = g_log_fn.load()) fn(static_cast<edgellm_log_level>(level), message, user);
}

}  // namespace

// ---- Handles -----------------------------------------------------------------------------------

struct edgellm_model {
  std::unique_ptr<edgellm::engine::Model> model;
  std::unique_ptr<edgellm::Tokenizer> tokenizer;
  std::optional<std::string> chat_template;
  std::string architecture;
  std::string description;
  edgellm_model_info info{};
  double load_ms = 0;
};

struct edgellm_context {
  edgellm_model* model = nullptr;
  std::unique_ptr<edgellm::engine::Context> context;
  std::atomic<bool> cancel{false};
  int32_t n_ctx = 0;
  int32_t n_threads = 1;
  bool logits_all = false;
  int32_t n_batch = 0;     // tokens in the last eval (0: no logits)
  int32_t n_sample = 0;
  double sample_ms = 0;
};

struct edgellm_sampler {
  std::unique_ptr<edgellm::Sampler> sampler;
};

namespace {

void check_token(const edgellm_model* m, edgellm_token t) {
  const int32_t n_vocab = m->tokenizer->n_vocab();
  if (t < 0 || t >= n_vocab)
    fail(EDGELLM_ERR_INVALID_ARGUMENT,
         "token id " + std::to_string(t) + " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
}

int32_t n_past_of(const edgellm_context& c) { return c.context->n_past(); }
int32_t n_ctx_of(const edgellm_context& c) { return c.n_ctx; }

// Checks a batch completely before anything changes, then runs it (prefill for n > 1, decode for 1).
void eval_tokens(edgellm_context& c, const edgellm_token* tokens, int32_t n) {
  REQUIRE_ARG(tokens != nullptr, "tokens is NULL");
  REQUIRE_ARG(n > 0, "n_tokens must be > 0, got " + std::to_string(n));
  for (int32_t i = 0; i < n; ++i) check_token(c.model, tokens[i]);
  const int32_t past = n_past_of(c);
  if (static_cast<int64_t>(past) + n > c.n_ctx)
    fail(EDGELLM_ERR_CONTEXT_FULL, std::to_string(n) + " tokens do not fit in the context: " + std::to_string(past) +
                                       " already in the cache + " + std::to_string(n) + " > n_ctx " +
                                       std::to_string(c.n_ctx));
  c.n_batch = 0;  // a failed eval leaves no logits
  c.context->eval(std::span<const int32_t>(tokens, static_cast<size_t>(n)));
  c.n_batch = n;
}

// Logits of the i-th token of the last eval (i < 0 from the end); fails with the reason.
const float* logits_of(edgellm_context& c, int32_t i) {
  if (c.n_batch == 0) fail(EDGELLM_ERR_INVALID_ARGUMENT, "no logits: nothing was evaluated since the last rewind");
  const int32_t idx = i < 0 ? c.n_batch + i : i;
  if (idx < 0 || idx >= c.n_batch)
    fail(EDGELLM_ERR_INVALID_ARGUMENT, "token " + std::to_string(i) + " is not in the last batch of " +
                                           std::to_string(c.n_batch));
  if (idx != c.n_batch - 1 && !c.logits_all)
    fail(EDGELLM_ERR_INVALID_ARGUMENT,
         "only the last token has logits (create the context with logits_all for the others)");
  const float* p = c.context->logits(idx);
  if (!p) fail(EDGELLM_ERR_INVALID_ARGUMENT, "no logits for token " + std::to_string(i) + " of the last batch");
  return p;
}

// Everything edgellm_model_info says that comes from the file itself: sizes, vocabulary, template.
void describe_file(edgellm_model& m, const edgellm::gguf::File& f) {
  m.architecture = f.get_or<std::string>("general.architecture", "");
  edgellm_model_info& info = m.info;
  const edgellm::gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  for (const auto& t : f.tensors()) {
    info.size_bytes += t.n_bytes;
    info.n_params += t.n_elements();
  }
  // A decoded token reads one row of the embedding table, unless the table is also the output
  // matrix (no output.weight), which reads it all.
  info.decode_bytes = info.size_bytes;
  if (embd && f.find_tensor("output.weight") && embd->ne[1] > 0)
    info.decode_bytes = info.size_bytes - embd->n_bytes + embd->n_bytes / embd->ne[1];
  if (const auto* v = f.find("tokenizer.chat_template"); v && v->type() == edgellm::gguf::ValueType::STRING)
    m.chat_template = v->as<std::string>();
  info.has_chat_template = m.chat_template.has_value();

  const edgellm::Tokenizer& tok = *m.tokenizer;
  info.n_vocab = tok.n_vocab();
  info.bos = tok.bos_id();
  info.eos = tok.eos_id();
  info.add_bos = tok.add_bos();

  const auto ft = f.find("general.file_type");
  const uint32_t file_type = ft && ft->type() == edgellm::gguf::ValueType::U32 ? ft->as<uint32_t>() : guess_file_type(f);
  m.description = m.architecture + " " + size_class(info.n_layer, info.n_vocab, info.n_head, info.n_head_kv) + " " +
                  file_type_name(file_type);
  info.architecture = m.architecture.c_str();
  info.description = m.description.c_str();
}

edgellm_token sample_token(edgellm_sampler& s, edgellm_context& c, int32_t i) {
  if (s.sampler->n_vocab() != c.model->tokenizer->n_vocab())
    fail(EDGELLM_ERR_INVALID_ARGUMENT, "the sampler was made for another vocabulary (" +
                                           std::to_string(s.sampler->n_vocab()) + " tokens, the model has " +
                                           std::to_string(c.model->tokenizer->n_vocab()) + ")");
  const float* logits = logits_of(c, i);
  const auto t0 = Clock::now();
  const int32_t t = s.sampler->sample(std::span<const float>(logits, static_cast<size_t>(s.sampler->n_vocab())));
  c.sample_ms += ms_since(t0);
  ++c.n_sample;
  return t;
}

}  // namespace

// ---- Entry points --------------------------------------------------------------------------------

extern "C" {

const char* edgellm_status_string(edgellm_status status) {
  switch (enum_bits(status)) {
    case EDGELLM_OK: return "ok";
    case EDGELLM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case EDGELLM_ERR_IO: return "i/o error";
    case EDGELLM_ERR_FORMAT: return "bad file format";
    case EDGELLM_ERR_UNSUPPORTED: return "unsupported";
    case EDGELLM_ERR_OUT_OF_MEMORY: return "out of memory";
    case EDGELLM_ERR_CONTEXT_FULL: return "context full";
    case EDGELLM_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case EDGELLM_ERR_CANCELLED: return "cancelled";
    case EDGELLM_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* edgellm_last_error(void) { return t_last_error.c_str(); }

const char* edgellm_version(void) { return edgellm::version_string(); }

void edgellm_set_log_callback(edgellm_log_callback callback, edgellm_log_level min_level, void* user_data) {
  try {
    g_log_fn = callback;
    edgellm::set_log_sink(callback ? forward_log : nullptr, enum_bits(min_level), user_data);
  } catch (...) {
    // Setting a sink allocates nothing that can fail in practice; never let it escape.
  }
}

}  // extern "C"

namespace {

edgellm_model_params model_defaults() {
  edgellm_model_params p;
  p.struct_size = sizeof p;
  p.use_mmap = true;
  p.progress_callback = nullptr;
  p.progress_user_data = nullptr;
  return p;
}

edgellm_context_params context_defaults() {
  edgellm_context_params p;
  p.struct_size = sizeof p;
  p.n_ctx = 2048;
  p.n_threads = 0;
  p.kv_type = EDGELLM_KV_F16;
  p.logits_all = false;
  p.backend = "auto";
  return p;
}

edgellm_sampler_params sampler_defaults() {
  const edgellm::SamplerParams d;  // the engine's defaults are llama.cpp's
  edgellm_sampler_params p;
  p.struct_size = sizeof p;
  p.temperature = d.temperature;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.min_p = d.min_p;
  p.repeat_penalty = d.repeat_penalty;
  p.frequency_penalty = d.frequency_penalty;
  p.presence_penalty = d.presence_penalty;
  p.penalty_last_n = d.penalty_last_n;
  p.seed = EDGELLM_SEED_RANDOM;
  return p;
}

edgellm_generate_params generate_defaults() {
  edgellm_generate_params p;
  p.struct_size = sizeof p;
  p.n_predict = -1;
  p.stop_strings = nullptr;
  p.n_stop_strings = 0;
  p.callback = nullptr;
  p.user_data = nullptr;
  return p;
}

}  // namespace

extern "C" {

void edgellm_model_params_init(edgellm_model_params* params, size_t struct_size) {
  init_params(params, struct_size, model_defaults());
}
void edgellm_context_params_init(edgellm_context_params* params, size_t struct_size) {
  init_params(params, struct_size, context_defaults());
}
void edgellm_sampler_params_init(edgellm_sampler_params* params, size_t struct_size) {
  init_params(params, struct_size, sampler_defaults());
}
void edgellm_generate_params_init(edgellm_generate_params* params, size_t struct_size) {
  init_params(params, struct_size, generate_defaults());
}

// ---- Tokenizer ---------------------------------------------------------------------------------

edgellm_status edgellm_tokenize(const edgellm_model* model, const char* text, int64_t text_len, bool add_special,
                                bool parse_special, edgellm_token* tokens, int32_t capacity, int32_t* n_tokens) {
  return guarded("edgellm_tokenize", [&] {
    REQUIRE_ARG(model != nullptr, "model is NULL");
    REQUIRE_ARG(text != nullptr, "text is NULL");
    REQUIRE_ARG(n_tokens != nullptr, "n_tokens is NULL");
    REQUIRE_ARG(capacity >= 0, "capacity is negative");
    REQUIRE_ARG(tokens != nullptr || capacity == 0, "tokens is NULL but capacity is not 0");
    const std::string_view s(text, text_len < 0 ? std::strlen(text) : static_cast<size_t>(text_len));
    const std::vector<int32_t> ids = model->tokenizer->encode(s, add_special, parse_special);
    if (ids.size() > static_cast<size_t>(INT32_MAX)) fail(EDGELLM_ERR_INVALID_ARGUMENT, "text gives too many tokens");
    *n_tokens = static_cast<int32_t>(ids.size());
    if (tokens == nullptr && capacity == 0) return;  // size query
    if (static_cast<size_t>(capacity) < ids.size())
      fail(EDGELLM_ERR_BUFFER_TOO_SMALL, "room for " + std::to_string(capacity) + " tokens, " +
                                             std::to_string(ids.size()) + " needed");
    std::copy(ids.begin(), ids.end(), tokens);
  });
}

edgellm_status edgellm_token_to_piece(const edgellm_model* model, edgellm_token token, bool special, char* buf,
                                      size_t capacity, size_t* length) {
  return guarded("edgellm_token_to_piece", [&] {
    REQUIRE_ARG(model != nullptr, "model is NULL");
    check_token(model, token);
    copy_out(model->tokenizer->token_to_piece(token, special), buf, capacity, length);
  });
}

edgellm_status edgellm_detokenize(const edgellm_model* model, const edgellm_token* tokens, int32_t n_tokens,
                                  bool special, char* buf, size_t capacity, size_t* length) {
  return guarded("edgellm_detokenize", [&] {
    REQUIRE_ARG(model != nullptr, "model is NULL");
    REQUIRE_ARG(n_tokens >= 0, "n_tokens is negative");
    REQUIRE_ARG(tokens != nullptr || n_tokens == 0, "tokens is NULL");
    for (int32_t i = 0; i < n_tokens; ++i) check_token(model, tokens[i]);
    copy_out(model->tokenizer->decode(std::span<const int32_t>(tokens, static_cast<size_t>(n_tokens)), special), buf,
             capacity, length);
  });
}

bool edgellm_token_is_eog(const edgellm_model* model, edgellm_token token) {
  if (!model || token < 0 || token >= model->tokenizer->n_vocab()) return false;
  try {
    return model->tokenizer->is_eog(token);
  } catch (...) {
    return false;
  }
}

// ---- Sampler -----------------------------------------------------------------------------------

edgellm_status edgellm_sampler_create(const edgellm_model* model, const edgellm_sampler_params* params,
                                      edgellm_sampler** sampler) {
  return guarded("edgellm_sampler_create", [&] {
    REQUIRE_ARG(sampler != nullptr, "sampler is NULL");
    *sampler = nullptr;
    REQUIRE_ARG(model != nullptr, "model is NULL");
    const edgellm_sampler_params p = read_params(params, sampler_defaults(), "edgellm_sampler_params");
    edgellm::SamplerParams sp;
    sp.temperature = p.temperature < 0 ? 0.0f : p.temperature;  // llama.cpp: temp <= 0 is greedy
    sp.top_k = p.top_k;
    sp.top_p = p.top_p;
    sp.min_p = p.min_p;
    sp.repeat_penalty = p.repeat_penalty;
    sp.frequency_penalty = p.frequency_penalty;
    sp.presence_penalty = p.presence_penalty;
    sp.penalty_last_n = p.penalty_last_n;
    sp.seed = p.seed == EDGELLM_SEED_RANDOM
                  ? static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count())
                  : p.seed;
    try {
      sp.validate();
    } catch (const edgellm::SamplerError& e) {
      fail(EDGELLM_ERR_INVALID_ARGUMENT, e.what());
    }
    auto s = std::make_unique<edgellm_sampler>();
    s->sampler = std::make_unique<edgellm::Sampler>(model->tokenizer->n_vocab(), sp);
    *sampler = s.release();
  });
}

void edgellm_sampler_free(edgellm_sampler* sampler) { delete sampler; }

edgellm_status edgellm_sampler_accept(edgellm_sampler* sampler, edgellm_token token) {
  return guarded("edgellm_sampler_accept", [&] {
    REQUIRE_ARG(sampler != nullptr, "sampler is NULL");
    if (token < 0 || token >= sampler->sampler->n_vocab())
      fail(EDGELLM_ERR_INVALID_ARGUMENT, "token id " + std::to_string(token) + " is outside the vocabulary [0, " +
                                             std::to_string(sampler->sampler->n_vocab()) + ")");
    sampler->sampler->accept(token);
  });
}

void edgellm_sampler_reset(edgellm_sampler* sampler) {
  if (sampler) sampler->sampler->reset();
}

}  // extern "C"

// ---- Generation ----------------------------------------------------------------------------------

extern "C" {

edgellm_status edgellm_sampler_sample(edgellm_sampler* sampler, edgellm_context* ctx, int32_t i,
                                      edgellm_token* token) {
  return guarded("edgellm_sampler_sample", [&] {
    REQUIRE_ARG(sampler != nullptr, "sampler is NULL");
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    REQUIRE_ARG(token != nullptr, "token is NULL");
    *token = sample_token(*sampler, *ctx, i);
  });
}

void edgellm_cancel(edgellm_context* ctx) {
  if (ctx) ctx->cancel.store(true, std::memory_order_relaxed);
}

edgellm_status edgellm_generate(edgellm_context* ctx, edgellm_sampler* sampler, const edgellm_token* prompt,
                                int32_t n_prompt, const edgellm_generate_params* params,
                                edgellm_generate_result* result) {
  edgellm_generate_result r{};
  r.stop_reason = EDGELLM_STOP_N_PREDICT;
  // A result struct that cannot be written is refused before anything runs.
  if (result) {
    const edgellm_status s = guarded("edgellm_generate", [&] { checked_struct_size(*result, "edgellm_generate_result"); });
    if (s != EDGELLM_OK) return s;
  }
  edgellm_status status = guarded("edgellm_generate", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    REQUIRE_ARG(sampler != nullptr, "sampler is NULL");
    REQUIRE_ARG(prompt != nullptr && n_prompt > 0, "the prompt is empty (give at least one token, e.g. BOS)");
    const edgellm_generate_params p = read_params(params, generate_defaults(), "edgellm_generate_params");
    REQUIRE_ARG(p.stop_strings != nullptr || p.n_stop_strings == 0, "stop_strings is NULL but n_stop_strings is not 0");
    const edgellm_model& model = *ctx->model;

    // The prompt: checked and evaluated in one batch (prefill) at the current position.
    eval_tokens(*ctx, prompt, n_prompt);
    r.n_prompt = n_prompt;

    TextStream stream(p);
    edgellm_token last = -1;
    while (p.n_predict < 0 || r.n_generated < p.n_predict) {
      if (ctx->cancel.exchange(false)) {
        r.stop_reason = EDGELLM_STOP_CANCELLED;
        break;
      }
      last = sample_token(*sampler, *ctx, -1);
      sampler->sampler->accept(last);
      ++r.n_generated;
      if (model.tokenizer->is_eog(last)) {
        r.stop_reason = EDGELLM_STOP_EOG;
        break;
      }
      if (!stream.add(model.tokenizer->token_to_piece(last, /*special=*/false), last)) {
        r.stop_reason = stream.stop_hit() ? EDGELLM_STOP_STRING : EDGELLM_STOP_CALLBACK;
        break;
      }
      if (p.n_predict >= 0 && r.n_generated >= p.n_predict) break;  // the last token needs no eval
      if (n_past_of(*ctx) >= n_ctx_of(*ctx)) {
        r.stop_reason = EDGELLM_STOP_CONTEXT_FULL;
        break;
      }
      eval_tokens(*ctx, &last, 1);
    }
    if (r.stop_reason != EDGELLM_STOP_STRING && r.stop_reason != EDGELLM_STOP_CALLBACK) stream.finish(last);
    if (r.stop_reason == EDGELLM_STOP_CANCELLED) fail(EDGELLM_ERR_CANCELLED, "cancelled by edgellm_cancel()");
  });
  if (result) {
    const size_t n = result->struct_size;
    r.struct_size = n;
    std::memcpy(static_cast<void*>(result), &r, n);  // n was checked above
  }
  return status;
}

}  // extern "C"

// ---- Chat template -------------------------------------------------------------------------------

extern "C" {

const char* edgellm_model_chat_template(const edgellm_model* model) {
  return model && model->chat_template ? model->chat_template->c_str() : nullptr;
}

edgellm_status edgellm_chat_apply_template(const edgellm_model* model, const char* tmpl,
                                           const edgellm_chat_message* messages, size_t n_messages,
                                           bool add_generation_prompt, char* buf, size_t capacity, size_t* length) {
  return guarded("edgellm_chat_apply_template", [&] {
    REQUIRE_ARG(model != nullptr, "model is NULL");
    REQUIRE_ARG(messages != nullptr || n_messages == 0, "messages is NULL");
    std::vector<edgellm::ChatMessage> msgs;
    msgs.reserve(n_messages);
    for (size_t i = 0; i < n_messages; ++i) {
      if (!messages[i].role || !messages[i].content)
        fail(EDGELLM_ERR_INVALID_ARGUMENT, "message " + std::to_string(i) + " has a NULL role or content");
      msgs.push_back({messages[i].role, messages[i].content});
    }
    std::string text;
    if (tmpl) {
      text = tmpl;
    } else if (model->chat_template) {
      text = *model->chat_template;
    } else {
      fail(EDGELLM_ERR_INVALID_ARGUMENT,
           "the model has no chat template (no tokenizer.chat_template); name one, e.g. \"chatml\"");
    }
    const edgellm::ChatFormat format = edgellm::resolve_chat_format(text);
    const int32_t eos = model->tokenizer->eos_id();
    const std::string eos_text = eos >= 0 ? model->tokenizer->token_text(eos) : std::string("</s>");
    copy_out(edgellm::apply_chat_template(format, msgs, add_generation_prompt, eos_text), buf, capacity, length);
  });
}

}  // extern "C"

// ---- Model ---------------------------------------------------------------------------------------

extern "C" {

edgellm_status edgellm_model_load(const char* path, const edgellm_model_params* params, edgellm_model** model) {
  if (model) *model = nullptr;
  return guarded("edgellm_model_load", [&] {
    REQUIRE_ARG(path != nullptr, "path is NULL");
    REQUIRE_ARG(model != nullptr, "model is NULL");
    const edgellm_model_params p = read_params(params, model_defaults(), "edgellm_model_params");
    auto progress = [&](float x) {
      if (p.progress_callback && !p.progress_callback(x, p.progress_user_data))
        fail(EDGELLM_ERR_CANCELLED, "the progress callback cancelled loading '" + std::string(path) + "'");
    };
    const auto t0 = Clock::now();
    // A missing or unreadable file is an I/O error, not a format error.
    if (FILE* f = std::fopen(path, "rb")) {
      std::fclose(f);
    } else {
      fail(EDGELLM_ERR_IO, "cannot open '" + std::string(path) + "': " + std::strerror(errno));
    }
    progress(0.0f);

    auto m = std::make_unique<edgellm_model>();
    m->model = std::make_unique<edgellm::engine::Model>(edgellm::engine::Model::load(path));
    const edgellm::gguf::File& file = m->model->file();
    m->tokenizer = std::make_unique<edgellm::Tokenizer>(edgellm::Tokenizer::from_gguf(file));
    const edgellm::engine::HParams& hp = m->model->hparams();
    m->info.n_ctx_train = hp.n_ctx_train;
    m->info.n_embd = hp.n_embd;
    m->info.n_layer = hp.n_layer;
    m->info.n_head = hp.n_head;
    m->info.n_head_kv = hp.n_head_kv;
    describe_file(*m, file);
    if (m->info.n_vocab != hp.n_vocab)
      fail(EDGELLM_ERR_FORMAT, "the vocabulary has " + std::to_string(m->info.n_vocab) + " tokens but the model " +
                                   std::to_string(hp.n_vocab) + " outputs");
    progress(1.0f);
    m->load_ms = ms_since(t0);
    m->info.load_ms = m->load_ms;
    edgellm::log().info("loaded '{}': {} ({} tensors bytes, {} params) in {:.1f} ms", path, m->description,
                        m->info.size_bytes, m->info.n_params, m->load_ms);
    *model = m.release();
  });
}

void edgellm_model_free(edgellm_model* model) { delete model; }

edgellm_status edgellm_model_get_info(const edgellm_model* model, edgellm_model_info* info) {
  return guarded("edgellm_model_get_info", [&] {
    REQUIRE_ARG(model != nullptr, "model is NULL");
    REQUIRE_ARG(info != nullptr, "info is NULL");
    write_out(info, model->info, "edgellm_model_info");
  });
}

// ---- Context -------------------------------------------------------------------------------------

edgellm_status edgellm_context_create(edgellm_model* model, const edgellm_context_params* params,
                                      edgellm_context** ctx) {
  if (ctx) *ctx = nullptr;
  return guarded("edgellm_context_create", [&] {
    REQUIRE_ARG(model != nullptr, "model is NULL");
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    const edgellm_context_params p = read_params(params, context_defaults(), "edgellm_context_params");
    REQUIRE_ARG(p.n_ctx > 0, "n_ctx must be > 0, got " + std::to_string(p.n_ctx));
    REQUIRE_ARG(p.n_threads >= 0, "n_threads must be >= 0 (0: physical cores), got " + std::to_string(p.n_threads));
    REQUIRE_ARG(p.n_threads <= 1024, "n_threads must be <= 1024, got " + std::to_string(p.n_threads));
    const int kv_type = enum_bits(p.kv_type);
    REQUIRE_ARG(kv_type == EDGELLM_KV_F16 || kv_type == EDGELLM_KV_F32,
                "kv_type must be EDGELLM_KV_F16 or EDGELLM_KV_F32, got " + std::to_string(kv_type));
    if (p.n_ctx > model->info.n_ctx_train)
      edgellm::log().warn("n_ctx {} is more than the model was trained for ({})", p.n_ctx, model->info.n_ctx_train);
    auto c = std::make_unique<edgellm_context>();
    c->model = model;
    c->n_ctx = p.n_ctx;
    c->n_threads = p.n_threads > 0 ? p.n_threads : std::max(1, edgellm::kernels::physical_core_count());
    c->logits_all = p.logits_all;
    edgellm::engine::ContextOptions o;
    o.n_ctx = p.n_ctx;
    o.n_threads = c->n_threads;
    o.kv_type = p.kv_type == EDGELLM_KV_F16 ? edgellm::engine::KvType::F16 : edgellm::engine::KvType::F32;
    o.logits_all = p.logits_all;
    o.backend = p.backend ? p.backend : "auto";  // the engine knows the names and refuses others
    c->context = std::make_unique<edgellm::engine::Context>(*model->model, o);
    c->n_threads = c->context->n_threads();
    edgellm::log().info("context: n_ctx {}, {} threads, KV {}, backend {}", c->n_ctx, c->n_threads,
                        p.kv_type == EDGELLM_KV_F16 ? "f16" : "f32", o.backend);
    *ctx = c.release();
  });
}

void edgellm_context_free(edgellm_context* ctx) { delete ctx; }

int32_t edgellm_n_ctx(const edgellm_context* ctx) { return ctx ? ctx->n_ctx : -1; }
int32_t edgellm_n_threads(const edgellm_context* ctx) { return ctx ? ctx->n_threads : -1; }
int32_t edgellm_n_past(const edgellm_context* ctx) { return ctx ? n_past_of(*ctx) : -1; }

edgellm_status edgellm_eval(edgellm_context* ctx, const edgellm_token* tokens, int32_t n_tokens) {
  return guarded("edgellm_eval", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    eval_tokens(*ctx, tokens, n_tokens);
  });
}

const float* edgellm_get_logits(edgellm_context* ctx) { return edgellm_get_logits_ith(ctx, -1); }

const float* edgellm_get_logits_ith(edgellm_context* ctx, int32_t i) {
  const float* out = nullptr;
  guarded("edgellm_get_logits", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    out = logits_of(*ctx, i);
  });
  return out;
}

edgellm_status edgellm_rewind(edgellm_context* ctx, int32_t n_past) {
  return guarded("edgellm_rewind", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    const int32_t now = n_past_of(*ctx);
    REQUIRE_ARG(n_past >= 0 && n_past <= now,
                "n_past must be in [0, " + std::to_string(now) + "] (the tokens in the cache), got " +
                    std::to_string(n_past));
    ctx->context->truncate(n_past);
    ctx->n_batch = 0;
  });
}

void edgellm_clear(edgellm_context* ctx) {
  if (ctx) edgellm_rewind(ctx, 0);
}

// ---- Perf ----------------------------------------------------------------------------------------

edgellm_status edgellm_get_perf(const edgellm_context* ctx, edgellm_perf* perf) {
  return guarded("edgellm_get_perf", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    REQUIRE_ARG(perf != nullptr, "perf is NULL");
    edgellm_perf p{};
    p.load_ms = ctx->model->load_ms;
    const edgellm::engine::StageStats& pre = ctx->context->prefill_stats();
    const edgellm::engine::StageStats& dec = ctx->context->decode_stats();
    p.n_prefill_tokens = static_cast<int32_t>(pre.tokens);
    p.prefill_ms = static_cast<double>(pre.ns) / 1e6;
    p.n_decode_tokens = static_cast<int32_t>(dec.tokens);
    p.decode_ms = static_cast<double>(dec.ns) / 1e6;
    p.n_sample = ctx->n_sample;
    p.sample_ms = ctx->sample_ms;
    p.peak_rss_bytes = peak_rss_bytes();
    write_out(perf, p, "edgellm_perf");
  });
}

void edgellm_reset_perf(edgellm_context* ctx) {
  if (!ctx) return;
  ctx->context->reset_stats();
  ctx->n_sample = 0;
  ctx->sample_ms = 0;
}

}  // extern "C"
