// What edgellm_model_info says about a model that comes from its file: the name llama.cpp gives
// it ("llama 1B Q4_K - Medium"), the weight sizes, the chat template.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace edgellm::gguf {
class File;
}

namespace edgellm::engine {

struct HParams;

struct ModelDescription {
  std::string architecture;  // general.architecture
  std::string description;   // llama.cpp's model description: "<arch> <size class> <file type>"
  uint64_t size_bytes = 0;   // bytes of all tensors
  uint64_t n_params = 0;     // elements of all tensors
  uint64_t decode_bytes = 0;  // bytes one decoded token reads (one row of an untied embedding)
  std::optional<std::string> chat_template;  // tokenizer.chat_template, when it is a string
};

ModelDescription describe_model(const gguf::File& file, const HParams& hparams);

}  // namespace edgellm::engine
