// Requantizing a model file: an F32 / F16 / BF16 GGUF written again in one of llama.cpp's file
// types, with llama.cpp's tensor-type recipe for it (src/llama-quant.cpp: which tensors get more
// bits, and the type that replaces one whose rows do not fit its blocks). No importance matrix:
// every row is quantized by the type's reference quantizer, as llama.cpp does without one, so the
// tensor types and bytes equal llama-quantize's output for the same input.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgellm/dtype.hpp"
#include "edgellm/gguf.hpp"

namespace edgellm::engine {

// The file types made here, numbered as llama.cpp's general.file_type (LLAMA_FTYPE_MOSTLY_*).
enum class FileType : uint32_t {
  F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10,
  Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17,
  Q6_K = 18, IQ4_NL = 25, IQ4_XS = 30,
};

std::optional<FileType> parse_file_type(std::string_view name);  // "Q4_K_M" (any case)
std::string_view file_type_name(FileType t);                      // "Q4_K_M"
std::string file_type_names();                                    // "Q4_K_M, Q4_K_S, ...": for messages

// What the recipe reads of the model besides the tensors.
struct RecipeModel {
  std::string arch;   // general.architecture ("falcon" has rules of its own)
  int n_layer = 0;    // {arch}.block_count
  int n_head = 0;     // of layer 0
  int n_head_kv = 0;  // of layer 0
  int n_expert = 0;   // {arch}.expert_count (0: not a mixture of experts)
};

// Reads RecipeModel from a file's metadata; throws Error(Format) naming a missing or mistyped key.
RecipeModel recipe_model(const gguf::File& file);

struct TensorPlan {
  DType type;    // what the tensor is written as
  DType wanted;  // the recipe's choice before the row-width fallback (== type when it fit)
};

// The type of each tensor (in the order given) in file type `ft`: llama.cpp's choice, tensor by
// tensor. 1-D tensors, norms and the other tensors llama.cpp never quantizes keep their type.
std::vector<TensorPlan> plan_types(FileType ft, const RecipeModel& model, std::span<const gguf::TensorInfo> tensors);

struct QuantizeProgress {
  size_t index = 0;  // 0-based, in file order
  size_t count = 0;
  const gguf::TensorInfo* tensor = nullptr;  // the input tensor
  TensorPlan plan{};
  uint64_t bytes_out = 0;
};

struct QuantizeOptions {
  int n_threads = 0;  // 0: the physical cores
  // Called after each tensor is written; false stops (Error(Cancelled), no output left behind).
  std::function<bool(const QuantizeProgress&)> on_tensor;
};

// Writes `output` (through output + ".part", renamed when complete, so a failed or cancelled run
// leaves no file and output may be the input itself). Every metadata key is kept (split.* keys
// dropped), general.file_type and general.quantization_version are set. Throws Error: Io (cannot
// read the input or write the output), Format (not a usable GGUF, missing hyperparameters),
// Unsupported (an already-quantized input, a split file, a tensor type that cannot be converted),
// Cancelled.
void quantize_file(const std::string& input, const std::string& output, FileType ft, const QuantizeOptions& options);

}  // namespace edgellm::engine
