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

// A one-layer Llama model small enough to fuzz (F32 weights, 32 wide, 4 heads, 8 tokens) with an
// SPM vocabulary and a chat template: the fuzz-model target's way into binding, tokenizer, chat.
std::vector<uint8_t> tiny_llama(bool bpe) {
  gguf::Writer w;
  const uint64_t n_embd = 32, n_ff = 64;
  w.set("general.architecture", std::string("llama"));
  w.set("general.name", std::string("fuzz-tiny"));
  w.set("llama.block_count", uint32_t{1});
  w.set("llama.embedding_length", uint32_t(n_embd));
  w.set("llama.feed_forward_length", uint32_t(n_ff));
  w.set("llama.attention.head_count", uint32_t{4});
  w.set("llama.attention.head_count_kv", uint32_t{2});
  w.set("llama.context_length", uint32_t{64});
  w.set("llama.rope.dimension_count", uint32_t{8});
  w.set("llama.rope.freq_base", 10000.0f);
  w.set("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  auto strings = [](std::vector<std::string> v) {
    gguf::Array a{gguf::ValueType::STRING, {}};
    for (auto& s : v) a.items.emplace_back(std::move(s));
    return a;
  };
  std::vector<std::string> tokens;
  if (bpe) {
    tokens = {"<|begin_of_text|>", "<|eot_id|>", "H", "e", "l", "o", "\xc4\xa0", "He", "ll", "llo"};
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.pre", std::string("llama-bpe"));
    w.set("tokenizer.ggml.merges", strings({"H e", "l l", "ll o"}));
    w.set("tokenizer.ggml.bos_token_id", uint32_t{0});
    w.set("tokenizer.ggml.eos_token_id", uint32_t{1});
    w.set("tokenizer.chat_template",
          std::string("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}"));
  } else {
    tokens = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "<0x41>", "\xe2\x96\x81" "a", "<|im_end|>"};
    w.set("tokenizer.ggml.model", std::string("llama"));
    w.set("tokenizer.ggml.bos_token_id", uint32_t{1});
    w.set("tokenizer.ggml.eos_token_id", uint32_t{2});
    w.set("tokenizer.ggml.unknown_token_id", uint32_t{0});
    w.set("tokenizer.chat_template",
          std::string("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                      "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"));
  }
  const uint64_t n_vocab = tokens.size();
  gguf::Array scores{gguf::ValueType::F32, {}}, types{gguf::ValueType::I32, {}};
  for (uint64_t i = 0; i < n_vocab; ++i) {
    scores.items.emplace_back(-float(i));
    types.items.emplace_back(int32_t(i < 3 && !bpe ? (i == 0 ? 2 : 3) : (tokens[i] == "<0x41>" ? 6 : 1)));
  }
  w.set("tokenizer.ggml.tokens", strings(tokens));
  w.set("tokenizer.ggml.scores", scores);
  w.set("tokenizer.ggml.token_type", types);
  std::vector<std::vector<uint8_t>> data;
  auto add = [&](const std::string& name, std::vector<uint64_t> ne) {
    w.add_tensor(name, DType::F32, std::span<const uint64_t>(ne));
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    data.emplace_back(n * 4, uint8_t(data.size() + 1));
  };
  add("token_embd.weight", {n_embd, n_vocab});
  add("output_norm.weight", {n_embd});
  add("output.weight", {n_embd, n_vocab});
  add("blk.0.attn_norm.weight", {n_embd});
  add("blk.0.attn_q.weight", {n_embd, n_embd});
  add("blk.0.attn_k.weight", {n_embd, n_embd / 2});
  add("blk.0.attn_v.weight", {n_embd, n_embd / 2});
  add("blk.0.attn_output.weight", {n_embd, n_embd});
  add("blk.0.ffn_norm.weight", {n_embd});
  add("blk.0.ffn_gate.weight", {n_embd, n_ff});
  add("blk.0.ffn_up.weight", {n_embd, n_ff});
  add("blk.0.ffn_down.weight", {n_ff, n_embd});
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
    save(dir + "/seed-tiny-llama-spm.gguf", tiny_llama(false));
    save(dir + "/seed-tiny-llama-bpe.gguf", tiny_llama(true));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make-fuzz-seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
