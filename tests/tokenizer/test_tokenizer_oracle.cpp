// Live comparison with llama.cpp (bin/llama-oracle): encode and decode random text with our
// tokenizer and with llama.cpp's, for the SPM, Phi-3 (SPM with more special tokens) and Llama-3
// BPE vocabularies. The text mixes multi-byte characters, whitespace runs, control characters,
// special-token text and invalid UTF-8; every flag combination is compared.
#include <catch2/catch.hpp>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../oracle/oracle.hpp"
#include "edgellm/gguf.hpp"
#include "tokenizer.hpp"

using edgellm::Tokenizer;

namespace {

std::string random_text(std::mt19937& rng) {
  static const char* kParts[] = {
      " ",     "  ",    "   ",  "\t",   "\n",     "\n\n",   "\r\n",   "\x01",  "\x1b",
      "\x7f",  "a",     "Hello", " world", "ied", "I've",   "'s",     "'LL",   "3",
      "333",   "12345", "3.14", "ä",    "½",      "€",      "日本語", "🦙",    "🚀",
      "😶‍🌫️", "नमस्ते", "Ελληνικά", "<s>", "</s>",  "<|eot_id|>", "<|end|>", "<0x41>", "▁",
      "(",     "'",     ".",    "!!",   " ?",     "```",    "\xE2\x82", "\xFF", "\xC0\xAF",
  };
  std::string s;
  const int n = std::uniform_int_distribution<int>(0, 10)(rng);
  for (int i = 0; i < n; ++i) s += kParts[rng() % std::size(kParts)];
  return s;
}

void compare_with_llama(const std::string& path, int n_strings, uint32_t seed) {
  auto file = edgellm::gguf::File::open(path);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  std::mt19937 rng(seed);
  for (int i = 0; i < n_strings; ++i) {
    const std::string text = i == 0 ? std::string() : random_text(rng);
    const bool add_special = i % 2 == 1;
    const bool parse_special = i % 4 >= 2;
    INFO(path << " text '" << text << "' add_special " << add_special << " parse_special "
              << parse_special);
    const auto ours = tok.encode(text, add_special, parse_special);
    REQUIRE(ours == edgellm::oracle::tokenize(path, text, add_special, parse_special));
    if (ours.empty()) continue;  // the oracle takes at least one token
    const bool special = i % 3 == 0;
    REQUIRE(tok.decode(ours, special) ==
            edgellm::oracle::detokenize(path, ours, /*remove_special=*/false, special));
  }
}

}  // namespace

TEST_CASE("SPM tokenizer agrees with llama.cpp on random text", "[tokenizer][oracle]") {
  compare_with_llama(std::string(EDGELLM_SHARED_MODELS) + "/ggml-vocab-llama-spm.gguf", 60, 1);
  compare_with_llama(std::string(EDGELLM_SHARED_MODELS) + "/stories260K.gguf", 20, 2);
}

TEST_CASE("Phi-3 SPM tokenizer agrees with llama.cpp on random text", "[tokenizer][oracle]") {
  compare_with_llama(std::string(EDGELLM_ORACLE_DIR) + "/llama.cpp/models/ggml-vocab-phi-3.gguf",
                     30, 3);
}

TEST_CASE("Llama-3 BPE tokenizer agrees with llama.cpp on random text", "[tokenizer][oracle]") {
  // Fewer strings: llama.cpp takes about half a second to load this vocabulary, for every call.
  compare_with_llama(std::string(EDGELLM_SHARED_MODELS) + "/ggml-vocab-llama-bpe.gguf", 12, 4);
}
