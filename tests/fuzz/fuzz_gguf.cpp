// libFuzzer entry point: parse the input as a GGUF image and touch everything the reader returns.
// Only GgufError may come out of the parser; anything else (a crash, a sanitizer report, another
// exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "edgellm/gguf.hpp"

namespace gguf = edgellm::gguf;

namespace {

volatile uint64_t g_sink;  // keeps the reads below from being optimized away

void walk(const gguf::Value& v) {
  g_sink = g_sink + uint64_t(v.type());
  if (const auto* a = std::get_if<gguf::Array>(&v.v)) {
    for (const gguf::Value& item : a->items) walk(item);
  } else if (const auto* s = std::get_if<std::string>(&v.v)) {
    if (!s->empty()) g_sink = g_sink + uint8_t(s->front()) + uint8_t(s->back());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const gguf::File f = gguf::File::parse({data, size});
    for (const gguf::KeyValue& kv : f.metadata()) {
      walk(kv.value);
      if (f.find(kv.key) != &kv.value) __builtin_trap();
      g_sink = g_sink + gguf::to_string(kv.value, 4).size();
    }
    for (const gguf::TensorInfo& t : f.tensors()) {
      if (f.find_tensor(t.name) != &t) __builtin_trap();
      // First and last byte of the view: ASan reports a view that leaves the input.
      g_sink = g_sink + t.data[0] + t.data[t.n_bytes - 1] + t.n_elements();
    }
    g_sink = g_sink + f.get_or<uint32_t>("general.alignment", 32);
    if (f.find("tokenizer.ggml.tokens")) g_sink = g_sink + f.get_array<std::string>("tokenizer.ggml.tokens").size();
  } catch (const gguf::GgufError&) {
  }
  return 0;
}
