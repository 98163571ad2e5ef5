// The llama.cpp oracle itself: does bin/llama-oracle report what llama.cpp computes, checked
// against data in ../shared/models that was produced independently of llama.cpp (a float64 forward
// pass, llama2.c's greedy output, llama.cpp's tokenizer test vectors).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "oracle.hpp"

namespace {

const std::string kModels = EDGELLM_SHARED_MODELS;
const std::string kStories = kModels + "/stories260K.gguf";
const std::string kSpm = kModels + "/ggml-vocab-llama-spm.gguf";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<float> read_floats(const std::string& path) {
  std::istringstream in(slurp(path));
  std::vector<float> v;
  for (float x; in >> x;) v.push_back(x);
  return v;
}

int argmax(const float* x, int n) { return static_cast<int>(std::max_element(x, x + n) - x); }

// llama.cpp's tokenizer vectors: the inputs are joined by "\n__ggml_vocab_test__\n" (which also
// ends the file); the .out file has one line of ids per input.
struct TokenizerCase {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<TokenizerCase> read_tokenizer_cases(const std::string& base) {
  const std::string inp = slurp(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<TokenizerCase> cases;
  for (size_t at = 0, next; (next = inp.find(sep, at)) != std::string::npos; at = next + sep.size())
    cases.push_back({inp.substr(at, next - at), {}});
  std::istringstream out(slurp(base + ".out"));
  std::string line;
  for (TokenizerCase& c : cases) {
    if (!std::getline(out, line)) throw std::runtime_error(base + ".out has too few lines");
    c.ids = edgellm::oracle::parse_ids(line);
  }
  return cases;
}

}  // namespace

TEST_CASE("stories260K after BOS: llama.cpp's logits match the float64 reference") {
  const std::vector<float> ref = read_floats(kModels + "/stories260K.logits-bos-pos0.txt");
  REQUIRE(ref.size() == 512);
  for (const char* variant : {edgellm::oracle::kDefaultVariant, "haswell"}) {
    INFO("cpu variant " << variant);
    const auto l = edgellm::oracle::logits(kStories, {1}, variant);
    REQUIRE(l.n_rows == 1);
    REQUIRE(l.n_vocab == 512);
    CHECK(argmax(l.row(0), 512) == 403);
    CHECK(l.at(0, 403) == Approx(17.0235).margin(1e-3));
    float max_diff = 0;
    for (int v = 0; v < 512; ++v) max_diff = std::max(max_diff, std::fabs(l.at(0, v) - ref[v]));
    CHECK(max_diff < 2e-3f);
  }
}

TEST_CASE("logits --all: one row per position, the last equals the last-position run") {
  const std::vector<int32_t> ids = {1, 403, 407, 261, 378, 425, 265};
  const auto all = edgellm::oracle::logits(kStories, ids, edgellm::oracle::kDefaultVariant, true);
  const auto last = edgellm::oracle::logits(kStories, ids, edgellm::oracle::kDefaultVariant, false);
  REQUIRE(all.n_rows == static_cast<int>(ids.size()));
  REQUIRE(last.n_rows == 1);
  REQUIRE(all.n_vocab == 512);
  // Row 0 (BOS) is the single-token case above.
  CHECK(argmax(all.row(0), 512) == 403);
  for (int v = 0; v < 512; ++v) CHECK(all.at(all.n_rows - 1, v) == Approx(last.at(0, v)).margin(1e-4));
}

TEST_CASE("greedy: 200 tokens from BOS equal llama2.c's stories260K output") {
  const std::vector<int32_t> expected =
      edgellm::oracle::parse_ids(slurp(kModels + "/stories260K.greedy-t0-200.ids"));
  REQUIRE(expected.size() == 200);
  CHECK(edgellm::oracle::greedy(kStories, {1}, 200) == expected);
}

TEST_CASE("tokenize: every llama-spm test vector") {
  const auto cases = read_tokenizer_cases(kSpm);
  REQUIRE(cases.size() == 46);
  for (const TokenizerCase& c : cases) {
    INFO("text '" << c.text << "'");
    CHECK(edgellm::oracle::tokenize(kSpm, c.text, false, false) == c.ids);
  }
}

TEST_CASE("tokenize: BOS with --add-special, control tokens with --parse-special") {
  const auto plain = edgellm::oracle::tokenize(kSpm, "Hello world", false, false);
  const auto with_bos = edgellm::oracle::tokenize(kSpm, "Hello world", true, false);
  REQUIRE(!plain.empty());
  REQUIRE(with_bos.size() == plain.size() + 1);
  CHECK(with_bos[0] == 1);
  CHECK(std::equal(plain.begin(), plain.end(), with_bos.begin() + 1));
  CHECK(edgellm::oracle::tokenize(kSpm, "</s>", false, true) == std::vector<int32_t>{2});
  CHECK(edgellm::oracle::tokenize(kSpm, "</s>", false, false).size() > 1);
}

TEST_CASE("detokenize inverts tokenize") {
  const std::string text = "Hello world, it's a test: 1234!";
  const auto ids = edgellm::oracle::tokenize(kSpm, text, false, false);
  // SentencePiece adds a leading space when tokenizing and removes it again when detokenizing.
  CHECK(edgellm::oracle::detokenize(kSpm, ids) == text);
}

TEST_CASE("oracle errors are reported, not crashes") {
  const auto missing = edgellm::oracle::run_raw({"logits", "-m", kModels + "/no-such.gguf", "--tokens", "1"});
  CHECK(missing.status == 1);
  CHECK(missing.err.find("could not load") != std::string::npos);
  const auto bad_token = edgellm::oracle::run_raw({"logits", "-m", kStories, "--cpu", edgellm::oracle::kDefaultVariant, "--tokens", "1,9999"});
  CHECK(bad_token.status == 1);
  CHECK(bad_token.err.find("outside the vocabulary") != std::string::npos);
  const auto bad_cpu = edgellm::oracle::run_raw({"info", "-m", kStories, "--cpu", "no-such-cpu"});
  CHECK(bad_cpu.status == 1);
  CHECK(bad_cpu.err.find("no library") != std::string::npos);
  CHECK_THROWS_WITH(edgellm::oracle::run({"bogus", "-m", kStories}),
                    Catch::Contains("unknown command"));
}

TEST_CASE("bench: llama-bench style JSON for pp and tg") {
  const std::string json = edgellm::oracle::run(
      {"bench", "-m", kStories, "--cpu", edgellm::oracle::kDefaultVariant, "-t", "1", "-p", "32", "-n", "8", "-r", "2"});
  // Two objects, pp32 then tg8, each with positive speeds and two samples.
  const size_t pp = json.find("\"n_prompt\": 32");
  const size_t tg = json.find("\"n_gen\": 8");
  REQUIRE(pp != std::string::npos);
  REQUIRE(tg != std::string::npos);
  CHECK(pp < tg);
  CHECK(json.find("\"n_threads\": 1") != std::string::npos);
  CHECK(json.find("\"model_type\": \"llama") != std::string::npos);
  size_t at = 0;
  int n_avg = 0;
  while ((at = json.find("\"avg_ts\": ", at)) != std::string::npos) {
    at += 10;
    CHECK(std::strtod(json.c_str() + at, nullptr) > 0);
    ++n_avg;
  }
  CHECK(n_avg == 2);
}
