// Chat templates against llama.cpp's llama_chat_apply_template, live through the oracle, over
// every name either side knows and every Jinja template llama.cpp ships: each one we accept gives
// exactly llama.cpp's text, or we refuse it (ChatTemplateError). Never another format under a name.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat_template.hpp"
#include "oracle.hpp"

namespace {

using Chat = std::vector<edgellm::ChatMessage>;

std::vector<std::pair<std::string, std::string>> pairs(const Chat& chat) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : chat) out.emplace_back(m.role, m.content);
  return out;
}

// system + user + assistant + user first (the usual shape), then the edge cases: spaces at both
// ends (which formats trim), no system, an empty and a multi-byte message, a role that is none of
// the three, one message, none.
const std::vector<Chat>& conversations() {
  static const std::vector<Chat> all = {
      {{"system", "S"}, {"user", "U"}, {"assistant", "A"}, {"user", "U2"}},
      {{"system", "You are a helpful assistant"}, {"user", "Hello"}, {"assistant", "Hi there"},
       {"user", "Who are you"}, {"assistant", "   I am an assistant   "},
       {"user", "Another question"}},
      {{"user", "  spaces around  "}, {"assistant", " a "}, {"user", "b"}},
      {{"system", "\tsys\n"}, {"user", ""}, {"assistant", "ok"}, {"user", "日本語 🦙\n\nline"}},
      {{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"tool", "d"}},
      {{"user", "only"}},
      {},
  };
  return all;
}

// Our rendering equals llama.cpp's for every conversation, with and without the generation prompt.
void check_same_as_llama(const std::string& tmpl, edgellm::ChatFormat format, const std::string& label) {
  for (const Chat& chat : conversations()) {
    for (bool add : {false, true}) {
      INFO(label << " (our " << edgellm::chat_format_name(format) << "), " << chat.size()
                 << " messages, add_generation_prompt " << add);
      CHECK(edgellm::apply_chat_template(format, chat, add) == edgellm::oracle::chat(tmpl, pairs(chat), add));
    }
  }
}

std::string slurp(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("every llama.cpp chat template name is rendered exactly as llama.cpp does, or refused",
          "[chat][oracle]") {
  const std::vector<std::string> names = edgellm::oracle::chat_names();
  REQUIRE(names.size() > 20);
  REQUIRE(std::find(names.begin(), names.end(), "mistral-v7") != names.end());
  int accepted = 0;
  for (const std::string& name : names) {
    edgellm::ChatFormat format;
    try {
      format = edgellm::resolve_chat_format(name);
    } catch (const edgellm::ChatTemplateError& e) {
      INFO(name << ": " << e.what());
      CHECK(std::string(e.what()).find(name) != std::string::npos);  // the refusal names it
      continue;
    }
    ++accepted;
    CHECK(edgellm::chat_format_name(format) == name);  // a llama.cpp name is never another format
    check_same_as_llama(name, format, name);
  }
  CHECK(accepted >= 12);  // chatml, llama2 x4, mistral x5, zephyr, llama3
}

TEST_CASE("every chat template name we accept is llama.cpp's, rendered the same, or ours alone",
          "[chat][oracle]") {
  const std::vector<std::string> llama = edgellm::oracle::chat_names();
  for (std::string_view ours : edgellm::chat_format_names()) {
    const std::string name(ours);
    const auto format = edgellm::chat_format_from_name(name);
    REQUIRE(format);
    if (std::find(llama.begin(), llama.end(), name) != llama.end()) {
      check_same_as_llama(name, *format, name);
      continue;
    }
    // Not a llama.cpp name: it must be one llama.cpp does not render under any meaning (so the
    // name cannot be mistaken for one of its formats). tinyllama is the only one (the Jinja
    // rendering of TinyLlama's template; see chat_template.hpp).
    INFO(name << " is not a llama.cpp name");
    CHECK(name == "tinyllama");
    CHECK_THROWS(edgellm::oracle::chat(name, {{"user", "x"}}, true));
  }
}

TEST_CASE("every Jinja template llama.cpp ships is rendered as llama.cpp does, or refused",
          "[chat][oracle]") {
  const std::filesystem::path dir = std::string(EDGELLM_ORACLE_DIR) + "/llama.cpp/models/templates";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".jinja") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() > 20);
  int detected = 0;
  for (const auto& path : files) {
    const std::string jinja = slurp(path);
    const auto format = edgellm::detect_chat_format(jinja);
    if (!format) {
      CHECK_THROWS_AS(edgellm::resolve_chat_format(jinja), edgellm::ChatTemplateError);
      continue;
    }
    ++detected;
    if (*format == edgellm::ChatFormat::TinyLlama) continue;  // the one deliberate difference
    check_same_as_llama(jinja, *format, path.filename().string());
  }
  CHECK(detected >= 8);
}
