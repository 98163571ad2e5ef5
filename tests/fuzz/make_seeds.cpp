// Writes small valid GGUF files into the folder given (the fuzzer's seed corpus): every metadata
// type, nested arrays, several tensor types, non-default alignment, version 2, no tensors.
#include <array>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "edgellm/gguf.hpp"

using edgellm::DType;
namespace gguf = edgellm::gguf;

namespace {

void save(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

std::vector<uint8_t> every_type(uint32_t version, uint32_t alignment) {
  gguf::Writer w(version, alignment);
  w.set("general.architecture", std::string("llama"));
  w.set("a.u8", uint8_t{1});
  w.set("a.i8", int8_t{-1});
  w.set("a.u16", uint16_t{2});
  w.set("a.i16", int16_t{-2});
  w.set("a.u32", uint32_t{3});
  w.set("a.i32", int32_t{-3});
  w.set("a.f32", 0.5f);
  w.set("a.bool", true);
  w.set("a.u64", uint64_t{4});
  w.set("a.i64", int64_t{-4});
  w.set("a.f64", 0.25);
  w.set("tokenizer.ggml.tokens",
        gguf::Array{gguf::ValueType::STRING, {std::string("<unk>"), std::string("a")}});
  w.set("tokenizer.ggml.scores", gguf::Array{gguf::ValueType::F32, {0.0f, -1.0f}});
  w.set("a.nested", gguf::Array{gguf::ValueType::ARRAY,
                                {gguf::Array{gguf::ValueType::I32, {int32_t{1}}},
                                 gguf::Array{gguf::ValueType::I32, {}}}});
  w.add_tensor("f32", DType::F32, {4, 2});
  w.add_tensor("f16", DType::F16, {3});
  w.add_tensor("q8_0", DType::Q8_0, {32});
  w.add_tensor("q4_K", DType::Q4_K, {256, 1, 1, 1});
  std::vector<std::vector<uint8_t>> data = {std::vector<uint8_t>(32, 1), std::vector<uint8_t>(6, 2),
                                            std::vector<uint8_t>(34, 3), std::vector<uint8_t>(144, 4)};
  std::vector<std::span<const uint8_t>> spans(data.begin(), data.end());
  return w.to_bytes(spans);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make-fuzz-seeds DIR\n");
    return 1;
  }
  const std::string dir = argv[1];
  try {
    save(dir + "/seed-every-type.gguf", every_type(3, 32));
    save(dir + "/seed-v2-align8.gguf", every_type(2, 8));
    gguf::Writer vocab;
    vocab.set("tokenizer.ggml.model", std::string("llama"));
    save(dir + "/seed-no-tensors.gguf", vocab.to_bytes({}));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make-fuzz-seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
