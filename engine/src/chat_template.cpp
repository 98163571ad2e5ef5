// Chat formats; the detection rules and the llama.cpp-compatible renderings are facts read from
// llama.cpp's src/llama-chat.cpp (llm_chat_detect_template, llm_chat_apply_template); code our own.
#include "chat_template.hpp"

#include <cctype>

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
};

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

}  // namespace

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

std::optional<ChatFormat> detect_chat_format(std::string_view t) {
  auto has = [&](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) {
    // Phi-4 and SmolVLM also use <|im_start|> but are not ChatML.
    if (has("<|im_sep|>") || has("<end_of_utterance>")) return std::nullopt;
    return ChatFormat::ChatML;
  }
  if (t.substr(0, 7) == "mistral" || has("[INST]")) {
    // Mistral's own templates (v1/v3/v7) share [INST] but place spaces and the system text
    // differently: not ours.
    if (has("[SYSTEM_PROMPT]") || has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      return std::nullopt;
    }
    if (has("content.strip()")) return ChatFormat::Llama2SysStrip;
    if (has("bos_token + '[INST]")) return ChatFormat::Llama2SysBos;
    if (has("<<SYS>>")) return ChatFormat::Llama2Sys;
    return ChatFormat::Llama2;
  }
  if (has("<|user|>") && has("<|assistant|>")) {
    // Phi-3 (<|end|>) and ChatGLM/GLM-Edge put other things between the turns.
    if (has("<|end|>") || has("[gMASK]")) return std::nullopt;
    if (has("eos_token")) return ChatFormat::TinyLlama;
    if (has("<|endoftext|>")) return ChatFormat::Zephyr;
    return std::nullopt;
  }
  if (has("<|user|>") && has("<|endoftext|>")) return ChatFormat::Zephyr;
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return ChatFormat::Llama3;
  return std::nullopt;
}

ChatFormat resolve_chat_format(std::string_view tmpl, std::string_view fallback) {
  if (auto f = chat_format_from_name(tmpl)) return *f;
  if (auto f = detect_chat_format(tmpl)) return *f;
  if (!fallback.empty()) {
    if (auto f = chat_format_from_name(fallback)) return *f;
    throw ChatTemplateError("unknown fallback chat template name '" + std::string(fallback) +
                            "'; known: " + supported_names());
  }
  std::string shown(tmpl.substr(0, 80));
  if (tmpl.size() > 80) shown += "...";
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
    case ChatFormat::Zephyr:
    case ChatFormat::TinyLlama: {
      const std::string_view end = format == ChatFormat::Zephyr ? "<|endoftext|>" : eos_text;
      for (const ChatMessage& m : messages) {
        out.append("<|").append(m.role).append("|>\n").append(m.content).append(end).append("\n");
      }
      if (add_generation_prompt) out += "<|assistant|>\n";
      break;
    }
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
