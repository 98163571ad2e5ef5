// edgellm-synth: writes a synthetic GGUF (seeded random weights) of any architecture the engine
// runs, for tests and benchmarks. See edgellm/synth.hpp for what the weights, tensors, keys and
// type mixes are.
//
//   edgellm-synth -o tinyllama-q4_k_m.gguf --vocab ggml-vocab-llama-spm.gguf   # TinyLlama shape
//   edgellm-synth -o tiny.gguf --tiny --type q8_0 --peaked
//   edgellm-synth -o qwen.gguf --shape qwen2.5-1.5b --type Q4_K_M             # F32, then quantized
//   edgellm-synth -o g3.gguf --tiny --arch gemma3 --layers 6
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <string>
#include <string_view>

#include "edgellm/synth.hpp"

namespace {

std::string joined(std::span<const std::string_view> names, const char* sep) {
  std::string s;
  for (std::string_view n : names) s += (s.empty() ? "" : sep) + std::string(n);
  return s;
}

// The file types, ten to a line, under the --type option.
std::string type_lines() {
  const auto types = edgellm::synth::file_type_names();
  std::string s;
  for (size_t i = 0; i < types.size(); i += 10)
    s += (i ? "\n                     " : "") + joined(types.subspan(i, std::min<size_t>(10, types.size() - i)), " ");
  return s;
}

void usage(FILE* f) {
  std::fprintf(f,
      "usage: edgellm-synth -o FILE [options]\n"
      "  -o FILE            output GGUF (required)\n"
      "  --shape NAME       a real model's shape (architecture, sizes, keys):\n"
      "                       tinyllama     llama, 22 layers, 2048 wide, 32/4 heads, FFN 5632,\n"
      "                                     vocab 32000, ctx 2048 (the default)\n"
      "                       tiny          llama, 2 layers, 256 wide, 4/2 heads, FFN 768, vocab 512,\n"
      "                                     ctx 512 (also --tiny)\n"
      "                       qwen2.5-1.5b  qwen2, 28 layers, 1536 wide, 12/2 heads of 128, FFN 8960,\n"
      "                                     vocab 151936, tied output, rope base 1e6, ctx 32768\n"
      "                       gemma-3-1b    gemma3, 26 layers, 1152 wide, 4/1 heads of 256, FFN 6912,\n"
      "                                     vocab 262144, tied, window 512 (5 local : 1 global),\n"
      "                                     rope base 1e6 global / 1e4 local, ctx 32768\n"
      "  --arch NAME        %s\n"
      "                     (the shape as that architecture, with its tensors and the keys real\n"
      "                     models of it carry; a preset's own architecture only)\n"
      "  --layers N  --embd N  --ff N  --heads N  --kv-heads N  --head-dim N  --vocab-size N\n"
      "  --ctx N  --rope-base F  --eps F\n"
      "  --tied             no output.weight (the LM head is token_embd)\n"
      "  --type T           file type, any case (default Q4_K_M, llama.cpp's recipe):\n"
      "                     %s\n"
      "                     = what edgellm-quantize T makes of the model's F32 file (written as\n"
      "                     FILE.f32.part, then removed; directly where that is the same file)\n"
      "  --vocab FILE       copy the tokenizer (all tokenizer.* keys) of this GGUF\n"
      "                     (default: a synthetic byte-fallback SentencePiece vocab of vocab-size)\n"
      "  --peaked           weights that make the next token nearly certain\n"
      "  --seed N           random seed (default 1)\n"
      "  -t N               threads (default: physical cores)\n"
      "  --name S           general.name\n",
      joined(edgellm::synth::architectures(), " | ").c_str(),
      type_lines().c_str());
}

bool parse_long(const char* s, long lo, long hi, long& v) {
  char* end = nullptr;
  v = std::strtol(s, &end, 10);
  return *s && *end == '\0' && v >= lo && v <= hi;
}

}  // namespace

int main(int argc, char** argv) {
  namespace synth = edgellm::synth;
  synth::Options o;
  std::string out;
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "edgellm-synth: %s\n", msg.c_str());
    return 2;
  };
  // The base shape (--shape / --tiny) and the architecture are applied first, so explicit sizes
  // override them in any order.
  std::string preset = "tinyllama", arch;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tiny") preset = "tiny";
    if ((a == "--shape" || a == "--arch") && i + 1 < argc) (a == "--shape" ? preset : arch) = argv[++i];
  }
  const auto base = synth::preset_shape(preset);
  if (!base) return fail("unknown shape '" + preset + "' (one of " + joined(synth::preset_names(), ", ") + ")");
  o.shape = *base;
  if (!arch.empty()) {
    const auto& archs = synth::architectures();
    if (std::find(archs.begin(), archs.end(), arch) == archs.end())
      return fail("unknown architecture '" + arch + "' (one of " + joined(archs, ", ") + ")");
    if (o.shape.arch != "llama" && o.shape.arch != arch)
      return fail("shape " + preset + " is a " + o.shape.arch + " model, not " + arch);
    o.shape = synth::with_arch(o.shape, arch);
  }

  struct { int* dst; const char* flag; } const ints[] = {
      {&o.shape.n_layers, "--layers"}, {&o.shape.n_embd, "--embd"}, {&o.shape.n_ff, "--ff"},
      {&o.shape.n_heads, "--heads"}, {&o.shape.n_kv_heads, "--kv-heads"},
      {&o.shape.head_dim, "--head-dim"}, {&o.shape.n_vocab, "--vocab-size"},
      {&o.shape.n_ctx, "--ctx"}, {&o.n_threads, "-t"}};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") { usage(stdout); return 0; }
    if (a == "--tiny") continue;
    if (a == "--peaked") { o.peaked = true; continue; }
    if (a == "--tied") { o.shape.tied_output = true; continue; }
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
    if (known || a == "--shape" || a == "--arch") {
    } else if (a == "-o") {
      out = v;
    } else if (a == "--type") {
      std::string t = v;
      for (char& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      const auto& types = synth::file_type_names();
      if (std::find(types.begin(), types.end(), t) == types.end())
        return fail(std::string("unknown type '") + v + "' (one of " + joined(types, " ") + ")");
      o.file_type = t;
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
    const auto s = synth::write_model(out, o);
    const synth::Shape& sh = o.shape;
    const int head_dim = sh.head_dim > 0 ? sh.head_dim : sh.n_embd / sh.n_heads;
    std::printf("%s: %s, %d layers, %d wide, FFN %d, %d/%d heads of %d, vocab %d%s, %s%s\n", out.c_str(),
                sh.arch.c_str(), sh.n_layers, sh.n_embd, sh.n_ff, sh.n_heads, sh.n_kv_heads, head_dim,
                s.n_vocab, sh.tied_output ? " (tied output)" : "",
                o.file_type.empty() ? std::string(synth::weight_type_name(o.type)).c_str() : o.file_type.c_str(),
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
