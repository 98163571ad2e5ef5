// The engine's one exception family: what went wrong, in words, plus a kind the C API maps to its
// status code (api.cpp, in one switch). The tokenizer, chat templates and sampler throw subclasses,
// so a caller may catch the specific one or just edgellm::Error. Errors of the GGUF layer stay
// gguf::GgufError (that layer knows nothing of the engine); the C boundary maps them to Format.
#pragma once

#include <stdexcept>
#include <string>

namespace edgellm {

class Error : public std::runtime_error {
 public:
  enum class Kind {
    InvalidArgument,  // empty batch, token id outside the vocabulary, bad option or parameter
    ContextFull,      // the tokens do not fit in n_ctx (nothing was changed)
    Unsupported,      // architecture, tensor type, RoPE scaling, tokenizer or template not run here
    Format,           // a tensor or hyperparameter missing or of the wrong shape
    Io,               // a file missing or unreadable
    BufferTooSmall,   // the caller's buffer cannot hold the result (its size was reported)
    Cancelled,        // a callback or a cancel request stopped the call
    OutOfMemory,      // the memory a request needs is more than the machine has (or can be had)
  };
  Error(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const noexcept { return kind_; }

 private:
  Kind kind_;
};

// A vocabulary the tokenizer cannot use (Unsupported, as the C API documents for a model it
// cannot run), or a token id outside it (InvalidArgument).
class TokenizerError : public Error {
 public:
  explicit TokenizerError(const std::string& what, Kind kind = Kind::Unsupported) : Error(kind, what) {}
};

// A chat template that is none of the known formats.
class ChatTemplateError : public Error {
 public:
  explicit ChatTemplateError(const std::string& what, Kind kind = Kind::Unsupported) : Error(kind, what) {}
};

// A sampler parameter out of range, or logits / a token that do not fit the vocabulary.
class SamplerError : public Error {
 public:
  explicit SamplerError(const std::string& what) : Error(Kind::InvalidArgument, what) {}
};

}  // namespace edgellm
