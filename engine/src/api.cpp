// The C API (edgellm.h) over the engine. This file is the boundary and only that: the handles,
// conversion of C arguments to engine calls (NULL pointers, buffer sizes, the struct_size rule,
// enum bits: what only C can get wrong), and the one catch that turns every exception into a
// status plus a thread-local message "function: what went wrong". Everything else — validating
// tokens, options and room in the context, the generation loop — is the engine's.
#include "edgellm/edgellm.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "chat_template.hpp"
#include "context.hpp"
#include "describe.hpp"
#include "edgellm/gguf.hpp"
#include "error.hpp"
#include "generate.hpp"
#include "log.hpp"
#include "model.hpp"
#include "quantize.hpp"
#include "sampler.hpp"
#include "tokenizer.hpp"

namespace edgellm {
const char* version_string();
}

namespace {

using edgellm::Error;
using Kind = edgellm::Error::Kind;
using Clock = std::chrono::steady_clock;

// ---- Errors ------------------------------------------------------------------------------------

thread_local std::string t_last_error;

[[noreturn]] void fail(Kind kind, const std::string& message) { throw Error(kind, message); }

// A context or sampler that another call is using (edgellm.h, "Threads"): EDGELLM_ERR_BUSY.
class Busy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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

edgellm_status status_of(Kind kind) {
  switch (kind) {
    case Kind::InvalidArgument: return EDGELLM_ERR_INVALID_ARGUMENT;
    case Kind::ContextFull: return EDGELLM_ERR_CONTEXT_FULL;
    case Kind::Unsupported: return EDGELLM_ERR_UNSUPPORTED;
    case Kind::Format: return EDGELLM_ERR_FORMAT;
    case Kind::Io: return EDGELLM_ERR_IO;
    case Kind::BufferTooSmall: return EDGELLM_ERR_BUFFER_TOO_SMALL;
    case Kind::Cancelled: return EDGELLM_ERR_CANCELLED;
    case Kind::OutOfMemory: return EDGELLM_ERR_OUT_OF_MEMORY;
  }
  return EDGELLM_ERR_INTERNAL;
}

// Runs body() and maps every exception to a status and the thread's last-error message: a busy
// handle, the engine's one family (edgellm::Error and its subclasses) by kind, the GGUF layer's
// own error as a format error, then what the standard library throws (a size too large for a
// container, length_error, is out of memory too).
template <class Body>
edgellm_status guarded(const char* where, Body&& body) noexcept {
  try {
    body();
    return EDGELLM_OK;
  } catch (const Busy& e) {
    return record(EDGELLM_ERR_BUSY, where, e.what());
  } catch (const Error& e) {
    return record(status_of(e.kind()), where, e.what());
  } catch (const edgellm::gguf::GgufError& e) {
    return record(EDGELLM_ERR_FORMAT, where, e.what());
  } catch (const std::bad_alloc&) {
    return record(EDGELLM_ERR_OUT_OF_MEMORY, where, "out of memory");
  } catch (const std::length_error& e) {
    return record(EDGELLM_ERR_OUT_OF_MEMORY, where, std::string("out of memory (a size too large: ") + e.what() + ")");
  } catch (const std::exception& e) {
    return record(EDGELLM_ERR_INTERNAL, where, e.what());
  } catch (...) {
    return record(EDGELLM_ERR_INTERNAL, where, "unknown exception");
  }
}

#define REQUIRE_ARG(cond, what)                          \
  do {                                                   \
    if (!(cond)) fail(Kind::InvalidArgument, what);      \
  } while (0)

// The value a C caller put in an enum field. A C enum may hold any int; reading one outside the
// enumerators as the C++ enum type is undefined, so the bits are read as an int.
template <class E>
int enum_bits(const E& e) {
  static_assert(sizeof(E) == sizeof(int));
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// Copies text and a NUL to the caller's buffer, or reports the size it needs.
void copy_out(std::string_view text, char* buf, size_t capacity, size_t* length) {
  REQUIRE_ARG(length != nullptr, "length is NULL");
  REQUIRE_ARG(buf != nullptr || capacity == 0, "buf is NULL but capacity is not 0");
  *length = text.size();
  if (capacity < text.size() + 1)
    fail(Kind::BufferTooSmall, "buffer of " + std::to_string(capacity) + " bytes is too small: " +
                                   std::to_string(text.size() + 1) + " needed (with the NUL)");
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
}

// (size, pointer) from C as a span; a negative count or a NULL array with a count is the
// caller's mistake, which only this boundary can see.
std::span<const int32_t> token_span(const edgellm_token* tokens, int32_t n, const char* what) {
  REQUIRE_ARG(n >= 0, std::string(what) + ": the token count is negative (" + std::to_string(n) + ")");
  REQUIRE_ARG(tokens != nullptr || n == 0, std::string(what) + " is NULL");
  return {tokens, static_cast<size_t>(n)};
}

// ---- The struct_size rule (edgellm.h) -------------------------------------------------------------

// A struct's first struct_size bytes are the caller's; fields beyond them are ones the caller's
// header did not have, and keep the library's defaults.
template <class T>
size_t checked_struct_size(const T& s, const char* type) {
  const size_t n = s.struct_size;
  if (n < sizeof(size_t))
    fail(Kind::InvalidArgument, std::string(type) + ".struct_size is " + std::to_string(n) +
                                    ": initialize the struct (" + type +
                                    " p = ..._default_params(), or p.struct_size = sizeof p)");
  if (n > sizeof(T))
    fail(Kind::InvalidArgument, std::string(type) + ".struct_size is " + std::to_string(n) +
                                    " but this library (" + edgellm::version_string() + ") knows " +
                                    std::to_string(sizeof(T)) +
                                    " bytes: the program was built against a newer edgellm.h");
  return n;
}

// The caller's params (NULL: the defaults), read under the rule.
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

edgellm_model_params model_defaults() {
  edgellm_model_params p;
  p.struct_size = sizeof p;
  p.use_mmap = true;
  p.progress_callback = nullptr;
  p.progress_user_data = nullptr;
  p.vocab_only = false;
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

edgellm_quantize_params quantize_defaults() {
  edgellm_quantize_params p;
  p.struct_size = sizeof p;
  p.n_threads = 0;
  p.callback = nullptr;
  p.user_data = nullptr;
  return p;
}

// ---- Odds and ends -------------------------------------------------------------------------------

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
  return static_cast<uint64_t>(ru.ru_maxrss);  // macOS reports bytes (not compiled here: by construction)
#else
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
#endif
}

edgellm_stop_reason stop_reason_of(edgellm::engine::StopReason r) {
  using edgellm::engine::StopReason;
  switch (r) {
    case StopReason::Eog: return EDGELLM_STOP_EOG;
    case StopReason::NPredict: return EDGELLM_STOP_N_PREDICT;
    case StopReason::StopString: return EDGELLM_STOP_STRING;
    case StopReason::ContextFull: return EDGELLM_STOP_CONTEXT_FULL;
    case StopReason::Callback: return EDGELLM_STOP_CALLBACK;
    case StopReason::Cancelled: return EDGELLM_STOP_CANCELLED;
  }
  return EDGELLM_STOP_N_PREDICT;
}

}  // namespace

// ---- Handles -----------------------------------------------------------------------------------

struct edgellm_model {
  std::unique_ptr<edgellm::engine::Model> model;
  std::unique_ptr<edgellm::Tokenizer> tokenizer;
  edgellm::engine::ModelDescription about;
  edgellm_model_info info{};
};

struct edgellm_context {
  edgellm_model* model = nullptr;
  std::unique_ptr<edgellm::engine::Context> context;
  std::atomic<bool> cancel{false};
  // Set while a call uses the context (ContextUse): a second one at the same time is refused.
  mutable std::atomic<bool> busy{false};
  // context->n_past() as of the last call that finished (or the last token callback), for
  // edgellm_n_past from any thread while another runs a call.
  mutable std::atomic<int32_t> n_past{0};
  int32_t n_batch = 0;  // tokens in the last eval (0: no logits), for the messages of logits_of
  edgellm::engine::SampleStats sampling;
};

struct edgellm_sampler {
  std::unique_ptr<edgellm::Sampler> sampler;
  std::atomic<bool> busy{false};  // as edgellm_context::busy
};

namespace {

// Holds a handle's busy flag for one call; throws Busy when another call holds it. The acquire /
// release pair orders one call's work before the next call's, whichever thread runs it.
class InUse {
 public:
  InUse(std::atomic<bool>& flag, const char* what) : flag_(flag) {
    if (flag_.exchange(true, std::memory_order_acquire))
      throw Busy(std::string(what) +
                 " is busy: another call is using it (on another thread, or the edgellm_generate whose "
                 "callback this is); use a context or sampler from one thread at a time");
  }
  ~InUse() { flag_.store(false, std::memory_order_release); }
  InUse(const InUse&) = delete;
  InUse& operator=(const InUse&) = delete;

 private:
  std::atomic<bool>& flag_;
};

// A call on a context: holds its busy flag and publishes n_past when done (also after an error).
class ContextUse {
 public:
  explicit ContextUse(const edgellm_context& c) : c_(c), use_(c.busy, "the context") {}
  ~ContextUse() { publish_n_past(c_); }
  static void publish_n_past(const edgellm_context& c) {
    c.n_past.store(c.context->n_past(), std::memory_order_relaxed);
  }

 private:
  const edgellm_context& c_;
  InUse use_;
};

// Runs a batch (prefill for n > 1, decode for 1); the engine checks it completely first.
void eval_tokens(edgellm_context& c, std::span<const int32_t> tokens) {
  c.n_batch = 0;  // a failed eval leaves no logits
  c.context->eval(tokens);
  c.n_batch = static_cast<int32_t>(tokens.size());
}

// Logits of the i-th token of the last eval (i < 0 from the end); fails with the reason.
const float* logits_of(edgellm_context& c, int32_t i) {
  if (c.n_batch == 0) fail(Kind::InvalidArgument, "no logits: nothing was evaluated since the last rewind");
  const int32_t idx = i < 0 ? c.n_batch + i : i;
  if (idx < 0 || idx >= c.n_batch)
    fail(Kind::InvalidArgument,
         "token " + std::to_string(i) + " is not in the last batch of " + std::to_string(c.n_batch));
  if (idx != c.n_batch - 1 && !c.context->logits_all())
    fail(Kind::InvalidArgument, "only the last token has logits (create the context with logits_all for the others)");
  const float* p = c.context->logits(idx);
  if (!p) fail(Kind::InvalidArgument, "no logits for token " + std::to_string(i) + " of the last batch");
  return p;
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
    case EDGELLM_ERR_BUSY: return "busy";
  }
  return "unknown status";
}

const char* edgellm_last_error(void) { return t_last_error.c_str(); }

const char* edgellm_version(void) { return edgellm::version_string(); }

void edgellm_set_log_callback(edgellm_log_callback callback, edgellm_log_level min_level, void* user_data) {
  try {
    edgellm::set_log_sink(callback, enum_bits(min_level), user_data);  // the three as one
  } catch (...) {
    // Setting a sink allocates nothing; a failing lock (system error) must not escape either.
  }
}

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
void edgellm_quantize_params_init(edgellm_quantize_params* params, size_t struct_size) {
  init_params(params, struct_size, quantize_defaults());
}

// ---- Model ---------------------------------------------------------------------------------------

namespace {

// edgellm_model_params.vocab_only: the tokenizer and the metadata the API shows, no weights (the
// file need not have any); the mapping is dropped once the vocabulary is read.
void load_vocab_only(edgellm_model& m, const char* path, edgellm::gguf::LoadMode mode) {
  const edgellm::gguf::File file = [&] {
    try {
      return edgellm::gguf::File::open(path, mode);
    } catch (const edgellm::gguf::IoError& e) {
      fail(Kind::Io, e.what());
    }
  }();
  m.tokenizer = std::make_unique<edgellm::Tokenizer>(edgellm::Tokenizer::from_gguf(file));
  if (const auto* v = file.find("general.architecture"))
    if (const auto* s = std::get_if<std::string>(&v->v)) m.about.architecture = *s;
  m.about.description = "vocabulary only";
  if (const auto* v = file.find("tokenizer.chat_template"))
    if (const auto* s = std::get_if<std::string>(&v->v)) m.about.chat_template = *s;
  edgellm_model_info& info = m.info;
  info.struct_size = sizeof info;
  info.architecture = m.about.architecture.c_str();
  info.description = m.about.description.c_str();
  info.n_vocab = m.tokenizer->n_vocab();
  info.bos = m.tokenizer->bos_id();
  info.eos = m.tokenizer->eos_id();
  info.add_bos = m.tokenizer->add_bos();
  info.has_chat_template = m.about.chat_template.has_value();
}

}  // namespace

edgellm_status edgellm_model_load(const char* path, const edgellm_model_params* params, edgellm_model** model) {
  if (model) *model = nullptr;
  return guarded("edgellm_model_load", [&] {
    REQUIRE_ARG(path != nullptr, "path is NULL");
    REQUIRE_ARG(model != nullptr, "model is NULL");
    const edgellm_model_params p = read_params(params, model_defaults(), "edgellm_model_params");
    auto progress = [&](float x) {
      if (p.progress_callback && !p.progress_callback(x, p.progress_user_data))
        fail(Kind::Cancelled, "the progress callback cancelled loading '" + std::string(path) + "'");
    };
    const auto t0 = Clock::now();
    progress(0.0f);

    // A missing or unreadable file, or no regular file (a FIFO is refused without blocking), is
    // Kind::Io from Model::load.
    auto m = std::make_unique<edgellm_model>();
    const auto mode = p.use_mmap ? edgellm::gguf::LoadMode::Map : edgellm::gguf::LoadMode::Read;
    if (p.vocab_only) {
      load_vocab_only(*m, path, mode);
      progress(1.0f);
      m->info.load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      edgellm::log().info("loaded the vocabulary of '{}' ({} tokens) in {:.1f} ms", path, m->info.n_vocab,
                          m->info.load_ms);
      *model = m.release();
      return;
    }
    m->model = std::make_unique<edgellm::engine::Model>(edgellm::engine::Model::load(path, mode));
    const edgellm::gguf::File& file = m->model->file();
    m->tokenizer = std::make_unique<edgellm::Tokenizer>(edgellm::Tokenizer::from_gguf(file));
    const edgellm::engine::HParams& hp = m->model->hparams();
    if (m->tokenizer->n_vocab() != hp.n_vocab)
      fail(Kind::Format, "the vocabulary has " + std::to_string(m->tokenizer->n_vocab()) + " tokens but the model " +
                             std::to_string(hp.n_vocab) + " outputs");
    m->about = edgellm::engine::describe_model(file, hp);

    edgellm_model_info& info = m->info;
    info.struct_size = sizeof info;
    info.architecture = m->about.architecture.c_str();
    info.description = m->about.description.c_str();
    info.n_vocab = hp.n_vocab;
    info.n_ctx_train = hp.n_ctx_train;
    info.n_embd = hp.n_embd;
    info.n_layer = hp.n_layer;
    info.n_head = hp.n_head;
    info.n_head_kv = hp.n_head_kv;
    info.head_dim = hp.head_dim;
    info.size_bytes = m->about.size_bytes;
    info.n_params = m->about.n_params;
    info.decode_bytes = m->about.decode_bytes;
    info.bos = m->tokenizer->bos_id();
    info.eos = m->tokenizer->eos_id();
    info.add_bos = m->tokenizer->add_bos();
    info.has_chat_template = m->about.chat_template.has_value();
    progress(1.0f);
    info.load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    edgellm::log().info("loaded '{}': {} ({} tensors bytes, {} params) in {:.1f} ms", path, m->about.description,
                        info.size_bytes, info.n_params, info.load_ms);
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

const char* edgellm_model_chat_template(const edgellm_model* model) {
  return model && model->about.chat_template ? model->about.chat_template->c_str() : nullptr;
}

bool edgellm_token_is_eog(const edgellm_model* model, edgellm_token token) {
  if (!model) return false;
  try {
    return model->tokenizer->is_eog(token);  // false for ids outside the vocabulary
  } catch (...) {
    return false;
  }
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
    if (ids.size() > static_cast<size_t>(INT32_MAX)) fail(Kind::InvalidArgument, "text gives too many tokens");
    *n_tokens = static_cast<int32_t>(ids.size());
    if (tokens == nullptr && capacity == 0) return;  // size query
    if (static_cast<size_t>(capacity) < ids.size())
      fail(Kind::BufferTooSmall,
           "room for " + std::to_string(capacity) + " tokens, " + std::to_string(ids.size()) + " needed");
    std::copy(ids.begin(), ids.end(), tokens);
  });
}

edgellm_status edgellm_token_to_piece(const edgellm_model* model, edgellm_token token, bool special, char* buf,
                                      size_t capacity, size_t* length) {
  return guarded("edgellm_token_to_piece", [&] {
    REQUIRE_ARG(model != nullptr, "model is NULL");
    copy_out(model->tokenizer->token_to_piece(token, special), buf, capacity, length);
  });
}

edgellm_status edgellm_detokenize(const edgellm_model* model, const edgellm_token* tokens, int32_t n_tokens,
                                  bool special, char* buf, size_t capacity, size_t* length) {
  return guarded("edgellm_detokenize", [&] {
    REQUIRE_ARG(model != nullptr, "model is NULL");
    copy_out(model->tokenizer->decode(token_span(tokens, n_tokens, "tokens"), special), buf, capacity, length);
  });
}

// ---- Chat template -------------------------------------------------------------------------------

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
        fail(Kind::InvalidArgument, "message " + std::to_string(i) + " has a NULL role or content");
      msgs.push_back({messages[i].role, messages[i].content});
    }
    if (!tmpl && !model->about.chat_template)
      fail(Kind::InvalidArgument,
           "the model has no chat template (no tokenizer.chat_template); name one, e.g. \"chatml\"");
    const edgellm::ChatFormat format =
        edgellm::resolve_chat_format(tmpl ? std::string_view(tmpl) : std::string_view(*model->about.chat_template));
    const int32_t eos = model->tokenizer->eos_id();
    const std::string eos_text = eos >= 0 ? model->tokenizer->token_text(eos) : std::string("</s>");
    copy_out(edgellm::apply_chat_template(format, msgs, add_generation_prompt, eos_text), buf, capacity, length);
  });
}

// ---- Context -------------------------------------------------------------------------------------

edgellm_status edgellm_context_create(edgellm_model* model, const edgellm_context_params* params,
                                      edgellm_context** ctx) {
  if (ctx) *ctx = nullptr;
  return guarded("edgellm_context_create", [&] {
    REQUIRE_ARG(model != nullptr, "model is NULL");
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    REQUIRE_ARG(model->model != nullptr,
                "the model was loaded with vocab_only: it can tokenize and detokenize but has no "
                "weights to run; load it without vocab_only to create a context");
    const edgellm_context_params p = read_params(params, context_defaults(), "edgellm_context_params");
    // The C API has no "0 = the model's context length" (the engine's meaning of 0).
    REQUIRE_ARG(p.n_ctx > 0, "n_ctx must be > 0, got " + std::to_string(p.n_ctx));
    const int kv_type = enum_bits(p.kv_type);
    REQUIRE_ARG(kv_type == EDGELLM_KV_F16 || kv_type == EDGELLM_KV_F32 || kv_type == EDGELLM_KV_Q8_0,
                "kv_type must be EDGELLM_KV_F16, EDGELLM_KV_F32 or EDGELLM_KV_Q8_0, got " + std::to_string(kv_type));
    if (p.n_ctx > model->info.n_ctx_train)
      edgellm::log().warn("n_ctx {} is more than the model was trained for ({})", p.n_ctx, model->info.n_ctx_train);
    edgellm::engine::ContextOptions o;  // the engine checks the numbers and the backend name
    o.n_ctx = p.n_ctx;
    o.n_threads = p.n_threads;
    o.kv_type = kv_type == EDGELLM_KV_F16   ? edgellm::engine::KvType::F16
                : kv_type == EDGELLM_KV_F32 ? edgellm::engine::KvType::F32
                                            : edgellm::engine::KvType::Q8_0;
    o.logits_all = p.logits_all;
    o.backend = p.backend ? p.backend : "auto";
    auto c = std::make_unique<edgellm_context>();
    c->model = model;
    c->context = std::make_unique<edgellm::engine::Context>(*model->model, o);
    edgellm::log().info("context: n_ctx {}, {} threads, KV {}, backend {} (asked for {})", c->context->n_ctx(),
                        c->context->n_threads(),
                        kv_type == EDGELLM_KV_F16 ? "f16" : kv_type == EDGELLM_KV_F32 ? "f32" : "q8_0",
                        c->context->backend().name(), o.backend);
    *ctx = c.release();
  });
}

void edgellm_context_free(edgellm_context* ctx) { delete ctx; }

int32_t edgellm_n_ctx(const edgellm_context* ctx) { return ctx ? ctx->context->n_ctx() : -1; }
int32_t edgellm_n_threads(const edgellm_context* ctx) { return ctx ? ctx->context->n_threads() : -1; }
int32_t edgellm_n_past(const edgellm_context* ctx) { return ctx ? ctx->n_past.load(std::memory_order_relaxed) : -1; }
const char* edgellm_backend_name(const edgellm_context* ctx) {
  if (!ctx) return "";
  // Backend names are string literals (name() returns a view of one), so the pointer is static.
  const std::string_view name = ctx->context->backend().name();
  return name == "metal" ? "metal" : name == "cpu" ? "cpu" : "unknown";
}

edgellm_status edgellm_eval(edgellm_context* ctx, const edgellm_token* tokens, int32_t n_tokens) {
  return guarded("edgellm_eval", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    REQUIRE_ARG(tokens != nullptr, "tokens is NULL");
    ContextUse use(*ctx);
    eval_tokens(*ctx, token_span(tokens, n_tokens, "tokens"));
  });
}

const float* edgellm_get_logits(edgellm_context* ctx) { return edgellm_get_logits_ith(ctx, -1); }

const float* edgellm_get_logits_ith(edgellm_context* ctx, int32_t i) {
  const float* out = nullptr;
  guarded("edgellm_get_logits", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    ContextUse use(*ctx);
    out = logits_of(*ctx, i);
  });
  return out;
}

edgellm_status edgellm_rewind(edgellm_context* ctx, int32_t n_past) {
  return guarded("edgellm_rewind", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    ContextUse use(*ctx);
    ctx->context->truncate(n_past);  // refuses n_past outside [0, n_past()]
    ctx->n_batch = 0;
  });
}

void edgellm_clear(edgellm_context* ctx) {
  if (ctx) edgellm_rewind(ctx, 0);  // busy: does nothing (the last error says why)
}

void edgellm_cancel(edgellm_context* ctx) {
  if (ctx) ctx->cancel.store(true, std::memory_order_relaxed);
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
    auto s = std::make_unique<edgellm_sampler>();
    s->sampler = std::make_unique<edgellm::Sampler>(model->tokenizer->n_vocab(), sp);  // checks sp
    *sampler = s.release();
  });
}

void edgellm_sampler_free(edgellm_sampler* sampler) { delete sampler; }

edgellm_status edgellm_sampler_sample(edgellm_sampler* sampler, edgellm_context* ctx, int32_t i,
                                      edgellm_token* token) {
  return guarded("edgellm_sampler_sample", [&] {
    REQUIRE_ARG(sampler != nullptr, "sampler is NULL");
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    REQUIRE_ARG(token != nullptr, "token is NULL");
    InUse sampler_use(sampler->busy, "the sampler");
    ContextUse use(*ctx);
    *token = edgellm::engine::sample(*sampler->sampler, *ctx->context, logits_of(*ctx, i), ctx->sampling);
  });
}

edgellm_status edgellm_sampler_accept(edgellm_sampler* sampler, edgellm_token token) {
  return guarded("edgellm_sampler_accept", [&] {
    REQUIRE_ARG(sampler != nullptr, "sampler is NULL");
    InUse use(sampler->busy, "the sampler");
    sampler->sampler->accept(token);  // refuses ids outside the vocabulary
  });
}

void edgellm_sampler_reset(edgellm_sampler* sampler) {
  if (!sampler) return;
  guarded("edgellm_sampler_reset", [&] {  // busy: does nothing (the last error says why)
    InUse use(sampler->busy, "the sampler");
    sampler->sampler->reset();
  });
}

// ---- Generation ----------------------------------------------------------------------------------

edgellm_status edgellm_generate(edgellm_context* ctx, edgellm_sampler* sampler, const edgellm_token* prompt,
                                int32_t n_prompt, const edgellm_generate_params* params,
                                edgellm_generate_result* result) {
  edgellm::engine::GenerateResult r;
  // A result struct that cannot be written is refused before anything runs.
  if (result) {
    const edgellm_status s =
        guarded("edgellm_generate", [&] { checked_struct_size(*result, "edgellm_generate_result"); });
    if (s != EDGELLM_OK) return s;
  }
  const edgellm_status status = guarded("edgellm_generate", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    REQUIRE_ARG(sampler != nullptr, "sampler is NULL");
    REQUIRE_ARG(prompt != nullptr && n_prompt > 0, "the prompt is empty (give at least one token, e.g. BOS)");
    const edgellm_generate_params p = read_params(params, generate_defaults(), "edgellm_generate_params");
    REQUIRE_ARG(p.stop_strings != nullptr || p.n_stop_strings == 0, "stop_strings is NULL but n_stop_strings is not 0");
    ContextUse use(*ctx);
    InUse sampler_use(sampler->busy, "the sampler");
    edgellm::engine::GenerateOptions o;
    o.n_predict = p.n_predict;
    for (size_t i = 0; i < p.n_stop_strings; ++i)
      if (p.stop_strings[i]) o.stop_strings.emplace_back(p.stop_strings[i]);
    if (p.callback)
      o.on_text = [&p, ctx](std::string_view text, int32_t token) {
        ContextUse::publish_n_past(*ctx);  // edgellm_n_past from the callback sees the progress
        return p.callback(text.data(), text.size(), token, p.user_data);
      };
    o.cancel = &ctx->cancel;
    ctx->n_batch = 0;  // logits only after a successful eval
    edgellm::engine::generate(*ctx->context, *sampler->sampler, *ctx->model->tokenizer,
                              token_span(prompt, n_prompt, "prompt"), o, r, ctx->sampling);
    ctx->n_batch = r.last_eval;
    if (r.stop == edgellm::engine::StopReason::Cancelled) fail(Kind::Cancelled, "cancelled by edgellm_cancel()");
  });
  if (result) {
    edgellm_generate_result out{};
    out.n_prompt = r.n_prompt;
    out.n_generated = r.n_generated;
    out.stop_reason = stop_reason_of(r.stop);
    out.struct_size = result->struct_size;  // checked above
    std::memcpy(static_cast<void*>(result), &out, out.struct_size);
  }
  return status;
}

// ---- Quantization --------------------------------------------------------------------------------

edgellm_status edgellm_quantize(const char* input, const char* output, const char* type,
                                const edgellm_quantize_params* params) {
  return guarded("edgellm_quantize", [&] {
    REQUIRE_ARG(input != nullptr, "input is NULL");
    REQUIRE_ARG(output != nullptr, "output is NULL");
    REQUIRE_ARG(type != nullptr, "type is NULL");
    const edgellm_quantize_params p = read_params(params, quantize_defaults(), "edgellm_quantize_params");
    REQUIRE_ARG(p.n_threads >= 0, "n_threads must be >= 0, got " + std::to_string(p.n_threads));
    const auto ft = edgellm::engine::parse_file_type(type);
    if (!ft)
      fail(Kind::InvalidArgument, "unknown type '" + edgellm::gguf::printable(type) +
                                      "': expected one of " + edgellm::engine::file_type_names());
    edgellm::engine::QuantizeOptions o;
    o.n_threads = p.n_threads;
    if (p.callback)
      o.on_tensor = [&p](const edgellm::engine::QuantizeProgress& q) {
        const edgellm::gguf::TensorInfo& t = *q.tensor;
        const std::string in = edgellm::dtype_name(static_cast<uint32_t>(t.type)),
                          out = edgellm::dtype_name(static_cast<uint32_t>(q.plan.type)),
                          wanted = edgellm::dtype_name(static_cast<uint32_t>(q.plan.wanted));
        edgellm_quantize_progress r{};
        r.struct_size = sizeof r;
        r.index = static_cast<int32_t>(q.index);
        r.n_tensors = static_cast<int32_t>(q.count);
        r.name = t.name.c_str();
        r.type_in = in.c_str();
        r.type_out = out.c_str();
        r.type_wanted = wanted.c_str();
        r.n_dims = static_cast<int32_t>(t.n_dims);
        for (int d = 0; d < 4; ++d) r.ne[d] = static_cast<int64_t>(t.ne[d]);
        r.bytes_in = t.n_bytes;
        r.bytes_out = q.bytes_out;
        return p.callback(&r, p.user_data);
      };
    edgellm::engine::quantize_file(input, output, *ft, o);
  });
}

// ---- Perf ----------------------------------------------------------------------------------------

edgellm_status edgellm_get_perf(const edgellm_context* ctx, edgellm_perf* perf) {
  return guarded("edgellm_get_perf", [&] {
    REQUIRE_ARG(ctx != nullptr, "ctx is NULL");
    REQUIRE_ARG(perf != nullptr, "perf is NULL");
    InUse use(ctx->busy, "the context");
    edgellm_perf p{};
    p.load_ms = ctx->model->info.load_ms;
    const edgellm::engine::StageStats& pre = ctx->context->prefill_stats();
    const edgellm::engine::StageStats& dec = ctx->context->decode_stats();
    p.n_prefill_tokens = static_cast<int32_t>(pre.tokens);
    p.prefill_ms = static_cast<double>(pre.ns) / 1e6;
    p.n_decode_tokens = static_cast<int32_t>(dec.tokens);
    p.decode_ms = static_cast<double>(dec.ns) / 1e6;
    p.n_sample = ctx->sampling.n;
    p.sample_ms = ctx->sampling.ms;
    p.peak_rss_bytes = peak_rss_bytes();
    write_out(perf, p, "edgellm_perf");
  });
}

void edgellm_reset_perf(edgellm_context* ctx) {
  if (!ctx) return;
  guarded("edgellm_reset_perf", [&] {  // busy: does nothing (the last error says why)
    InUse use(ctx->busy, "the context");
    ctx->context->reset_stats();
    ctx->sampling = {};
  });
}

}  // extern "C"
