#include "edgellm/dtype.hpp"

#include <array>

namespace edgellm {
namespace {

struct Row {
  uint32_t id;
  DTypeInfo info;
};

// Block geometry of every type id a GGUF file may carry (ggml's type_traits), and the
// general.file_type llama.cpp gives a file whose weights are mostly of that type (-1: none).
constexpr std::array kTypes = {
    Row{0, {"f32", 1, 4, 0}},        Row{1, {"f16", 1, 2, 1}},         Row{2, {"q4_0", 32, 18, 2}},
    Row{3, {"q4_1", 32, 20, 3}},     Row{6, {"q5_0", 32, 22, 8}},      Row{7, {"q5_1", 32, 24, 9}},
    Row{8, {"q8_0", 32, 34, 7}},     Row{9, {"q8_1", 32, 36, -1}},      Row{10, {"q2_K", 256, 84, 10}},
    Row{11, {"q3_K", 256, 110, 12}},  Row{12, {"q4_K", 256, 144, 15}},   Row{13, {"q5_K", 256, 176, 17}},
    Row{14, {"q6_K", 256, 210, 18}},  Row{15, {"q8_K", 256, 292, -1}},   Row{16, {"iq2_xxs", 256, 66, 19}},
    Row{17, {"iq2_xs", 256, 74, 20}}, Row{18, {"iq3_xxs", 256, 98, 23}}, Row{19, {"iq1_s", 256, 50, 24}},
    Row{20, {"iq4_nl", 32, 18, 25}},  Row{21, {"iq3_s", 256, 110, 26}},  Row{22, {"iq2_s", 256, 82, 28}},
    Row{23, {"iq4_xs", 256, 136, 30}}, Row{24, {"i8", 1, 1, -1}},        Row{25, {"i16", 1, 2, -1}},
    Row{26, {"i32", 1, 4, -1}},       Row{27, {"i64", 1, 8, -1}},        Row{28, {"f64", 1, 8, -1}},
    Row{29, {"iq1_m", 256, 56, 31}},  Row{30, {"bf16", 1, 2, 32}},       Row{34, {"tq1_0", 256, 54, 36}},
    Row{35, {"tq2_0", 256, 66, 37}},  Row{39, {"mxfp4", 32, 17, -1}},    Row{40, {"nvfp4", 64, 36, -1}},
    Row{41, {"q1_0", 128, 18, -1}},   Row{42, {"q2_0", 64, 18, -1}},
};

}  // namespace

std::optional<DTypeInfo> dtype_info(uint32_t id) {
  for (const Row& r : kTypes)
    if (r.id == id) return r.info;
  return std::nullopt;
}

std::string dtype_name(uint32_t id) {
  if (auto info = dtype_info(id)) return std::string(info->name);
  return "type " + std::to_string(id);
}

std::optional<uint64_t> dtype_row_bytes(DType t, uint64_t n) {
  auto info = dtype_info(t);
  if (!info || n % info->block_size != 0) return std::nullopt;
  uint64_t blocks = n / info->block_size;
  if (blocks > UINT64_MAX / info->type_size) return std::nullopt;
  return blocks * info->type_size;
}

}  // namespace edgellm
