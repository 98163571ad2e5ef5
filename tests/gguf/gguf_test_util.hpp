// Helpers shared by the GGUF tests: a raw little-endian byte builder for hand-made (often broken)
// files, and a check that parsing fails with a given message at a given offset.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "edgellm/gguf.hpp"

namespace gguf_test {

struct Raw {
  std::vector<uint8_t> b;

  uint64_t size() const { return b.size(); }
  template <class T>
  Raw& put(T x) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &x, sizeof(T));
    return *this;
  }
  Raw& u32(uint32_t x) { return put(x); }
  Raw& u64(uint64_t x) { return put(x); }
  Raw& str(const std::string& s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Raw& kv_u32(const std::string& key, uint32_t x) { return str(key).u32(4).u32(x); }
  // A tensor info; ne as given (n_dims = ne.size()).
  Raw& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t n : ne) u64(n);
    return u32(type).u64(offset);
  }
  Raw& pad(uint64_t alignment = 32) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  Raw& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
};

// Parsing `bytes` throws a GgufError whose message contains `needle` and whose offset is `offset`.
inline void expect_error(const std::vector<uint8_t>& bytes, const std::string& needle,
                         uint64_t offset) {
  try {
    edgellm::gguf::File::parse(bytes);
    FAIL("parsed without error; expected: " << needle);
  } catch (const edgellm::gguf::GgufError& e) {
    INFO("error: " << e.what());
    CHECK_THAT(e.what(), Catch::Contains(needle));
    CHECK(e.offset() == offset);
  }
}

}  // namespace gguf_test
