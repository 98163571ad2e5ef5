// edgellm — header-only C++ wrapper over the C API (edgellm.h): RAII owners of the handles, and
// an edgellm::Exception carrying the status and the library's message instead of status codes.
//
//   edgellm::Model model("m.gguf");
//   edgellm::Context ctx(model);
//   edgellm::Sampler sampler(model, edgellm::Sampler::greedy());
//   ctx.generate(sampler, model.tokenize("Once upon a time", true), 32,
//                [](std::string_view text) { std::cout << text; return true; });
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edgellm/edgellm.h"

namespace edgellm {

class Exception : public std::runtime_error {
 public:
  Exception(edgellm_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  edgellm_status status() const noexcept { return status_; }

 private:
  edgellm_status status_;
};

namespace detail {
inline void check(edgellm_status s) {
  if (s != EDGELLM_OK) {
    const char* msg = edgellm_last_error();
    throw Exception(s, msg && *msg ? msg : edgellm_status_string(s));
  }
}

// Calls fn(buf, capacity, &length) twice at most: with a guess, then with the size it asked for.
template <class Fn>
std::string fetch_string(Fn fn, size_t guess = 64) {
  std::string out(guess, '\0');
  size_t length = 0;
  edgellm_status s = fn(out.data(), out.size(), &length);
  if (s == EDGELLM_ERR_BUFFER_TOO_SMALL) {
    out.assign(length + 1, '\0');
    s = fn(out.data(), out.size(), &length);
  }
  check(s);
  out.resize(length);
  return out;
}
}  // namespace detail

using Token = edgellm_token;

class Model {
 public:
  explicit Model(const std::string& path, const edgellm_model_params& params = edgellm_model_default_params()) {
    detail::check(edgellm_model_load(path.c_str(), &params, &m_));
  }
  // Only the vocabulary (params.vocab_only): tokenize and detokenize; a Context of it throws.
  static Model vocab_only(const std::string& path) {
    edgellm_model_params p = edgellm_model_default_params();
    p.vocab_only = true;
    return Model(path, p);
  }
  ~Model() { edgellm_model_free(m_); }
  Model(Model&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  Model& operator=(Model&& o) noexcept {
    if (this != &o) {
      edgellm_model_free(m_);
      m_ = std::exchange(o.m_, nullptr);
    }
    return *this;
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  edgellm_model* get() const noexcept { return m_; }

  edgellm_model_info info() const {
    edgellm_model_info i{};
    i.struct_size = sizeof i;
    detail::check(edgellm_model_get_info(m_, &i));
    return i;
  }

  std::vector<Token> tokenize(std::string_view text, bool add_special = true, bool parse_special = false) const {
    int32_t n = 0;
    detail::check(edgellm_tokenize(m_, text.data(), static_cast<int64_t>(text.size()), add_special, parse_special,
                                   nullptr, 0, &n));
    std::vector<Token> tokens(static_cast<size_t>(n));
    detail::check(edgellm_tokenize(m_, text.data(), static_cast<int64_t>(text.size()), add_special, parse_special,
                                   tokens.data(), n, &n));
    return tokens;
  }

  std::string token_to_piece(Token t, bool special = false) const {
    return detail::fetch_string([&](char* b, size_t c, size_t* l) { return edgellm_token_to_piece(m_, t, special, b, c, l); });
  }

  std::string detokenize(const std::vector<Token>& tokens, bool special = false) const {
    return detail::fetch_string([&](char* b, size_t c, size_t* l) {
      return edgellm_detokenize(m_, tokens.data(), static_cast<int32_t>(tokens.size()), special, b, c, l);
    }, 256);
  }

  bool is_eog(Token t) const { return edgellm_token_is_eog(m_, t); }

  struct Message {
    std::string role;
    std::string content;
  };
  // tmpl empty: the model's own template.
  std::string apply_chat_template(const std::vector<Message>& messages, bool add_generation_prompt,
                                  const std::string& tmpl = {}) const {
    std::vector<edgellm_chat_message> msgs;
    msgs.reserve(messages.size());
    for (const auto& m : messages) msgs.push_back({m.role.c_str(), m.content.c_str()});
    return detail::fetch_string([&](char* b, size_t c, size_t* l) {
      return edgellm_chat_apply_template(m_, tmpl.empty() ? nullptr : tmpl.c_str(), msgs.data(), msgs.size(),
                                         add_generation_prompt, b, c, l);
    }, 1024);
  }

 private:
  edgellm_model* m_ = nullptr;
};

class Sampler {
 public:
  explicit Sampler(const Model& model, const edgellm_sampler_params& params = edgellm_sampler_default_params()) {
    detail::check(edgellm_sampler_create(model.get(), &params, &s_));
  }
  static edgellm_sampler_params greedy() {
    edgellm_sampler_params p = edgellm_sampler_default_params();
    p.temperature = 0.0f;
    return p;
  }
  ~Sampler() { edgellm_sampler_free(s_); }
  Sampler(Sampler&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Sampler& operator=(Sampler&& o) noexcept {
    if (this != &o) {
      edgellm_sampler_free(s_);
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  edgellm_sampler* get() const noexcept { return s_; }
  void accept(Token t) { detail::check(edgellm_sampler_accept(s_, t)); }
  void reset() { edgellm_sampler_reset(s_); }

 private:
  edgellm_sampler* s_ = nullptr;
};

class Context {
 public:
  explicit Context(Model& model, const edgellm_context_params& params = edgellm_context_default_params()) {
    detail::check(edgellm_context_create(model.get(), &params, &c_));
  }
  ~Context() { edgellm_context_free(c_); }
  Context(Context&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  Context& operator=(Context&& o) noexcept {
    if (this != &o) {
      edgellm_context_free(c_);
      c_ = std::exchange(o.c_, nullptr);
    }
    return *this;
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  edgellm_context* get() const noexcept { return c_; }
  int32_t n_ctx() const { return edgellm_n_ctx(c_); }
  int32_t n_past() const { return edgellm_n_past(c_); }
  const char* backend_name() const { return edgellm_backend_name(c_); }  // "cpu", "metal"

  void eval(const std::vector<Token>& tokens) {
    detail::check(edgellm_eval(c_, tokens.data(), static_cast<int32_t>(tokens.size())));
  }
  // Pointer to n_vocab logits of the i-th token of the last eval (-1: the last).
  const float* logits(int32_t i = -1) {
    const float* p = edgellm_get_logits_ith(c_, i);
    if (!p) detail::check(EDGELLM_ERR_INVALID_ARGUMENT);
    return p;
  }
  void rewind(int32_t n_past) { detail::check(edgellm_rewind(c_, n_past)); }
  void clear() { edgellm_clear(c_); }
  void cancel() { edgellm_cancel(c_); }

  Token sample(Sampler& sampler, int32_t i = -1) {
    Token t = 0;
    detail::check(edgellm_sampler_sample(sampler.get(), c_, i, &t));
    return t;
  }

  // Streams text to on_text (return false to stop). Throws Exception (status
  // EDGELLM_ERR_CANCELLED) when cancel() stopped it.
  using TextCallback = std::function<bool(std::string_view text)>;
  edgellm_generate_result generate(Sampler& sampler, const std::vector<Token>& prompt, int32_t n_predict,
                                   TextCallback on_text = {}, const std::vector<std::string>& stop = {}) {
    std::vector<const char*> stops;
    for (const auto& s : stop) stops.push_back(s.c_str());
    edgellm_generate_params p = edgellm_generate_default_params();
    p.n_predict = n_predict;
    p.stop_strings = stops.data();
    p.n_stop_strings = stops.size();
    // An exception from on_text must not cross the C library: stop there, rethrow here.
    struct Call {
      TextCallback* fn;
      std::exception_ptr error;
    } call{&on_text, nullptr};
    if (on_text) {
      p.user_data = &call;
      p.callback = [](const char* text, size_t length, edgellm_token, void* user) -> bool {
        auto* c = static_cast<Call*>(user);
        try {
          return (*c->fn)(std::string_view(text, length));
        } catch (...) {
          c->error = std::current_exception();
          return false;
        }
      };
    }
    edgellm_generate_result r{};
    r.struct_size = sizeof r;
    edgellm_status s = edgellm_generate(c_, sampler.get(), prompt.data(), static_cast<int32_t>(prompt.size()), &p, &r);
    if (call.error) std::rethrow_exception(call.error);
    detail::check(s);
    return r;
  }

  edgellm_perf perf() const {
    edgellm_perf p{};
    p.struct_size = sizeof p;
    detail::check(edgellm_get_perf(c_, &p));
    return p;
  }
  void reset_perf() { edgellm_reset_perf(c_); }

 private:
  edgellm_context* c_ = nullptr;
};

// edgellm_quantize (see edgellm.h): `input` written to `output` as file type `type` ("Q4_K_M", ...).
// on_tensor runs after each tensor; returning false stops with EDGELLM_ERR_CANCELLED, and an
// exception it throws stops the call and is rethrown here. Throws Exception on failure.
using QuantizeCallback = std::function<bool(const edgellm_quantize_progress& tensor)>;
inline void quantize(const std::string& input, const std::string& output, const std::string& type,
                     QuantizeCallback on_tensor = {}, int32_t n_threads = 0) {
  edgellm_quantize_params p = edgellm_quantize_default_params();
  p.n_threads = n_threads;
  struct Call {
    QuantizeCallback* fn;
    std::exception_ptr error;
  } call{&on_tensor, nullptr};
  if (on_tensor) {
    p.user_data = &call;
    p.callback = [](const edgellm_quantize_progress* t, void* user) -> bool {
      auto* c = static_cast<Call*>(user);
      try {
        return (*c->fn)(*t);
      } catch (...) {
        c->error = std::current_exception();
        return false;
      }
    };
  }
  const edgellm_status s = edgellm_quantize(input.c_str(), output.c_str(), type.c_str(), &p);
  if (call.error) std::rethrow_exception(call.error);
  detail::check(s);
}

}  // namespace edgellm
