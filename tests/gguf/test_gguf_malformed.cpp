// Malformed GGUF input: each case builds the bad bytes and checks the error names the problem and
// the byte offset where it is. None may crash (the ASan build runs these too).
#include <catch2/catch.hpp>

#include <array>

#include "gguf_test_util.hpp"

using edgellm::DType;
using edgellm::gguf::File;
using edgellm::gguf::GgufError;
using edgellm::gguf::Value;
using edgellm::gguf::Writer;
using gguf_test::expect_error;
using gguf_test::Raw;

namespace {

constexpr uint64_t kHeaderEnd = 24;  // magic, version, tensor count, metadata count

// A small valid file whose last tensor ends exactly at an aligned size (no trailing padding), so
// that every shorter prefix is missing bytes the file declares.
std::vector<uint8_t> small_valid_file() {
  Writer w;
  w.set("general.architecture", std::string("llama"));
  w.set("test.u8", uint8_t{7});
  w.set("test.f64", 2.5);
  w.set("test.list", edgellm::gguf::Array{edgellm::gguf::ValueType::STRING,
                                         {std::string("a"), std::string("bc")}});
  w.add_tensor("a", DType::F16, {3});
  w.add_tensor("b", DType::F32, {8});
  std::vector<uint8_t> a(6, 0x11), b(32, 0x22);
  std::array<std::span<const uint8_t>, 2> data = {a, b};
  return w.to_bytes(data);
}

}  // namespace

TEST_CASE("the small valid file parses and ends exactly at its last tensor", "[gguf][malformed]") {
  const auto bytes = small_valid_file();
  File f = File::parse(bytes);
  REQUIRE(f.tensors().size() == 2);
  const auto& last = f.tensors().back();
  CHECK(f.data_offset() + last.offset + last.n_bytes == bytes.size());
}

TEST_CASE("every truncation of a valid file is an error, never a crash", "[gguf][malformed]") {
  const auto bytes = small_valid_file();
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO("truncated to " << n << " of " << bytes.size() << " bytes");
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    CHECK_THROWS_AS(File::parse(cut), GgufError);
  }
}

TEST_CASE("empty file", "[gguf][malformed]") { expect_error({}, "empty file", 0); }

TEST_CASE("bad magic", "[gguf][malformed]") {
  Raw r;
  r.header(0, 0);
  r.b[0] = 'X';
  expect_error(r.b, "bad magic", 0);
  expect_error({'G', 'G'}, "truncated in the magic", 0);
}

TEST_CASE("unsupported versions", "[gguf][malformed]") {
  expect_error(Raw().header(0, 0, 1).b, "version 1 is not supported", 4);
  expect_error(Raw().header(0, 0, 4).b, "unsupported GGUF version 4", 4);
  expect_error(Raw().header(0, 0, 0x03000000).b, "big-endian", 4);
  CHECK_NOTHROW(File::parse(Raw().header(0, 0, 2).b));
}

TEST_CASE("truncated header, key, string, array, tensor info and data", "[gguf][malformed]") {
  Raw header;
  header.header(0, 1);
  std::vector<uint8_t> cut(header.b.begin(), header.b.begin() + 12);
  expect_error(cut, "truncated in the tensor count", 8);

  Raw key;
  key.header(0, 1).u64(100).zeros(20);  // key of 100 bytes, 20 present
  expect_error(key.b, "key 0 has length 100, more than the 20 bytes left", kHeaderEnd);

  Raw value;
  value.header(0, 1).str("k").u32(8).u64(5);  // string value of 5 bytes, none present
  expect_error(value.b, "value of key 'k' has length 5", kHeaderEnd + 13);

  Raw array;
  array.header(0, 1).str("k").u32(9).u32(4).u64(3).u32(1).u32(2);  // 3 x u32, 2 present
  expect_error(array.b, "value of key 'k' has 3 elements of u32, more than the 8 bytes left",
               kHeaderEnd + 17);

  Raw info;
  info.header(1, 0).tensor("t", {4, 4}, 0, 0);
  info.b.resize(info.size() - 4);  // half of the data offset missing
  expect_error(info.b, "truncated in tensor 't' (data offset)", info.size() - 4);

  Raw element;  // a string element cut short inside an array
  element.header(0, 1).str("k").u32(9).u32(8).u64(2).str("abc").u64(9).zeros(4);
  expect_error(element.b, "value of key 'k' element has length 9, more than the 4 bytes left",
               element.size() - 12);

  Raw data;
  data.header(1, 0).tensor("t", {8}, 0, 0).pad();
  const uint64_t offset_field = kHeaderEnd + 9 + 4 + 8 + 4;
  data.zeros(31);  // 8 f32 need 32 bytes
  expect_error(data.b, "tensor 't' data (32 bytes at data offset 0) runs past the end", offset_field);

  Raw no_data;
  no_data.header(1, 0).tensor("t", {8}, 0, 0);  // ends before the data section starts
  expect_error(no_data.b, "truncated before the data section", no_data.size());
}

TEST_CASE("a file without tensors may end right after its metadata", "[gguf][malformed]") {
  Raw r;
  r.header(0, 1).kv_u32("k", 5);  // 37 bytes: not a multiple of 32, no padding
  File f = File::parse(r.b);
  CHECK(f.get<uint32_t>("k") == 5);
  CHECK(f.data_offset() == r.size());
}

TEST_CASE("string and array lengths larger than the file", "[gguf][malformed]") {
  Raw s;
  s.header(0, 1).str("k").u32(8).u64(uint64_t{1} << 40).zeros(16);
  expect_error(s.b, "has length 1099511627776, more than the 16 bytes left", kHeaderEnd + 13);

  Raw a;
  a.header(0, 1).str("k").u32(9).u32(8).u64(1000).zeros(64);  // 1000 strings need >= 8000 bytes
  expect_error(a.b, "has 1000 elements of string, more than the 64 bytes left", kHeaderEnd + 17);

  // 20M one-byte elements fit in the file but exceed the 16M-element metadata limit.
  Raw many;
  many.header(0, 1).str("k").u32(9).u32(0).u64(20000000).zeros(20000000);
  expect_error(many.b, "over the limit of 16777216 array elements", kHeaderEnd + 17);

  Raw counts;
  counts.header(0, 1000000);
  expect_error(counts.b, "metadata count 1000000", 16);
  Raw tensors;
  tensors.header(1000000, 0);
  expect_error(tensors.b, "tensor count 1000000", 8);
}

TEST_CASE("element counts that overflow 64-bit arithmetic", "[gguf][malformed]") {
  Raw a;  // 2^62 + 1 u32 elements: 4 * n overflows 64 bits
  a.header(0, 1).str("k").u32(9).u32(4).u64((uint64_t{1} << 62) + 1).zeros(8);
  expect_error(a.b, "elements of u32, more than the 8 bytes left", kHeaderEnd + 17);

  Raw dims;  // 2^32 * 2^32 elements
  dims.header(1, 0).tensor("t", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0).pad().zeros(64);
  expect_error(dims.b, "tensor 't' has too many elements", kHeaderEnd + 9 + 4 + 8);

  Raw bytes;  // 2^61 x 8 elements: 2^64
  bytes.header(1, 0).tensor("t", {uint64_t{1} << 61, 8}, 0, 0).pad().zeros(64);
  expect_error(bytes.b, "tensor 't' has too many elements", kHeaderEnd + 9 + 4 + 8);

  Raw huge;  // 2^62 f32: 2^64 bytes overflows
  huge.header(1, 0).tensor("t", {uint64_t{1} << 62}, 0, 0).pad().zeros(64);
  expect_error(huge.b, "size in bytes overflows 64 bits", kHeaderEnd + 9 + 4 + 8);
}

TEST_CASE("tensor dimension counts and sizes", "[gguf][malformed]") {
  const uint64_t dims_at = kHeaderEnd + 9;
  expect_error(Raw().header(1, 0).tensor("t", {}, 0, 0).pad().zeros(32).b,
               "tensor 't' has 0 dimensions, expected 1 to 4", dims_at);
  expect_error(Raw().header(1, 0).tensor("t", {1, 1, 1, 1, 1}, 0, 0).pad().zeros(32).b,
               "tensor 't' has 5 dimensions", dims_at);
  expect_error(Raw().header(1, 0).tensor("t", {4, 0}, 0, 0).pad().zeros(32).b,
               "tensor 't' has dimension 1 of size 0", dims_at + 4 + 8);
}

TEST_CASE("unknown tensor type ids", "[gguf][malformed]") {
  const uint64_t type_at = kHeaderEnd + 9 + 4 + 8;
  expect_error(Raw().header(1, 0).tensor("t", {32}, 4, 0).pad().zeros(64).b,
               "tensor 't' has unknown tensor type id 4", type_at);
  expect_error(Raw().header(1, 0).tensor("t", {32}, 1000, 0).pad().zeros(64).b,
               "unknown tensor type id 1000", type_at);
}

// The ARM-repacked Q4_0 / IQ4_NL types llama.cpp removed (ids 31-33, 36-38) name themselves and
// say what to do; 34 / 35 (TQ1_0 / TQ2_0) are real types in between.
TEST_CASE("removed ARM-repacked tensor types say to re-download the Q4_0 / IQ4_NL file", "[gguf][malformed]") {
  const uint64_t type_at = kHeaderEnd + 9 + 4 + 8;
  const std::pair<uint32_t, const char*> removed[] = {
      {31, "type id 31 (Q4_0_4_4, an ARM-repacked Q4_0 that llama.cpp removed from the file format; re-download the Q4_0 file)"},
      {32, "type id 32 (Q4_0_4_8, an ARM-repacked Q4_0"},
      {33, "type id 33 (Q4_0_8_8, an ARM-repacked Q4_0"},
      {36, "type id 36 (IQ4_NL_4_4, an ARM-repacked IQ4_NL that llama.cpp removed from the file format; re-download the IQ4_NL file)"},
      {37, "type id 37 (IQ4_NL_4_8, an ARM-repacked IQ4_NL"},
      {38, "type id 38 (IQ4_NL_8_8, an ARM-repacked IQ4_NL"}};
  for (const auto& [id, message] : removed) {
    INFO("type id " << id);
    expect_error(Raw().header(1, 0).tensor("t", {32}, id, 0).pad().zeros(64).b, message, type_at);
  }
  for (uint32_t id : {4u, 5u, 1000u}) {  // other unknown ids (4, 5: removed Q4_2 / Q4_3): no such note
    INFO("type id " << id);
    bool threw = false;
    try {
      (void)File::parse(Raw().header(1, 0).tensor("t", {32}, id, 0).pad().zeros(64).b);
    } catch (const GgufError& e) {
      threw = true;
      CHECK(std::string(e.what()).find("re-download") == std::string::npos);
    }
    CHECK(threw);
  }
}

TEST_CASE("a tensor row that is not a whole number of blocks", "[gguf][malformed]") {
  const uint64_t type_at = kHeaderEnd + 9 + 4 + 16;
  expect_error(Raw().header(1, 0).tensor("t", {100, 2}, 12, 0).pad().zeros(512).b,
               "tensor 't' of type q4_K has rows of 100 elements, not a whole number of 256",
               type_at);
}

TEST_CASE("tensor data offsets: alignment, end of file, overlap", "[gguf][malformed]") {
  const uint64_t offset_at = kHeaderEnd + 9 + 4 + 8 + 4;
  expect_error(Raw().header(1, 0).tensor("t", {8}, 0, 4).pad().zeros(64).b,
               "tensor 't' data offset 4 is not a multiple of the alignment 32", offset_at);
  expect_error(Raw().header(1, 0).tensor("t", {8}, 0, 64).pad().zeros(64).b,
               "tensor 't' data (32 bytes at data offset 64) runs past the end", offset_at);
  expect_error(Raw().header(1, 0).tensor("t", {8}, 0, uint64_t(-32)).pad().zeros(64).b,
               "runs past the end", offset_at);

  // b [16 f32 at 32] overlaps a [16 f32 at 0]; declared in reverse order on purpose.
  Raw r;
  r.header(2, 0);
  r.tensor("b", {16}, 0, 32).tensor("a", {16}, 0, 0).pad().zeros(128);
  expect_error(r.b, "tensor 'b' [16] at data offset 32 overlaps tensor 'a'", offset_at);

  Raw ok;  // adjacent, not overlapping, in any order
  ok.header(2, 0).tensor("b", {8}, 0, 32).tensor("a", {8}, 0, 0).pad().zeros(64);
  CHECK_NOTHROW(File::parse(ok.b));
}

TEST_CASE("duplicate keys and tensor names", "[gguf][malformed]") {
  Raw k;
  k.header(0, 2).kv_u32("k", 1);
  const uint64_t second = k.size();
  k.kv_u32("k", 2);
  expect_error(k.b, "duplicate key 'k'", second);

  Raw t;
  t.header(2, 0).tensor("t", {8}, 0, 0);
  const uint64_t second_t = t.size();
  t.tensor("t", {8}, 0, 32).pad().zeros(64);
  expect_error(t.b, "duplicate tensor name 't'", second_t);

  expect_error(Raw().header(0, 1).kv_u32("", 1).b, "key 0 is empty", kHeaderEnd);
}

TEST_CASE("general.alignment must be a u32 power of two", "[gguf][malformed]") {
  const uint64_t type_at = kHeaderEnd + 8 + 17, value_at = type_at + 4;
  expect_error(Raw().header(0, 1).kv_u32("general.alignment", 48).b,
               "general.alignment 48 is not a power of two", value_at);
  expect_error(Raw().header(0, 1).kv_u32("general.alignment", 0).b, "not a power of two", value_at);
  expect_error(Raw().header(0, 1).str("general.alignment").u32(10).u64(64).b,
               "general.alignment is u64, expected u32", type_at);

  Raw r;  // a valid 64-byte alignment constrains the tensor offsets
  r.header(1, 1).kv_u32("general.alignment", 64);
  const uint64_t offset_at = r.size() + 9 + 4 + 8 + 4;
  r.tensor("t", {8}, 0, 32).pad(64).zeros(128);
  expect_error(r.b, "data offset 32 is not a multiple of the alignment 64", offset_at);

  Raw good;  // and moves the data section to a multiple of 64
  good.header(1, 1).kv_u32("general.alignment", 64).tensor("t", {8}, 0, 64).pad(64).zeros(128);
  File f = File::parse(good.b);
  CHECK(f.alignment() == 64);
  CHECK(f.data_offset() == 128);
  CHECK(f.tensors()[0].data == good.b.data() + 192);
}

TEST_CASE("unknown value types", "[gguf][malformed]") {
  expect_error(Raw().header(0, 1).str("k").u32(13).u32(0).b, "key 'k' has unknown value type 13",
               kHeaderEnd + 9);
  expect_error(Raw().header(0, 1).str("k").u32(9).u32(77).u64(0).b,
               "has unknown element type 77", kHeaderEnd + 13);
}

TEST_CASE("nested arrays: depth is capped", "[gguf][malformed]") {
  // depth levels of arrays, the innermost holding one u8.
  auto nested = [](int depth) {
    Raw r;
    r.header(0, 1).str("k").u32(9);
    for (int d = 1; d < depth; ++d) r.u32(9).u64(1);  // an array of one array
    r.u32(0).u64(1).b.push_back(42);                   // an array of one u8
    return r.b;
  };
  File ok = File::parse(nested(edgellm::gguf::kMaxArrayDepth));
  const Value* v = ok.find("k");
  for (int d = 1; d < edgellm::gguf::kMaxArrayDepth; ++d) v = &v->as<edgellm::gguf::Array>().items.at(0);
  CHECK(v->as<edgellm::gguf::Array>().items.at(0).as<uint8_t>() == 42);

  const uint64_t deepest_at = kHeaderEnd + 13 + 12 * (edgellm::gguf::kMaxArrayDepth - 1);
  expect_error(nested(edgellm::gguf::kMaxArrayDepth + 1), "nests arrays deeper than 8", deepest_at);

  Raw bomb;  // a million nesting levels declared in a few bytes
  bomb.header(0, 1).str("k").u32(9);
  for (int d = 0; d < 1000; ++d) bomb.u32(9).u64(1);
  CHECK_THROWS_WITH(File::parse(bomb.b), Catch::Contains("nests arrays deeper than 8"));
}
