// Chat templates against llama.cpp's llama_chat_apply_template, live through the oracle, over
// every name either side knows and every Jinja template llama.cpp ships: each one we accept gives
// exactly llama.cpp's text, or we refuse it (ChatTemplateError). Never another format under a name.
// Detection too, against llama.cpp's own llm_chat_detect_template (the oracle's chat-detect): the
// shipped templates and thousands of texts made of the markers its rules look for.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
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
// the three, one message, none; then the system placements a format without a system turn (gemma)
// must merge: two system texts, one after a user turn, one before a reply, a blank one, only one.
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
      {{"system", " first "}, {"system", "second\n"}, {"user", "u"}, {"assistant", "a"}},
      {{"user", "u"}, {"system", "late"}, {"assistant", "a"}, {"user", "v"}},
      {{"system", "s"}, {"assistant", "a"}, {"user", "u"}},
      {{"system", "  \n"}, {"user", "u"}},
      {{"system", "only a system text"}},
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
  // Every name of ours but tinyllama (ours alone, see below): chatml, llama2 x4, mistral x5,
  // zephyr, llama3, phi3, phi4, falcon3, gemma, deepseek x3, smolvlm.
  CHECK(accepted == static_cast<int>(edgellm::chat_format_names().size()) - 1);
  CHECK(accepted >= 20);
}

// Our names are a subset of llama.cpp's, but for tinyllama.
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
  CHECK(detected >= 30);  // Qwen, SmolLM3, Llama 3, Gemma 2, Phi-3.5, DeepSeek-R1, Mistral, ...
}

namespace {

// Our detection of each text against llama.cpp's. Where we detect a format, llama.cpp detects the
// same name; where llama.cpp detects one of our names, so do we. The deliberate differences: the
// Zephyr layouts that llama.cpp files under glmedge (tinyllama, zephyr; see chat_template.hpp) and
// a text that starts with "mistral" but has no [INST] (llama.cpp takes it down its [INST] branch:
// llama2 or a Mistral format by the other markers; we refuse it).
void check_detection_as_llama(const std::vector<std::string>& texts, const std::vector<std::string>& labels) {
  const std::vector<std::string> llama = edgellm::oracle::chat_detect(texts);
  REQUIRE(llama.size() == texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ours = edgellm::detect_chat_format(texts[i]);
    const std::string ours_name = ours ? std::string(edgellm::chat_format_name(*ours)) : "(none)";
    INFO(labels[i] << ": ours " << ours_name << ", llama.cpp " << llama[i]);
    if (ours) {
      const bool zephyr_layout = *ours == edgellm::ChatFormat::TinyLlama || *ours == edgellm::ChatFormat::Zephyr;
      if (zephyr_layout && llama[i] == "glmedge") continue;
      CHECK(ours_name == llama[i]);
    } else {
      const bool mistral_prefix = texts[i].starts_with("mistral") && texts[i].find("[INST]") == std::string::npos;
      if (mistral_prefix) continue;
      CHECK_FALSE(edgellm::chat_format_from_name(llama[i]));
    }
  }
}

}  // namespace

TEST_CASE("chat templates are detected as llama.cpp detects them", "[chat][oracle]") {
  // Every Jinja template llama.cpp ships.
  const std::filesystem::path dir = std::string(EDGELLM_ORACLE_DIR) + "/llama.cpp/models/templates";
  std::vector<std::string> texts, labels;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".jinja") continue;
    texts.push_back(slurp(e.path()));
    labels.push_back(e.path().filename().string());
  }
  REQUIRE(texts.size() > 20);
  check_detection_as_llama(texts, labels);

  // Texts made of the markers llama.cpp's rules look for (each rule's, in its order, and a few of
  // the later rules'), so that every pair of rules and many larger sets meet: the order decides.
  const std::vector<std::string> markers = {
      "mistral", "<|im_start|>", "<|im_sep|>", "<end_of_utterance>", "[INST]", "[SYSTEM_PROMPT]",
      "' [INST] ' + system_message", "[AVAILABLE_TOOLS]", "\"[INST]\"", "content.strip()",
      "bos_token + '[INST]", "<<SYS>>", "<|assistant|>", "<|end|>", "[gMASK]<sop>", "<|user|>",
      "<|tool_declare|>", "</s>", "eos_token", "<|endoftext|>", "<|{{ item['role'] }}|>",
      "<|begin_of_image|>", "bos_token + message['role']", "<start_of_turn>",
      "'\\n\\nAssistant: ' + eos_token", "GPT4 Correct ", "USER: ", "ASSISTANT: ", "SYSTEM: ",
      "### Instruction:", "<|EOT|>", "<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>",
      "<|start_header_id|>", "<|end_header_id|>", "[gMASK]sop", "<\xe7\x94\xa8\xe6\x88\xb7>",
      "'Assistant: ' + message['content'] + eos_token", "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>",
      "<\xef\xbd\x9cUser\xef\xbd\x9c>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
      "[|system|]", "[|assistant|]", "[|endofturn|]", "<|start_of_role|>", "<|header_start|>",
      "<|header_end|>", "<|start|>", "<|channel|>", "<seed:bos>"};
  texts.clear();
  labels.clear();
  auto add = [&](const std::vector<size_t>& picks) {
    std::string text, label;
    for (size_t k : picks) {
      text += markers[k] + " ";  // a space between, so no marker is made of two others
      label += (label.empty() ? "" : " + ") + std::to_string(k);
    }
    texts.push_back(text);
    labels.push_back("markers " + label);
  };
  for (size_t a = 0; a < markers.size(); ++a) {
    add({a});
    for (size_t b = 0; b < markers.size(); ++b)
      if (b != a) add({a, b});
  }
  uint64_t state = 0x2545F4914F6CDD1Dull;  // xorshift64: the same texts on every run
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int i = 0; i < 4000; ++i) {
    std::vector<size_t> picks(3 + next() % 4);
    for (size_t& k : picks) k = next() % markers.size();
    add(picks);
  }
  check_detection_as_llama(texts, labels);
}
