// bin/edgellm-gguf on the shared models: the listing shows the values ../shared/models/SOURCES.md
// gives, --json is one object, and bad input is one line on stderr with exit code 1.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::string kModels = EDGELLM_SHARED_MODELS;

struct Run {
  int status;
  std::string out;
};

// Runs the tool with `args`; stdout (and stderr when asked) captured.
Run run_tool(const std::string& args, bool with_stderr = false) {
  const std::string cmd = std::string(EDGELLM_GGUF_TOOL) + " " + args + (with_stderr ? " 2>&1" : "");
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

// Whether some line of `out`, its runs of spaces read as one, is `want`: words separated by single
// spaces, where a "*" word stands for any one word, a leading "*" on the first word for any prefix
// of it, and a last word "..." for any rest of the line. A linear scan, no regex (std::regex's
// backtracking over a whole listing overflows the stack under ASan).
bool has_line(const std::string& out, const std::string& want) {
  auto words = [](const std::string& text) {
    std::vector<std::string> w;
    std::istringstream in(text);
    for (std::string x; in >> x;) w.push_back(x);
    return w;
  };
  const std::vector<std::string> pattern = words(want);
  const bool open_end = !pattern.empty() && pattern.back() == "...";
  const size_t n_fixed = pattern.size() - (open_end ? 1 : 0);
  auto word_matches = [](const std::string& p, const std::string& w, bool first) {
    if (p == "*") return true;
    if (first && p.size() > 1 && p[0] == '*')
      return w.size() >= p.size() - 1 && w.compare(w.size() - (p.size() - 1), p.size() - 1, p, 1) == 0;
    return p == w;
  };
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const std::vector<std::string> got = words(line);
    if (got.size() < n_fixed || (!open_end && got.size() != n_fixed)) continue;
    bool ok = true;
    for (size_t i = 0; i < n_fixed && ok; ++i) ok = word_matches(pattern[i], got[i], i == 0);
    if (ok) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("edgellm-gguf lists stories260K", "[gguf][tool]") {
  const Run r = run_tool(kModels + "/stories260K.gguf");
  INFO(r.out);
  REQUIRE(r.status == 0);
  for (const char* line : {
           "version 3",
           "alignment 32",
           "metadata 19 keys",
           "tensors 48",
           "data offset 14176",
           "file size 1185376",
           "llama.embedding_length u32 64",
           "llama.block_count u32 5",
           "llama.attention.head_count u32 8",
           "llama.attention.head_count_kv u32 4",
           "*layer_norm_rms_epsilon f32 1e-05",
           "tokenizer.ggml.model string \"llama\"",
           "tokenizer.ggml.tokens array of string [512 x string] \"<unk>\", \"<s>\", \"</s>\", ...",
           "tokenizer.ggml.bos_token_id u32 1",
           "token_embd.weight f32 [64, 512] 0 131072",
           "blk.4.ffn_down.weight f32 [172, 64] * 44032",
           // 1,171,200 bytes of f32: 292,800 parameters at 32 bits.
           "parameters 292800",
           "tensor bytes 1171200",
           "bits per weight 32.0000",
       }) {
    CHECK(has_line(r.out, line));
  }
}

TEST_CASE("edgellm-gguf lists the spm vocab, --full and --json", "[gguf][tool]") {
  const std::string path = kModels + "/ggml-vocab-llama-spm.gguf";
  const Run r = run_tool(path);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("[32000 x string] \"<unk>\", \"<s>\", \"</s>\", "));
  CHECK(has_line(r.out, "*add_bos_token bool true"));
  CHECK(has_line(r.out, "tensors 0"));
  CHECK(r.out.size() < 20000);  // long arrays shortened

  const Run full = run_tool(path + " --full");
  REQUIRE(full.status == 0);
  CHECK(full.out.size() > 300000);  // every token, score and type

  const Run json = run_tool(path + " --json");
  REQUIRE(json.status == 0);
  CHECK(json.out.front() == '{');
  CHECK(json.out.substr(json.out.size() - 2) == "}\n");
  CHECK_THAT(json.out, Catch::Contains("\"version\":3,\"alignment\":32,\"n_kv\":22,\"n_tensors\":0"));
  CHECK_THAT(json.out, Catch::Contains("\"tokenizer.ggml.add_bos_token\":{\"type\":\"bool\",\"value\":true}"));
  CHECK_THAT(json.out, Catch::Contains("\"tokenizer.ggml.tokens\":{\"type\":\"array\",\"element_type\":\"string\",\"count\":32000,\"truncated\":true,\"value\":[\"<unk>\",\"<s>\",\"</s>\","));
  CHECK(json.out.find('\n') == json.out.size() - 1);  // one line
}

TEST_CASE("edgellm-gguf: errors are one line on stderr and exit code 1", "[gguf][tool]") {
  const Run missing = run_tool(kModels + "/no-such-file.gguf", true);
  CHECK(missing.status == 1);
  CHECK_THAT(missing.out, Catch::Contains("no-such-file.gguf: cannot open"));
  CHECK(missing.out.find('\n') == missing.out.size() - 1);

  const Run not_gguf = run_tool(kModels + "/SOURCES.md", true);
  CHECK(not_gguf.status == 1);
  CHECK_THAT(not_gguf.out, Catch::Contains("bad magic"));

  const Run usage = run_tool("", true);
  CHECK(usage.status == 1);
  CHECK_THAT(usage.out, Catch::Contains("usage: edgellm-gguf FILE"));
}
