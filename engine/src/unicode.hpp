// UTF-8 and Unicode helpers for the tokenizers: code point decoding with llama.cpp's treatment of
// invalid input, the letter/number classes and whitespace set of the BPE pre-tokenizer regexes,
// GPT-2's byte <-> character mapping, and the BPE pre-tokenizer splits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgellm::unicode {

// Number of bytes of the UTF-8 sequence a lead byte starts, judged by its top 4 bits only
// (a stray continuation byte counts as 1). How the SPM tokenizer splits text into characters.
size_t sequence_length(uint8_t lead);

// Code points of `s`. A byte that does not start a well-formed sequence becomes U+FFFD and the
// decoder moves on by one byte (llama.cpp does the same; overlong forms are accepted as it does).
std::vector<uint32_t> decode_utf8(std::string_view s);
void append_utf8(std::string& out, uint32_t cp);  // cp > 0x10FFFF is written as U+FFFD

enum class Category : uint8_t { Other, Letter, Number };
struct CategoryRange {
  uint32_t start;  // the range ends where the next one starts
  Category category;
};
extern const CategoryRange kCategoryRanges[];  // generated: unicode_data.cpp
extern const size_t kCategoryRangeCount;

Category category(uint32_t cp);  // \p{L} -> Letter, \p{N} -> Number
bool is_whitespace(uint32_t cp); // regex \s, the set llama.cpp uses

// GPT-2 byte-level BPE writes each byte as a printable character: bytes that are printable
// Latin-1 stand for themselves, the other 68 are moved to U+0100.. in order.
const std::string& byte_to_gpt2(uint8_t byte);  // UTF-8 of the stand-in character
int gpt2_to_byte(uint32_t cp);                  // the byte a stand-in character means, or -1

// The pre-tokenizer splits of the BPE vocabularies, each as llama.cpp runs its regex (its
// hand-written splitters for GPT-2, Llama 3 and Qwen2; std::regex over "collapsed" text, where
// every non-ASCII code point stands for its class, for the others). Each returns the length of
// every word in code points (they add up to cpts.size()).
enum class PreSplit {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
  Gpt2,
  // \p{N} first (every digit a word of its own), then Gpt2 within each piece (StarCoder,
  // SmolLM, Refact, Command-R)
  DigitsThenGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  // \s*[\r\n]+|\s+(?!\S)|\s+
  Llama3,
  Qwen2,  // Llama3 with \p{N} (one digit per word)
  // llama.cpp's rewrite of GPT-4o's regex: "upper" = a letter other than a-z, "lower" = a letter
  // other than A-Z (so a non-ASCII letter is both):
  //   [^\r\n\p{L}\p{N}]?Upper*Lower+Contraction?|[^\r\n\p{L}\p{N}]?Upper+Lower*Contraction?|
  //   \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Gpt4o,
  Tekken,  // Gpt4o without the contractions and with \p{N} (one digit per word)
};
std::vector<size_t> pre_split(PreSplit kind, const std::vector<uint32_t>& cpts);

}  // namespace edgellm::unicode
