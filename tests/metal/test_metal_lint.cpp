// The rules of docs/METAL.md that a text scan can check, over every .metal file of the backend.
// The emulator checks the rest at run time (SIMD-group functions and barriers in uniform control
// flow, threadgroup-memory limits); this catches what it would silently accept or cannot model:
// threadgroup arrays it cannot size-check, address-space overloads that collapse in C++, kernel
// forms its pre-pass does not parse, features no Apple7 GPU model here covers.
//
// Each rule is first shown to fire on a small bad example, so a lint that matches nothing (a
// broken regex) fails instead of passing.
// GCC 12's <regex> trips -Wmaybe-uninitialized (a false positive inside std::function) when built
// with -fsanitize at -O2; the whole file, since the warning is reported where it is instantiated.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Finding {
  std::string rule;
  int line;
  std::string text;
};

// The source with comments and string literals blanked (newlines kept, so lines still count).
std::string strip_comments(const std::string& s) {
  std::string out = s;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out.compare(i, 2, "//") == 0) {
      while (i < out.size() && out[i] != '\n') out[i++] = ' ';
    } else if (out.compare(i, 2, "/*") == 0) {
      while (i < out.size() && out.compare(i, 2, "*/") != 0) {
        if (out[i] != '\n') out[i] = ' ';
        ++i;
      }
      if (i + 1 < out.size()) out[i] = out[i + 1] = ' ', ++i;
    } else if (out[i] == '"') {
      ++i;
      while (i < out.size() && out[i] != '"' && out[i] != '\n') out[i++] = ' ';
    }
  }
  return out;
}

int line_of(const std::string& s, size_t pos) {
  return 1 + static_cast<int>(std::count(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

std::string squash(std::string s) {  // whitespace runs -> one space
  s = std::regex_replace(s, std::regex(R"(\s+)"), " ");
  return s;
}

// The position attributes docs/METAL.md rule 2 allows, and the types they may have.
const std::regex kParamAttr(R"(\[\[\s*(buffer\s*\(\s*\d+\s*\)|threadgroup\s*\(\s*0\s*\)|thread_position_in_grid|)"
                            R"(thread_position_in_threadgroup|threadgroup_position_in_grid|threads_per_threadgroup|)"
                            R"(threadgroups_per_grid|thread_index_in_threadgroup|thread_index_in_simdgroup|)"
                            R"(simdgroup_index_in_threadgroup|threads_per_simdgroup|simdgroups_per_threadgroup)\s*\]\])");

std::vector<Finding> lint(const std::string& source) {
  const std::string s = strip_comments(source);
  std::vector<Finding> out;
  auto each = [&](const char* rule, const std::regex& re) {
    for (auto it = std::sregex_iterator(s.begin(), s.end(), re); it != std::sregex_iterator(); ++it)
      out.push_back({rule, line_of(s, static_cast<size_t>(it->position())), squash(it->str())});
  };
  // Rule 1: kernels are plain `kernel void NAME(`; no templates of kernels, host names, function
  // constants.
  each("kernel-form", std::regex(R"(\bkernel\b(?!\s+void\s+\w+\s*\())"));
  each("kernel-form", std::regex(R"(template\s*<[^>]*>\s*kernel\b)"));
  each("kernel-form", std::regex(R"(\[\[\s*(host_name|function_constant)\b)"));
  // Rule 3: threadgroup memory only through the [[threadgroup(0)]] parameter: no threadgroup
  // variables or arrays (a `threadgroup T name` not followed by a pointer or reference).
  each("threadgroup-variable", std::regex(R"(\bthreadgroup\s+(const\s+)?[A-Za-z_][\w:]*(\s*<[^;>]*>)?\s+[A-Za-z_]\w*\s*[\[;=])"));
  // Rule 6: swizzles are read-only.
  each("swizzle-write", std::regex(R"(\.[xyzw]{2,4}\s*([-+*/|&^]?=)(?!=))"));
  // Rule 7: features the emulator does not model.
  each("unmodelled", std::regex(R"(\b(bfloat\w*|simdgroup_async_copy|imageblock\w*|visible_function_table|)"
                                R"(intersection_function_table|raytracing|indirect_command_buffer)\b)"));
  // Rule 9: a running maximum never starts at -infinity.
  each("neg-infinity", std::regex(R"(-\s*(INFINITY|HUGE_VALF?|numeric_limits<[^>]*>::infinity))"));

  // Rule 2: every kernel parameter has an allowed attribute.
  const std::regex kernel_head(R"(\bkernel\s+void\s+(\w+)\s*\()");
  for (auto it = std::sregex_iterator(s.begin(), s.end(), kernel_head); it != std::sregex_iterator(); ++it) {
    // The parameters: up to the parenthesis that closes the list, split at top-level commas.
    size_t i = static_cast<size_t>(it->position() + it->length());
    int depth = 1;
    std::vector<std::string> params(1);
    for (; i < s.size() && depth > 0; ++i) {
      const char c = s[i];
      if (c == '(') ++depth;
      if (c == ')' && --depth == 0) break;
      if (c == ',' && depth == 1) params.emplace_back();
      else params.back() += c;
    }
    for (const std::string& p : params) {
      if (p.find_first_not_of(" \t\n") == std::string::npos) continue;
      if (!std::regex_search(p, kParamAttr))
        out.push_back({"kernel-parameter", line_of(s, static_cast<size_t>(it->position())),
                       (*it)[1].str() + ": " + squash(p)});
    }
  }

  // Rule 5: no two functions whose parameter lists differ only in address spaces.
  const std::regex fn_sig(R"((?:^|\n)\s*(?:static\s+)?(?:inline\s+)?[A-Za-z_][\w:<>, ]*[\s*&]+(\w+)\s*\(([^)]*)\)\s*\{)");
  const std::regex spaces(R"(\b(device|threadgroup|thread|constant)\b)");
  std::map<std::string, std::vector<std::string>> sigs;  // name -> parameter lists as written
  for (auto it = std::sregex_iterator(s.begin(), s.end(), fn_sig); it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1].str(), params = squash((*it)[2].str());
    if (name == "if" || name == "for" || name == "while" || name == "switch") continue;
    for (const std::string& other : sigs[name]) {
      if (other != params && squash(std::regex_replace(other, spaces, "")) == squash(std::regex_replace(params, spaces, "")))
        out.push_back({"address-space-overload", line_of(s, static_cast<size_t>(it->position())), name});
    }
    sigs[name].push_back(params);
  }
  return out;
}

std::string describe(const std::vector<Finding>& fs) {
  std::string out;
  for (const Finding& f : fs) out += "line " + std::to_string(f.line) + ": " + f.rule + ": " + f.text + "\n";
  return out;
}

bool fires(const std::string& src, const std::string& rule) {
  for (const Finding& f : lint(src))
    if (f.rule == rule) return true;
  return false;
}

}  // namespace

TEST_CASE("the MSL lint fires on each rule it checks", "[metal][lint]") {
  const std::string good_kernel =
      "kernel void kernel_ok(constant ElementwiseArgs & args [[buffer(0)]], device const float * a [[buffer(1)]],\n"
      "                      threadgroup float * shmem [[threadgroup(0)]], uint tid [[thread_index_in_threadgroup]],\n"
      "                      ushort lane [[thread_index_in_simdgroup]]) {\n"
      "  threadgroup float * row = shmem + 32;\n"
      "  float m = -FLT_MAX / 2; float2 v = a2.xy; v.x = 1; if (v.x == v.y) {}\n"
      "}\n";
  CHECK(describe(lint(good_kernel)) == "");
  CHECK(fires("template <typename T> kernel void k(device T * p [[buffer(1)]]) {}", "kernel-form"));
  CHECK(fires("template [[host_name(\"k\")]] kernel k_t k<float>;", "kernel-form"));
  CHECK(fires("constant bool has_bias [[function_constant(0)]];", "kernel-form"));
  CHECK(fires("kernel void k(device float * p [[buffer(1)]]) { threadgroup float tile[64]; }", "threadgroup-variable"));
  CHECK(fires("kernel void k(device float * p [[buffer(1)]]) { threadgroup half4 t; }", "threadgroup-variable"));
  CHECK(fires("kernel void k(device float * p) {}", "kernel-parameter"));
  CHECK(fires("kernel void k(device float * p [[buffer(1)]], uint id [[thread_id_magic]]) {}", "kernel-parameter"));
  CHECK(fires("void f() { v.xy = float2(0); }", "swizzle-write"));
  CHECK(fires("void f() { v.zw += 1; }", "swizzle-write"));
  CHECK_FALSE(fires("void f() { bool b = v.xy == w.xy; }", "swizzle-write"));
  CHECK(fires("void f() { bfloat x = 0; }", "unmodelled"));
  CHECK(fires("void f() { float m = -INFINITY; }", "neg-infinity"));
  CHECK(fires("inline float ld(device const float * p) { return *p; }\n"
              "inline float ld(threadgroup const float * p) { return *p; }\n",
              "address-space-overload"));
  CHECK_FALSE(fires("inline float ld(device const float * p) { return *p; }\n"
                    "inline float ld(device const half * p) { return *p; }\n",
                    "address-space-overload"));
  CHECK(describe(lint("// kernel template bfloat -INFINITY in a comment\n")) == "");
}

TEST_CASE("every .metal file of the Metal backend follows docs/METAL.md's rules", "[metal][lint]") {
  const std::filesystem::path dir = std::filesystem::path(EDGELLM_SOURCE_DIR) / "engine/src/metal/shaders";
  int files = 0, kernels = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const auto ext = e.path().extension();
    if (ext != ".metal" && ext != ".h") continue;
    std::ifstream in(e.path());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string src = ss.str();
    ++files;
    const std::string code = strip_comments(src);
    const std::regex kernel_word(R"(\bkernel\s+void\b)");
    kernels += static_cast<int>(std::distance(std::sregex_iterator(code.begin(), code.end(), kernel_word),
                                              std::sregex_iterator()));
    for (const Finding& f : lint(src))
      FAIL_CHECK(e.path().filename().string() << ":" << f.line << ": rule " << f.rule << ": " << f.text);
  }
  INFO("files " << files << ", kernels " << kernels);
  CHECK(files >= 5);  // mul_mv, mul_mm, rows, attention .metal + args.h, dequant.h
  CHECK(kernels >= 20);
}
