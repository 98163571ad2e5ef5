// Files our writer produces load in llama.cpp's own GGUF reader (libggml-base.so, dlopen'ed), with
// the same header, keys, tensor types, offsets and sizes our reader sees; and both readers agree
// on the shared models. x86-64 only (the pinned llama.cpp libraries are x86-64).
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "edgellm/gguf.hpp"

using edgellm::DType;
namespace gguf = edgellm::gguf;

namespace {

const std::string kModels = EDGELLM_SHARED_MODELS;
const std::string kBase = std::string(EDGELLM_ORACLE_DIR) +
                          "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so";

// Signatures as declared in llama.cpp's ggml/include/gguf.h.
struct GgufInitParams {
  bool no_alloc;
  void** ctx;
};

struct LlamaGguf {
  void* lib = nullptr;
  void* (*init_from_file)(const char*, GgufInitParams) = nullptr;
  void (*free)(void*) = nullptr;
  uint32_t (*get_version)(const void*) = nullptr;
  size_t (*get_alignment)(const void*) = nullptr;
  size_t (*get_data_offset)(const void*) = nullptr;
  int64_t (*get_n_kv)(const void*) = nullptr;
  const char* (*get_key)(const void*, int64_t) = nullptr;
  int (*get_kv_type)(const void*, int64_t) = nullptr;
  int64_t (*get_n_tensors)(const void*) = nullptr;
  const char* (*get_tensor_name)(const void*, int64_t) = nullptr;
  int (*get_tensor_type)(const void*, int64_t) = nullptr;
  size_t (*get_tensor_offset)(const void*, int64_t) = nullptr;
  size_t (*get_tensor_size)(const void*, int64_t) = nullptr;

  template <class F>
  void load(F& fn, const char* name) {
    fn = reinterpret_cast<F>(dlsym(lib, name));
    INFO(name);
    REQUIRE(fn);
  }
  LlamaGguf() {
    lib = dlopen(kBase.c_str(), RTLD_NOW | RTLD_LOCAL);
    INFO("dlopen " << kBase << ": " << (lib ? "" : dlerror()));
    REQUIRE(lib);  // a missing llama.cpp is a failure, not a skip
    load(init_from_file, "gguf_init_from_file");
    load(free, "gguf_free");
    load(get_version, "gguf_get_version");
    load(get_alignment, "gguf_get_alignment");
    load(get_data_offset, "gguf_get_data_offset");
    load(get_n_kv, "gguf_get_n_kv");
    load(get_key, "gguf_get_key");
    load(get_kv_type, "gguf_get_kv_type");
    load(get_n_tensors, "gguf_get_n_tensors");
    load(get_tensor_name, "gguf_get_tensor_name");
    load(get_tensor_type, "gguf_get_tensor_type");
    load(get_tensor_offset, "gguf_get_tensor_offset");
    load(get_tensor_size, "gguf_get_tensor_size");
  }
};

// Our reader and llama.cpp's agree on everything both expose.
void check_agree(const LlamaGguf& ll, const std::string& path) {
  const gguf::File f = gguf::File::open(path);
  void* ctx = ll.init_from_file(path.c_str(), {true, nullptr});
  REQUIRE(ctx);
  CHECK(ll.get_version(ctx) == f.version());
  CHECK(ll.get_alignment(ctx) == f.alignment());
  CHECK(ll.get_data_offset(ctx) == f.data_offset());
  REQUIRE(ll.get_n_kv(ctx) == int64_t(f.metadata().size()));
  for (size_t i = 0; i < f.metadata().size(); ++i) {
    CHECK(ll.get_key(ctx, int64_t(i)) == f.metadata()[i].key);
    CHECK(ll.get_kv_type(ctx, int64_t(i)) == int(f.metadata()[i].value.type()));
  }
  REQUIRE(ll.get_n_tensors(ctx) == int64_t(f.tensors().size()));
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& t = f.tensors()[i];
    CHECK(ll.get_tensor_name(ctx, int64_t(i)) == t.name);
    CHECK(ll.get_tensor_type(ctx, int64_t(i)) == int(t.type));
    CHECK(ll.get_tensor_offset(ctx, int64_t(i)) == t.offset);
    CHECK(ll.get_tensor_size(ctx, int64_t(i)) == t.n_bytes);
  }
  ll.free(ctx);
}

}  // namespace

TEST_CASE("llama.cpp loads what our writer writes", "[gguf][llamacpp]") {
  LlamaGguf ll;
  for (uint32_t alignment : {32u, 64u}) {
    const std::string path = std::string(EDGELLM_TEST_TMP) + "/for-llamacpp.gguf";
    gguf::Writer w(3, alignment);
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
          gguf::Array{gguf::ValueType::STRING, {std::string("<unk>"), std::string("")}});
    w.set("tokenizer.ggml.scores", gguf::Array{gguf::ValueType::F32, {0.0f, -1.0f}});
    w.set("a.empty", gguf::Array{gguf::ValueType::I32, {}});
    const std::vector<std::pair<DType, std::vector<uint64_t>>> specs = {
        {DType::F32, {8, 3}}, {DType::F16, {5}}, {DType::Q4_K, {256, 2}},
        {DType::Q6_K, {512, 1, 2}}, {DType::Q8_0, {64, 1, 1, 3}}, {DType::BF16, {7}},
        {DType::IQ4_XS, {256}}};
    for (size_t i = 0; i < specs.size(); ++i)
      w.add_tensor(std::string(1, char('a' + i)) + ".weight", specs[i].first, specs[i].second);
    w.begin(path);
    std::mt19937 rng(1);
    for (size_t i = 0; i < specs.size(); ++i) {
      uint64_t n = 1;
      for (uint64_t d : specs[i].second) n *= d;
      const auto info = *edgellm::dtype_info(specs[i].first);
      std::vector<uint8_t> data(n / info.block_size * info.type_size);
      for (auto& b : data) b = uint8_t(rng());
      w.write_tensor_data(data.data(), data.size());
    }
    w.finish();
    INFO("alignment " << alignment);
    check_agree(ll, path);
    std::remove(path.c_str());
  }
}

TEST_CASE("llama.cpp and our reader agree on the shared models", "[gguf][llamacpp]") {
  LlamaGguf ll;
  check_agree(ll, kModels + "/stories260K.gguf");
  check_agree(ll, kModels + "/ggml-vocab-llama-spm.gguf");
}

TEST_CASE("llama.cpp refuses nested arrays (which GGUF allows and we read and write)",
          "[gguf][llamacpp]") {
  LlamaGguf ll;
  const std::string path = std::string(EDGELLM_TEST_TMP) + "/nested.gguf";
  gguf::Writer w;
  w.set("a.nested", gguf::Array{gguf::ValueType::ARRAY, {gguf::Array{gguf::ValueType::U8, {}}}});
  w.begin(path);
  w.finish();
  CHECK(gguf::File::open(path).metadata().size() == 1);
  CHECK(ll.init_from_file(path.c_str(), {true, nullptr}) == nullptr);
  std::remove(path.c_str());
}
