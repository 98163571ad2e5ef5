// Text <-> token ids for Llama-family GGUF files.
//
// The vocabulary comes from the file's `tokenizer.ggml.*` metadata. Supported:
//  - `tokenizer.ggml.model = "llama"` (SentencePiece-style, "SPM"; Llama 1/2, TinyLlama, Mistral):
//    pieces use U+2581 (▁) for a space, unknown characters fall back to byte tokens <0xNN>, and
//    pieces are built by merging the adjacent pair whose merged piece has the highest score.
//  - `tokenizer.ggml.model = "gpt2"` (byte-level BPE): the regex of `tokenizer.ggml.pre` splits
//    the text into words, each word's bytes are written as GPT-2 characters and merged by
//    `tokenizer.ggml.merges` rank. Pre-tokenizers: llama-bpe / llama3 / llama-v3 (Llama 3),
//    qwen2 / deepseek-r1-qwen, gpt-2, mpt, starcoder, refact, command-r, smollm, gpt-4o, tekken.
// Encoding gives exactly llama.cpp's ids (checked against llama.cpp's own test vectors), decoding
// exactly its text. Any other tokenizer model or pre-tokenizer is a TokenizerError, never a silent
// fallback.
//
//   Tokenizer tok = Tokenizer::from_gguf(file);
//   std::vector<int32_t> ids = tok.encode("Once upon a time", /*add_special=*/true,
//                                         /*parse_special=*/false);   // BOS ▁Once ▁upon ...
//   std::string text = tok.decode(ids);                                // " Once upon a time"
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"  // TokenizerError

namespace edgellm::gguf {
class File;
}

namespace edgellm {

// Token kinds, numbered as in GGUF's `tokenizer.ggml.token_type` (and llama.cpp's
// llama_token_type). A value outside 0..6 in a file reads as Undefined.
enum class TokenType : int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,      // <s>, </s>, <|im_end|>: rendered only when asked for
  UserDefined = 4,  // always split out of the text before the tokenizer runs, always rendered
  Unused = 5,
  Byte = 6,         // <0xNN>: one raw byte
};

// Everything the tokenizer needs, independent of the file format (tests build one by hand).
struct Vocab {
  std::string model = "llama";          // tokenizer.ggml.model: "llama" (SPM) or "gpt2" (BPE)
  std::string pre;                      // tokenizer.ggml.pre: the BPE pre-tokenizer
  std::vector<std::string> tokens;      // piece text per id (▁ for spaces, <0xNN> for bytes)
  std::vector<std::string> merges;      // BPE only: "left right", highest priority first
  std::vector<float> scores;            // per id; empty means all 0
  std::vector<TokenType> types;         // per id; empty means all Normal
  std::vector<uint8_t> rstrip;          // per id (or empty): when this special token is cut out
                                        // of the text, the whitespace after it goes too
                                        // (llama.cpp sets this for Phi-3's special tokens)
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1, sep_id = -1;
  int32_t eot_id = -1, eom_id = -1;     // end of turn / end of message, when the file names them
  bool add_bos = true;                  // encode(add_special=true) prepends BOS
  bool add_eos = false;                 // ... and appends EOS
  bool add_space_prefix = true;         // SPM: a space is put before text that starts a fragment
  bool clean_spaces = false;            // decode drops spaces before punctuation (HF's
                                        // clean_up_tokenization_spaces; llama.cpp sets it for BPE)
};

// Reads the vocabulary from GGUF metadata with llama.cpp's defaults for absent keys (SPM: BOS 1,
// EOS 2, UNK 0, add BOS, no EOS, space prefix on; Llama-3 BPE: add BOS, no space prefix, clean
// spaces; other BPE pre-tokenizers: llama.cpp's per-name add_bos and clean-up). Throws
// TokenizerError (missing tokens, mismatched array lengths, unsupported model or
// pre-tokenizer) or gguf::GgufError (mistyped keys).
Vocab read_vocab(const gguf::File& file);

// Immutable after construction: every method is const and may be called from several threads.
class Tokenizer {
 public:
  // Validates; throws TokenizerError. As llama.cpp does, tokens whose text marks an end of turn
  // or a fill-in-the-middle slot ("<|eot_id|>", "<|im_end|>", "<|end|>", "</s>", "<PRE>", ...)
  // are treated as Control whatever type the file gives them.
  explicit Tokenizer(Vocab vocab);
  static Tokenizer from_gguf(const gguf::File& file) { return Tokenizer(read_vocab(file)); }

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text -> ids. add_special: BOS/EOS as the vocabulary asks (add_bos/add_eos). parse_special:
  // text such as "<s>" or "<|im_end|>" becomes that control token instead of being spelled out.
  // Any byte string is accepted (invalid UTF-8 becomes byte tokens).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The text of one token: ▁ becomes a space, a byte token its byte (so a piece may be part of a
  // UTF-8 character). Control and unknown tokens give "" unless `special`. Throws TokenizerError
  // for an id outside the vocabulary.
  const std::string& token_to_piece(int32_t id, bool special = false) const;

  // Ids -> text, as llama.cpp's llama_detokenize(remove_special=false, unparse_special=special):
  // with add_space_prefix the first token's leading space is dropped (the one encode added), so
  // for SPM decode(encode(s, false, false)) == s. A leading BOS uses up that rule:
  // decode({BOS, ▁Once}) is " Once". With clean_spaces (BPE) " ." " ," " ?" " !" lose their
  // space, as do " 's" " 'm" " 're" " 've" and a lone " ' ". Throws TokenizerError for an id
  // outside the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool special = false) const;

  int32_t n_vocab() const;
  int32_t bos_id() const;  // -1 when the vocabulary has none
  int32_t eos_id() const;
  int32_t unk_id() const;
  int32_t pad_id() const;
  bool add_bos() const;
  bool add_eos() const;
  bool add_space_prefix() const;
  const std::string& model() const;

  bool is_eog(int32_t id) const;           // end of generation: EOS, EOT, EOM, <|im_end|>, ...
  TokenType token_type(int32_t id) const;  // throws for an id outside the vocabulary
  const std::string& token_text(int32_t id) const;       // the raw piece as stored in the file
  std::optional<int32_t> find_token(std::string_view text) const;  // exact piece look-up

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of ids into text without ever splitting a UTF-8 character: bytes of a character
// that is not complete yet are held back until the token that completes it. The one streaming
// decoder of the library (edgellm_generate's text goes through it too). The concatenation of
// every push() and the final flush() equals Tokenizer::decode of all the ids, except that the
// clean_spaces rules (BPE) are not applied: like llama.cpp's streaming output, it is the pieces
// as they are. starts_text = false: the ids continue earlier text (generation after a prompt), so
// the first piece keeps its leading space, which decode() would drop. Keeps a reference to the
// tokenizer, which must outlive it.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool special = false, bool starts_text = true);

  std::string push(int32_t id);  // text that is complete now (maybe empty)
  std::string flush();           // whatever is held back (a truncated character), then reset
  void reset();                  // forget held bytes; the next token counts as the first again

 private:
  const Tokenizer* tok_;
  bool special_;
  bool starts_text_;
  bool first_ = true;
  std::string pending_;
};

// Length of the longest prefix of `s` that does not end inside an incomplete UTF-8 sequence.
// Invalid bytes count as complete (they are passed on, not held forever).
size_t utf8_complete_prefix(std::string_view s);

}  // namespace edgellm
