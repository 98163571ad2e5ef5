// Writer -> reader round trips: every metadata type (nested arrays and arrays of strings included),
// tensors of several types and shapes, in memory (to_bytes) and streamed to a file.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>

#include "gguf_test_util.hpp"

using edgellm::DType;
using edgellm::gguf::Array;
using edgellm::gguf::File;
using edgellm::gguf::GgufError;
using edgellm::gguf::KeyValue;
using edgellm::gguf::Value;
using edgellm::gguf::ValueType;
using edgellm::gguf::Writer;

namespace {

bool same(const Value& a, const Value& b) { return a == b; }

Array array_of(ValueType t, std::vector<Value> items) { return Array{t, std::move(items)}; }

std::vector<KeyValue> every_type() {
  std::vector<KeyValue> kv;
  kv.push_back({"general.architecture", std::string("llama")});
  kv.push_back({"t.u8", uint8_t{250}});
  kv.push_back({"t.i8", int8_t{-100}});
  kv.push_back({"t.u16", uint16_t{65000}});
  kv.push_back({"t.i16", int16_t{-32000}});
  kv.push_back({"t.u32", uint32_t{4000000000u}});
  kv.push_back({"t.i32", int32_t{-2000000000}});
  kv.push_back({"t.f32", 1e-5f});
  kv.push_back({"t.bool.true", true});
  kv.push_back({"t.bool.false", false});
  kv.push_back({"t.string", std::string("h\xc3\xa9llo \"quoted\"\n\t")});
  kv.push_back({"t.string.empty", std::string()});
  kv.push_back({"t.string.nul", std::string("a\0b", 3)});
  kv.push_back({"t.u64", uint64_t{0xFFFFFFFFFFFFFFFFull}});
  kv.push_back({"t.i64", int64_t{INT64_MIN}});
  kv.push_back({"t.f64", 3.141592653589793});
  kv.push_back({"t.arr.u8", array_of(ValueType::U8, {uint8_t{1}, uint8_t{2}})});
  kv.push_back({"t.arr.i8", array_of(ValueType::I8, {int8_t{-1}})});
  kv.push_back({"t.arr.u16", array_of(ValueType::U16, {uint16_t{3}})});
  kv.push_back({"t.arr.i16", array_of(ValueType::I16, {int16_t{-3}})});
  kv.push_back({"t.arr.u32", array_of(ValueType::U32, {uint32_t{5}, uint32_t{6}})});
  kv.push_back({"t.arr.i32", array_of(ValueType::I32, {int32_t{-5}, int32_t{7}})});
  kv.push_back({"t.arr.f32", array_of(ValueType::F32, {0.5f, -0.25f})});
  kv.push_back({"t.arr.bool", array_of(ValueType::BOOL, {true, false, true})});
  kv.push_back({"t.arr.string",
                array_of(ValueType::STRING, {std::string("<unk>"), std::string(""), std::string("x")})});
  kv.push_back({"t.arr.u64", array_of(ValueType::U64, {uint64_t{1} << 40})});
  kv.push_back({"t.arr.i64", array_of(ValueType::I64, {int64_t{-1} << 40})});
  kv.push_back({"t.arr.f64", array_of(ValueType::F64, {1.0 / 3})});
  kv.push_back({"t.arr.empty", array_of(ValueType::F32, {})});
  kv.push_back({"t.arr.nested",
                array_of(ValueType::ARRAY,
                         {array_of(ValueType::I32, {int32_t{1}, int32_t{2}}),
                          array_of(ValueType::I32, {}),
                          array_of(ValueType::I32, {int32_t{3}})})});
  kv.push_back({"t.arr.nested3",
                array_of(ValueType::ARRAY,
                         {array_of(ValueType::ARRAY,
                                   {array_of(ValueType::STRING, {std::string("deep")})})})});
  return kv;
}

struct TensorSpec {
  std::string name;
  DType type;
  std::vector<uint64_t> ne;
};

const std::vector<TensorSpec> kTensors = {
    {"f32.2d", DType::F32, {8, 3}},         {"f16.1d", DType::F16, {5}},
    {"q4_K.2d", DType::Q4_K, {256, 2}},     {"q6_K.1d", DType::Q6_K, {512}},
    {"q8_0.3d", DType::Q8_0, {64, 1, 3}},   {"i8.4d", DType::I8, {3, 1, 1, 2}},
    {"bf16.2d", DType::BF16, {7, 3}},
};

struct Model {
  std::vector<std::vector<uint8_t>> data;  // one buffer per tensor
};

Model fill(Writer& w, const std::vector<KeyValue>& kv, uint32_t seed) {
  for (const KeyValue& e : kv) w.set(e.key, e.value);
  Model m;
  std::mt19937 rng(seed);
  for (const TensorSpec& t : kTensors) {
    w.add_tensor(t.name, t.type, t.ne);
    uint64_t n = 1;
    for (uint64_t d : t.ne) n *= d;
    const auto info = *edgellm::dtype_info(t.type);
    std::vector<uint8_t> bytes(n / info.block_size * info.type_size);
    for (auto& b : bytes) b = uint8_t(rng());
    m.data.push_back(std::move(bytes));
  }
  return m;
}

std::vector<std::span<const uint8_t>> spans(const Model& m) {
  return {m.data.begin(), m.data.end()};
}

void check_same(const File& f, const std::vector<KeyValue>& kv, const Model& m, uint32_t version,
                uint32_t alignment, std::span<const uint8_t> image) {
  CHECK(f.version() == version);
  CHECK(f.alignment() == alignment);
  CHECK(f.file_size() == image.size());
  CHECK(f.data_offset() % alignment == 0);

  const size_t extra = alignment != 32 ? 1 : 0;  // the writer adds general.alignment
  REQUIRE(f.metadata().size() == kv.size() + extra);
  for (size_t i = 0; i < kv.size(); ++i) {
    const KeyValue& got = f.metadata()[i + extra];
    INFO("key " << kv[i].key);
    CHECK(got.key == kv[i].key);
    CHECK(same(got.value, kv[i].value));
    CHECK(f.find(kv[i].key) == &got.value);
  }

  REQUIRE(f.tensors().size() == kTensors.size());
  uint64_t expected_offset = 0;
  for (size_t i = 0; i < kTensors.size(); ++i) {
    const auto& t = f.tensors()[i];
    INFO("tensor " << t.name);
    CHECK(t.name == kTensors[i].name);
    CHECK(t.type == kTensors[i].type);
    CHECK(t.n_dims == kTensors[i].ne.size());
    for (size_t d = 0; d < 4; ++d)
      CHECK(t.ne[d] == (d < kTensors[i].ne.size() ? kTensors[i].ne[d] : 1));
    CHECK(t.offset % alignment == 0);
    CHECK(t.offset == expected_offset);  // packed in order, as llama.cpp requires
    CHECK(t.n_bytes == m.data[i].size());
    CHECK(t.data == image.data() + f.data_offset() + t.offset);
    CHECK(std::equal(m.data[i].begin(), m.data[i].end(), t.data));
    // Padding after each tensor is zeros up to the next multiple of the alignment.
    const uint64_t end = t.offset + t.n_bytes;
    const uint64_t padded = (end + alignment - 1) / alignment * alignment;
    for (uint64_t p = end; p < padded; ++p) CHECK(image[f.data_offset() + p] == 0);
    expected_offset = padded;
    CHECK(f.find_tensor(t.name) == &t);
  }
  CHECK(f.data_offset() + expected_offset == image.size());
  CHECK(f.find_tensor("missing") == nullptr);
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("round trip in memory: every value type, several tensor types", "[gguf][roundtrip]") {
  for (uint32_t version : {2u, 3u}) {
    for (uint32_t alignment : {32u, 64u, 8u}) {
      INFO("version " << version << " alignment " << alignment);
      const auto kv = every_type();
      Writer w(version, alignment);
      const Model m = fill(w, kv, version * 100 + alignment);
      const auto image = w.to_bytes(spans(m));
      const File f = File::parse(image);
      check_same(f, kv, m, version, alignment, image);
    }
  }
}

TEST_CASE("round trip streamed to a file in odd-sized chunks equals to_bytes", "[gguf][roundtrip]") {
  const std::string path = std::string(EDGELLM_TEST_TMP) + "/roundtrip.gguf";
  const auto kv = every_type();
  Writer w;
  const Model m = fill(w, kv, 7);
  const auto image = w.to_bytes(spans(m));

  // All tensor data as one stream, written in 7-byte chunks that cross tensor boundaries.
  std::vector<uint8_t> all;
  for (const auto& d : m.data) all.insert(all.end(), d.begin(), d.end());
  w.begin(path);
  for (size_t at = 0; at < all.size(); at += 7)
    w.write_tensor_data(all.data() + at, std::min<size_t>(7, all.size() - at));
  w.finish();

  CHECK(read_file(path) == image);
  const File f = File::open(path);
  const auto mapped = std::span<const uint8_t>(f.tensors()[0].data - f.data_offset(), f.file_size());
  check_same(f, kv, m, 3, 32, mapped);
  std::remove(path.c_str());
}

TEST_CASE("a metadata-only file round trips", "[gguf][roundtrip]") {
  Writer w;
  w.set("tokenizer.ggml.tokens", Array{ValueType::STRING, {std::string("a"), std::string("b")}});
  const auto image = w.to_bytes({});
  const File f = File::parse(image);
  CHECK(f.tensors().empty());
  CHECK(f.get_array<std::string>("tokenizer.ggml.tokens") == std::vector<std::string>{"a", "b"});
  CHECK(image.size() % 32 == 0);  // padded to the data section like llama.cpp writes it
}

TEST_CASE("the writer checks its input", "[gguf][roundtrip]") {
  Writer w;
  CHECK_THROWS_WITH(w.set("", uint8_t{1}), Catch::Contains("empty key"));
  CHECK_THROWS_WITH(w.set("general.alignment", uint32_t{48}), Catch::Contains("not a power of two"));
  CHECK_THROWS_WITH(w.set("general.alignment", uint64_t{64}), Catch::Contains("must be u32"));
  CHECK_THROWS_WITH(w.set("k", Array{ValueType::U8, {int8_t{1}}}),
                    Catch::Contains("array of u8 with an element of type i8"));
  CHECK_THROWS_WITH(w.add_tensor("t", DType::Q4_K, {100}), Catch::Contains("whole number"));
  CHECK_THROWS_WITH(w.add_tensor("t", DType::F32, {4, 0}), Catch::Contains("dimension 1"));
  CHECK_THROWS_WITH(w.add_tensor(std::string(64, 'x'), DType::F32, {4}),
                    Catch::Contains("1 to 63 bytes"));
  CHECK_THROWS(Writer(1));
  w.add_tensor("t", DType::F32, {4});
  CHECK_THROWS_WITH(w.add_tensor("t", DType::F32, {4}), Catch::Contains("duplicate tensor name"));
  w.set("k", uint8_t{1});
  w.set("k", uint8_t{2});  // replaces, keeps one entry
  const std::vector<uint8_t> data(16, 0);
  const std::span<const uint8_t> one[] = {data};
  const File f = File::parse(w.to_bytes(one));
  CHECK(f.metadata().size() == 1);
  CHECK(f.get<uint8_t>("k") == 2);

  const std::string path = std::string(EDGELLM_TEST_TMP) + "/short.gguf";
  CHECK_THROWS_WITH(w.write_tensor_data(data.data(), 4), Catch::Contains("before begin"));
  w.begin(path);
  w.write_tensor_data(data.data(), 8);
  CHECK_THROWS_WITH(w.finish(), Catch::Contains("tensor 't' has 8 of its 16 bytes written"));
  w.write_tensor_data(data.data(), 8);
  CHECK_THROWS_WITH(w.write_tensor_data(data.data(), 1), Catch::Contains("more data than"));
  w.finish();
  CHECK(File::open(path).tensors().size() == 1);
  std::remove(path.c_str());
}

TEST_CASE("typed look-ups name the key and the type found", "[gguf][lookup]") {
  Writer w;
  w.set("llama.block_count", 5.0f);
  w.set("n", uint32_t{7});
  w.set("ids", Array{ValueType::I32, {int32_t{1}, int32_t{-2}}});
  w.set("ids.u32", Array{ValueType::U32, {uint32_t{3}}});
  w.set("scores", Array{ValueType::F32, {0.5f}});
  const auto image = w.to_bytes({});
  const File f = File::parse(image);

  CHECK_THROWS_WITH(f.get<uint32_t>("llama.block_count"),
                    "key 'llama.block_count' is f32, expected u32");
  CHECK_THROWS_WITH(f.get<uint32_t>("absent"), "key 'absent' not found");
  CHECK(f.get<uint32_t>("n") == 7);
  CHECK(f.get_or<uint32_t>("absent", 9) == 9);
  CHECK(f.get_or<uint32_t>("n", 9) == 7);
  CHECK_THROWS_WITH(f.get_or<int32_t>("n", 9), "key 'n' is u32, expected i32");
  CHECK(f.get_array<int32_t>("ids") == std::vector<int32_t>{1, -2});
  CHECK(f.get_array<uint32_t>("ids.u32") == std::vector<uint32_t>{3});
  CHECK(f.get_array<float>("scores") == std::vector<float>{0.5f});
  CHECK_THROWS_WITH(f.get_array<uint32_t>("ids"), "key 'ids' is array of i32, expected array of u32");
  CHECK_THROWS_WITH(f.get_array<float>("n"), "key 'n' is u32, expected array");
  CHECK_THROWS_WITH(f.find("n")->as<float>(), "value is u32, expected f32");
}

TEST_CASE("values print for people", "[gguf][lookup]") {
  using edgellm::gguf::to_string;
  CHECK(to_string(Value{1e-5f}) == "1e-05");
  CHECK(to_string(Value{std::string("a\"b\n")}) == "\"a\\\"b\\n\"");
  Array a{ValueType::STRING, {std::string("<unk>"), std::string("<s>"), std::string("</s>"),
                              std::string("x")}};
  CHECK(to_string(Value{a}, 3) == "[4 x string] \"<unk>\", \"<s>\", \"</s>\", ...");
  CHECK(to_string(Value{a}) == "[\"<unk>\", \"<s>\", \"</s>\", \"x\"]");
}
