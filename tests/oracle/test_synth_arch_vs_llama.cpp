// edgellm-synth --arch NAME (the program, run as a user runs it) against llama.cpp, live: for every
// architecture, its file in Q4_K_M (llama.cpp's recipe: written directly for llama, requantized
// by edgellm_quantize otherwise) and in Q8_0 loads in llama.cpp, and our logits (prefill and
// decode) are within llama.cpp's own spread (engine_compare.hpp). The benchmark presets too
// (qwen2.5-1.5b, gemma-3-1b), cut to one layer and a small vocabulary so the test stays short:
// their widths (1152 is not a multiple of 256: llama.cpp's Q4_K_M fallbacks) and head layouts
// (Gemma's 256-wide heads under a 1152-wide model) are the real ones.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "edgellm/edgellm.hpp"
#include "edgellm/gguf.hpp"
#include "edgellm/synth.hpp"
#include "engine_compare.hpp"
#include "oracle.hpp"

using namespace edgellm::oracle_compare;

namespace {

// Runs edgellm-synth with `args`; its output goes to `path`.
void synth_tool(const std::string& path, const std::string& args) {
  std::filesystem::create_directories(kTmp);
  const std::string log = path + ".log";
  const std::string cmd = std::string(EDGELLM_SYNTH_TOOL) + " -o " + path + " -t 2 " + args + " > " + log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream f(log);
  INFO(cmd << "\n" << std::string(std::istreambuf_iterator<char>(f), {}));
  REQUIRE(rc == 0);
  CHECK(!std::filesystem::exists(path + ".f32.part"));  // the requantized route's F32 file is gone
}

std::string unique(const std::string& name) { return kTmp + "/" + name + "." + std::to_string(::getpid()) + ".gguf"; }

// Enough layers for the layer pattern: gemma3's 5 local : 1 global, smollm3's no RoPE every 4th.
int layers_for(std::string_view arch) { return arch == "gemma3" ? 6 : arch == "smollm3" ? 4 : 2; }

}  // namespace

TEST_CASE("edgellm-synth --arch: every architecture in Q4_K_M and Q8_0 loads in llama.cpp, logits within its spread") {
  REQUIRE(edgellm::synth::architectures().size() == 7);
  for (std::string_view arch_view : edgellm::synth::architectures()) {
    const std::string arch(arch_view);
    const int n_layers = layers_for(arch);
    for (const char* type : {"Q4_K_M", "Q8_0"}) {
      const std::string name = arch + " " + type;
      INFO(name);
      const std::string path = unique("synth-tool-" + arch + "-" + type);
      synth_tool(path, "--tiny --arch " + arch + " --layers " + std::to_string(n_layers) + " --type " + type);
      {
        const auto f = edgellm::gguf::File::open(path);
        CHECK(f.get<std::string>("general.architecture") == arch);
        CHECK(f.get<uint32_t>(arch + ".block_count") == static_cast<uint32_t>(n_layers));
        CHECK(f.get<uint32_t>("general.file_type") == (std::string(type) == "Q8_0" ? 7u : 15u));
      }
      compare_file_with_llama(name, path);
      std::filesystem::remove(path);
    }
  }
}

TEST_CASE("edgellm-synth --shape qwen2.5-1.5b / gemma-3-1b (one layer, small vocab): Q4_K_M within llama.cpp's spread") {
  for (const char* preset : {"qwen2.5-1.5b", "gemma-3-1b"}) {
    INFO(preset);
    const std::string path = unique(std::string("synth-tool-") + preset);
    synth_tool(path, std::string("--shape ") + preset + " --layers 1 --vocab-size 512 --ctx 4096 --type q4_k_m");
    {
      edgellm::Model m(path);
      const bool gemma = std::string(preset) == "gemma-3-1b";
      CHECK(std::string(m.info().architecture) == (gemma ? "gemma3" : "qwen2"));
      CHECK(m.info().n_embd == (gemma ? 1152 : 1536));
      CHECK(m.info().n_head == (gemma ? 4 : 12));
      CHECK(m.info().head_dim == (gemma ? 256 : 128));
      const auto f = edgellm::gguf::File::open(path);
      CHECK(f.find_tensor("output.weight") == nullptr);  // both tied
      // The tied embedding takes output.weight's Q6_K (gemma's 1152-wide rows: llama.cpp's Q8_0).
      CHECK(f.find_tensor("token_embd.weight")->type == (gemma ? edgellm::DType::Q8_0 : edgellm::DType::Q6_K));
    }
    compare_file_with_llama(preset, path);
    std::filesystem::remove(path);
  }
}
