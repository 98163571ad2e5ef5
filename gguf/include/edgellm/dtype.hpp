// Tensor element types as GGUF files number them (ggml's type ids), with their block geometry.
// This is a property of the file format, so it lives in the format layer; the kernels use the
// same ids to pick a kernel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgellm {

enum class DType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3,
  Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42,
};

struct DTypeInfo {
  std::string_view name;   // as llama.cpp prints it: "q4_K", "f32", ...
  uint32_t block_size;     // elements per block (1 for plain types)
  uint32_t type_size;      // bytes per block
  int32_t file_type;       // llama.cpp's general.file_type for a file mostly of this type
                           // (LLAMA_FTYPE_MOSTLY_*: q4_K -> 15 "Q4_K - Medium"); -1: none
};

// Geometry of a type id read from a file; nullopt for ids no GGUF type has.
std::optional<DTypeInfo> dtype_info(uint32_t id);
inline std::optional<DTypeInfo> dtype_info(DType t) { return dtype_info(static_cast<uint32_t>(t)); }

// Name for messages ("q4_K", or "type 77" for an unknown id); never fails.
std::string dtype_name(uint32_t id);

// Bytes of a row of n elements; nullopt if n is not a whole number of blocks or on overflow.
std::optional<uint64_t> dtype_row_bytes(DType t, uint64_t n);

}  // namespace edgellm
