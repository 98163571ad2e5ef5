#include <catch2/catch.hpp>

#include "edgellm/dtype.hpp"

using edgellm::DType;

TEST_CASE("dtype table gives ggml's block geometry", "[dtype]") {
  auto q4k = edgellm::dtype_info(DType::Q4_K);
  REQUIRE(q4k);
  CHECK(q4k->name == "q4_K");
  CHECK(q4k->block_size == 256);
  CHECK(q4k->type_size == 144);
  CHECK(edgellm::dtype_info(DType::Q6_K)->type_size == 210);
  CHECK(edgellm::dtype_info(DType::Q8_0)->type_size == 34);
  CHECK(edgellm::dtype_info(DType::BF16)->type_size == 2);
}

TEST_CASE("unknown type ids are reported, not guessed", "[dtype]") {
  CHECK_FALSE(edgellm::dtype_info(4));   // Q4_2, removed from ggml
  CHECK_FALSE(edgellm::dtype_info(31));  // Q4_0_4_4, never in files any more
  CHECK_FALSE(edgellm::dtype_info(1000));
  CHECK(edgellm::dtype_name(1000) == "type 1000");
}

TEST_CASE("row bytes need whole blocks and do not overflow", "[dtype]") {
  CHECK(edgellm::dtype_row_bytes(DType::Q4_K, 2048) == 8u * 144u);
  CHECK_FALSE(edgellm::dtype_row_bytes(DType::Q4_K, 100));
  CHECK_FALSE(edgellm::dtype_row_bytes(DType::F32, UINT64_MAX));
}
