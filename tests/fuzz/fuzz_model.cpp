// libFuzzer entry point for what a hostile file reaches after parsing: the model binding
// (hyperparameters against tensor shapes and types, every weight view touched at both ends), the
// tokenizer built from the metadata (a fixed text encoded, decoded and streamed back), and the
// chat template (resolved and rendered). Expected refusals are edgellm::Error and gguf::GgufError;
// anything else (another exception, a crash, a sanitizer report, a message with a raw control
// byte from the file) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat_template.hpp"
#include "edgellm/gguf.hpp"
#include "error.hpp"
#include "model.hpp"
#include "tokenizer.hpp"

namespace gguf = edgellm::gguf;
using edgellm::engine::Model;

namespace {

volatile uint64_t g_sink;

// First and last byte of a view: ASan reports a view that leaves the input.
void touch(const void* p, size_t n) {
  if (!p || n == 0) return;
  const auto* b = static_cast<const uint8_t*>(p);
  g_sink = g_sink + b[0] + b[n - 1];
}

void touch(const edgellm::kernels::WeightMatrix& w) {
  if (w.rows <= 0 || w.cols <= 0) __builtin_trap();
  touch(w.data, w.row_bytes * size_t(w.rows));
}

// An error message may quote the file, but only escaped (no ESC or other control byte).
void check_message(const char* what) {
  for (const char* p = what; *p; ++p)
    if (static_cast<unsigned char>(*p) < 0x20 && *p != '\n') __builtin_trap();
}

void bind_model(std::span<const uint8_t> bytes) {
  try {
    Model m(gguf::File::parse(bytes));
    const auto& hp = m.hparams();
    const size_t n_embd = size_t(hp.n_embd);
    touch(m.token_embd());
    touch(m.output());
    touch(m.output_norm(), n_embd * 4);
    for (int i = 0; i < hp.n_layer; ++i) {
      const auto& L = m.layer(i);
      touch(L.attn_norm, n_embd * 4);
      touch(L.ffn_norm, n_embd * 4);
      for (const auto* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) touch(*w);
    }
    if (m.rope_freqs()) touch(m.rope_freqs(), size_t(hp.n_rot / 2) * 4);
  } catch (const edgellm::Error& e) {
    check_message(e.what());
  } catch (const gguf::GgufError& e) {
    check_message(e.what());
  }
}

void tokenize_and_chat(std::span<const uint8_t> bytes) {
  static const std::string kText = "Hello world! <s> </s> <|im_end|> \xe2\x96\x81 caf\xc3\xa9 \xff\n\t  12345 'll";
  try {
    const gguf::File f = gguf::File::parse(bytes);
    const edgellm::Tokenizer tok = edgellm::Tokenizer::from_gguf(f);
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = tok.encode(kText, special, special);
      for (int32_t id : ids)
        if (id < 0 || id >= tok.n_vocab()) __builtin_trap();
      g_sink = g_sink + tok.decode(ids, special).size();
      edgellm::StreamDecoder stream(tok, special);
      for (int32_t id : ids) g_sink = g_sink + stream.push(id).size();
      g_sink = g_sink + stream.flush().size();
    }
    std::string tmpl;
    if (const gguf::Value* v = f.find("tokenizer.chat_template"))
      if (const auto* s = std::get_if<std::string>(&v->v)) tmpl = *s;
    edgellm::ChatFormat format = edgellm::ChatFormat::ChatML;
    try {
      format = edgellm::resolve_chat_format(tmpl);
    } catch (const edgellm::ChatTemplateError& e) {  // unknown template: render chatml anyway
      check_message(e.what());
    }
    const std::vector<edgellm::ChatMessage> messages = {
        {"system", "Be brief."}, {"user", kText}, {"assistant", "ok"}, {"user", "again"}};
    const std::string eos = tok.eos_id() >= 0 ? tok.token_text(tok.eos_id()) : std::string("</s>");
    g_sink = g_sink + edgellm::apply_chat_template(format, messages, true, eos).size();
  } catch (const edgellm::Error& e) {
    check_message(e.what());
  } catch (const gguf::GgufError& e) {
    check_message(e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  bind_model(bytes);
  tokenize_and_chat(bytes);
  return 0;
}
