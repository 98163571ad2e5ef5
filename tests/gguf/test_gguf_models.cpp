// The real files in ../shared/models parse and give the values ../shared/models/SOURCES.md lists.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "edgellm/gguf.hpp"

using edgellm::DType;
using edgellm::gguf::File;

namespace {
const std::string kModels = EDGELLM_SHARED_MODELS;
}

TEST_CASE("stories260K.gguf: header, hyperparameters, vocab, tensor table", "[gguf][models]") {
  const File f = File::open(kModels + "/stories260K.gguf");
  CHECK(f.version() == 3);
  CHECK(f.metadata().size() == 19);
  CHECK(f.tensors().size() == 48);
  CHECK(f.alignment() == 32);
  CHECK(f.find("general.alignment") == nullptr);
  CHECK(f.data_offset() == 14176);
  CHECK(f.file_size() == 1185376);

  CHECK(f.get<std::string>("general.architecture") == "llama");
  CHECK(f.get<uint32_t>("llama.context_length") == 2048);
  CHECK(f.get<uint32_t>("llama.embedding_length") == 64);
  CHECK(f.get<uint32_t>("llama.feed_forward_length") == 172);
  CHECK(f.get<uint32_t>("llama.block_count") == 5);
  CHECK(f.get<uint32_t>("llama.attention.head_count") == 8);
  CHECK(f.get<uint32_t>("llama.attention.head_count_kv") == 4);
  CHECK(f.get<uint32_t>("llama.rope.dimension_count") == 8);
  CHECK(f.get<float>("llama.attention.layer_norm_rms_epsilon") == 1e-5f);
  CHECK(f.find("llama.rope.freq_base") == nullptr);

  CHECK(f.get<std::string>("tokenizer.ggml.model") == "llama");
  const auto tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
  const auto scores = f.get_array<float>("tokenizer.ggml.scores");
  const auto types = f.get_array<int32_t>("tokenizer.ggml.token_type");
  REQUIRE(tokens.size() == 512);
  REQUIRE(scores.size() == 512);
  REQUIRE(types.size() == 512);
  CHECK(tokens[0] == "<unk>");
  CHECK(tokens[1] == "<s>");
  CHECK(tokens[2] == "</s>");
  CHECK(tokens[3] == "<0x00>");
  CHECK(tokens[258] == "<0xFF>");
  std::map<int32_t, int> type_counts;
  for (int32_t t : types) ++type_counts[t];
  // llama.cpp's token types: 1 normal, 2 unknown, 3 control, 6 byte.
  CHECK(type_counts == std::map<int32_t, int>{{1, 253}, {2, 1}, {3, 2}, {6, 256}});
  CHECK(*std::min_element(scores.begin(), scores.end()) == -252.0f);
  CHECK(*std::max_element(scores.begin(), scores.end()) == 0.0f);
  CHECK(f.get<uint32_t>("tokenizer.ggml.bos_token_id") == 1);
  CHECK(f.get<uint32_t>("tokenizer.ggml.eos_token_id") == 2);
  CHECK(f.get<uint32_t>("tokenizer.ggml.unknown_token_id") == 0);
  CHECK(f.get<uint32_t>("tokenizer.ggml.padding_token_id") == 0xFFFFFFFFu);
  CHECK(f.find("tokenizer.ggml.add_bos_token") == nullptr);

  const std::map<std::string, std::vector<uint64_t>> shapes = {
      {"token_embd.weight", {64, 512}}, {"output_norm.weight", {64}},
      {"output.weight", {64, 512}},     {"blk.0.attn_q.weight", {64, 64}},
      {"blk.4.attn_k.weight", {64, 32}}, {"blk.2.attn_v.weight", {64, 32}},
      {"blk.3.attn_output.weight", {64, 64}}, {"blk.1.attn_norm.weight", {64}},
      {"blk.4.ffn_gate.weight", {64, 172}}, {"blk.4.ffn_down.weight", {172, 64}},
      {"blk.0.ffn_up.weight", {64, 172}}, {"blk.4.ffn_norm.weight", {64}},
  };
  for (const auto& [name, ne] : shapes) {
    INFO(name);
    const auto* t = f.find_tensor(name);
    REQUIRE(t);
    CHECK(t->type == DType::F32);
    REQUIRE(t->n_dims == ne.size());
    for (size_t d = 0; d < ne.size(); ++d) CHECK(t->ne[d] == ne[d]);
    CHECK(t->n_bytes == t->n_elements() * 4);
  }
  uint64_t end = 0;
  for (const auto& t : f.tensors()) {
    CHECK(t.type == DType::F32);
    end = std::max(end, f.data_offset() + t.offset + t.n_bytes);
  }
  CHECK(end == f.file_size());  // the data ends exactly at the end of the file
  // RMS norm weights of a trained model are finite and not all zero.
  const float* norm = reinterpret_cast<const float*>(f.find_tensor("output_norm.weight")->data);
  bool nonzero = false;
  for (int i = 0; i < 64; ++i) nonzero |= norm[i] != 0.0f;
  CHECK(nonzero);
}

TEST_CASE("ggml-vocab-llama-spm.gguf: vocab-only file without a data section", "[gguf][models]") {
  const File f = File::open(kModels + "/ggml-vocab-llama-spm.gguf");
  CHECK(f.version() == 3);
  CHECK(f.metadata().size() == 22);
  CHECK(f.tensors().empty());
  CHECK(f.file_size() == 723869);
  CHECK(f.data_offset() == f.file_size());
  CHECK(f.get<std::string>("general.name") == "llama-spm");
  CHECK(f.get<uint32_t>("general.file_type") == 1);
  CHECK(f.get<uint32_t>("llama.block_count") == 32);
  CHECK(f.get<uint32_t>("llama.vocab_size") == 32000);
  CHECK(f.get<std::string>("tokenizer.ggml.model") == "llama");
  CHECK(f.get<std::string>("tokenizer.ggml.pre") == "default");
  const auto tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
  const auto scores = f.get_array<float>("tokenizer.ggml.scores");
  const auto types = f.get_array<int32_t>("tokenizer.ggml.token_type");
  CHECK(tokens.size() == 32000);
  CHECK(scores.size() == 32000);
  CHECK(types.size() == 32000);
  std::map<int32_t, int> type_counts;
  for (int32_t t : types) ++type_counts[t];
  CHECK(type_counts == std::map<int32_t, int>{{1, 31741}, {2, 1}, {3, 2}, {6, 256}});
  CHECK(*std::min_element(scores.begin(), scores.end()) == -1e9f);
  CHECK(f.get<uint32_t>("tokenizer.ggml.bos_token_id") == 1);
  CHECK(f.get<uint32_t>("tokenizer.ggml.eos_token_id") == 2);
  CHECK(f.get<uint32_t>("tokenizer.ggml.unknown_token_id") == 0);
  CHECK(f.get<bool>("tokenizer.ggml.add_bos_token") == true);
  CHECK(f.get<bool>("tokenizer.ggml.add_eos_token") == false);
}

TEST_CASE("opening a missing file is a GgufError naming the path", "[gguf][models]") {
  CHECK_THROWS_WITH(File::open(kModels + "/does-not-exist.gguf"),
                    Catch::Contains("does-not-exist.gguf: cannot open"));
}
