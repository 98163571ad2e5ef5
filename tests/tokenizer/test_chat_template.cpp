// Chat templates: detection of real templates and the exact text of each format.
//
// Expected strings are derived by hand from the formats' definitions and written out below with
// their derivation. The conversation is the one llama.cpp's tests/test-chat-template uses (its
// 5th message has spaces at both ends, which shows whether a format trims).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "chat_template.hpp"

using namespace edgellm;

namespace {

const std::vector<ChatMessage> kChat = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

std::string read_template(const std::string& name) {
  const std::string path = std::string(EDGELLM_ORACLE_DIR) + "/llama.cpp/models/templates/" + name;
  std::ifstream f(path, std::ios::binary);
  if (!f) FAIL("missing template file " << path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Meta's Llama-2-chat template (tokenizer_config.json of meta-llama/Llama-2-7b-chat-hf).
const std::string kLlama2Chat =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] "
    "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != "
    "false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
    "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
    "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% "
    "endfor %}";

// TinyLlama-1.1B-Chat-v1.0's template (tokenizer_config.json), newlines included.
const std::string kTinyLlama =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' "
    "+ message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
    "'<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
    "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

// A plain ChatML template (teknium/OpenHermes-2.5-Mistral-7B).
const std::string kChatML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
    "}}{% endif %}";

}  // namespace

TEST_CASE("chat templates are recognized from their Jinja text", "[chat]") {
  CHECK(detect_chat_format(kChatML) == ChatFormat::ChatML);
  CHECK(detect_chat_format(kLlama2Chat) == ChatFormat::Llama2SysStrip);
  CHECK(detect_chat_format(kTinyLlama) == ChatFormat::TinyLlama);
  // Real templates shipped with llama.cpp: ChatML models...
  CHECK(detect_chat_format(read_template("Qwen-Qwen2.5-7B-Instruct.jinja")) == ChatFormat::ChatML);
  CHECK(detect_chat_format(read_template("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja")) ==
        ChatFormat::ChatML);
  // ... Llama 3 ...
  CHECK(detect_chat_format(read_template("meta-llama-Llama-3.1-8B-Instruct.jinja")) ==
        ChatFormat::Llama3);
  CHECK(detect_chat_format(read_template("meta-llama-Llama-3.2-3B-Instruct.jinja")) ==
        ChatFormat::Llama3);
  // ... Mistral's [INST] variants, by llama.cpp's rules (v7: [SYSTEM_PROMPT]; v3-tekken: tools
  // and a quoted "[INST]") ...
  CHECK(detect_chat_format(read_template("mistralai-Mistral-Nemo-Instruct-2407.jinja")) ==
        ChatFormat::MistralV3Tekken);
  CHECK(detect_chat_format(read_template("Mistral-Small-3.2-24B-Instruct-2506.jinja")) ==
        ChatFormat::MistralV7);
  CHECK(detect_chat_format(read_template("unsloth-mistral-Devstral-Small-2507.jinja")) ==
        ChatFormat::MistralV7);
  // ... and look-alikes that are not ours: Phi-3, GLM, Gemma.
  CHECK_FALSE(detect_chat_format(read_template("microsoft-Phi-3.5-mini-instruct.jinja")));
  CHECK_FALSE(detect_chat_format(read_template("GLM-4.6.jinja")));
  CHECK_FALSE(detect_chat_format(read_template("google-gemma-2-2b-it.jinja")));
  CHECK_FALSE(detect_chat_format(""));
}

TEST_CASE("names, fallback and errors", "[chat]") {
  for (auto f : {ChatFormat::ChatML, ChatFormat::Llama2, ChatFormat::Llama2Sys,
                 ChatFormat::Llama2SysBos, ChatFormat::Llama2SysStrip, ChatFormat::Zephyr,
                 ChatFormat::TinyLlama, ChatFormat::Llama3, ChatFormat::MistralV1, ChatFormat::MistralV3,
                 ChatFormat::MistralV3Tekken, ChatFormat::MistralV7, ChatFormat::MistralV7Tekken}) {
    CHECK(chat_format_from_name(chat_format_name(f)) == f);
    CHECK(resolve_chat_format(chat_format_name(f)) == f);
  }
  CHECK(chat_format_names().size() == 13);
  CHECK(resolve_chat_format("mistral-v7") == ChatFormat::MistralV7);
  // A name we do not know is refused, never read as another format (llama.cpp renders any text
  // starting with "mistral" as llama2), and so are llama.cpp's names we do not render.
  for (const char* name : {"mistral-v2", "mistral", "gemma", "phi3", "vicuna"}) {
    INFO(name);
    CHECK_THROWS_AS(resolve_chat_format(name), ChatTemplateError);
  }
  CHECK(resolve_chat_format(kLlama2Chat) == ChatFormat::Llama2SysStrip);
  const std::string phi3 = read_template("microsoft-Phi-3.5-mini-instruct.jinja");
  CHECK_THROWS_AS(resolve_chat_format(phi3), ChatTemplateError);
  CHECK_THROWS_AS(resolve_chat_format(""), ChatTemplateError);
  CHECK(resolve_chat_format(phi3, "chatml") == ChatFormat::ChatML);
  CHECK_THROWS_AS(resolve_chat_format(phi3, "no-such-format"), ChatTemplateError);
  try {
    resolve_chat_format(phi3);
  } catch (const ChatTemplateError& e) {
    const std::string what = e.what();
    CHECK(e.kind() == edgellm::Error::Kind::Unsupported);  // the C API's EDGELLM_ERR_UNSUPPORTED
    CHECK(what.find("unsupported chat template") != std::string::npos);
    CHECK(what.find("chatml") != std::string::npos);  // says what is supported
  }
}

TEST_CASE("chatml text", "[chat]") {
  // Per message: '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n'; the generation
  // prompt is '<|im_start|>assistant\n'. Nothing is trimmed.
  const std::string expected =
      "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
      "<|im_start|>user\nHello<|im_end|>\n"
      "<|im_start|>assistant\nHi there<|im_end|>\n"
      "<|im_start|>user\nWho are you<|im_end|>\n"
      "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
      "<|im_start|>user\nAnother question<|im_end|>\n";
  CHECK(apply_chat_template(ChatFormat::ChatML, kChat, false) == expected);
  CHECK(apply_chat_template(ChatFormat::ChatML, kChat, true) ==
        expected + "<|im_start|>assistant\n");
  CHECK(apply_chat_template(ChatFormat::ChatML, {}, true) == "<|im_start|>assistant\n");
}

TEST_CASE("tinyllama text (the Jinja rendering)", "[chat]") {
  // Jinja as HF renders chat templates (trim_blocks): the newline after each {% ... %} tag goes,
  // the newline after each {{ ... }} stays. So a message is '<|role|>\n' + content + eos_token
  // + '\n', and the generation prompt is '<|assistant|>' + '\n'. eos_token is "</s>".
  const std::string expected =
      "<|system|>\nYou are a helpful assistant</s>\n"
      "<|user|>\nHello</s>\n"
      "<|assistant|>\nHi there</s>\n"
      "<|user|>\nWho are you</s>\n"
      "<|assistant|>\n   I am an assistant   </s>\n"
      "<|user|>\nAnother question</s>\n";
  CHECK(apply_chat_template(ChatFormat::TinyLlama, kChat, false) == expected);
  CHECK(apply_chat_template(ChatFormat::TinyLlama, kChat, true) == expected + "<|assistant|>\n");
  const std::vector<ChatMessage> one = {{"system", "S"}, {"user", "U"}};
  CHECK(apply_chat_template(resolve_chat_format(kTinyLlama), one, true) ==
        "<|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\n");
  CHECK(apply_chat_template(ChatFormat::TinyLlama, one, true, "<|endoftext|>") ==
        "<|system|>\nS<|endoftext|>\n<|user|>\nU<|endoftext|>\n<|assistant|>\n");
  // zephyr: llama.cpp's name for the same layout with a literal <|endoftext|>.
  CHECK(apply_chat_template(ChatFormat::Zephyr, one, true) ==
        "<|system|>\nS<|endoftext|>\n<|user|>\nU<|endoftext|>\n<|assistant|>\n");
}

TEST_CASE("llama2 texts", "[chat]") {
  // llama.cpp's rendering: the text starts with '[INST] ' (the first <s> is the tokenizer's BOS);
  // a user turn is content + ' [/INST]'; an assistant turn is content + '</s>' and closes the
  // turn, so the next message opens one with '[INST] ' ('<s>[INST] ' for llama2-sys-bos). The
  // system text goes into '<<SYS>>\n' + content + '\n<</SYS>>\n\n', or, for plain llama2, is
  // content + '\n' in front of the first user text. llama2-sys-strip trims every content.
  // add_generation_prompt changes nothing: the text already ends with '[/INST]'.
  CHECK(apply_chat_template(ChatFormat::Llama2, kChat, true) ==
        "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>"
        "[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]");
  CHECK(apply_chat_template(ChatFormat::Llama2Sys, kChat, true) ==
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
        "[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]");
  CHECK(apply_chat_template(ChatFormat::Llama2SysBos, kChat, true) ==
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
        "<s>[INST] Who are you [/INST]   I am an assistant   </s><s>[INST] Another question [/INST]");
  CHECK(apply_chat_template(ChatFormat::Llama2SysStrip, kChat, true) ==
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
        "[INST] Who are you [/INST]I am an assistant</s>[INST] Another question [/INST]");
  CHECK(apply_chat_template(ChatFormat::Llama2SysStrip, kChat, false) ==
        apply_chat_template(ChatFormat::Llama2SysStrip, kChat, true));
  // The usual single-turn prompt of Meta's template.
  const std::vector<ChatMessage> one = {{"system", "Be brief."}, {"user", " Hi "}};
  CHECK(apply_chat_template(resolve_chat_format(kLlama2Chat), one, true) ==
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]");
}

TEST_CASE("llama3 text", "[chat]") {
  // llama.cpp's rendering of Meta's template: per message '<|start_header_id|>' + role +
  // '<|end_header_id|>\n\n' + content|trim + '<|eot_id|>'; the generation prompt opens the
  // assistant's header. The template's leading <|begin_of_text|> is the tokenizer's BOS.
  const std::string expected =
      "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>";
  CHECK(apply_chat_template(ChatFormat::Llama3, kChat, false) == expected);
  CHECK(apply_chat_template(ChatFormat::Llama3, kChat, true) ==
        expected + "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_CASE("mistral texts", "[chat]") {
  // llama.cpp's renderings (tests/oracle/test_chat_vs_llama.cpp checks them live). v7: the system
  // text in '[SYSTEM_PROMPT] ' + content + '[/SYSTEM_PROMPT]', a user text in '[INST] ' + content +
  // '[/INST]', a reply ' ' + content + '</s>'; v7-tekken the same without those spaces. Neither
  // has a first <s> (the tokenizer's BOS) nor a generation prompt.
  const std::vector<ChatMessage> sua = {{"system", "S"}, {"user", "U"}, {"assistant", " A "}, {"user", "U2"}};
  for (bool add : {false, true}) {
    CHECK(apply_chat_template(ChatFormat::MistralV7, sua, add) ==
          "[SYSTEM_PROMPT] S[/SYSTEM_PROMPT][INST] U[/INST]  A </s>[INST] U2[/INST]");
    CHECK(apply_chat_template(ChatFormat::MistralV7Tekken, sua, add) ==
          "[SYSTEM_PROMPT]S[/SYSTEM_PROMPT][INST]U[/INST] A </s>[INST]U2[/INST]");
    // v1/v3/v3-tekken: each turn opens with [INST] (v1 ' [INST] ', v3 '[INST] ', tekken
    // '[INST]'), the system text is content + '\n\n' in the first turn, a user text ends with
    // '[/INST]' (v1 ' [/INST]'), a reply is ' ' + content + '</s>' (tekken: no space; v3: trimmed).
    CHECK(apply_chat_template(ChatFormat::MistralV1, sua, add) ==
          " [INST] S\n\nU [/INST]  A </s> [INST] U2 [/INST]");
    CHECK(apply_chat_template(ChatFormat::MistralV3, sua, add) == "[INST] S\n\nU[/INST] A</s>[INST] U2[/INST]");
    CHECK(apply_chat_template(ChatFormat::MistralV3Tekken, sua, add) ==
          "[INST]S\n\nU[/INST] A </s>[INST]U2[/INST]");
  }
  // Never the Llama-2 layout under a Mistral name.
  const std::vector<ChatMessage> su = {{"system", "S"}, {"user", "U"}};
  CHECK(apply_chat_template(resolve_chat_format("mistral-v7"), su, true) ==
        "[SYSTEM_PROMPT] S[/SYSTEM_PROMPT][INST] U[/INST]");
}
