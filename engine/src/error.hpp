// The engine's exception: what went wrong, in words, plus a kind the C API maps to its status code.
// Loading errors from the GGUF layer arrive as gguf::GgufError (bad file) and are left as they are.
#pragma once

#include <stdexcept>
#include <string>

namespace edgellm {

class Error : public std::runtime_error {
 public:
  enum class Kind {
    InvalidArgument,  // empty batch, token id outside the vocabulary, bad option
    ContextFull,      // the tokens do not fit in n_ctx (nothing was changed)
    Unsupported,      // architecture, tensor type or RoPE scaling this engine does not run
    Format,           // a tensor or hyperparameter missing or of the wrong shape
  };
  Error(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const noexcept { return kind_; }

 private:
  Kind kind_;
};

}  // namespace edgellm
