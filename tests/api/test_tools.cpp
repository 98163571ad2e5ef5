// The command-line tools as a user runs them: exit codes, ONE clear error line on stderr for each
// kind of bad input, the stage table, tokenizer ids, bench JSON. Expected values are computed at run
// time through the library (or come from ../shared/models).
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "edgellm/edgellm.hpp"
#include "edgellm/gguf.hpp"

namespace {

const std::string kBin = EDGELLM_BIN_DIR;
const std::string kTmp = EDGELLM_TEST_TMP;
const std::string kStories = std::string(EDGELLM_SHARED_MODELS) + "/stories260K.gguf";

struct Run {
  int rc = -1;
  std::string out, err;
  std::vector<std::string> err_lines() const {
    std::vector<std::string> lines;
    std::istringstream in(err);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// s in single quotes for the shell (appends only: GCC 12 warns falsely on prepending to a string).
void append_quoted(std::string& cmd, const std::string& s) {
  cmd += " '";
  for (char c : s) {
    if (c == '\'') cmd += "'\\''";
    else cmd += c;
  }
  cmd += "'";
}

// Runs bin/<tool> with the arguments; stdin from /dev/null unless `input` is given; stdout to a
// file read back into Run::out, or to `stdout_to` (e.g. /dev/full) when given.
Run run(const std::string& tool, const std::vector<std::string>& args, const std::string* input = nullptr,
        const std::string& stdout_to = "") {
  static int n = 0;
  const std::string base = kTmp + "/tools-" + std::to_string(getpid()) + "-" + std::to_string(++n);
  std::string cmd;
  append_quoted(cmd, kBin + "/" + tool);
  for (const auto& a : args) append_quoted(cmd, a);
  if (input) {
    std::ofstream(base + ".in") << *input;
    cmd += " <";
    append_quoted(cmd, base + ".in");
  } else {
    cmd += " </dev/null";
  }
  cmd += " >";
  append_quoted(cmd, stdout_to.empty() ? base + ".out" : stdout_to);
  cmd += " 2>";
  append_quoted(cmd, base + ".err");
  Run r;
  const int status = std::system(cmd.c_str());
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (stdout_to.empty()) r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  return r;
}

// One line on stderr, naming the tool, saying "error", containing `what`; nothing on stdout.
void check_one_line_error(const Run& r, const std::string& what) {
  INFO("stderr: " << r.err);
  CHECK(r.rc != 0);
  CHECK(r.rc < 128);  // an exit, not a signal
  const auto lines = r.err_lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("error") != std::string::npos);
  CHECK(lines[0].find(what) != std::string::npos);
  CHECK(r.out.empty());
}

// stories260K rewritten with one metadata value or tensor type changed.
std::string variant_of_stories(const std::string& name, const std::string& arch, const std::string& retype_tensor) {
  auto file = edgellm::gguf::File::open(kStories);
  edgellm::gguf::Writer w;
  for (const auto& kv : file.metadata()) {
    std::string key = kv.key;
    if (!arch.empty() && key.rfind("llama.", 0) == 0) key = arch + key.substr(5);
    if (key == "general.architecture" && !arch.empty())
      w.set(key, std::string(arch));
    else
      w.set(key, kv.value);
  }
  for (const auto& t : file.tensors()) {
    // I32 has F32's size, so the file stays well formed; only the type is one no model uses.
    const auto type = t.name == retype_tensor ? edgellm::DType::I32 : t.type;
    w.add_tensor(t.name, type, std::span<const uint64_t>(t.ne, t.n_dims));
  }
  const std::string path = kTmp + "/" + name;
  w.begin(path);
  for (const auto& t : file.tensors()) w.write_tensor_data(t.data, t.n_bytes);
  w.finish();
  return path;
}

}  // namespace

TEST_CASE("edgellm-cli streams the text to stdout and the stage table to stderr", "[tools]") {
  Run r = run("edgellm-cli", {"-m", kStories, "-p", "Once upon a time", "-n", "16", "--temp", "0", "-t", "1"});
  INFO("stderr: " << r.err);
  REQUIRE(r.rc == 0);
  // stdout: the prompt, then the greedy continuation computed here through the library.
  edgellm::Model model(kStories);
  edgellm_context_params cp = edgellm_context_default_params();
  cp.n_ctx = 64;
  cp.n_threads = 1;
  edgellm::Context ctx(model, cp);
  edgellm::Sampler greedy(model, edgellm::Sampler::greedy());
  std::string text;
  ctx.generate(greedy, model.tokenize("Once upon a time", true, true), 16, [&](std::string_view t) {
    text += t;
    return true;
  });
  CHECK(r.out == "Once upon a time" + text + "\n");
  for (const char* word : {"load", "sampling", "prefill", "decode", "tokens/s", "ms/token", "peak memory"})
    CHECK(r.err.find(word) != std::string::npos);
  // prefill of the 5 prompt tokens (BOS + 4), 15 decoded, 16 sampled
  CHECK(r.err.find("prefill           5") != std::string::npos);
  CHECK(r.err.find("decode           15") != std::string::npos);
  CHECK(r.err.find("sampling         16") != std::string::npos);
}

TEST_CASE("edgellm-cli --json prints the stages as JSON", "[tools]") {
  Run r = run("edgellm-cli", {"-m", kStories, "-p", "Once", "-n", "4", "--temp", "0", "--json"});
  INFO("stderr: " << r.err);
  REQUIRE(r.rc == 0);
  const auto lines = r.err_lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].front() == '{');
  CHECK(lines[0].back() == '}');
  for (const char* key : {"\"load_ms\"", "\"sampling\"", "\"prefill\"", "\"decode\"", "\"tokens_per_s\"",
                          "\"peak_memory_bytes\""})
    CHECK(lines[0].find(key) != std::string::npos);
  CHECK(lines[0].find("\"decode\": {\"tokens\": 3,") != std::string::npos);
}

TEST_CASE("edgellm-cli --chat answers each stdin line", "[tools]") {
  const std::string input = "Hello\nTell me a story\n";
  Run r = run("edgellm-cli", {"-m", kStories, "--chat", "-n", "8", "--temp", "0", "-c", "256"}, &input);
  INFO("stderr: " << r.err);
  REQUIRE(r.rc == 0);
  std::istringstream out(r.out);
  int replies = 0;
  for (std::string l; std::getline(out, l);) ++replies;
  CHECK(replies >= 2);
  CHECK(r.err.find("decode") != std::string::npos);
}

TEST_CASE("edgellm-cli: a failed write to stdout is one error line and a non-zero exit", "[tools]") {
  // /dev/full: every write fails with ENOSPC. Short outputs sit in stdio's buffer until a flush,
  // so the tool must check its flushes too, not only fwrite's count.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-m", kStories, "-p", "Once upon a time", "-n", "16", "--temp", "0"},
        std::vector<std::string>{"-m", kStories, "-p", "x", "-n", "0", "--temp", "0"}}) {
    Run r = run("edgellm-cli", args, nullptr, "/dev/full");
    INFO("stderr: " << r.err);
    check_one_line_error(r, "stdout");
    CHECK(r.err.find("No space left on device") != std::string::npos);  // the reason, from errno
  }
  const std::string input = "Hello\n";
  Run chat = run("edgellm-cli", {"-m", kStories, "--chat", "-n", "8", "--temp", "0", "-c", "256"}, &input,
                 "/dev/full");
  INFO("stderr: " << chat.err);
  CHECK(chat.rc == 1);
  const auto lines = chat.err_lines();
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back().find("error: cannot write to stdout") != std::string::npos);
  CHECK(chat.err.find("decode") == std::string::npos);  // no stage table after the error
}

TEST_CASE("edgellm-cli --chat: a message that does not fit is refused, and the chat goes on", "[tools]") {
  // -c 96: a ~700-character line is far more than 96 tokens with this 512-token vocabulary; the
  // short line after it fits. The tool says so (not an error), answers the next line, ends with
  // status 0 and the stage table, as its context-full path does.
  std::string long_line;
  for (int i = 0; i < 10; ++i) long_line += "Once upon a time there was a little girl named Lily. ";
  const std::string input = long_line + "\nHi\n";
  Run r = run("edgellm-cli", {"-m", kStories, "--chat", "-n", "4", "--temp", "0", "-c", "96", "-t", "1"}, &input);
  INFO("stderr: " << r.err);
  CHECK(r.rc == 0);
  CHECK(r.err.find("error") == std::string::npos);
  CHECK(r.err.find("does not fit in the context") != std::string::npos);
  CHECK(r.err.find("prefill") != std::string::npos);  // the stage table: the program ended normally
  // The short line was answered: one reply line on stdout (the refused message printed none).
  std::istringstream out(r.out);
  int replies = 0;
  for (std::string l; std::getline(out, l);) ++replies;
  CHECK(replies == 1);
  // Nothing but the refusal when the only line does not fit.
  const std::string only_long = long_line + "\n";
  Run alone = run("edgellm-cli", {"-m", kStories, "--chat", "-n", "4", "--temp", "0", "-c", "96", "-t", "1"},
                  &only_long);
  INFO("stderr: " << alone.err);
  CHECK(alone.rc == 0);
  CHECK(alone.out.empty());
  CHECK(alone.err.find("does not fit in the context") != std::string::npos);
}

TEST_CASE("edgellm-cli: each error is one clear line and a non-zero exit", "[tools]") {
  check_one_line_error(run("edgellm-cli", {"-m", kTmp + "/does-not-exist.gguf", "-p", "x"}), "does-not-exist.gguf");

  const std::string text_file = kTmp + "/plain.txt";
  std::ofstream(text_file) << "hello, this is not a model file at all, it is plain text.\n";
  check_one_line_error(run("edgellm-cli", {"-m", text_file, "-p", "x"}), "GGUF");

  const std::string gpt2 = variant_of_stories("arch-gpt2.gguf", "gpt2", "");
  check_one_line_error(run("edgellm-cli", {"-m", gpt2, "-p", "x"}), "gpt2");

  const std::string i32 = variant_of_stories("type-i32.gguf", "", "blk.0.attn_q.weight");
  check_one_line_error(run("edgellm-cli", {"-m", i32, "-p", "x"}), "i32");

  check_one_line_error(run("edgellm-cli", {"-m", kStories, "-p", std::string(200, 'a') + " b c d e f g", "-c", "8"}),
                       "context");

  check_one_line_error(run("edgellm-cli", {"-m", kStories, "-p", "x", "-t", "-1"}), "-t");
  check_one_line_error(run("edgellm-cli", {"-m", kStories, "-p", "x", "-n", "many"}), "-n");
  check_one_line_error(run("edgellm-cli", {"-m", kStories, "-p", "x", "-c", "0"}), "-c");
  check_one_line_error(run("edgellm-cli", {"-m", kStories, "-p", "x", "--temp", "-1"}), "--temp");
  check_one_line_error(run("edgellm-cli", {"-m", kStories, "-p", "x", "--top-p", "2"}), "--top-p");
  check_one_line_error(run("edgellm-cli", {"-m", kStories, "-p", "x", "--bogus"}), "--bogus");
  check_one_line_error(run("edgellm-cli", {"-m", kStories, "-p"}), "-p");
  check_one_line_error(run("edgellm-cli", {"-p", "x"}), "model");
}

TEST_CASE("edgellm-tokenize prints ids like llama-tokenize --ids, and pieces", "[tools]") {
  edgellm::Model model(kStories);
  const auto ids = model.tokenize("Once upon a time", true);
  std::string want = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) want += ", ";
    want += std::to_string(ids[i]);
  }
  want += "]\n";
  Run r = run("edgellm-tokenize", {"-m", kStories, "-p", "Once upon a time", "--ids"});
  REQUIRE(r.rc == 0);
  CHECK(r.out == want);
  CHECK(r.out.rfind("[1, ", 0) == 0);  // BOS: the file asks for it (llama.cpp's SPM default)

  Run nobos = run("edgellm-tokenize", {"-m", kStories, "-p", "Once upon a time", "--ids", "--no-bos"});
  REQUIRE(nobos.rc == 0);
  std::string want_nobos = "[";
  want_nobos += want.substr(4);
  CHECK(nobos.out == want_nobos);

  Run pieces = run("edgellm-tokenize", {"-m", kStories, "-p", "Once upon a time"});
  REQUIRE(pieces.rc == 0);
  CHECK(pieces.out.find("'<s>'") != std::string::npos);
  CHECK(pieces.out.find("' upon'") != std::string::npos);
  check_one_line_error(run("edgellm-tokenize", {"-m", kTmp + "/nope.gguf", "-p", "x"}), "nope.gguf");

  // A vocabulary without weights (llama.cpp's test vocabularies): only the tokenizer is read.
  Run vocab = run("edgellm-tokenize",
                  {"-m", std::string(EDGELLM_SHARED_MODELS) + "/ggml-vocab-llama-spm.gguf", "-p", "Hello world", "--ids"});
  INFO("stderr: " << vocab.err);
  REQUIRE(vocab.rc == 0);
  CHECK(vocab.out == "[1, 15043, 3186]\n");
}

TEST_CASE("edgellm-bench prints llama-bench's JSON fields and a markdown table", "[tools]") {
  Run r = run("edgellm-bench", {"-m", kStories, "-p", "16", "-n", "8", "-t", "1", "-r", "2", "-d", "8", "-o", "json"});
  INFO("stderr: " << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.front() == '[');
  for (const char* key : {"\"model_type\"", "\"model_size\"", "\"model_n_params\"", "\"n_prompt\": 16",
                          "\"n_gen\": 8", "\"n_depth\": 8", "\"n_threads\": 1", "\"avg_ts\"", "\"stddev_ts\"",
                          "\"samples_ts\"", "\"samples_ns\"", "\"avg_ns\"", "\"stddev_ns\"", "\"bytes_per_token\""})
    CHECK(r.out.find(key) != std::string::npos);
  const auto info = edgellm::Model(kStories).info();
  CHECK(r.out.find("\"model_size\": " + std::to_string(info.size_bytes)) != std::string::npos);

  Run md = run("edgellm-bench", {"-m", kStories, "-p", "16", "-n", "8", "-t", "1", "-r", "2"});
  REQUIRE(md.rc == 0);
  CHECK(md.out.find("| pp16 |") != std::string::npos);
  CHECK(md.out.find("| tg8 |") != std::string::npos);
  CHECK(md.out.find("bytes read per decoded token") != std::string::npos);
  check_one_line_error(run("edgellm-bench", {"-m", kStories, "-r", "0"}), "-r");
}

TEST_CASE("edgellm-quantize writes the file with one progress line per tensor on stderr", "[tools]") {
  const std::string out = kTmp + "/tools-q4_k_m.gguf";
  std::remove(out.c_str());
  Run r = run("edgellm-quantize", {"-t", "2", kStories, out, "Q4_K_M"});
  INFO("stderr: " << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.empty());
  const auto in = edgellm::gguf::File::open(kStories);
  const auto q = edgellm::gguf::File::open(out);
  const auto lines = r.err_lines();
  REQUIRE(lines.size() == in.tensors().size() + 1);  // one per tensor, then the summary
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const auto& t = q.tensors()[i];
    INFO(lines[i]);
    char counter[32];
    std::snprintf(counter, sizeof counter, "[%4zu/%4zu]", i + 1, in.tensors().size());
    CHECK(lines[i].rfind(counter, 0) == 0);
    CHECK(lines[i].find(" " + t.name + " ") != std::string::npos);
    CHECK(lines[i].find("f32 -> " + edgellm::dtype_name(static_cast<uint32_t>(t.type))) != std::string::npos);
  }
  // The Q4_K the 64-wide rows did not fit is named where Q5_0 was written instead.
  CHECK(lines[3].find("q5_0") != std::string::npos);
  CHECK(lines[3].find("do not fit q4_K") != std::string::npos);
  CHECK(lines.back().find("bits per weight") != std::string::npos);
  CHECK(lines.back().find("fallback") != std::string::npos);
  edgellm::Model model(out);
  CHECK(std::string(model.info().description).find("Q4_K - Medium") != std::string::npos);
}

TEST_CASE("edgellm-quantize: each error is one clear line, a non-zero exit and no output file", "[tools]") {
  const std::string out = kTmp + "/tools-quantize-error.gguf";
  std::remove(out.c_str());
  check_one_line_error(run("edgellm-quantize", {kStories, out, "Q9_K"}), "unknown type 'Q9_K'");
  check_one_line_error(run("edgellm-quantize", {kTmp + "/nope.gguf", out, "Q8_0"}), "nope.gguf");
  const std::string text_file = kTmp + "/tools-quantize-not-gguf.txt";
  std::ofstream(text_file) << "not a model";
  check_one_line_error(run("edgellm-quantize", {text_file, out, "Q8_0"}), "GGUF");
  // An input that is already quantized.
  const std::string q8 = kTmp + "/tools-quantize-q8_0.gguf";
  REQUIRE(run("edgellm-quantize", {kStories, q8, "q8_0"}).rc == 0);
  check_one_line_error(run("edgellm-quantize", {q8, out, "Q4_K_M"}), "already quantized");
  check_one_line_error(run("edgellm-quantize", {kStories, out}), "expected IN.gguf OUT.gguf TYPE");
  check_one_line_error(run("edgellm-quantize", {kStories, out, "Q8_0", "extra"}), "expected IN.gguf OUT.gguf TYPE");
  check_one_line_error(run("edgellm-quantize", {"-t", "x", kStories, out, "Q8_0"}), "-t");
  check_one_line_error(run("edgellm-quantize", {"--imatrix", "m.dat", kStories, out, "Q8_0"}), "not supported");
  std::ifstream gone(out);
  CHECK(!gone.good());
  std::ifstream part(out + ".part");
  CHECK(!part.good());
}

TEST_CASE("edgellm-quantize --help lists the types and says there is no importance matrix", "[tools]") {
  Run r = run("edgellm-quantize", {"--help"});
  CHECK(r.rc == 0);
  for (const char* type : {"Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q3_K_M", "Q3_K_S", "Q3_K_L", "Q2_K", "Q6_K",
                           "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "IQ4_XS", "F16"})
    CHECK(r.out.find(type) != std::string::npos);
  CHECK(r.out.find("No importance matrix") != std::string::npos);
}
