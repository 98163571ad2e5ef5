// Tokenizers with llama.cpp's exact behaviour. The algorithms (facts read from llama.cpp's
// src/llama-vocab.cpp, code our own):
//
//  1. Special tokens are cut out of the text first: user-defined tokens always, control and
//     unknown tokens only with parse_special; longest token text first, left to right.
//  SPM (tokenizer.ggml.model = "llama"):
//  2. Each remaining text fragment gets a leading space when it starts the text or follows a
//     special token (add_space_prefix), then every ' ' becomes "▁".
//  3. The fragment is split into UTF-8 characters (the length comes from the lead byte alone, as
//     llama.cpp does, so invalid UTF-8 is still split deterministically). Repeatedly, the adjacent
//     pair whose concatenation is a vocabulary piece with the highest score is merged (ties: the
//     leftmost pair), until no adjacent pair forms a piece.
//  4. Each final symbol is its piece's id, or, when it is no piece (a character missing from the
//     vocabulary), one byte token <0xNN> per byte.
//  BPE (tokenizer.ggml.model = "gpt2"):
//  2. The fragment is decoded to code points (invalid UTF-8 -> U+FFFD) and split into words by the
//     pre-tokenizer's regex (tokenizer.ggml.pre: kPreTokenizers); each word's UTF-8 bytes are
//     written as GPT-2 characters.
//  3. With ignore_merges (Llama 3, Tekken), a word that is itself a token is that token.
//     Otherwise its characters are merged pairwise, lowest merge rank first (ties: leftmost).
//  4. Each final symbol is its token; a symbol that is none falls back to its single bytes'
//     one-character tokens where they exist.
#include "tokenizer.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <queue>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "arch.hpp"  // printable
#include "edgellm/gguf.hpp"
#include "unicode.hpp"

namespace edgellm {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 ▁, SentencePiece's space

// Token texts that end generation although the file does not name them (llama.cpp recognizes the
// same texts; instruction-tuned models end their turn with these rather than EOS).
constexpr std::string_view kEndOfGenerationTexts[] = {
    "<|eot_id|>", "<|im_end|>",      "<|end|>",        "<|return|>",         "<|call|>",
    "<|flush|>",  "<|calls|>",       "<end_of_turn>",  "<|endoftext|>",      "</s>",
    "<|eom_id|>", "<EOT>",           "_<EOT>",         "[EOT]",              "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>",  "<turn|>",            "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[",
};

// Fill-in-the-middle markers. Like the texts above, llama.cpp treats them as control tokens
// whatever type the file gives them (so they are only parsed with parse_special and render only
// when asked for); pad, repo and file-separator markers also end generation.
constexpr std::string_view kFimTexts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
    "<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
    "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>",
    "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>",
    "<|middle|>",
};
constexpr std::string_view kFimEndTexts[] = {
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>",
    "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
};

// Hash that accepts std::string_view, so look-ups of substrings allocate nothing.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(s.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(s.substr(pos));
  return out;
}

// The BPE pre-tokenizers (tokenizer.ggml.pre) we run, with the settings llama.cpp gives each name
// before the file's own keys (add_bos_token) are read.
struct PreTokenizer {
  std::string_view name;
  unicode::PreSplit split;
  bool ignore_merges;  // a word that is itself a token skips the merges
  bool clean_spaces;   // decode drops spaces before punctuation
  bool add_bos;
};
constexpr PreTokenizer kPreTokenizers[] = {
    {"llama-bpe", unicode::PreSplit::Llama3, true, true, true},
    {"llama3", unicode::PreSplit::Llama3, true, true, true},
    {"llama-v3", unicode::PreSplit::Llama3, true, true, true},
    {"qwen2", unicode::PreSplit::Qwen2, false, false, false},
    {"deepseek-r1-qwen", unicode::PreSplit::Qwen2, false, false, false},
    {"gpt-2", unicode::PreSplit::Gpt2, false, true, false},
    {"mpt", unicode::PreSplit::Gpt2, false, true, false},
    {"starcoder", unicode::PreSplit::DigitsThenGpt2, false, true, false},
    {"refact", unicode::PreSplit::DigitsThenGpt2, false, true, false},
    {"command-r", unicode::PreSplit::DigitsThenGpt2, false, false, false},
    {"smollm", unicode::PreSplit::DigitsThenGpt2, false, false, false},
    {"gpt-4o", unicode::PreSplit::Gpt4o, false, false, false},
    {"tekken", unicode::PreSplit::Tekken, true, false, true},
};

const PreTokenizer* find_pre(std::string_view name) {
  for (const PreTokenizer& p : kPreTokenizers)
    if (p.name == name) return &p;
  return nullptr;
}

const PreTokenizer& require_pre(std::string_view name) {
  if (const PreTokenizer* p = find_pre(name)) return *p;
  std::string known;
  for (const PreTokenizer& p : kPreTokenizers) known += (known.empty() ? "" : ", ") + std::string(p.name);
  throw TokenizerError("unsupported BPE pre-tokenizer '" + engine::printable(name) +
                       "' (tokenizer.ggml.pre); supported: " + known);
}

// HF's clean_up_tokenization_spaces, as llama.cpp applies it to decoded BPE text: three passes
// that drop the space in " ?", " !", " .", " ,"; around a lone " ' "; and before 's 'm 're 've.
void clean_up_spaces(std::string& s) {
  // Each pass compacts in place: w <= i, so s[i - 1] still holds the original byte.
  auto compact = [&](auto drop_space_before) {
    if (s.empty()) return;
    size_t w = 1;
    for (size_t i = 1; i < s.size(); ++i) {
      const char x = s[i];
      if (drop_space_before(i)) --w;
      s[w++] = x;
    }
    s.resize(w);
  };
  compact([&](size_t i) {
    const char x = s[i];
    return s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',');
  });
  // " ' " -> "'": drop the space before and skip the one after (marking it so it no longer
  // counts as a space for the next character).
  if (!s.empty()) {
    size_t w = 1;
    for (size_t i = 1; i < s.size(); ++i) {
      const char x = s[i];
      if (x == '\'' && i + 1 < s.size() && s[i - 1] == ' ' && s[i + 1] == ' ') {
        --w;
        s[++i] = '\0';
      }
      s[w++] = x;
    }
    s.resize(w);
  }
  compact([&](size_t i) {
    if (s[i - 1] != ' ' || s[i] != '\'' || i + 1 >= s.size()) return false;
    const char x1 = s[i + 1];
    if (x1 == 's' || x1 == 'm') return true;
    if (i + 2 >= s.size()) return false;
    const char x2 = s[i + 2];
    return (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e');
  });
}

// A BPE token's text in GPT-2 characters -> its bytes. A character that stands for no byte is
// written as llama.cpp writes it: [UNK_BYTE_0x<its UTF-8 in hex><the whole text>].
std::string gpt2_text_to_bytes(std::string_view text) {
  std::string out;
  for (uint32_t cp : unicode::decode_utf8(text)) {
    const int b = unicode::gpt2_to_byte(cp);
    if (b >= 0) {
      out += char(b);
      continue;
    }
    std::string utf8;
    unicode::append_utf8(utf8, cp);
    out += "[UNK_BYTE_0x";
    for (char c : utf8) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += kHex[uint8_t(c) >> 4];
      out += kHex[uint8_t(c) & 15];
    }
    out.append(text);
    out += "]";
  }
  return out;
}

// "<0xNN>" -> NN, or -1 when the text is not a byte piece.
int parse_byte_piece(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  const int hi = hex(text[3]), lo = hex(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// --- GGUF metadata helpers ---------------------------------------------------------------------

using engine::printable;

// A malformed vocabulary (a bad file), as opposed to a well-formed one this engine does not run.
[[noreturn]] void bad(const std::string& what) { throw TokenizerError(what, Error::Kind::Format); }

std::optional<int64_t> read_int(const gguf::File& file, std::string_view key) {
  const gguf::Value* v = file.find(key);
  if (!v) return std::nullopt;
  return std::visit(
      [&](const auto& x) -> int64_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_same_v<T, uint64_t>) {
            if (x > uint64_t(INT64_MAX)) return INT64_MAX;  // out of any range below
          }
          return static_cast<int64_t>(x);
        } else {
          bad("GGUF key '" + std::string(key) + "' is " + gguf::describe_type(*v) + ", expected an integer");
        }
      },
      v->v);
}

const gguf::Array* find_array(const gguf::File& file, std::string_view key) {
  const gguf::Value* v = file.find(key);
  if (!v) return nullptr;
  const auto* a = std::get_if<gguf::Array>(&v->v);
  if (!a) bad("GGUF key '" + std::string(key) + "' is " + gguf::describe_type(*v) + ", expected an array");
  return a;
}

// An array of strings (tokens, merges).
std::vector<std::string> read_strings(const gguf::File& file, std::string_view key) {
  const gguf::Array* a = find_array(file, key);
  if (!a) bad("GGUF key '" + std::string(key) + "' is missing");
  if (a->type != gguf::ValueType::STRING)
    bad("GGUF key '" + std::string(key) + "' is an array of " + std::string(gguf::value_type_name(a->type)) +
        ", expected an array of string");
  std::vector<std::string> out;
  out.reserve(a->items.size());
  for (const gguf::Value& item : a->items) out.push_back(std::get<std::string>(item.v));
  return out;
}

template <class T>
T read_scalar(const gguf::File& file, std::string_view key, T fallback) {
  const gguf::Value* v = file.find(key);
  if (!v) return fallback;
  if (const T* x = std::get_if<T>(&v->v)) return *x;
  bad("GGUF key '" + std::string(key) + "' is " + gguf::describe_type(*v) + ", expected " +
      std::string(gguf::value_type_name(gguf::value_type_of<T>)));
}

}  // namespace

// --- reading the vocabulary ---------------------------------------------------------------------

Vocab read_vocab(const gguf::File& file) {
  Vocab vocab;
  const gguf::Value* model = file.find("tokenizer.ggml.model");
  if (!model) throw TokenizerError("GGUF file has no tokenizer (key tokenizer.ggml.model missing)");
  vocab.model = read_scalar<std::string>(file, "tokenizer.ggml.model", "");
  vocab.pre = read_scalar<std::string>(file, "tokenizer.ggml.pre", "");
  // Defaults as llama.cpp sets them before reading the optional keys.
  if (vocab.model == "llama") {
    vocab.bos_id = 1;
    vocab.eos_id = 2;
    vocab.unk_id = 0;
  } else if (vocab.model == "gpt2") {
    const PreTokenizer& pre = require_pre(vocab.pre);
    vocab.bos_id = 11;
    vocab.eos_id = 11;
    vocab.add_bos = pre.add_bos;
    vocab.add_space_prefix = false;
    vocab.clean_spaces = pre.clean_spaces;
    if (!file.find("tokenizer.ggml.merges")) {
      bad("BPE vocabulary without merges (key tokenizer.ggml.merges missing)");
    }
    vocab.merges = read_strings(file, "tokenizer.ggml.merges");
  } else {
    throw TokenizerError("unsupported tokenizer model '" + printable(vocab.model) +
                         "' (tokenizer.ggml.model); supported: llama (SentencePiece), gpt2 "
                         "(byte-level BPE)");
  }

  if (!file.find("tokenizer.ggml.tokens")) {
    bad("GGUF file has no token list (key tokenizer.ggml.tokens missing)");
  }
  vocab.tokens = read_strings(file, "tokenizer.ggml.tokens");
  const size_t n = vocab.tokens.size();
  if (n == 0) bad("tokenizer.ggml.tokens is empty");
  if (n > size_t(INT32_MAX)) bad("tokenizer.ggml.tokens has too many entries");

  if (const gguf::Array* a = find_array(file, "tokenizer.ggml.scores")) {
    if (a->items.size() != n) {
      bad("tokenizer.ggml.scores has " + std::to_string(a->items.size()) + " entries for " +
          std::to_string(n) + " tokens");
    }
    vocab.scores.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const auto& v = a->items[i].v;
      if (const float* f = std::get_if<float>(&v)) vocab.scores[i] = *f;
      else if (const int32_t* k = std::get_if<int32_t>(&v)) vocab.scores[i] = float(*k);
      else bad("tokenizer.ggml.scores should hold f32 or i32 values, not " + gguf::describe_type(a->items[i]));
    }
  }
  if (const gguf::Array* a = find_array(file, "tokenizer.ggml.token_type")) {
    if (a->items.size() != n) {
      bad("tokenizer.ggml.token_type has " + std::to_string(a->items.size()) + " entries for " +
          std::to_string(n) + " tokens");
    }
    vocab.types.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const int32_t* t = std::get_if<int32_t>(&a->items[i].v);
      if (!t) bad("tokenizer.ggml.token_type should hold i32 values, not " + gguf::describe_type(a->items[i]));
      vocab.types[i] = (*t >= 0 && *t <= 6) ? TokenType(*t) : TokenType::Undefined;
    }
  }

  // Special ids. BOS, EOS and UNK, which encoding uses, must be in the vocabulary. The optional
  // ones (padding, separator, end of turn / message) keep their default when out of range, as
  // llama.cpp does: real files have padding_token_id == n_vocab.
  auto read_id = [&](std::string_view key, int32_t& id, bool required_in_range) {
    const auto v = read_int(file, key);
    if (!v) return;
    if (*v >= 0 && *v < int64_t(n)) id = int32_t(*v);
    else if (required_in_range)
      bad("GGUF key '" + std::string(key) + "' = " + std::to_string(*v) + " is outside the vocabulary [0, " +
          std::to_string(n) + ")");
  };
  read_id("tokenizer.ggml.bos_token_id", vocab.bos_id, true);
  read_id("tokenizer.ggml.eos_token_id", vocab.eos_id, true);
  read_id("tokenizer.ggml.unknown_token_id", vocab.unk_id, true);
  read_id("tokenizer.ggml.padding_token_id", vocab.pad_id, false);
  read_id("tokenizer.ggml.seperator_token_id", vocab.sep_id, false);  // sic: the GGUF key's spelling
  read_id("tokenizer.ggml.eot_token_id", vocab.eot_id, false);
  read_id("tokenizer.ggml.eom_token_id", vocab.eom_id, false);
  vocab.add_bos = read_scalar<bool>(file, "tokenizer.ggml.add_bos_token", vocab.add_bos);
  vocab.add_eos = read_scalar<bool>(file, "tokenizer.ggml.add_eos_token", vocab.add_eos);
  vocab.add_space_prefix = read_scalar<bool>(file, "tokenizer.ggml.add_space_prefix", vocab.add_space_prefix);

  // Phi-3 models (recognized by name, as llama.cpp does) drop the whitespace after special tokens.
  std::string name = read_scalar<std::string>(file, "general.name", "");
  for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    vocab.rstrip.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
      const TokenType t = vocab.types.empty() ? TokenType::Normal : vocab.types[i];
      const std::string& text = vocab.tokens[i];
      const bool special =
          t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown;
      vocab.rstrip[i] = (special || text == "</s>") && text != "<unk>" && text != "<s>" &&
                        text != "<|endoftext|>";
    }
  }
  return vocab;
}

// --- the tokenizer -------------------------------------------------------------------------------

struct Tokenizer::Impl {
  Vocab v;
  bool bpe = false;
  bool spm_words = false;  // SPM: no piece has "▁" after another character (see encode_spm)
  unicode::PreSplit split = unicode::PreSplit::Llama3;  // BPE: how text is split into words
  bool ignore_merges = false;  // BPE: a word that is a token is that token
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> piece_to_id;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> merge_rank;  // "l r"
  std::vector<std::string> pieces;     // rendered text per id (special = true)
  std::vector<int32_t> special_ids;    // control / user-defined / unknown, longest text first
  int32_t byte_to_id[256];             // byte fallback, -1 when the vocabulary lacks the byte
  std::unordered_set<int32_t> eog_ids;

  int32_t n() const { return int32_t(v.tokens.size()); }

  void check_id(int32_t id) const {
    if (id < 0 || id >= n()) {
      throw TokenizerError("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                               std::to_string(n()) + ")",
                           Error::Kind::InvalidArgument);
    }
  }

  std::optional<int32_t> find(std::string_view text) const {
    auto it = piece_to_id.find(text);
    if (it == piece_to_id.end()) return std::nullopt;
    return it->second;
  }

  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
};

Tokenizer::Tokenizer(Vocab vocab) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.v = std::move(vocab);
  Vocab& v = m.v;
  if (v.model == "gpt2") {
    const PreTokenizer& pre = require_pre(v.pre);
    m.split = pre.split;
    m.ignore_merges = pre.ignore_merges;
    m.bpe = true;
    m.merge_rank.reserve(v.merges.size());
    for (size_t i = 0; i < v.merges.size(); ++i) {
      // Split at the first space after the first character; a line without one is ignored.
      const std::string& line = v.merges[i];
      const size_t space = line.find(' ', 1);
      if (space == std::string::npos || space + 1 >= line.size())
        bad("tokenizer.ggml.merges[" + std::to_string(i) + "] '" + printable(line) +
            "' is not two pieces separated by a space");
      m.merge_rank.emplace(line, int32_t(i));  // a repeated merge keeps its first rank
    }
  } else if (v.model != "llama") {
    throw TokenizerError("unsupported tokenizer model '" + printable(v.model) + "'");
  }
  const size_t n = v.tokens.size();
  if (n == 0) bad("the vocabulary is empty");
  if (n > size_t(INT32_MAX)) bad("the vocabulary has too many tokens");
  if (v.scores.empty()) v.scores.assign(n, 0.0f);
  if (v.types.empty()) v.types.assign(n, TokenType::Normal);
  if (v.rstrip.empty()) v.rstrip.assign(n, 0);
  if (v.scores.size() != n || v.types.size() != n || v.rstrip.size() != n) {
    bad("vocabulary arrays differ in length: " + std::to_string(n) +
                         " tokens, " + std::to_string(v.scores.size()) + " scores, " +
                         std::to_string(v.types.size()) + " types, " +
                         std::to_string(v.rstrip.size()) + " rstrip flags");
  }
  for (int32_t* id : {&v.bos_id, &v.eos_id, &v.unk_id, &v.pad_id, &v.sep_id, &v.eot_id,
                      &v.eom_id}) {
    if (*id < -1 || *id >= int32_t(n)) *id = -1;
  }
  if (v.add_bos && v.bos_id < 0) bad("the vocabulary asks for BOS but has none");
  if (v.add_eos && v.eos_id < 0) bad("the vocabulary asks for EOS but has none");

  m.piece_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string& text = v.tokens[i];
    // An empty piece could never be matched and would break special-token splitting; llama.cpp
    // renames it the same way.
    if (text.empty()) text = "[EMPTY_" + std::to_string(i) + "]";
    m.piece_to_id[text] = int32_t(i);  // a duplicated piece maps to its last id
  }
  m.spm_words = !m.bpe && std::none_of(v.tokens.begin(), v.tokens.end(), [](const std::string& t) {
    std::string_view rest = t;
    while (rest.substr(0, kSpaceMark.size()) == kSpaceMark) rest.remove_prefix(kSpaceMark.size());
    return rest.find(kSpaceMark) != std::string_view::npos;
  });
  // Control-looking texts are control tokens, whatever the file says (as in llama.cpp).
  using TextList = std::span<const std::string_view>;
  for (TextList list :
       {TextList(kEndOfGenerationTexts), TextList(kFimTexts), TextList(kFimEndTexts)}) {
    for (std::string_view text : list) {
      if (auto id = m.find(text)) v.types[size_t(*id)] = TokenType::Control;
    }
  }

  m.pieces.resize(n);
  std::fill(std::begin(m.byte_to_id), std::end(m.byte_to_id), -1);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = v.tokens[i];
    switch (v.types[i]) {
      case TokenType::Normal:
        m.pieces[i] = m.bpe ? gpt2_text_to_bytes(text) : replace_all(text, kSpaceMark, " ");
        break;
      case TokenType::Control:
      case TokenType::Unknown:
      case TokenType::UserDefined: m.pieces[i] = text; break;
      case TokenType::Byte: {
        const int b = parse_byte_piece(text);
        if (b < 0) {
          bad("token " + std::to_string(i) + " has type BYTE but its text '" + printable(text) +
              "' is not of the form <0xNN>");
        }
        m.pieces[i] = std::string(1, char(b));
        break;
      }
      case TokenType::Undefined:
      case TokenType::Unused: break;  // renders as nothing
    }
    if (v.types[i] == TokenType::Control || v.types[i] == TokenType::UserDefined ||
        v.types[i] == TokenType::Unknown) {
      m.special_ids.push_back(int32_t(i));
    }
  }
  // Longest first, so "<|im_end|>" is cut before a shorter token that is its prefix.
  std::stable_sort(m.special_ids.begin(), m.special_ids.end(), [&](int32_t a, int32_t b) {
    return v.tokens[a].size() > v.tokens[b].size();
  });

  // Byte fallback: <0xNN>, else a piece that is the byte itself.
  for (int b = 0; b < 256; ++b) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    const char name[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    if (auto id = m.find(std::string_view(name, 6))) m.byte_to_id[b] = *id;
    else if (const char c = char(b); auto id1 = m.find(std::string_view(&c, 1)))
      m.byte_to_id[b] = *id1;
  }

  for (int32_t id : {v.eos_id, v.eot_id, v.eom_id}) {
    if (id >= 0) m.eog_ids.insert(id);
  }
  for (std::string_view text : kEndOfGenerationTexts) {
    if (auto id = m.find(text)) m.eog_ids.insert(*id);
  }
  for (std::string_view text : kFimEndTexts) {
    if (auto id = m.find(text)) m.eog_ids.insert(*id);
  }
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

void Tokenizer::Impl::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  // Symbols: a doubly linked list over the text; a merge grows the left symbol and empties the
  // right one. Merged symbols stay contiguous in `text`, so a pair's text is one substring.
  struct Symbol {
    int prev, next;
    size_t begin, len;
  };
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = std::min(unicode::sequence_length(uint8_t(text[pos])), text.size() - pos);
    const int i = int(sym.size());
    sym.push_back({i - 1, pos + len == text.size() ? -1 : i + 1, pos, len});
    pos += len;
  }

  // Words: when no piece has a "▁" after something other than "▁" (spm_words), no merge can
  // cross the start of a run of "▁" that follows another character. Merging each such word on
  // its own gives the same pieces as merging the whole text (a merge inside one word never
  // changes another's pairs, and the order within a word is kept), with small, cache-resident
  // queues instead of one as long as the text.
  auto is_mark = [&](int i) {
    return text.substr(sym[size_t(i)].begin, sym[size_t(i)].len) == kSpaceMark;
  };
  std::vector<int> word_starts = {0};
  if (spm_words) {
    for (int i = 1; i < int(sym.size()); ++i) {
      if (is_mark(i) && !is_mark(i - 1)) {
        word_starts.push_back(i);
        sym[size_t(i) - 1].next = -1;
        sym[size_t(i)].prev = -1;
      }
    }
  }

  struct Pair {
    int left, right;
    float score;
    size_t len;  // merged length when queued: a later change to either side makes it stale
  };
  // Highest score first; among equal scores the leftmost pair.
  auto lower = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::vector<Pair> queue;  // a heap, reused for every word
  auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t len = sym[size_t(left)].len + sym[size_t(right)].len;
    if (auto id = find(text.substr(sym[size_t(left)].begin, len))) {
      queue.push_back({left, right, v.scores[size_t(*id)], len});
      std::push_heap(queue.begin(), queue.end(), lower);
    }
  };

  for (size_t w = 0; w < word_starts.size() && !sym.empty(); ++w) {
    const int first = word_starts[w];
    const int end = w + 1 < word_starts.size() ? word_starts[w + 1] : int(sym.size());
    queue.clear();
    for (int i = first + 1; i < end; ++i) try_pair(i - 1, i);
    while (!queue.empty()) {
      std::pop_heap(queue.begin(), queue.end(), lower);
      const Pair p = queue.back();
      queue.pop_back();
      Symbol& l = sym[size_t(p.left)];
      Symbol& r = sym[size_t(p.right)];
      if (l.len == 0 || r.len == 0 || l.len + r.len != p.len) continue;  // stale
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[size_t(r.next)].prev = p.left;
      try_pair(l.prev, p.left);
      try_pair(p.left, l.next);
    }

    for (int i = first; i >= 0; i = sym[size_t(i)].next) {
      const std::string_view piece = text.substr(sym[size_t(i)].begin, sym[size_t(i)].len);
      if (auto id = find(piece)) {
        out.push_back(*id);
        continue;
      }
      for (char c : piece) {
        const int32_t id = byte_to_id[uint8_t(c)];
        if (id >= 0) out.push_back(id);
        else if (v.unk_id >= 0) out.push_back(v.unk_id);
        else throw TokenizerError("cannot encode byte " + std::to_string(uint8_t(c)) +
                                  ": the vocabulary has no byte token and no unknown token");
      }
    }
  }
}

void Tokenizer::Impl::encode_bpe(std::string_view text, std::vector<int32_t>& out) const {
  const std::vector<uint32_t> cpts = unicode::decode_utf8(text);
  std::string utf8, word;
  size_t at = 0;
  for (size_t len : unicode::pre_split(split, cpts)) {
    utf8.clear();
    for (size_t k = at; k < at + len; ++k) unicode::append_utf8(utf8, cpts[k]);
    at += len;
    word.clear();
    for (char c : utf8) word += unicode::byte_to_gpt2(uint8_t(c));
    bpe_word(word, out);
  }
}

void Tokenizer::Impl::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (auto id = ignore_merges ? find(word) : std::nullopt) {  // whole word is a token
    out.push_back(*id);
    return;
  }
  struct Symbol {
    int prev, next;
    size_t begin, len;
  };
  std::vector<Symbol> sym;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len = std::min(unicode::sequence_length(uint8_t(word[pos])), word.size() - pos);
    const int i = int(sym.size());
    sym.push_back({i - 1, pos + len == word.size() ? -1 : i + 1, pos, len});
    pos += len;
  }

  struct Pair {
    int left, right;
    int32_t rank;
    size_t left_len, right_len;  // when queued; a later change to either side makes it stale
  };
  // Lowest rank first; among equal ranks the leftmost pair.
  auto later = [](const Pair& a, const Pair& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(later)> queue(later);
  std::string key;
  auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    key.assign(word.substr(sym[left].begin, sym[left].len));
    key += ' ';
    key.append(word.substr(sym[right].begin, sym[right].len));
    auto it = merge_rank.find(key);
    if (it != merge_rank.end()) queue.push({left, right, it->second, sym[left].len, sym[right].len});
  };
  for (int i = 1; i < int(sym.size()); ++i) try_pair(i - 1, i);

  while (!queue.empty()) {
    const Pair p = queue.top();
    queue.pop();
    Symbol& l = sym[p.left];
    Symbol& r = sym[p.right];
    if (l.len != p.left_len || r.len != p.right_len || r.len == 0) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = p.left;
    try_pair(l.prev, p.left);
    try_pair(p.left, l.next);
  }

  for (int i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
    const std::string_view piece = word.substr(sym[i].begin, sym[i].len);
    if (auto id = find(piece)) {
      out.push_back(*id);
      continue;
    }
    for (char c : piece) {  // no token: the single bytes that are tokens, the rest is lost
      if (auto id = find(std::string_view(&c, 1))) out.push_back(*id);
    }
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  const Impl& m = *impl_;
  // Cut special tokens out of the text. A fragment is either a token id or a text range.
  struct Fragment {
    int32_t token;  // -1: text
    size_t begin, len;
  };
  std::vector<Fragment> frags;
  if (!text.empty()) frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : m.special_ids) {
    const TokenType type = m.v.types[id];
    if (!parse_special && (type == TokenType::Control || type == TokenType::Unknown)) continue;
    const std::string& needle = m.v.tokens[id];
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      const size_t end = f.begin + f.len;
      const std::string_view hay = text.substr(0, end);
      size_t pos = f.begin;
      for (size_t hit; (hit = hay.find(needle, pos)) != std::string_view::npos;) {
        if (hit > pos) next.push_back({-1, pos, hit - pos});
        next.push_back({id, 0, 0});
        pos = hit + needle.size();
        if (m.v.rstrip[id]) {
          while (pos < end && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
        }
      }
      if (pos < end) next.push_back({-1, pos, end - pos});
    }
    frags.swap(next);
  }

  std::vector<int32_t> out;
  out.reserve(text.size() / 2 + 4);
  if (add_special && m.v.add_bos) out.push_back(m.v.bos_id);
  bool after_special = true;  // the text start counts as "after a special token"
  std::string buf;
  for (const Fragment& f : frags) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    if (m.bpe) {
      m.encode_bpe(text.substr(f.begin, f.len), out);
    } else {
      buf.clear();
      if (m.v.add_space_prefix && after_special) buf.push_back(' ');
      buf.append(text.substr(f.begin, f.len));
      m.encode_spm(replace_all(buf, " ", kSpaceMark), out);
    }
    after_special = false;
  }
  if (add_special && m.v.add_eos) out.push_back(m.v.eos_id);
  return out;
}

const std::string& Tokenizer::token_to_piece(int32_t id, bool special) const {
  static const std::string kEmpty;
  impl_->check_id(id);
  const TokenType t = impl_->v.types[id];
  if (!special && (t == TokenType::Control || t == TokenType::Unknown)) return kEmpty;
  return impl_->pieces[id];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool special) const {
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    std::string_view piece = token_to_piece(id, special);
    if (first && impl_->v.add_space_prefix && !piece.empty() && piece[0] == ' ') {
      piece.remove_prefix(1);
    }
    first = false;
    out.append(piece);
  }
  if (impl_->v.clean_spaces) clean_up_spaces(out);
  return out;
}

int32_t Tokenizer::n_vocab() const { return impl_->n(); }
int32_t Tokenizer::bos_id() const { return impl_->v.bos_id; }
int32_t Tokenizer::eos_id() const { return impl_->v.eos_id; }
int32_t Tokenizer::unk_id() const { return impl_->v.unk_id; }
int32_t Tokenizer::pad_id() const { return impl_->v.pad_id; }
bool Tokenizer::add_bos() const { return impl_->v.add_bos; }
bool Tokenizer::add_eos() const { return impl_->v.add_eos; }
bool Tokenizer::add_space_prefix() const { return impl_->v.add_space_prefix; }
const std::string& Tokenizer::model() const { return impl_->v.model; }

bool Tokenizer::is_eog(int32_t id) const { return impl_->eog_ids.count(id) > 0; }

TokenType Tokenizer::token_type(int32_t id) const {
  impl_->check_id(id);
  return impl_->v.types[id];
}

const std::string& Tokenizer::token_text(int32_t id) const {
  impl_->check_id(id);
  return impl_->v.tokens[id];
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  return impl_->find(text);
}

// --- streaming ------------------------------------------------------------------------------------

size_t utf8_complete_prefix(std::string_view s) {
  // Walk back over at most 3 continuation bytes to the last lead byte.
  size_t i = s.size();
  size_t n_cont = 0;
  while (i > 0 && n_cont < 4 && (uint8_t(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++n_cont;
  }
  if (i == 0) return s.size();  // only continuation bytes: invalid, pass them on
  const uint8_t lead = uint8_t(s[i - 1]);
  size_t need;
  if ((lead & 0xE0) == 0xC0) need = 2;
  else if ((lead & 0xF0) == 0xE0) need = 3;
  else if ((lead & 0xF8) == 0xF0) need = 4;
  else return s.size();  // ASCII or an invalid lead byte: nothing to wait for
  return n_cont + 1 < need ? i - 1 : s.size();
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool special, bool starts_text)
    : tok_(&tokenizer), special_(special), starts_text_(starts_text) {}

std::string StreamDecoder::push(int32_t id) {
  std::string_view piece = tok_->token_to_piece(id, special_);
  if (first_ && starts_text_ && tok_->add_space_prefix() && !piece.empty() && piece[0] == ' ') {
    piece.remove_prefix(1);
  }
  first_ = false;
  pending_.append(piece);
  const size_t n = utf8_complete_prefix(pending_);
  std::string out = pending_.substr(0, n);
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = std::move(pending_);
  reset();
  return out;
}

void StreamDecoder::reset() {
  pending_.clear();
  first_ = true;
}

}  // namespace edgellm
