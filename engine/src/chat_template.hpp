// Chat templates: a list of {role, content} messages -> the prompt text a chat model was trained on.
//
// We do not run Jinja. A model's `tokenizer.chat_template` (Jinja text) is recognized by
// distinctive substrings, as llama.cpp's llm_chat_detect_template does, and mapped to one of the
// formats below, each written out in C++. Text we do not recognize is a ChatTemplateError unless
// the caller names a fallback format.
//
//   chatml            <|im_start|>{role}\n{content}<|im_end|>\n ...   [<|im_start|>assistant\n]
//   llama2            [INST] {system}\n{user} [/INST]{assistant}</s>[INST] {user} [/INST]
//   llama2-sys        as llama2 with the system text in <<SYS>>\n...\n<</SYS>>\n\n
//   llama2-sys-bos    as llama2-sys with <s> before each [INST] after the first
//   llama2-sys-strip  as llama2-sys with each content trimmed (Meta's Llama-2-chat template)
//   zephyr            <|{role}|>\n{content}<|endoftext|>\n ...        [<|assistant|>\n]
//   tinyllama         <|{role}|>\n{content}{eos}\n ...                [<|assistant|>\n]
//   llama3            <|start_header_id|>{role}<|end_header_id|>\n\n{trimmed content}<|eot_id|>
//                     ...                     [<|start_header_id|>assistant<|end_header_id|>\n\n]
//   mistral-v1        ' [INST] ' {system}\n\n{user} ' [/INST]' ' ' {assistant}</s> ...
//   mistral-v3        '[INST] ' {system}\n\n{user} '[/INST]' ' ' {trimmed assistant}</s> ...
//   mistral-v3-tekken '[INST]' {system}\n\n{user} '[/INST]' {assistant}</s> ...
//   mistral-v7        '[SYSTEM_PROMPT] ' {system} '[/SYSTEM_PROMPT]' '[INST] ' {user} '[/INST]'
//                     ' ' {assistant}</s> ...
//   mistral-v7-tekken as mistral-v7 without the spaces after the opening tags and before replies
//   phi3              <|{role}|>\n{content}<|end|>\n ...                [<|assistant|>\n]
//   phi4              <|im_start|>{role}<|im_sep|>{content}<|im_end|> ...
//                                                        [<|im_start|>assistant<|im_sep|>]
//   falcon3           <|{role}|>\n{content}\n ...                       [<|assistant|>\n]
//   gemma             <start_of_turn>{user|model}\n{trimmed content}<end_of_turn>\n ...
//                     [<start_of_turn>model\n]; no system turn: the trimmed system texts,
//                     joined, open the next non-model turn followed by \n\n
//   deepseek          {system}### Instruction:\n{user}\n### Response:\n{assistant}\n<|EOT|>\n
//                     ...                                                  [### Response:\n]
//   deepseek2         {system}\n\nUser: {user}\n\nAssistant: {assistant}<｜end▁of▁sentence｜>
//                     ...                                                  [Assistant:]
//   deepseek3         {system}\n\n<｜User｜>{user}<｜Assistant｜>{assistant}<｜end▁of▁sentence｜>
//                     ...                                                  [<｜Assistant｜>]
//   smolvlm           <|im_start|>{system}\n\nUser: {user}<end_of_utterance>\nAssistant:
//                     {assistant}<end_of_utterance>\n ...                 [Assistant:]
// (deepseek, deepseek2 and deepseek3 leave out a message of any other role.)
//
// Detection follows llama.cpp's rule order: its first matching rule decides, and when that rule
// names a format we do not render (vicuna, command-r, ...) the text is refused rather than
// matched by a later rule.
//
// Every format but tinyllama gives exactly llama.cpp's llama_chat_apply_template output (checked
// live over all names and shipped templates by tests/oracle/test_chat_vs_llama.cpp, detection
// against llama.cpp's own llm_chat_detect_template too). Like llama.cpp's, these are fixed
// layouts, not the Jinja: e.g. Phi-4-mini's Jinja puts no newline after <|role|>, llama.cpp's
// phi3 (which it detects for it) does, and so do we. tinyllama
// is the Zephyr template written with `eos_token` (TinyLlama-1.1B-Chat, zephyr-7b-beta): rendered
// by Jinja it gives `<|user|>\n...</s>\n`. llama.cpp's substring detection files that Jinja text
// under "glmedge" (which drops the </s>), so for it we follow the Jinja rendering, not llama.cpp.
// The llama2 formats, like llama.cpp's, ignore add_generation_prompt (the prompt already ends with
// [/INST]) and leave out the first <s>, which the tokenizer adds as BOS; so do the mistral ones.
// A llama.cpp template name that is not listed here is refused, never rendered as another format.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"  // ChatTemplateError

namespace edgellm {

enum class ChatFormat {
  ChatML,
  Llama2,
  Llama2Sys,
  Llama2SysBos,
  Llama2SysStrip,
  Zephyr,
  TinyLlama,
  Llama3,
  MistralV1,
  MistralV3,
  MistralV3Tekken,
  MistralV7,
  MistralV7Tekken,
  Phi3,
  Phi4,
  Falcon3,
  Gemma,
  DeepSeek,
  DeepSeek2,
  DeepSeek3,
  SmolVLM,
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (chatml, phi3, llama3, ...: any role)
  std::string content;
};

std::string_view chat_format_name(ChatFormat f);               // "chatml", "llama2", ...
std::optional<ChatFormat> chat_format_from_name(std::string_view name);
std::vector<std::string_view> chat_format_names();             // every name, in the table's order
// Recognizes a template's Jinja text; nullopt when it is none of ours.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja);

// `tmpl`: a format name or a template's Jinja text. When it is neither and `fallback` names a
// format, that format; else ChatTemplateError (which says what was seen and what is supported).
ChatFormat resolve_chat_format(std::string_view tmpl, std::string_view fallback = {});

// Formats the messages. add_generation_prompt: end with the start of the assistant's turn.
// eos_text: the model's EOS token text, used by tinyllama (the `eos_token` of the Jinja).
std::string apply_chat_template(ChatFormat format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt, std::string_view eos_text = "</s>");

}  // namespace edgellm
