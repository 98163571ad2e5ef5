// edgellm-quantize: an F32 / F16 / BF16 GGUF requantized with llama.cpp's recipe for a file type
// (the library's edgellm_quantize; this is its command line). One line per tensor on stderr.
//
//   edgellm-quantize model-f16.gguf model-q4_k_m.gguf Q4_K_M
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "edgellm/edgellm.hpp"
#include "tool_common.hpp"

using edgellm::tools::Args;
using edgellm::tools::format_bytes;
using edgellm::tools::terminal_safe;
using edgellm::tools::UsageError;

namespace {

void usage(FILE* f) {
  std::fprintf(f,
      "usage: edgellm-quantize [-t N] IN.gguf OUT.gguf TYPE\n"
      "  Writes the F32 / F16 / BF16 model IN as OUT in file type TYPE, with llama.cpp's tensor\n"
      "  types for it (llama-quantize's recipe: more bits for output.weight and for attn_v /\n"
      "  ffn_down of some layers; a 32-element type where rows are not a multiple of 256).\n"
      "  No importance matrix (--imatrix) is supported: rows are quantized as llama-quantize\n"
      "  does without one. An already-quantized IN is refused.\n"
      "TYPE (any case):\n"
      "  Q4_K_M  Q4_K_S  Q5_K_M  Q5_K_S  Q3_K_M  Q3_K_S  Q3_K_L  Q2_K  Q6_K\n"
      "  Q8_0  Q4_0  Q4_1  Q5_0  Q5_1  IQ4_NL  IQ4_XS  F16\n"
      "options:\n"
      "  -t N   threads (default: the physical cores); the output does not depend on it\n"
      "  -h     this help\n");
}

std::string shape_of(const edgellm_quantize_progress& t) {
  std::string s = "[";
  for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> positional;
    int32_t n_threads = 0;
    Args a(argc, argv);
    while (a.more()) {
      const std::string opt = a.next();
      if (opt == "-h" || opt == "--help") {
        usage(stdout);
        return 0;
      }
      if (opt == "--imatrix")
        throw UsageError("--imatrix: importance matrices are not supported (rows are quantized as llama-quantize "
                         "does without one)");
      if (opt == "-t" || opt == "--threads") n_threads = static_cast<int32_t>(a.integer(opt, 0, 4096));
      else if (opt.size() > 1 && opt[0] == '-') throw UsageError("unknown option '" + opt + "' (see --help)");
      else positional.push_back(opt);
    }
    if (positional.size() != 3)
      throw UsageError("expected IN.gguf OUT.gguf TYPE, got " + std::to_string(positional.size()) +
                       " argument(s) (see --help)");
    const std::string &in = positional[0], &out = positional[1], &type = positional[2];

    uint64_t bytes_in = 0, bytes_out = 0, n_elements = 0;
    int n_fallback = 0;
    const auto t0 = std::chrono::steady_clock::now();
    edgellm::quantize(in, out, type, [&](const edgellm_quantize_progress& t) {
      bytes_in += t.bytes_in;
      bytes_out += t.bytes_out;
      uint64_t n = 1;
      for (int d = 0; d < t.n_dims; ++d) n *= static_cast<uint64_t>(t.ne[d]);
      n_elements += n;
      const std::string wanted = t.type_wanted;
      std::string note;
      if (wanted != t.type_out) {
        ++n_fallback;
        note = "  (rows of " + std::to_string(t.ne[0]) + " do not fit " + wanted + ")";
      }
      std::fprintf(stderr, "[%4d/%4d] %-36s %-14s %5s -> %-6s %10s -> %10s%s\n", t.index + 1, t.n_tensors,
                   terminal_safe(t.name).c_str(), shape_of(t).c_str(), t.type_in, t.type_out,
                   format_bytes(static_cast<double>(t.bytes_in)).c_str(),
                   format_bytes(static_cast<double>(t.bytes_out)).c_str(), note.c_str());
      return true;
    }, n_threads);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "%s: %s -> %s (%.2f bits per weight)", terminal_safe(out).c_str(),
                 format_bytes(static_cast<double>(bytes_in)).c_str(), format_bytes(static_cast<double>(bytes_out)).c_str(),
                 n_elements ? 8.0 * static_cast<double>(bytes_out) / static_cast<double>(n_elements) : 0.0);
    if (n_fallback) std::fprintf(stderr, ", %d tensor(s) in a fallback type", n_fallback);
    std::fprintf(stderr, ", %.2f s\n", seconds);
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "edgellm-quantize: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgellm-quantize: error: %s\n", terminal_safe(e.what()).c_str());
    return 1;
  }
}
