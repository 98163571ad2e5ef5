// edgellm-synth: writes a synthetic Llama GGUF (seeded random weights) for tests and benchmarks.
// See edgellm/synth.hpp for what the weights and type mixes are.
//
//   edgellm-synth -o tinyllama-q4_k_m.gguf --vocab ggml-vocab-llama-spm.gguf   # TinyLlama shape
//   edgellm-synth -o tiny.gguf --tiny --type q8_0 --peaked
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "edgellm/synth.hpp"

namespace {

void usage(FILE* f) {
  std::fprintf(f,
      "usage: edgellm-synth -o FILE [options]\n"
      "  -o FILE            output GGUF (required)\n"
      "  --tiny             tiny shape: 2 layers, 256 wide, 4/2 heads, FFN 768, vocab 512, ctx 512\n"
      "                     (default shape: TinyLlama-1.1B: 22 layers, 2048 wide, 32/4 heads,\n"
      "                     FFN 5632, vocab 32000, ctx 2048)\n"
      "  --layers N  --embd N  --ff N  --heads N  --kv-heads N  --vocab-size N  --ctx N\n"
      "  --rope-base F  --eps F\n"
      "  --type T           q4_k_m (llama.cpp's recipe, default) | q8_0 | q4_0 | f16 | bf16 | f32\n"
      "  --vocab FILE       copy the tokenizer (all tokenizer.* keys) of this GGUF\n"
      "                     (default: a synthetic byte-fallback SentencePiece vocab)\n"
      "  --peaked           weights that make the next token nearly certain\n"
      "  --seed N           random seed (default 1)\n"
      "  -t N               threads (default: physical cores)\n"
      "  --name S           general.name\n");
}

bool parse_long(const char* s, long lo, long hi, long& v) {
  char* end = nullptr;
  v = std::strtol(s, &end, 10);
  return *s && *end == '\0' && v >= lo && v <= hi;
}

}  // namespace

int main(int argc, char** argv) {
  edgellm::synth::Options o;
  std::string out;
  bool tiny = false;
  struct { int* dst; const char* flag; } const ints[] = {
      {&o.shape.n_layers, "--layers"}, {&o.shape.n_embd, "--embd"}, {&o.shape.n_ff, "--ff"},
      {&o.shape.n_heads, "--heads"}, {&o.shape.n_kv_heads, "--kv-heads"},
      {&o.shape.n_vocab, "--vocab-size"}, {&o.shape.n_ctx, "--ctx"}, {&o.n_threads, "-t"}};
  // The --tiny base shape is applied first, so explicit sizes override it in any order.
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--tiny") tiny = true;
  if (tiny) o.shape = edgellm::synth::tiny_shape();

  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") { usage(stdout); return 0; }
    if (a == "--tiny") continue;
    if (a == "--peaked") { o.peaked = true; continue; }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "edgellm-synth: %s: unknown option or missing value\n", a.c_str());
      usage(stderr);
      return 2;
    }
    const char* v = argv[++i];
    bool ok = true, known = false;
    for (const auto& opt : ints)
      if (a == opt.flag) {
        long x = 0;
        ok = parse_long(v, 0, 1L << 30, x);
        *opt.dst = static_cast<int>(x);
        known = true;
      }
    if (known) {
    } else if (a == "-o") {
      out = v;
    } else if (a == "--type") {
      const auto t = edgellm::synth::parse_weight_type(v);
      ok = t.has_value();
      if (t) o.type = *t;
    } else if (a == "--vocab") {
      o.vocab_gguf = v;
    } else if (a == "--seed") {
      char* end = nullptr;
      o.seed = std::strtoull(v, &end, 10);
      ok = *v && *end == '\0';
    } else if (a == "--rope-base" || a == "--eps") {
      char* end = nullptr;
      (a == "--eps" ? o.shape.rms_eps : o.shape.rope_base) = std::strtof(v, &end);
      ok = *v && *end == '\0';
    } else if (a == "--name") {
      o.name = v;
    } else {
      std::fprintf(stderr, "edgellm-synth: unknown option %s\n", a.c_str());
      usage(stderr);
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "edgellm-synth: bad value '%s' for %s\n", v, a.c_str());
      return 2;
    }
  }
  if (out.empty()) {
    std::fprintf(stderr, "edgellm-synth: -o FILE is required\n");
    usage(stderr);
    return 2;
  }

  try {
    const auto s = edgellm::synth::write_model(out, o);
    std::printf("%s: %d layers, %d wide, FFN %d, %d/%d heads, vocab %d, %s%s\n", out.c_str(),
                o.shape.n_layers, o.shape.n_embd, o.shape.n_ff, o.shape.n_heads,
                o.shape.n_kv_heads, s.n_vocab,
                std::string(edgellm::synth::weight_type_name(o.type)).c_str(),
                o.peaked ? ", peaked" : "");
    std::printf("%llu bytes (weights %.2f MiB, %llu parameters, %.2f bits per weight) in %.1f s\n",
                static_cast<unsigned long long>(s.file_bytes), s.weight_bytes / 1048576.0,
                static_cast<unsigned long long>(s.n_params), s.bits_per_weight, s.seconds);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgellm-synth: %s\n", e.what());
    return 1;
  }
}
