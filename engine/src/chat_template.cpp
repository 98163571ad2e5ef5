// Chat formats; the detection rules and the llama.cpp-compatible renderings are facts read from
// llama.cpp's src/llama-chat.cpp (llm_chat_detect_template, llm_chat_apply_template); code our own.
#include "chat_template.hpp"

#include <cctype>

#include "arch.hpp"  // printable

namespace edgellm {

namespace {

struct NamedFormat {
  std::string_view name;
  ChatFormat format;
};

constexpr NamedFormat kFormats[] = {
    {"chatml", ChatFormat::ChatML},
    {"llama2", ChatFormat::Llama2},
    {"llama2-sys", ChatFormat::Llama2Sys},
    {"llama2-sys-bos", ChatFormat::Llama2SysBos},
    {"llama2-sys-strip", ChatFormat::Llama2SysStrip},
    {"zephyr", ChatFormat::Zephyr},
    {"tinyllama", ChatFormat::TinyLlama},
    {"llama3", ChatFormat::Llama3},
    {"mistral-v1", ChatFormat::MistralV1},
    {"mistral-v3", ChatFormat::MistralV3},
    {"mistral-v3-tekken", ChatFormat::MistralV3Tekken},
    {"mistral-v7", ChatFormat::MistralV7},
    {"mistral-v7-tekken", ChatFormat::MistralV7Tekken},
    {"phi3", ChatFormat::Phi3},
    {"phi4", ChatFormat::Phi4},
    {"falcon3", ChatFormat::Falcon3},
    {"gemma", ChatFormat::Gemma},
    {"deepseek", ChatFormat::DeepSeek},
    {"deepseek2", ChatFormat::DeepSeek2},
    {"deepseek3", ChatFormat::DeepSeek3},
    {"smolvlm", ChatFormat::SmolVLM},
};

// DeepSeek's special tokens use U+FF5C (fullwidth vertical line) and U+2581 (lower one eighth block).
constexpr std::string_view kDeepSeekUser = "<\xef\xbd\x9cUser\xef\xbd\x9c>";
constexpr std::string_view kDeepSeekAssistant = "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>";
constexpr std::string_view kDeepSeekEos =
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
constexpr std::string_view kMiniCpmUser = "<\xe7\x94\xa8\xe6\x88\xb7>";  // <用户>

std::string supported_names() {
  std::string s;
  for (const auto& f : kFormats) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

void llama2(std::string& out, std::span<const ChatMessage> messages, ChatFormat f) {
  const bool system_block = f != ChatFormat::Llama2;
  const bool bos_in_history = f == ChatFormat::Llama2SysBos;
  const bool strip = f == ChatFormat::Llama2SysStrip;
  out += "[INST] ";  // the first turn's <s> is the tokenizer's BOS
  bool in_turn = true;
  for (const ChatMessage& m : messages) {
    const std::string_view content = strip ? trim(m.content) : std::string_view(m.content);
    if (!in_turn) {
      out += bos_in_history ? "<s>[INST] " : "[INST] ";
      in_turn = true;
    }
    if (m.role == "system") {
      if (system_block) {
        out.append("<<SYS>>\n").append(content).append("\n<</SYS>>\n\n");
      } else {
        out.append(content).append("\n");  // no system slot: it becomes part of the user turn
      }
    } else if (m.role == "user") {
      out.append(content).append(" [/INST]");
    } else {
      out.append(content).append("</s>");
      in_turn = false;
    }
  }
}

// Mistral's v7 layout: the system text in its own [SYSTEM_PROMPT] block, each user text in
// [INST]...[/INST], each reply followed by </s>. v7 puts a space after the opening tags and before
// a reply; v7-tekken none. Any other role is rendered as a reply.
void mistral_v7(std::string& out, std::span<const ChatMessage> messages, ChatFormat f) {
  const std::string_view sp = f == ChatFormat::MistralV7 ? " " : "";
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      out.append("[SYSTEM_PROMPT]").append(sp).append(m.content).append("[/SYSTEM_PROMPT]");
    } else if (m.role == "user") {
      out.append("[INST]").append(sp).append(m.content).append("[/INST]");
    } else {
      out.append(sp).append(m.content).append("</s>");
    }
  }
}

// Mistral's v1 / v3 / v3-tekken layouts: a turn opens with [INST] (v1: ' [INST] ', v3: '[INST] ',
// v3-tekken: '[INST]'); the system text is content + '\n\n' inside the turn; a user text ends with
// '[/INST]' (v1: ' [/INST]'); a reply (any other role) is ' ' + content + '</s>' (v3-tekken: no
// space; v3: the content trimmed) and closes the turn.
void mistral_v1_v3(std::string& out, std::span<const ChatMessage> messages, ChatFormat f) {
  const std::string_view lead = f == ChatFormat::MistralV1 ? " " : "";
  const std::string_view trail = f == ChatFormat::MistralV3Tekken ? "" : " ";
  const bool trim_reply = f == ChatFormat::MistralV3;
  bool in_turn = false;
  for (const ChatMessage& m : messages) {
    if (!in_turn) {
      out.append(lead).append("[INST]").append(trail);
      in_turn = true;
    }
    if (m.role == "system") {
      out.append(m.content).append("\n\n");
    } else if (m.role == "user") {
      out.append(m.content).append(lead).append("[/INST]");
    } else {
      out.append(trail).append(trim_reply ? trim(m.content) : std::string_view(m.content)).append("</s>");
      in_turn = false;
    }
  }
}

// Gemma has no system turn: the system texts (trimmed, joined) open the next turn that is not the
// model's, followed by a blank line; "assistant" is called "model"; every content is trimmed.
void gemma(std::string& out, std::span<const ChatMessage> messages) {
  std::string system;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system += trim(m.content);
      continue;
    }
    const std::string_view role = m.role == "assistant" ? std::string_view("model") : m.role;
    out.append("<start_of_turn>").append(role).append("\n");
    if (!system.empty() && role != "model") {
      out.append(system).append("\n\n");
      system.clear();
    }
    out.append(trim(m.content)).append("<end_of_turn>\n");
  }
}

// DeepSeek's three layouts: the system text bare, then user and assistant turns between the
// given markers; a message of any other role is left out.
struct DeepSeekMarks {
  std::string_view system_end, user_begin, user_end, assistant_begin, assistant_end, prompt;
};

void deepseek(std::string& out, std::span<const ChatMessage> messages, const DeepSeekMarks& k,
              bool add_generation_prompt) {
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      out.append(m.content).append(k.system_end);
    } else if (m.role == "user") {
      out.append(k.user_begin).append(m.content).append(k.user_end);
    } else if (m.role == "assistant") {
      out.append(k.assistant_begin).append(m.content).append(k.assistant_end);
    }
  }
  if (add_generation_prompt) out += k.prompt;
}

}  // namespace

std::vector<std::string_view> chat_format_names() {
  std::vector<std::string_view> names;
  for (const auto& f : kFormats) names.push_back(f.name);
  return names;
}

std::string_view chat_format_name(ChatFormat f) {
  for (const auto& x : kFormats)
    if (x.format == f) return x.name;
  return "?";
}

std::optional<ChatFormat> chat_format_from_name(std::string_view name) {
  for (const auto& x : kFormats)
    if (x.name == name) return x.format;
  return std::nullopt;
}

// llama.cpp's rules in its order; a rule for a format we do not render gives nullopt, so a later
// rule never takes a text llama.cpp files elsewhere.
std::optional<ChatFormat> detect_chat_format(std::string_view t) {
  auto has = [&](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) {
    if (has("<|im_sep|>")) return ChatFormat::Phi4;
    if (has("<end_of_utterance>")) return ChatFormat::SmolVLM;  // <|im_start|> is its BOS only
    return ChatFormat::ChatML;
  }
  if (t.starts_with("mistral") || has("[INST]")) {
    // llama.cpp renders any text that merely starts with "mistral" (say an unknown name like
    // "mistral-v2") as llama2; we refuse it.
    if (!has("[INST]")) return std::nullopt;
    // Mistral's own templates share [INST] but place spaces and the system text differently.
    if (has("[SYSTEM_PROMPT]")) return ChatFormat::MistralV7;
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      if (has(" [INST]")) return ChatFormat::MistralV1;
      if (has("\"[INST]\"")) return ChatFormat::MistralV3Tekken;
      return ChatFormat::MistralV3;
    }
    if (has("content.strip()")) return ChatFormat::Llama2SysStrip;
    if (has("bos_token + '[INST]")) return ChatFormat::Llama2SysBos;
    if (has("<<SYS>>")) return ChatFormat::Llama2Sys;
    return ChatFormat::Llama2;
  }
  if (has("<|assistant|>") && has("<|end|>")) return ChatFormat::Phi3;  // Phi-3/3.5, Phi-4-mini
  if (has("[gMASK]<sop>")) return std::nullopt;                          // chatglm4
  if (has("<|assistant|>") && has("<|user|>")) {
    if (has("<|tool_declare|>")) return std::nullopt;  // exaone-moe
    if (has("</s>")) return ChatFormat::Falcon3;
    // llama.cpp files the rest under glmedge (no end-of-turn text). We take the Zephyr layouts,
    // rendered as their Jinja is (see tinyllama above), and refuse GLM's and any other.
    if (has("[gMASK]")) return std::nullopt;
    if (has("eos_token")) return ChatFormat::TinyLlama;
    if (has("<|endoftext|>")) return ChatFormat::Zephyr;
    return std::nullopt;
  }
  if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) return std::nullopt;  // glmedge
  if (has("<|user|>") && has("<|endoftext|>")) return ChatFormat::Zephyr;
  if (has("bos_token + message['role']")) return std::nullopt;  // monarch
  if (has("<start_of_turn>")) return ChatFormat::Gemma;
  if (has("'\\n\\nAssistant: ' + eos_token")) return std::nullopt;  // orion
  if (has("GPT4 Correct ")) return std::nullopt;                      // openchat
  if (has("USER: ") && has("ASSISTANT: ")) return std::nullopt;       // vicuna, vicuna-orca
  if (has("### Instruction:") && has("<|EOT|>")) return ChatFormat::DeepSeek;  // deepseek-coder
  if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return std::nullopt;  // command-r
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return ChatFormat::Llama3;
  if (has("[gMASK]sop")) return std::nullopt;  // chatglm3
  if (has(kMiniCpmUser)) return std::nullopt;  // minicpm
  if (has("'Assistant: ' + message['content'] + eos_token")) return ChatFormat::DeepSeek2;
  if (has(kDeepSeekAssistant) && has(kDeepSeekUser) && has(kDeepSeekEos)) return ChatFormat::DeepSeek3;
  return std::nullopt;  // llama.cpp's later rules are all formats we do not render
}

ChatFormat resolve_chat_format(std::string_view tmpl, std::string_view fallback) {
  if (auto f = chat_format_from_name(tmpl)) return *f;
  if (auto f = detect_chat_format(tmpl)) return *f;
  if (!fallback.empty()) {
    if (auto f = chat_format_from_name(fallback)) return *f;
    throw ChatTemplateError("unknown fallback chat template name '" + std::string(fallback) +
                            "'; known: " + supported_names());
  }
  const std::string shown = engine::printable(tmpl, 80);  // the file's text, escaped
  throw ChatTemplateError("unsupported chat template" +
                          (tmpl.empty() ? std::string(" (empty)") : " '" + shown + "'") +
                          "; known formats: " + supported_names() +
                          " (name one as the fallback to use it anyway)");
}

std::string apply_chat_template(ChatFormat format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt, std::string_view eos_text) {
  std::string out;
  switch (format) {
    case ChatFormat::ChatML:
      for (const ChatMessage& m : messages) {
        out.append("<|im_start|>").append(m.role).append("\n").append(m.content).append(
            "<|im_end|>\n");
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case ChatFormat::Llama2:
    case ChatFormat::Llama2Sys:
    case ChatFormat::Llama2SysBos:
    case ChatFormat::Llama2SysStrip: llama2(out, messages, format); break;
    case ChatFormat::MistralV1:
    case ChatFormat::MistralV3:
    case ChatFormat::MistralV3Tekken: mistral_v1_v3(out, messages, format); break;
    case ChatFormat::MistralV7:
    case ChatFormat::MistralV7Tekken: mistral_v7(out, messages, format); break;
    case ChatFormat::Zephyr:
    case ChatFormat::TinyLlama: {
      const std::string_view end = format == ChatFormat::Zephyr ? "<|endoftext|>" : eos_text;
      for (const ChatMessage& m : messages) {
        out.append("<|").append(m.role).append("|>\n").append(m.content).append(end).append("\n");
      }
      if (add_generation_prompt) out += "<|assistant|>\n";
      break;
    }
    case ChatFormat::Phi3:
    case ChatFormat::Falcon3: {
      const std::string_view end = format == ChatFormat::Phi3 ? "<|end|>\n" : "\n";
      for (const ChatMessage& m : messages)
        out.append("<|").append(m.role).append("|>\n").append(m.content).append(end);
      if (add_generation_prompt) out += "<|assistant|>\n";
      break;
    }
    case ChatFormat::Phi4:
      for (const ChatMessage& m : messages)
        out.append("<|im_start|>").append(m.role).append("<|im_sep|>").append(m.content).append("<|im_end|>");
      if (add_generation_prompt) out += "<|im_start|>assistant<|im_sep|>";
      break;
    case ChatFormat::Gemma:
      gemma(out, messages);
      if (add_generation_prompt) out += "<start_of_turn>model\n";
      break;
    case ChatFormat::DeepSeek:
      deepseek(out, messages, {"", "### Instruction:\n", "\n", "### Response:\n", "\n<|EOT|>\n", "### Response:\n"},
               add_generation_prompt);
      break;
    case ChatFormat::DeepSeek2:
      deepseek(out, messages, {"\n\n", "User: ", "\n\n", "Assistant: ", kDeepSeekEos, "Assistant:"},
               add_generation_prompt);
      break;
    case ChatFormat::DeepSeek3:
      deepseek(out, messages, {"\n\n", kDeepSeekUser, "", kDeepSeekAssistant, kDeepSeekEos, kDeepSeekAssistant},
               add_generation_prompt);
      break;
    case ChatFormat::SmolVLM:
      out += "<|im_start|>";  // its BOS, written by the template
      for (const ChatMessage& m : messages) {
        if (m.role == "system") {
          out.append(m.content).append("\n\n");
        } else {
          out.append(m.role == "user" ? "User: " : "Assistant: ").append(m.content).append("<end_of_utterance>\n");
        }
      }
      if (add_generation_prompt) out += "Assistant:";
      break;
    case ChatFormat::Llama3:
      for (const ChatMessage& m : messages) {
        out.append("<|start_header_id|>").append(m.role).append("<|end_header_id|>\n\n");
        out.append(trim(m.content)).append("<|eot_id|>");
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
  }
  return out;
}

}  // namespace edgellm
