// Live comparison with llama.cpp (bin/llama-oracle): encode and decode random text with our
// tokenizer and with llama.cpp's, for the SPM, Phi-3 (SPM with more special tokens) and the BPE
// vocabularies (Llama 3, Qwen2, GPT-2, StarCoder, Command-R; GPT-4o, Tekken, SmolLM and
// DeepSeek-R1-Qwen as renamed copies of Llama 3's; SPM without space prefix or BOS as a copy). The text mixes multi-byte characters, whitespace runs, control characters,
// special-token text and invalid UTF-8; every flag combination is compared. Chat templates are
// compared with llama.cpp's llama_chat_apply_template, by name and by Jinja text.
#include <catch2/catch.hpp>

#include <fstream>
#include <memory>
#include <sstream>
#include <random>
#include <string>
#include <vector>

#include "../oracle/oracle.hpp"
#include "chat_template.hpp"
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

namespace {

// Longer texts for the pre-tokenizer comparisons (each oracle call loads the vocabulary, so each
// text should exercise many rules): every class the regexes tell apart, ASCII and not: digit
// runs, CJK, accents precomposed and combining, upper/lower/mixed case (also non-ASCII), each
// contraction in both cases, whitespace runs with and without newlines, punctuation before
// newlines and slashes, emoji with joiners, other scripts and number characters.
std::string pre_tokenizer_text(std::mt19937& rng) {
  static const char* kParts[] = {
      " ",      "  ",      "   ",     "\t",     "\n",       "\n\n",       "\r\n",     " \n ",
      "\u3000",  "\u00a0",  "a",       "Hello",  " world",   "HELLO",     "hELLo",    "CamelCase",
      "iPhone", "ÀÉÎ",     "ÜBER",     "Ωmega",   "ßtraße",   "ǅ",         "e\u0301",  "Ame\u0301lie",
      "I've",   "'s",      "'S",      "'LL",     "'re",      "'Ve",       "'d",       "'t",
      "don't",  "WE'RE",   "'",       "3",       "333",      "12345",     "3.14",     "1,000,000",
      "٣٤٥",    "½",       "²",       "Ⅻ",       "日本語",   "中文字符",  "한국어",   "カタカナ",
      "🦙",     "🚀",      "😶‍🌫️",    "👍🏽",     "नमस्ते",     "Ελληνικά",  "русский",  "עברית",
      "(",      ".",       "!!",      " ?",      "```",      "//",        "/",        "a/b",
      "<s>",    "</s>",    "<|im_end|>", "<|endoftext|>", "\x01", "\x7f", "\xE2\x82", "\xFF",
  };
  std::string s;
  const int n = std::uniform_int_distribution<int>(1, 40)(rng);
  for (int i = 0; i < n; ++i) s += kParts[rng() % std::size(kParts)];
  return s;
}

// A vocabulary-only copy of `source` with some metadata replaced (tokenizer.ggml.pre, flags):
// the pre-tokenizers no shipped test vocabulary uses, run over a real BPE vocabulary by both.
void write_vocab_copy(const std::string& source, const std::string& dest,
                      const std::vector<std::pair<std::string, edgellm::gguf::Value>>& changes) {
  auto file = edgellm::gguf::File::open(source);
  REQUIRE(file.tensors().empty());
  edgellm::gguf::Writer w;
  for (const auto& kv : file.metadata()) w.set(kv.key, kv.value);
  for (const auto& [key, value] : changes) w.set(key, value);
  w.begin(dest);
  w.finish();
}

// One text with a case for each rule where the regexes differ (a non-ASCII letter before ASCII
// capitals, where llama.cpp's GPT-4o rewrite splits; contractions in every case; digit runs;
// punctuation before newlines and slashes; whitespace runs before text and newlines; combining
// marks), compared first, before the random ones.
const char* const kRuleText =
    "ÜBER ÉCOLE ÀB naïveTÉ ΩMEGA Ωmega 日本語HELLO HELLOworld iPhone ǅemal "
    "I'M WE'RE You'Re they'Ve it'S don't I'll he'D 's 'T "
    "1 12 123 1234 12345678 3.14 ½² ٣٤٥ "
    "a/b!!\n/c ?!\r\n//x (x)/\n\n/ "
    "  \t\n  x   y \n\n\n z\t\t \u3000x\u00a0y "
    "e\u0301te\u0301 Ame\u0301lie a\u0308\u0308b  🦙🦙 😶‍🌫️ 👍🏽 中文字符 한국어 ";

void compare_texts_with_llama(const std::string& path, int n_strings, uint32_t seed) {
  auto file = edgellm::gguf::File::open(path);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  std::mt19937 rng(seed);
  for (int i = -1; i < n_strings; ++i) {
    const std::string text = i < 0 ? std::string(kRuleText) : pre_tokenizer_text(rng);
    const bool add_special = i % 2 == 1;
    const bool parse_special = i % 4 >= 2;
    INFO(path << " text '" << text << "' add_special " << add_special << " parse_special "
              << parse_special);
    const auto ours = tok.encode(text, add_special, parse_special);
    REQUIRE(ours == edgellm::oracle::tokenize(path, text, add_special, parse_special));
    const bool special = i % 3 == 0;
    REQUIRE(tok.decode(ours, special) ==
            edgellm::oracle::detokenize(path, ours, /*remove_special=*/false, special));
  }
}

const std::string kOracleVocabs = std::string(EDGELLM_ORACLE_DIR) + "/llama.cpp/models";

}  // namespace

TEST_CASE("BPE pre-tokenizers of the shipped vocabularies agree with llama.cpp on random text",
          "[tokenizer][oracle]") {
  compare_texts_with_llama(kOracleVocabs + "/ggml-vocab-qwen2.gguf", 5, 5);
  compare_texts_with_llama(kOracleVocabs + "/ggml-vocab-gpt-2.gguf", 6, 6);
  compare_texts_with_llama(kOracleVocabs + "/ggml-vocab-starcoder.gguf", 5, 7);
  compare_texts_with_llama(kOracleVocabs + "/ggml-vocab-command-r.gguf", 5, 8);
  compare_texts_with_llama(std::string(EDGELLM_SHARED_MODELS) + "/ggml-vocab-llama-bpe.gguf", 5, 9);
}

TEST_CASE("pre-tokenizers without a shipped vocabulary agree with llama.cpp on random text",
          "[tokenizer][oracle]") {
  // (Each oracle call loads this 128k-token vocabulary, about a second: the rule text and six
  // random texts of up to 40 parts per name keep the case near a minute.)
  // The Llama-3 vocabulary under each name; llama.cpp applies each name's regex and flags
  // (add_bos, clean-up of spaces, ignore_merges) as we do. Not Qwen2's: it has no token of two
  // or more digits, so the digit rules (one digit or up to three) would not show.
  uint32_t seed = 10;
  for (const char* pre : {"gpt-4o", "tekken", "smollm", "deepseek-r1-qwen"}) {
    INFO("tokenizer.ggml.pre = " << pre);
    edgellm::oracle::TempFile copy;
    write_vocab_copy(kOracleVocabs + "/ggml-vocab-llama-bpe.gguf", copy.path(),
                     {{"tokenizer.ggml.pre", edgellm::gguf::Value(std::string(pre))}});
    compare_texts_with_llama(copy.path(), 6, seed++);
  }
}

TEST_CASE("SPM without a space prefix and without BOS (Gemma 3, Qwen flags) agrees with llama.cpp",
          "[tokenizer][oracle]") {
  uint32_t seed = 20;
  for (bool space_prefix : {false, true}) {
    for (bool add_bos : {false, true}) {
      INFO("add_space_prefix " << space_prefix << " add_bos_token " << add_bos);
      edgellm::oracle::TempFile copy;
      write_vocab_copy(std::string(EDGELLM_SHARED_MODELS) + "/ggml-vocab-llama-spm.gguf",
                       copy.path(),
                       {{"tokenizer.ggml.add_space_prefix", edgellm::gguf::Value(space_prefix)},
                        {"tokenizer.ggml.add_bos_token", edgellm::gguf::Value(add_bos)}});
      auto file = edgellm::gguf::File::open(copy.path());
      const Tokenizer tok = Tokenizer::from_gguf(file);
      CHECK(tok.add_space_prefix() == space_prefix);
      CHECK(tok.add_bos() == add_bos);
      compare_texts_with_llama(copy.path(), 8, seed++);
    }
  }
}

namespace {

using Chat = std::vector<edgellm::ChatMessage>;

std::vector<std::pair<std::string, std::string>> pairs(const Chat& chat) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : chat) out.emplace_back(m.role, m.content);
  return out;
}

const std::vector<Chat>& conversations() {
  static const std::vector<Chat> all = {
      {{"system", "You are a helpful assistant"}, {"user", "Hello"}, {"assistant", "Hi there"},
       {"user", "Who are you"}, {"assistant", "   I am an assistant   "},
       {"user", "Another question"}},
      {{"user", "  spaces around  "}},
      {{"system", "\tsys\n"}, {"user", ""}, {"assistant", "ok"}, {"user", "日本語 🦙\n\nline"}},
      {{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"tool", "d"}},
      {},
  };
  return all;
}

std::string read_jinja(const std::string& name) {
  std::ifstream f(std::string(EDGELLM_ORACLE_DIR) + "/llama.cpp/models/templates/" + name,
                  std::ios::binary);
  if (!f) FAIL("missing template " << name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("chat formats give llama.cpp's text", "[chat][oracle]") {
  for (const char* name : {"chatml", "llama2", "llama2-sys", "llama2-sys-bos", "llama2-sys-strip",
                           "zephyr", "llama3"}) {
    const auto format = edgellm::chat_format_from_name(name);
    REQUIRE(format);
    for (const Chat& chat : conversations()) {
      for (bool add : {false, true}) {
        INFO(name << " messages " << chat.size() << " add_generation_prompt " << add);
        CHECK(edgellm::apply_chat_template(*format, chat, add) ==
              edgellm::oracle::chat(name, pairs(chat), add));
      }
    }
  }
}

TEST_CASE("chat templates recognized from Jinja text give llama.cpp's text", "[chat][oracle]") {
  for (const std::string& jinja : {read_jinja("Qwen-Qwen2.5-7B-Instruct.jinja"),
                                   read_jinja("meta-llama-Llama-3.1-8B-Instruct.jinja"),
                                   read_jinja("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja")}) {
    const auto format = edgellm::resolve_chat_format(jinja);
    for (const Chat& chat : conversations()) {
      INFO(edgellm::chat_format_name(format) << " messages " << chat.size());
      CHECK(edgellm::apply_chat_template(format, chat, true) ==
            edgellm::oracle::chat(jinja, pairs(chat), true));
    }
  }
  // The one deliberate difference: TinyLlama's Jinja (turns end with eos_token) is filed by
  // llama.cpp's substring rules under "glmedge", which drops the </s>; we render it as Jinja does.
  const std::string tinyllama =
      "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + "
      "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ "
      "'<|system|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == "
      "'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif "
      "%}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% "
      "endfor %}";
  const Chat chat = {{"system", "S"}, {"user", "U"}};
  CHECK(edgellm::oracle::chat(tinyllama, pairs(chat), true) ==
        "<|system|>\nS<|user|>\nU<|assistant|>");
  CHECK(edgellm::apply_chat_template(edgellm::resolve_chat_format(tinyllama), chat, true) ==
        "<|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\n");
}
