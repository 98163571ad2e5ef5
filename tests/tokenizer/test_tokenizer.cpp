// SPM tokenizer: llama.cpp's own test vectors (ids computed by llama.cpp), the stories260K
// vocabulary against llama2.c's reference output, round trips and streaming on random text.
// Every test needs its data files and FAILS when they are missing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "edgellm/gguf.hpp"
#include "tokenizer.hpp"

using edgellm::StreamDecoder;
using edgellm::Tokenizer;
using edgellm::TokenizerError;
using edgellm::TokenType;
using edgellm::Vocab;

namespace {

const std::string kModels = EDGELLM_SHARED_MODELS;
const std::string kOracleModels = std::string(EDGELLM_ORACLE_DIR) + "/llama.cpp/models";

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) FAIL("missing test data file " << path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const Tokenizer& load(const std::string& path) {
  static std::vector<std::pair<std::string, std::unique_ptr<Tokenizer>>> cache;
  for (auto& [p, t] : cache)
    if (p == path) return *t;
  auto file = edgellm::gguf::File::open(path);
  cache.emplace_back(path, std::make_unique<Tokenizer>(Tokenizer::from_gguf(file)));
  return *cache.back().second;
}

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

// The format of llama.cpp's tests/test-tokenizer-0: inputs joined by the separator (which also
// ends the file), one output line per input with the ids separated by spaces.
std::vector<VocabCase> read_vocab_cases(const std::string& inp_path, const std::string& out_path) {
  const std::string inp = read_file(inp_path);
  const std::string out = read_file(out_path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(inp.substr(pos));
      break;
    }
    inputs.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<VocabCase> cases;
  std::istringstream lines(out);
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    REQUIRE(i < inputs.size());
    VocabCase c{inputs[i], {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  REQUIRE(cases.size() == inputs.size());
  return cases;
}

// decode_exact: decoding llama.cpp's ids gives the input back (SPM; BPE's clean-up of spaces
// before punctuation changes some texts).
void check_vocab_vectors(const std::string& dir, const std::string& name, size_t expected_cases,
                         bool decode_exact = true) {
  const std::string base = dir + "/" + name;
  const Tokenizer& tok = load(base);
  const auto cases = read_vocab_cases(base + ".inp", base + ".out");
  REQUIRE(cases.size() == expected_cases);
  size_t passed = 0;
  for (const auto& c : cases) {
    INFO("text: '" << c.text << "'");
    const auto ids = tok.encode(c.text, /*add_special=*/false, /*parse_special=*/false);
    CHECK(ids == c.ids);
    if (decode_exact) CHECK(tok.decode(c.ids) == c.text);
    passed += ids == c.ids;
  }
  CHECK(passed == cases.size());
}

// Random byte strings that stress the tokenizer: multi-byte characters (2, 3 and 4 bytes, some
// missing from the vocabulary), whitespace runs, control characters, special-token look-alikes
// and, when `valid_utf8` is false, broken sequences.
std::string random_text(std::mt19937& rng, bool valid_utf8) {
  static const char* kParts[] = {
      " ",   "  ",  "\t", "\n", "\r\n", "\x01", "\x7f", "a",   "Hello", " world", "ied",
      "ä",   "½",   "€",  "日本", "🦙",  "🚀",  "\xE1\x9E\x80", "<s>", "</s>", "<0x41>",
      "3333", "(", "'", ".", "Ελληνικά", "\xF0\x9F\x98\xB6\xE2\x80\x8D",
  };
  static const char* kBroken[] = {"\xE2\x82", "\x80", "\xC3", "\xF0\x9F", "\xFF", "\xC0\xAF"};
  std::string s;
  const int n = std::uniform_int_distribution<int>(0, 12)(rng);
  for (int i = 0; i < n; ++i) {
    if (!valid_utf8 && rng() % 4 == 0) s += kBroken[rng() % std::size(kBroken)];
    else s += kParts[rng() % std::size(kParts)];
  }
  return s;
}

bool ends_inside_utf8_char(const std::string& s) {
  return edgellm::utf8_complete_prefix(s) != s.size();
}

// Metadata arrays for hand-made vocabularies.
edgellm::gguf::Array strings(std::vector<std::string> v) {
  edgellm::gguf::Array a;
  a.type = edgellm::gguf::ValueType::STRING;
  for (auto& s : v) a.items.emplace_back(std::move(s));
  return a;
}
edgellm::gguf::Array floats(size_t n) {  // -0, -1, -2, ... (scores)
  edgellm::gguf::Array a;
  a.type = edgellm::gguf::ValueType::F32;
  for (size_t i = 0; i < n; ++i) a.items.emplace_back(float(-double(i)));
  return a;
}
edgellm::gguf::Array ints(std::vector<int32_t> v) {
  edgellm::gguf::Array a;
  a.type = edgellm::gguf::ValueType::I32;
  for (int32_t x : v) a.items.emplace_back(x);
  return a;
}

// The bytes of a small valid SPM vocabulary ("ab" -> ▁ a <0x62>) after defect(writer) changed it:
// the malformed-metadata tests add one defect at a time.
template <typename Defect>
std::vector<uint8_t> vocab_with_defect(Defect&& defect) {
  edgellm::gguf::Writer w;
  w.set("tokenizer.ggml.model", std::string("llama"));
  w.set("tokenizer.ggml.tokens", strings({"<unk>", "<s>", "</s>", "▁", "a", "<0x62>"}));
  w.set("tokenizer.ggml.scores", floats(6));
  w.set("tokenizer.ggml.token_type", ints({2, 3, 3, 1, 1, 6}));
  defect(w);
  return w.to_bytes({});
}

}  // namespace

TEST_CASE("llama-spm vocab: all of llama.cpp's test vectors", "[tokenizer][spm]") {
  check_vocab_vectors(kModels, "ggml-vocab-llama-spm.gguf", 46);
}

TEST_CASE("llama-spm vocab: llama.cpp's copy of the test vectors", "[tokenizer][spm]") {
  // Byte-identical to the shared copy today; checked separately so an update upstream shows.
  check_vocab_vectors(kOracleModels, "ggml-vocab-llama-spm.gguf", 46);
}

TEST_CASE("phi-3 vocab (SPM with more special tokens): llama.cpp's test vectors", "[tokenizer][spm]") {
  check_vocab_vectors(kOracleModels, "ggml-vocab-phi-3.gguf", 46);
  const Tokenizer& tok = load(kOracleModels + "/ggml-vocab-phi-3.gguf");
  CHECK(tok.eos_id() == 32000);
  CHECK(tok.is_eog(32000));                                  // <|endoftext|>
  CHECK(tok.is_eog(*tok.find_token("<|end|>")));             // found by its text
  // "</s>" is USER_DEFINED in the file; like llama.cpp we treat end-of-generation texts as
  // control tokens, so it is not cut out of plain text and renders only when asked for.
  CHECK(tok.token_type(2) == TokenType::Control);
  CHECK(tok.token_to_piece(2).empty());
  CHECK(tok.encode("<|user|>\nHi<|end|>", false, true).front() == *tok.find_token("<|user|>"));
}

TEST_CASE("llama-bpe vocab (Llama 3): all of llama.cpp's test vectors", "[tokenizer][bpe]") {
  check_vocab_vectors(kModels, "ggml-vocab-llama-bpe.gguf", 46, /*decode_exact=*/false);
  check_vocab_vectors(kOracleModels, "ggml-vocab-llama-bpe.gguf", 46, /*decode_exact=*/false);
}

TEST_CASE("llama-bpe vocab: special tokens, decode, clean-up of spaces", "[tokenizer][bpe]") {
  const Tokenizer& tok = load(kModels + "/ggml-vocab-llama-bpe.gguf");
  CHECK(tok.n_vocab() == 128256);
  CHECK(tok.model() == "gpt2");
  CHECK(tok.bos_id() == 128000);
  CHECK(tok.eos_id() == 128001);
  CHECK(tok.add_bos());
  CHECK_FALSE(tok.add_space_prefix());
  const int32_t eot = *tok.find_token("<|eot_id|>");
  CHECK(tok.is_eog(eot));
  CHECK(tok.is_eog(128001));
  CHECK_FALSE(tok.is_eog(128000));

  const auto ids = tok.encode("Hello world", true, false);
  REQUIRE(ids.size() == 3);
  CHECK(ids[0] == 128000);
  CHECK(tok.token_to_piece(ids[2]) == " world");  // Ġworld: GPT-2's stand-in for the space
  CHECK(tok.decode(ids) == "Hello world");        // no space prefix to remove
  CHECK(tok.decode(ids, true) == "<|begin_of_text|>Hello world");
  CHECK(tok.encode("<|eot_id|>", false, true) == std::vector<int32_t>{eot});
  CHECK(tok.encode("<|eot_id|>", false, false).size() > 1);

  // Round trips where clean-up has nothing to do, including invalid UTF-8 (which becomes U+FFFD,
  // as in llama.cpp).
  for (const std::string s : {"Hello, world", "  multiple   spaces\n\n\tand tabs", "日本語 🦙",
                              "x = a[i] + 3333;"}) {
    CHECK(tok.decode(tok.encode(s, false, false)) == s);
  }
  CHECK(tok.decode(tok.encode("a\xFF" "b", false, false)) == "a\xEF\xBF\xBD" "b");
  // The clean-up rules (HF's clean_up_tokenization_spaces), as llama.cpp applies them.
  CHECK(tok.decode(tok.encode("Hi , there . Yes ! No ? I 'm sure it 's ok", false, false)) ==
        "Hi, there. Yes! No? I'm sure it's ok");
  CHECK(tok.decode(tok.encode("a ' b", false, false)) == "a'b");
  CHECK(tok.decode(tok.encode("we 're they 've I 'll he 'd", false, false)) ==
        "we're they've I 'll he 'd");

  // Streaming gives the pieces as they are (no clean-up), never a split character.
  std::mt19937 rng(99);
  for (int iter = 0; iter < 300; ++iter) {
    const std::string text = random_text(rng, true);
    const auto t = tok.encode(text, false, false);
    StreamDecoder stream(tok);
    std::string joined, pieces;
    for (int32_t id : t) {
      const std::string chunk = stream.push(id);
      REQUIRE_FALSE(ends_inside_utf8_char(chunk));
      joined += chunk;
      pieces += tok.token_to_piece(id);
    }
    joined += stream.flush();
    REQUIRE(joined == pieces);
  }
}

// The BPE vocabularies of llama.cpp's test set whose pre-tokenizer we run: every vector. Decoding
// is checked exactly where the vocabulary does not clean up spaces before punctuation.
TEST_CASE("qwen2 vocab: all of llama.cpp's test vectors", "[tokenizer][bpe]") {
  check_vocab_vectors(kOracleModels, "ggml-vocab-qwen2.gguf", 46, /*decode_exact=*/true);
  const Tokenizer& tok = load(kOracleModels + "/ggml-vocab-qwen2.gguf");
  CHECK_FALSE(tok.add_bos());  // llama.cpp's default for qwen2 (the file has no add_bos_token)
  CHECK(tok.encode("12345", true, false).size() == 5);  // one word per digit
}

TEST_CASE("gpt-2 vocab: all of llama.cpp's test vectors", "[tokenizer][bpe]") {
  check_vocab_vectors(kOracleModels, "ggml-vocab-gpt-2.gguf", 46, /*decode_exact=*/false);
}

TEST_CASE("mpt vocab (GPT-2 regex): all of llama.cpp's test vectors", "[tokenizer][bpe]") {
  check_vocab_vectors(kOracleModels, "ggml-vocab-mpt.gguf", 46, /*decode_exact=*/false);
}

TEST_CASE("starcoder, refact, command-r vocabs (digits apart, then GPT-2): all test vectors",
          "[tokenizer][bpe]") {
  check_vocab_vectors(kOracleModels, "ggml-vocab-starcoder.gguf", 46, /*decode_exact=*/false);
  check_vocab_vectors(kOracleModels, "ggml-vocab-refact.gguf", 46, /*decode_exact=*/false);
  check_vocab_vectors(kOracleModels, "ggml-vocab-command-r.gguf", 46, /*decode_exact=*/false);
}

TEST_CASE("vocabularies we do not support are clear errors", "[tokenizer]") {
  struct Case {
    const char* file;
    const char* says;
  };
  for (const Case c : {Case{"ggml-vocab-deepseek-llm.gguf", "pre-tokenizer 'deepseek-llm'"},
                       Case{"ggml-vocab-falcon.gguf", "pre-tokenizer 'falcon'"},
                       Case{"ggml-vocab-gpt-neox.gguf", "pre-tokenizer ''"},
                       Case{"ggml-vocab-bert-bge.gguf", "tokenizer model 'bert'"},
                       Case{"ggml-vocab-nomic-bert-moe.gguf", "tokenizer model 't5'"}}) {
    INFO(c.file);
    auto file = edgellm::gguf::File::open(kOracleModels + "/" + c.file);
    try {
      Tokenizer::from_gguf(file);
      FAIL("accepted " << c.file);
    } catch (const TokenizerError& e) {
      CHECK(std::string(e.what()).find(c.says) != std::string::npos);
    }
  }
}

TEST_CASE("llama-spm vocab: metadata and special tokens", "[tokenizer][spm]") {
  const Tokenizer& tok = load(kModels + "/ggml-vocab-llama-spm.gguf");
  CHECK(tok.n_vocab() == 32000);
  CHECK(tok.model() == "llama");
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.unk_id() == 0);
  CHECK(tok.add_bos());
  CHECK_FALSE(tok.add_eos());
  CHECK(tok.is_eog(2));
  CHECK_FALSE(tok.is_eog(1));
  CHECK_FALSE(tok.is_eog(29871));
  CHECK(tok.token_type(1) == TokenType::Control);
  CHECK(tok.token_type(3) == TokenType::Byte);
  CHECK(tok.token_text(13) == "<0x0A>");
  CHECK(tok.token_to_piece(13) == "\n");
  CHECK(tok.token_to_piece(1).empty());        // control tokens render only when asked
  CHECK(tok.token_to_piece(1, true) == "<s>");
  CHECK(tok.find_token("▁the").has_value());
  CHECK_THROWS_AS(tok.token_to_piece(32000), TokenizerError);
  CHECK_THROWS_AS(tok.token_to_piece(-1), TokenizerError);
  CHECK_THROWS_AS(tok.decode(std::vector<int32_t>{5, 40000}), TokenizerError);
  // One exception family: a bad id is the caller's mistake (the C API's INVALID_ARGUMENT).
  try {
    tok.token_to_piece(32000);
    FAIL("no exception");
  } catch (const edgellm::Error& e) {
    CHECK(e.kind() == edgellm::Error::Kind::InvalidArgument);
    CHECK(std::string(e.what()).find("32000") != std::string::npos);
  }
}

TEST_CASE("special tokens: BOS/EOS flags and parse_special", "[tokenizer][spm]") {
  const Tokenizer& tok = load(kModels + "/ggml-vocab-llama-spm.gguf");
  const auto plain = tok.encode("Hello", false, false);
  auto with_bos = plain;
  with_bos.insert(with_bos.begin(), 1);
  CHECK(tok.encode("Hello", true, false) == with_bos);
  CHECK(tok.encode("", true, false) == std::vector<int32_t>{1});
  CHECK(tok.encode("", false, false).empty());

  // parse_special: "<s>" and "</s>" become the control tokens; a text fragment after a special
  // token gets the space prefix again, as at the start of the text.
  const auto parsed = tok.encode("<s>Hello</s>", false, true);
  std::vector<int32_t> expect{1};
  expect.insert(expect.end(), plain.begin(), plain.end());
  expect.push_back(2);
  CHECK(parsed == expect);
  // Without parse_special they are spelled out as text.
  const auto spelled = tok.encode("<s>Hello</s>", false, false);
  CHECK(std::find(spelled.begin(), spelled.end(), 1) == spelled.end());
  CHECK(std::find(spelled.begin(), spelled.end(), 2) == spelled.end());
  CHECK(tok.decode(spelled) == "<s>Hello</s>");
  CHECK(tok.decode(parsed) == " Hello");  // the rule strips only the first token (here <s>)
  CHECK(tok.decode(parsed, /*special=*/true) == "<s> Hello</s>");
}

TEST_CASE("round trip and streaming on random text", "[tokenizer][spm]") {
  const Tokenizer& tok = load(kModels + "/ggml-vocab-llama-spm.gguf");
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 2000; ++iter) {
    const bool valid = iter % 2 == 0;
    const std::string text = random_text(rng, valid);
    INFO("iteration " << iter << " text: '" << text << "'");
    const auto ids = tok.encode(text, false, false);
    for (int32_t id : ids) REQUIRE((id >= 0 && id < tok.n_vocab()));
    // Valid UTF-8 comes back exactly. Invalid UTF-8 need not (in llama.cpp neither): a broken
    // lead byte claims the bytes after it, which may split the "▁" a space became.
    const std::string decoded = tok.decode(ids);
    if (valid) REQUIRE(decoded == text);

    // Streaming: no chunk ends inside a character, and the chunks add up to decode().
    StreamDecoder stream(tok);
    std::string joined;
    for (int32_t id : ids) {
      const std::string chunk = stream.push(id);
      if (valid) REQUIRE_FALSE(ends_inside_utf8_char(chunk));
      joined += chunk;
    }
    joined += stream.flush();
    REQUIRE(joined == decoded);
  }
}

TEST_CASE("streaming holds back a split character until it is complete", "[tokenizer][spm]") {
  const Tokenizer& tok = load(kModels + "/ggml-vocab-llama-spm.gguf");
  // "🦙" is not a piece of this vocabulary: it is 4 byte tokens.
  const auto ids = tok.encode("a🦙", false, false);
  REQUIRE(ids.size() >= 5);
  StreamDecoder stream(tok);
  std::vector<std::string> chunks;
  for (int32_t id : ids) chunks.push_back(stream.push(id));
  CHECK(chunks[0] == "a");
  for (size_t i = 1; i + 1 < chunks.size(); ++i) CHECK(chunks[i].empty());
  CHECK(chunks.back() == "🦙");
  CHECK(stream.flush().empty());

  // A truncated character is handed out by flush(), not lost.
  StreamDecoder cut(tok);
  CHECK(cut.push(ids[0]) == "a");
  CHECK(cut.push(ids[1]).empty());
  CHECK(cut.flush() == "\xF0");

  // Text that starts here drops the first piece's leading space (as decode() does); text that
  // continues earlier text (generation after a prompt) keeps it.
  const auto words = tok.encode("Hello world", false, false);
  REQUIRE(tok.token_to_piece(words[0]).front() == ' ');
  StreamDecoder starts(tok), continues(tok, /*special=*/false, /*starts_text=*/false);
  std::string started, continued;
  for (int32_t id : words) {
    started += starts.push(id);
    continued += continues.push(id);
  }
  CHECK(started == "Hello world");
  CHECK(continued == " Hello world");

  // SPM cannot tell a "▁" in the text from a space (llama.cpp neither): it decodes as a space.
  CHECK(tok.decode(tok.encode("a▁b", false, false)) == "a b");

  CHECK(edgellm::utf8_complete_prefix("ab\xE2\x82") == 2);
  CHECK(edgellm::utf8_complete_prefix("ab\xE2\x82\xAC") == 5);
  CHECK(edgellm::utf8_complete_prefix("\x80\x80") == 2);  // stray continuation bytes pass
  CHECK(edgellm::utf8_complete_prefix("\xFF") == 1);
  CHECK(edgellm::utf8_complete_prefix("") == 0);
}

TEST_CASE("stories260K vocab: encodes sensibly, reproduces llama2.c's text", "[tokenizer][spm]") {
  const Tokenizer& tok = load(kModels + "/stories260K.gguf");
  REQUIRE(tok.n_vocab() == 512);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.add_bos());  // no add_bos key in the file: the SPM default

  const auto ids = tok.encode("Once upon a time", true, false);
  REQUIRE(ids.size() >= 2);
  CHECK(ids[0] == 1);
  CHECK(ids.size() < 10);  // merged pieces, not one token per character
  for (size_t i = 1; i < ids.size(); ++i) CHECK(tok.token_type(ids[i]) == TokenType::Normal);
  CHECK(tok.token_text(ids[1]).rfind("▁", 0) == 0);  // the space prefix starts the first piece
  CHECK(tok.decode(ids) == " Once upon a time");      // BOS uses up the leading-space rule
  CHECK(tok.decode(std::span(ids).subspan(1)) == "Once upon a time");

  // The greedy continuation of BOS, decoded, is llama2.c's expected output. llama2.c strips the
  // space of the first piece after BOS; llama.cpp's rule (which we follow) strips it only for the
  // first token, so with BOS in front the text starts with that space.
  std::vector<int32_t> greedy;
  {
    std::istringstream in(read_file(kModels + "/stories260K.greedy-t0-200.ids"));
    for (int32_t id; in >> id;) greedy.push_back(id);
  }
  REQUIRE(greedy.size() == 200);
  const std::string expected = read_file(kModels + "/stories260K.greedy-t0-200.txt");
  std::vector<int32_t> with_bos{1};
  with_bos.insert(with_bos.end(), greedy.begin(), greedy.end());
  CHECK(tok.decode(with_bos) == " " + expected);
  CHECK(tok.decode(greedy) == expected);

  StreamDecoder stream(tok);
  std::string streamed;
  for (int32_t id : greedy) streamed += stream.push(id);
  streamed += stream.flush();
  CHECK(streamed == expected);
}

TEST_CASE("hand-built vocab: merge order, byte fallback, errors", "[tokenizer][spm]") {
  Vocab v;
  v.tokens = {"<unk>", "<s>", "</s>", "▁", "a", "b", "c", "ab", "bc", "▁a", "<0x63>", "<0x7A>"};
  v.scores = {0, 0, 0, -1, -1, -1, -1, -2, -3, -4, 0, 0};
  v.types.assign(v.tokens.size(), TokenType::Normal);
  v.types[0] = TokenType::Unknown;
  v.types[1] = v.types[2] = TokenType::Control;
  v.types[10] = v.types[11] = TokenType::Byte;
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  Tokenizer tok(v);
  // "▁abc": pairs "▁a" (-4), "ab" (-2), "bc" (-3): "ab" wins, then nothing merges with "▁"/"c".
  CHECK(tok.encode("abc", false, false) == std::vector<int32_t>{3, 7, 6});
  // Equal scores: the leftmost pair merges first ("ab" twice in "abab": both merge).
  CHECK(tok.encode("abab", false, false) == std::vector<int32_t>{3, 7, 7});
  // "z" is no piece: byte fallback; "y" has no byte token either: the unknown token.
  CHECK(tok.encode("z", false, false) == std::vector<int32_t>{3, 11});
  CHECK(tok.encode("y", false, false) == std::vector<int32_t>{3, 0});
  CHECK(tok.decode(std::vector<int32_t>{3, 11}) == "z");
  CHECK(tok.decode(std::vector<int32_t>{3, 0}, true) == "<unk>");

  Vocab no_unk = v;
  no_unk.unk_id = -1;
  CHECK_THROWS_AS(Tokenizer(no_unk).encode("y", false, false), TokenizerError);

  Vocab bad = v;
  bad.scores.pop_back();
  CHECK_THROWS_AS(Tokenizer(bad), TokenizerError);
  bad = v;
  bad.tokens[10] = "<0xZZ>";
  CHECK_THROWS_AS(Tokenizer(bad), TokenizerError);
  bad = v;
  bad.model = "gpt3";
  CHECK_THROWS_AS(Tokenizer(bad), TokenizerError);
  bad = v;
  bad.tokens.clear();
  bad.scores.clear();
  bad.types.clear();
  CHECK_THROWS_AS(Tokenizer(bad), TokenizerError);
}

TEST_CASE("malformed tokenizer metadata is a clear error, never a crash", "[tokenizer]") {
  using edgellm::gguf::Array;
  using edgellm::gguf::Value;
  using edgellm::gguf::ValueType;
  auto make = [](auto&& defect) { return vocab_with_defect(defect); };
  auto load_bytes = [](const std::vector<uint8_t>& bytes) {
    auto file = edgellm::gguf::File::parse(bytes);
    return Tokenizer::from_gguf(file);
  };
  auto error_of = [&](auto&& defect) -> std::string {
    const auto bytes = make(defect);
    try {
      load_bytes(bytes);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "(no error)";
  };

  // The valid one works: "ab" -> ▁ a <0x62>.
  CHECK(error_of([](auto&) {}) == "(no error)");
  const auto good = make([](auto&) {});
  CHECK(load_bytes(good).encode("ab", false, false) == std::vector<int32_t>{3, 4, 5});

  CHECK_THAT(error_of([](auto& w) { w.set("tokenizer.ggml.model", std::string("rwkv")); }),
             Catch::Contains("unsupported tokenizer model 'rwkv'"));
  CHECK_THAT(error_of([](auto& w) { w.set("tokenizer.ggml.model", uint32_t(1)); }),
             Catch::Contains("tokenizer.ggml.model"));
  CHECK_THAT(error_of([&](auto& w) { w.set("tokenizer.ggml.tokens", strings({})); }),
             Catch::Contains("tokenizer.ggml.tokens is empty"));
  CHECK_THAT(error_of([&](auto& w) { w.set("tokenizer.ggml.tokens", ints({1, 2})); }),
             Catch::Contains("tokenizer.ggml.tokens"));
  CHECK_THAT(error_of([&](auto& w) { w.set("tokenizer.ggml.scores", floats(3)); }),
             Catch::Contains("tokenizer.ggml.scores has 3 entries for 6 tokens"));
  CHECK_THAT(error_of([&](auto& w) { w.set("tokenizer.ggml.scores", strings({"x"})); }),
             Catch::Contains("tokenizer.ggml.scores"));
  CHECK_THAT(error_of([&](auto& w) { w.set("tokenizer.ggml.token_type", ints({1})); }),
             Catch::Contains("tokenizer.ggml.token_type has 1 entries for 6 tokens"));
  CHECK_THAT(error_of([&](auto& w) { w.set("tokenizer.ggml.token_type", floats(6)); }),
             Catch::Contains("tokenizer.ggml.token_type"));
  CHECK_THAT(error_of([&](auto& w) { w.set("tokenizer.ggml.bos_token_id", std::string("1")); }),
             Catch::Contains("tokenizer.ggml.bos_token_id"));
  CHECK_THAT(error_of([&](auto& w) {
               w.set("tokenizer.ggml.token_type", ints({2, 3, 3, 1, 1, 6}));
               w.set("tokenizer.ggml.tokens", strings({"<unk>", "<s>", "</s>", "▁", "a", "b"}));
             }),
             Catch::Contains("has type BYTE but its text 'b'"));
  CHECK_THAT(error_of([&](auto& w) { w.set("tokenizer.ggml.model", std::string("gpt2")); }),
             Catch::Contains("unsupported BPE pre-tokenizer ''"));
  CHECK_THAT(error_of([&](auto& w) {
               w.set("tokenizer.ggml.model", std::string("gpt2"));
               w.set("tokenizer.ggml.pre", std::string("llama-bpe"));
             }),
             Catch::Contains("tokenizer.ggml.merges missing"));
  // An out-of-range optional special id (padding, ...) keeps the default, as in llama.cpp; an
  // out-of-range BOS/EOS/UNK is a bad file (see "malformed tokenizer metadata is Format");
  // an absent BOS with add_bos is an error.
  {
    const auto bytes = make([](auto& w) { w.set("tokenizer.ggml.padding_token_id", uint32_t(99)); });
    CHECK(load_bytes(bytes).pad_id() == -1);
  }
  {
    Vocab v;
    v.tokens = {"a"};
    v.bos_id = -1;
    CHECK_THROWS_WITH(Tokenizer(v), Catch::Contains("asks for BOS but has none"));
  }
  // No tokenizer at all.
  {
    edgellm::gguf::Writer w;
    w.set("general.architecture", std::string("llama"));
    auto file = edgellm::gguf::File::parse(w.to_bytes({}));
    CHECK_THROWS_WITH(Tokenizer::from_gguf(file), Catch::Contains("tokenizer.ggml.model missing"));
  }
}

TEST_CASE("malformed tokenizer metadata is Format, an unknown but well-formed one Unsupported", "[tokenizer]") {
  using edgellm::Error;
  using edgellm::gguf::Array;
  using edgellm::gguf::ValueType;
  auto make = [](auto&& defect) { return vocab_with_defect(defect); };
  struct Outcome {
    bool thrown = false;
    Error::Kind kind = Error::Kind::InvalidArgument;
    std::string what;
  };
  auto outcome = [&](auto&& defect) {
    const auto bytes = make(defect);
    Outcome o;
    try {
      auto file = edgellm::gguf::File::parse(bytes);
      Tokenizer t = Tokenizer::from_gguf(file);
    } catch (const Error& e) {
      o.thrown = true;
      o.kind = e.kind();
      o.what = e.what();
    } catch (const std::exception& e) {
      o.thrown = true;
      o.what = std::string("not an edgellm::Error: ") + e.what();
    }
    return o;
  };
  auto check_format = [&](const char* label, auto&& defect, const std::string& needle) {
    const Outcome o = outcome(defect);
    INFO(label << ": " << o.what);
    CHECK(o.thrown);
    CHECK(o.kind == Error::Kind::Format);
    CHECK_THAT(o.what, Catch::Contains(needle));
  };
  auto gpt2 = [&](edgellm::gguf::Writer& w) {
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.pre", std::string("llama-bpe"));
    w.set("tokenizer.ggml.tokens", strings({"a", "b", "ab"}));
    w.set("tokenizer.ggml.scores", floats(3));
    w.set("tokenizer.ggml.token_type", ints({1, 1, 1}));
    w.set("tokenizer.ggml.bos_token_id", uint32_t(0));
    w.set("tokenizer.ggml.eos_token_id", uint32_t(0));
  };
  CHECK_FALSE(outcome([](auto&) {}).thrown);
  check_format("model mistyped", [](auto& w) { w.set("tokenizer.ggml.model", uint32_t(1)); }, "tokenizer.ggml.model");
  check_format("pre mistyped", [](auto& w) { w.set("tokenizer.ggml.pre", uint32_t(1)); }, "tokenizer.ggml.pre");
  check_format("tokens missing", [](auto& w) { w.set("tokenizer.ggml.tokens", uint8_t(0)); }, "tokenizer.ggml.tokens");
  check_format("tokens of ints", [&](auto& w) { w.set("tokenizer.ggml.tokens", ints({1, 2})); }, "tokenizer.ggml.tokens");
  check_format("tokens empty", [&](auto& w) { w.set("tokenizer.ggml.tokens", strings({})); }, "tokenizer.ggml.tokens is empty");
  check_format("scores short", [&](auto& w) { w.set("tokenizer.ggml.scores", floats(3)); }, "tokenizer.ggml.scores has 3 entries for 6 tokens");
  check_format("scores long", [&](auto& w) { w.set("tokenizer.ggml.scores", floats(7)); }, "tokenizer.ggml.scores has 7 entries for 6 tokens");
  check_format("scores of strings", [&](auto& w) { w.set("tokenizer.ggml.scores", strings({"1", "2", "3", "4", "5", "6"})); }, "tokenizer.ggml.scores");
  check_format("scores not an array", [&](auto& w) { w.set("tokenizer.ggml.scores", 1.0f); }, "tokenizer.ggml.scores");
  check_format("types short", [&](auto& w) { w.set("tokenizer.ggml.token_type", ints({1})); }, "tokenizer.ggml.token_type has 1 entries for 6 tokens");
  check_format("types of floats", [&](auto& w) { w.set("tokenizer.ggml.token_type", floats(6)); }, "tokenizer.ggml.token_type");
  check_format("bos out of range", [](auto& w) { w.set("tokenizer.ggml.bos_token_id", uint32_t(6)); }, "tokenizer.ggml.bos_token_id");
  check_format("eos out of range", [](auto& w) { w.set("tokenizer.ggml.eos_token_id", uint32_t(99)); }, "tokenizer.ggml.eos_token_id");
  check_format("unk negative", [](auto& w) { w.set("tokenizer.ggml.unknown_token_id", int32_t(-5)); }, "tokenizer.ggml.unknown_token_id");
  check_format("eos huge", [](auto& w) { w.set("tokenizer.ggml.eos_token_id", uint64_t(1) << 63); }, "tokenizer.ggml.eos_token_id");
  check_format("bos mistyped", [](auto& w) { w.set("tokenizer.ggml.bos_token_id", std::string("1")); }, "tokenizer.ggml.bos_token_id");
  check_format("add_bos mistyped", [](auto& w) { w.set("tokenizer.ggml.add_bos_token", uint32_t(1)); }, "tokenizer.ggml.add_bos_token");
  check_format("byte token text", [&](auto& w) { w.set("tokenizer.ggml.tokens", strings({"<unk>", "<s>", "</s>", "▁", "a", "b"})); }, "has type BYTE");
  check_format("merges missing", [&](auto& w) { gpt2(w); }, "tokenizer.ggml.merges");
  check_format("merges of ints", [&](auto& w) { gpt2(w); w.set("tokenizer.ggml.merges", ints({1})); }, "tokenizer.ggml.merges");
  check_format("merge without a space", [&](auto& w) { gpt2(w); w.set("tokenizer.ggml.merges", strings({"ab"})); }, "tokenizer.ggml.merges[0]");
  check_format("merge with an empty right side", [&](auto& w) { gpt2(w); w.set("tokenizer.ggml.merges", strings({"a "})); }, "tokenizer.ggml.merges[0]");
  {
    const Outcome ok = outcome([&](auto& w) { gpt2(w); w.set("tokenizer.ggml.merges", strings({"a b"})); });
    INFO(ok.what);
    CHECK_FALSE(ok.thrown);
  }
  // Well-formed but not run here: Unsupported.
  for (auto defect : std::vector<std::function<void(edgellm::gguf::Writer&)>>{
           [](auto& w) { w.set("tokenizer.ggml.model", std::string("rwkv")); },
           [](auto& w) {
             w.set("tokenizer.ggml.model", std::string("gpt2"));
             w.set("tokenizer.ggml.pre", std::string("deepseek-llm"));
           }}) {
    const Outcome o = outcome(defect);
    INFO(o.what);
    CHECK(o.thrown);
    CHECK(o.kind == Error::Kind::Unsupported);
  }
  // By hand: the Vocab's own consistency checks are Format too.
  Vocab v;
  v.tokens = {"a", "b"};
  v.scores = {0};
  try {
    Tokenizer t(v);
    FAIL("accepted scores of the wrong length");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Format);
  }
}
