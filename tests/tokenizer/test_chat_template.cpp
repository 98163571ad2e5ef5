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

// Small templates in the layouts of model families llama.cpp ships no template file for, written
// for these tests (detection reads only their markers): Phi-4-mini (no newline after the role
// tag), Phi-4 (14B), SmolVLM, deepseek-coder, DeepSeek-V2, Falcon 3.
const std::string kPhi4Mini =
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + "
    "'<|end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ "
    "eos_token }}{% endif %}";
const std::string kPhi4 =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant<|im_sep|>' }}{% endif %}";
const std::string kSmolVLM =
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}: "
    "{{ message['content'] }}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt "
    "%}{{ 'Assistant:' }}{% endif %}";
const std::string kDeepSeekCoder =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '### Instruction:\n' + "
    "message['content'] + '\n' }}{% else %}{{ '### Response:\n' + message['content'] + "
    "'\n<|EOT|>\n' }}{% endif %}{% endfor %}{{ '### Response:' }}";
const std::string kDeepSeekV2 =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + "
    "message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + "
    "message['content'] + eos_token }}{% endif %}{% endfor %}";
const std::string kFalcon3 =
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + "
    "'\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ '</s>' "
    "}}{% endif %}{{ '<|user|>' }}";

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
  // ... the small models' formats: Qwen2.5 / Qwen3 / SmolLM3 are ChatML ...
  CHECK(detect_chat_format(read_template("Qwen-Qwen3-0.6B.jinja")) == ChatFormat::ChatML);
  CHECK(detect_chat_format(read_template("HuggingFaceTB-SmolLM3-3B.jinja")) == ChatFormat::ChatML);
  // ... Gemma 2 (<start_of_turn>), Phi-3.5 and Phi-4-mini (<|assistant|> with <|end|>), Phi-4
  // (<|im_start|> with <|im_sep|>: not ChatML), SmolVLM (<|im_start|> with <end_of_utterance>) ...
  CHECK(detect_chat_format(read_template("google-gemma-2-2b-it.jinja")) == ChatFormat::Gemma);
  CHECK(detect_chat_format(read_template("microsoft-Phi-3.5-mini-instruct.jinja")) == ChatFormat::Phi3);
  CHECK(detect_chat_format(kPhi4Mini) == ChatFormat::Phi3);
  CHECK(detect_chat_format(kPhi4) == ChatFormat::Phi4);
  CHECK(detect_chat_format(kSmolVLM) == ChatFormat::SmolVLM);
  // ... DeepSeek: R1 and its Qwen / Llama distills (<｜User｜>, <｜Assistant｜>, <｜end▁of▁sentence｜>),
  // V2 ('Assistant: ' + content + eos_token), coder (### Instruction: with <|EOT|>) ...
  CHECK(detect_chat_format(read_template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja")) ==
        ChatFormat::DeepSeek3);
  CHECK(detect_chat_format(read_template("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja")) ==
        ChatFormat::DeepSeek3);
  CHECK(detect_chat_format(read_template("llama-cpp-deepseek-r1.jinja")) == ChatFormat::DeepSeek3);
  CHECK(detect_chat_format(kDeepSeekV2) == ChatFormat::DeepSeek2);
  CHECK(detect_chat_format(kDeepSeekCoder) == ChatFormat::DeepSeek);
  // ... Falcon 3 (<|user|>, <|assistant|> and a literal </s>) ...
  CHECK(detect_chat_format(kFalcon3) == ChatFormat::Falcon3);
  // ... and look-alikes that are not ours: GLM-4 ([gMASK]<sop>), Command-R, Granite, Gemma 4.
  CHECK_FALSE(detect_chat_format(read_template("GLM-4.6.jinja")));
  CHECK_FALSE(detect_chat_format(read_template("CohereForAI-c4ai-command-r-plus-tool_use.jinja")));
  CHECK_FALSE(detect_chat_format(read_template("ibm-granite-granite-3.3-2B-Instruct.jinja")));
  CHECK_FALSE(detect_chat_format(read_template("google-gemma-4-31B-it.jinja")));
  CHECK_FALSE(detect_chat_format(""));
}

TEST_CASE("detection takes llama.cpp's first matching rule", "[chat]") {
  // An earlier rule wins even when it names a format we do not render: then the text is refused,
  // never matched by a later rule of ours.
  CHECK(detect_chat_format("<|im_start|> <start_of_turn>") == ChatFormat::ChatML);
  CHECK(detect_chat_format("<|im_start|> <|im_sep|> <end_of_utterance>") == ChatFormat::Phi4);
  CHECK(detect_chat_format("[INST] <|assistant|> <|end|>") == ChatFormat::Llama2);
  CHECK(detect_chat_format("<|assistant|> <|end|> <|user|> </s>") == ChatFormat::Phi3);
  CHECK(detect_chat_format("<|user|> <|endoftext|> <start_of_turn>") == ChatFormat::Zephyr);
  CHECK(detect_chat_format("<start_of_turn> <|start_header_id|> <|end_header_id|>") == ChatFormat::Gemma);
  CHECK(detect_chat_format("### Instruction: <|EOT|> <|start_header_id|> <|end_header_id|>") ==
        ChatFormat::DeepSeek);
  CHECK(detect_chat_format("<|start_header_id|> <|end_header_id|> <｜User｜> <｜Assistant｜> "
                           "<｜end▁of▁sentence｜>") == ChatFormat::Llama3);
  CHECK(detect_chat_format("<｜User｜> <｜Assistant｜> <｜end▁of▁sentence｜>") == ChatFormat::DeepSeek3);
  CHECK_FALSE(detect_chat_format("<｜User｜> <｜Assistant｜>"));  // all three markers, or none
  // llama.cpp: monarch, chatglm4, vicuna, command-r, exaone-moe, minicpm before ours.
  CHECK_FALSE(detect_chat_format("bos_token + message['role'] <start_of_turn>"));
  CHECK_FALSE(detect_chat_format("[gMASK]<sop> <|assistant|> <|user|> eos_token"));
  CHECK_FALSE(detect_chat_format("USER: ASSISTANT: ### Instruction: <|EOT|>"));
  CHECK_FALSE(detect_chat_format("<|START_OF_TURN_TOKEN|> <|USER_TOKEN|> <|start_header_id|> <|end_header_id|>"));
  CHECK_FALSE(detect_chat_format("<|assistant|> <|user|> <|tool_declare|> </s>"));
  CHECK_FALSE(detect_chat_format("<用户> 'Assistant: ' + message['content'] + eos_token"));
  // A text starting with "mistral" takes llama.cpp's [INST] branch; without [INST] we refuse it.
  CHECK_FALSE(detect_chat_format("mistral <start_of_turn>"));
}

TEST_CASE("names, fallback and errors", "[chat]") {
  for (auto f : {ChatFormat::ChatML, ChatFormat::Llama2, ChatFormat::Llama2Sys,
                 ChatFormat::Llama2SysBos, ChatFormat::Llama2SysStrip, ChatFormat::Zephyr,
                 ChatFormat::TinyLlama, ChatFormat::Llama3, ChatFormat::MistralV1, ChatFormat::MistralV3,
                 ChatFormat::MistralV3Tekken, ChatFormat::MistralV7, ChatFormat::MistralV7Tekken,
                 ChatFormat::Phi3, ChatFormat::Phi4, ChatFormat::Falcon3, ChatFormat::Gemma,
                 ChatFormat::DeepSeek, ChatFormat::DeepSeek2, ChatFormat::DeepSeek3, ChatFormat::SmolVLM}) {
    CHECK(chat_format_from_name(chat_format_name(f)) == f);
    CHECK(resolve_chat_format(chat_format_name(f)) == f);
  }
  CHECK(chat_format_names().size() == 21);
  CHECK(resolve_chat_format("mistral-v7") == ChatFormat::MistralV7);
  // A name we do not know is refused, never read as another format (llama.cpp renders any text
  // starting with "mistral" as llama2), and so are llama.cpp's names we do not render.
  for (const char* name : {"mistral-v2", "mistral", "gemma2", "phi-3", "vicuna", "command-r", "monarch"}) {
    INFO(name);
    CHECK_THROWS_AS(resolve_chat_format(name), ChatTemplateError);
  }
  CHECK(resolve_chat_format(kLlama2Chat) == ChatFormat::Llama2SysStrip);
  const std::string glm = read_template("GLM-4.6.jinja");
  CHECK_THROWS_AS(resolve_chat_format(glm), ChatTemplateError);
  CHECK_THROWS_AS(resolve_chat_format(""), ChatTemplateError);
  CHECK(resolve_chat_format(glm, "chatml") == ChatFormat::ChatML);
  CHECK(resolve_chat_format(glm, "gemma") == ChatFormat::Gemma);
  CHECK_THROWS_AS(resolve_chat_format(glm, "no-such-format"), ChatTemplateError);
  try {
    resolve_chat_format(glm);
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

TEST_CASE("phi3, phi4 and falcon3 texts", "[chat]") {
  // phi3: per message '<|' + role + '|>\n' + content + '<|end|>\n', prompt '<|assistant|>\n';
  // falcon3 the same with '\n' for '<|end|>\n'; phi4: '<|im_start|>' + role + '<|im_sep|>' +
  // content + '<|im_end|>', prompt '<|im_start|>assistant<|im_sep|>'. Nothing is trimmed; the
  // system text is a turn of its own.
  const std::string phi3 =
      "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n"
      "<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n"
      "<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n";
  CHECK(apply_chat_template(ChatFormat::Phi3, kChat, false) == phi3);
  CHECK(apply_chat_template(ChatFormat::Phi3, kChat, true) == phi3 + "<|assistant|>\n");
  const std::string falcon3 =
      "<|system|>\nYou are a helpful assistant\n<|user|>\nHello\n<|assistant|>\nHi there\n"
      "<|user|>\nWho are you\n<|assistant|>\n   I am an assistant   \n<|user|>\nAnother question\n";
  CHECK(apply_chat_template(ChatFormat::Falcon3, kChat, false) == falcon3);
  CHECK(apply_chat_template(ChatFormat::Falcon3, kChat, true) == falcon3 + "<|assistant|>\n");
  const std::string phi4 =
      "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|>"
      "<|im_start|>user<|im_sep|>Hello<|im_end|><|im_start|>assistant<|im_sep|>Hi there<|im_end|>"
      "<|im_start|>user<|im_sep|>Who are you<|im_end|>"
      "<|im_start|>assistant<|im_sep|>   I am an assistant   <|im_end|>"
      "<|im_start|>user<|im_sep|>Another question<|im_end|>";
  CHECK(apply_chat_template(ChatFormat::Phi4, kChat, false) == phi4);
  CHECK(apply_chat_template(ChatFormat::Phi4, kChat, true) == phi4 + "<|im_start|>assistant<|im_sep|>");
  // Phi-4-mini's Jinja writes no newline after '<|role|>'; llama.cpp's phi3, and so ours, does.
  const std::vector<ChatMessage> one = {{"user", "U"}};
  CHECK(apply_chat_template(resolve_chat_format(kPhi4Mini), one, true) == "<|user|>\nU<|end|>\n<|assistant|>\n");
}

TEST_CASE("gemma text: no system turn", "[chat]") {
  // '<start_of_turn>' + role + '\n' + content|trim + '<end_of_turn>\n', "assistant" written
  // "model"; the prompt is '<start_of_turn>model\n'. The system text (trimmed) is not a turn: it
  // opens the next turn that is not the model's, followed by '\n\n'.
  const std::string expected =
      "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
      "<start_of_turn>model\nHi there<end_of_turn>\n"
      "<start_of_turn>user\nWho are you<end_of_turn>\n"
      "<start_of_turn>model\nI am an assistant<end_of_turn>\n"
      "<start_of_turn>user\nAnother question<end_of_turn>\n";
  CHECK(apply_chat_template(ChatFormat::Gemma, kChat, false) == expected);
  CHECK(apply_chat_template(ChatFormat::Gemma, kChat, true) == expected + "<start_of_turn>model\n");
  // Two system texts are joined (each trimmed, nothing between); a model turn before the first
  // user turn does not take them.
  const std::vector<ChatMessage> two = {{"system", " a "}, {"system", "b\n"}, {"assistant", "x"}, {"user", "u"}};
  CHECK(apply_chat_template(ChatFormat::Gemma, two, false) ==
        "<start_of_turn>model\nx<end_of_turn>\n<start_of_turn>user\nab\n\nu<end_of_turn>\n");
  // A system text after a user turn goes into the next user turn; a blank one adds nothing; one
  // that no user turn follows is dropped.
  const std::vector<ChatMessage> late = {{"user", "u"}, {"system", "late"}, {"assistant", "a"}, {"user", "v"}};
  CHECK(apply_chat_template(ChatFormat::Gemma, late, false) ==
        "<start_of_turn>user\nu<end_of_turn>\n<start_of_turn>model\na<end_of_turn>\n"
        "<start_of_turn>user\nlate\n\nv<end_of_turn>\n");
  const std::vector<ChatMessage> blank = {{"system", "  \n"}, {"user", "u"}};
  CHECK(apply_chat_template(ChatFormat::Gemma, blank, true) ==
        "<start_of_turn>user\nu<end_of_turn>\n<start_of_turn>model\n");
  const std::vector<ChatMessage> only = {{"system", "s"}};
  CHECK(apply_chat_template(ChatFormat::Gemma, only, true) == "<start_of_turn>model\n");
  // Gemma 2's real template is detected as gemma and gives this layout.
  const std::vector<ChatMessage> su = {{"system", "S"}, {"user", "U"}};
  CHECK(apply_chat_template(resolve_chat_format(read_template("google-gemma-2-2b-it.jinja")), su, true) ==
        "<start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n");
}

TEST_CASE("deepseek texts", "[chat]") {
  // The system text bare (deepseek) or + '\n\n' (deepseek2, deepseek3); user and assistant turns
  // between each format's markers, nothing trimmed; a message of any other role is left out.
  // deepseek:  '### Instruction:\n' + user + '\n', '### Response:\n' + reply + '\n<|EOT|>\n',
  //            prompt '### Response:\n'
  // deepseek2: 'User: ' + user + '\n\n', 'Assistant: ' + reply + '<｜end▁of▁sentence｜>', prompt
  //            'Assistant:'
  // deepseek3: '<｜User｜>' + user, '<｜Assistant｜>' + reply + '<｜end▁of▁sentence｜>', prompt
  //            '<｜Assistant｜>'
  const std::string coder =
      "You are a helpful assistant### Instruction:\nHello\n### Response:\nHi there\n<|EOT|>\n"
      "### Instruction:\nWho are you\n### Response:\n   I am an assistant   \n<|EOT|>\n"
      "### Instruction:\nAnother question\n";
  CHECK(apply_chat_template(ChatFormat::DeepSeek, kChat, false) == coder);
  CHECK(apply_chat_template(ChatFormat::DeepSeek, kChat, true) == coder + "### Response:\n");
  const std::string v2 =
      "You are a helpful assistant\n\nUser: Hello\n\nAssistant: Hi there<｜end▁of▁sentence｜>"
      "User: Who are you\n\nAssistant:    I am an assistant   <｜end▁of▁sentence｜>"
      "User: Another question\n\n";
  CHECK(apply_chat_template(ChatFormat::DeepSeek2, kChat, false) == v2);
  CHECK(apply_chat_template(ChatFormat::DeepSeek2, kChat, true) == v2 + "Assistant:");
  const std::string v3 =
      "You are a helpful assistant\n\n<｜User｜>Hello<｜Assistant｜>Hi there<｜end▁of▁sentence｜>"
      "<｜User｜>Who are you<｜Assistant｜>   I am an assistant   <｜end▁of▁sentence｜>"
      "<｜User｜>Another question";
  CHECK(apply_chat_template(ChatFormat::DeepSeek3, kChat, false) == v3);
  CHECK(apply_chat_template(ChatFormat::DeepSeek3, kChat, true) == v3 + "<｜Assistant｜>");
  const std::vector<ChatMessage> tool = {{"user", "a"}, {"tool", "t"}, {"assistant", "b"}};
  CHECK(apply_chat_template(ChatFormat::DeepSeek3, tool, true) ==
        "<｜User｜>a<｜Assistant｜>b<｜end▁of▁sentence｜><｜Assistant｜>");
  CHECK(apply_chat_template(ChatFormat::DeepSeek, tool, false) ==
        "### Instruction:\na\n### Response:\nb\n<|EOT|>\n");
  // DeepSeek-R1-Distill-Qwen's real template resolves to deepseek3.
  const std::vector<ChatMessage> su = {{"system", "S"}, {"user", "U"}};
  CHECK(apply_chat_template(resolve_chat_format(read_template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja")),
                            su, true) == "S\n\n<｜User｜>U<｜Assistant｜>");
}

TEST_CASE("smolvlm text", "[chat]") {
  // '<|im_start|>' first (written by the template), then the system text + '\n\n', 'User: ' +
  // user + '<end_of_utterance>\n', any other role 'Assistant: ' + content + '<end_of_utterance>\n';
  // prompt 'Assistant:'.
  const std::string expected =
      "<|im_start|>You are a helpful assistant\n\nUser: Hello<end_of_utterance>\n"
      "Assistant: Hi there<end_of_utterance>\nUser: Who are you<end_of_utterance>\n"
      "Assistant:    I am an assistant   <end_of_utterance>\nUser: Another question<end_of_utterance>\n";
  CHECK(apply_chat_template(ChatFormat::SmolVLM, kChat, false) == expected);
  CHECK(apply_chat_template(ChatFormat::SmolVLM, kChat, true) == expected + "Assistant:");
  CHECK(apply_chat_template(ChatFormat::SmolVLM, {}, true) == "<|im_start|>Assistant:");
}
