// The whole forward pass on the Metal backend against the CPU backend: the same models, prompts
// and greedy continuations through Context, the C API and the command-line tools. In a test build
// (EDGELLM_METAL_EMULATOR) "metal" runs on the emulated GPU; on a Mac (EDGELLM_METAL,
// tools/metal-check.sh) on the real one.
//
// What each case makes run on the GPU: a prefill of more than kMaxMvTokens (8) rows takes the
// tiled matmul and the prefill attention kernels; decode steps take the mat-vec and the split-KV
// decode attention (more than one split past 64 positions); a prompt longer than n_batch is
// prefilled in chunks, so a tiled prefill also runs at pos0 > 0.
//
// Why the logits differ at all (bounds per case below, each a few times the measured maximum,
// relative to the spread max - min of the CPU's logits row):
// - the CPU multiplies quantized weights with activations it quantizes too (Q8_K for the K-quants,
//   Q8_0 for Q8_0 / Q4_0: 8-bit, a relative step of about 1/127 of each block's largest value) and
//   F16 weights with F16-rounded activations, while the GPU multiplies the dequantized weights
//   with the float activations themselves; the CPU's result is the approximation here;
// - F32 weights: both multiply floats, in another order (relative 1e-6 on each dot product);
// - attention: the GPU's split-KV softmax and its exp() differ from the CPU's in the last bits.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "context.hpp"
#include "edgellm/edgellm.h"
#include "edgellm/synth.hpp"
#include "error.hpp"
#include "metal/backend_metal.hpp"
#include "metal/shader_sources.hpp"
#include "model.hpp"
#if defined(EDGELLM_METAL_EMULATOR)
#include "emu_device.hpp"
#endif

namespace {

using namespace edgellm;
using namespace edgellm::engine;

const std::string kModels = EDGELLM_SHARED_MODELS;
const std::string kTmp = EDGELLM_TEST_TMP;
const std::string kStories = kModels + "/stories260K.gguf";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<int32_t> read_ids(const std::string& path) {
  std::ifstream f(path);
  std::vector<int32_t> ids;
  for (int32_t id; f >> id;) ids.push_back(id);
  return ids;
}

const Model& stories() {
  static Model m = Model::load(kStories);
  return m;
}

int argmax(const float* logits, int n) { return static_cast<int>(std::max_element(logits, logits + n) - logits); }

// max |a - ref| / (max(ref) - min(ref)) over one row of logits.
double rel_diff(const float* a, const float* ref, int n) {
  float lo = std::numeric_limits<float>::max(), hi = -lo;
  double d = 0;
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, ref[i]);
    hi = std::max(hi, ref[i]);
    d = std::max(d, std::fabs(double(a[i]) - double(ref[i])));
  }
  return hi > lo ? d / double(hi - lo) : d;
}

struct Measured {
  double prefill = 0;  // largest relative difference over the prompt's logits rows
  double decode = 0;   // ... over the decode steps
  std::vector<int32_t> generated;  // the CPU's greedy tokens (the Metal ones are checked equal)
};

// The prompt, then n_gen greedy steps, on a CPU and a Metal context of the same options. Every
// step's argmax must agree; both are fed the CPU's token so the logits stay comparable.
Measured compare(const Model& model, const std::vector<int32_t>& prompt, int n_gen, ContextOptions o, double bound) {
  o.backend = "cpu";
  Context cpu(model, o);
  o.backend = "metal";
  Context gpu(model, o);
  REQUIRE(gpu.backend().name() == "metal");
  const int V = model.hparams().n_vocab;
  Measured m;
  cpu.eval(prompt);
  gpu.eval(prompt);
  REQUIRE(gpu.n_logits() == cpu.n_logits());
  const int first = static_cast<int>(prompt.size()) - cpu.n_logits();
  for (int i = first; i < static_cast<int>(prompt.size()); ++i) {
    INFO("prompt row " << i);
    REQUIRE(cpu.logits(i));
    REQUIRE(gpu.logits(i));
    m.prefill = std::max(m.prefill, rel_diff(gpu.logits(i), cpu.logits(i), V));
    CHECK(argmax(gpu.logits(i), V) == argmax(cpu.logits(i), V));
  }
  CHECK(m.prefill <= bound);
  for (int step = 0; step < n_gen; ++step) {
    INFO("decode step " << step << " at position " << cpu.n_past());
    const int t = argmax(cpu.logits(), V);
    CHECK(argmax(gpu.logits(), V) == t);
    m.generated.push_back(t);
    cpu.decode(t);
    gpu.decode(t);
    const double d = rel_diff(gpu.logits(), cpu.logits(), V);
    CHECK(d <= bound);
    m.decode = std::max(m.decode, d);
  }
  CHECK(gpu.n_past() == cpu.n_past());
  return m;
}

std::vector<int32_t> synthetic_prompt(int n, int n_vocab) {
  std::vector<int32_t> p{1};
  for (int i = 1; i < n; ++i) p.push_back((i * 97 + 5) % n_vocab);
  return p;
}

// A tiny synthetic model (synth::tiny_shape: 2 layers, 256 wide, 4 query / 2 KV heads of 64, FFN
// 768, vocab 512) of one type mix, peaked so that greedy continuations are well separated.
std::string synthetic(synth::WeightType type) {
  std::filesystem::create_directories(kTmp);
  const std::string path = kTmp + "/metal-forward-" + std::string(synth::weight_type_name(type)) + ".gguf";
  synth::Options so;
  so.shape = synth::tiny_shape();
  so.type = type;
  so.peaked = true;
  so.n_threads = 1;
  synth::write_model(path, so);
  return path;
}

}  // namespace

// Measured on the emulator (max over prefill and decode rows, relative to the logits' spread):
//   Q4_K_M 1.6e-3, Q8_0 1.1e-3, Q4_0 1.2e-3 (Q8_K / Q8_0 activations on the CPU), F16 4.8e-5
//   (F16 activations on the CPU). Bounds: 3-4 times these, far below what would move a greedy
//   token of these peaked models and far above float-order noise (1e-7), so a wrong block, row,
//   scale or position fails them.
TEST_CASE("metal forward: synthetic models of each weight type give the CPU's greedy tokens and logits",
          "[metal][forward]") {
  struct Case {
    synth::WeightType type;
    double bound;
  };
  for (const Case& c : {Case{synth::WeightType::Q4_K_M, 5e-3}, Case{synth::WeightType::Q8_0, 5e-3},
                        Case{synth::WeightType::Q4_0, 5e-3}, Case{synth::WeightType::F16, 2e-4}}) {
    const std::string path = synthetic(c.type);
    INFO("model " << path);
    const Model model = Model::load(path);
    const int V = model.hparams().n_vocab;
    ContextOptions o;
    o.n_ctx = 48;
    o.n_threads = 1;
    // 12 prompt rows: the tiled matmul and prefill attention; 16 decode steps: mat-vec and
    // split-KV decode.
    const Measured whole = compare(model, synthetic_prompt(12, V), 16, o, c.bound);
    // 20 rows in chunks of 9, 9 and 2, every row's logits kept: tiled prefill at pos0 9, then a
    // mat-vec prefill at pos0 18, and lm_head over several rows.
    o.n_batch = 9;
    o.logits_all = true;
    const Measured chunked = compare(model, synthetic_prompt(20, V), 4, o, c.bound);
    INFO("measured: prefill " << whole.prefill << " / " << chunked.prefill << ", decode " << whole.decode << " / "
                              << chunked.decode);
    CHECK(std::max({whole.prefill, whole.decode, chunked.prefill, chunked.decode}) > 0);  // two computations
  }
}

// stories260K: F32 weights (both backends multiply floats), head_dim 8, FFN 172 (no multiple of
// 32), GQA 2:1. The greedy tokens are also the float64 reference's. Measured: 3.6e-7 with an F32
// cache (the order of float sums); 2.2e-4 with an F16 one, where an activation 1e-7 off on one
// side now and then rounds to the neighbouring half (2^-11 relative), which 8-dimensional heads
// pass on to the logits almost undamped. Bounds: 5 times these.
TEST_CASE("metal forward: stories260K gives the reference greedy tokens and the CPU's logits", "[metal][forward]") {
  const std::vector<int32_t> ref = read_ids(kModels + "/stories260K.greedy-t0-200.ids");
  REQUIRE(ref.size() == 200);
  std::vector<int32_t> prompt{1};
  prompt.insert(prompt.end(), ref.begin(), ref.begin() + 69);  // 70 rows
  for (KvType kv : {KvType::F16, KvType::F32}) {
    INFO("KV " << (kv == KvType::F16 ? "f16" : "f32"));
    ContextOptions o;
    o.n_ctx = 128;
    o.n_threads = 1;
    o.kv_type = kv;
    // Decode at positions 70 .. 93: three K blocks, two splits of the decode attention.
    const Measured m = compare(stories(), prompt, 24, o, kv == KvType::F16 ? 1e-3 : 2e-6);
    CHECK(m.generated == std::vector<int32_t>(ref.begin() + 69, ref.begin() + 93));
  }
  // The same prompt in chunks of 16: tiled prefill at pos0 16, 32 and 48, then 6 rows at 64.
  ContextOptions o;
  o.n_ctx = 96;
  o.n_threads = 1;
  o.n_batch = 16;
  const Measured m = compare(stories(), prompt, 8, o, 1e-3);
  CHECK(m.generated == std::vector<int32_t>(ref.begin() + 69, ref.begin() + 77));
}

TEST_CASE("metal: a model with a weight type the kernels do not read is refused, naming the tensor",
          "[metal][forward]") {
  const Model model = Model::load(synthetic(synth::WeightType::BF16));
  ContextOptions o;
  o.n_ctx = 16;
  o.backend = "metal";
  try {
    Context ctx(model, o);
    FAIL("a BF16 model was accepted by the Metal backend");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Unsupported);
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("metal: tensor token_embd.weight is bf16") != std::string::npos);
    CHECK(what.find("use backend \"cpu\"") != std::string::npos);
  }
  o.backend = "auto";  // never the emulator, and on a Mac it falls back to the CPU for this model
  Context ctx(model, o);
  CHECK(ctx.backend().name() == "cpu");
}

// The backend's own bookkeeping, below Context: weights found by their host address in the
// mapping, on both ways map_weights takes one (a page-aligned mapping wrapped in place, a buffer
// starting mid-page copied), through embed, matmul and lm_head (F32: the GPU's float products
// against a double reference, relative 1e-5).
TEST_CASE("metal backend: weights are found in the mapping by address; addresses outside are refused",
          "[metal][forward]") {
  constexpr int kRows = 32, kVocab = 8, kTokens = 2;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t bytes = 4 * page;
  std::unique_ptr<uint8_t, decltype(&std::free)> storage(static_cast<uint8_t*>(std::aligned_alloc(page, bytes + page)),
                                                         &std::free);
  REQUIRE(storage);
  for (size_t start : {size_t{0}, size_t{48}}) {  // wrapped, then copied
    INFO("mapping at page offset " << start);
    uint8_t* base = storage.get() + start;
    std::memset(base, 0, bytes);
    auto* table = reinterpret_cast<float*>(base + 256);     // [kVocab][kRows] embedding table
    auto* w1 = reinterpret_cast<float*>(base + 2048);       // [kRows][kRows]
    auto* w2 = reinterpret_cast<float*>(base + 2 * page + 96);  // [kVocab][kRows] output
    for (int i = 0; i < kVocab * kRows; ++i) table[i] = float((i * 37) % 19) / 7.0f - 1.0f;
    for (int i = 0; i < kRows * kRows; ++i) w1[i] = float((i * 53) % 23) / 11.0f - 1.0f;
    for (int i = 0; i < kVocab * kRows; ++i) w2[i] = float((i * 29) % 17) / 8.0f - 1.0f;
    const kernels::WeightMatrix embd{DType::F32, table, kVocab, kRows, kRows * sizeof(float)};
    const kernels::WeightMatrix wq{DType::F32, w1, kRows, kRows, kRows * sizeof(float)};
    const kernels::WeightMatrix out{DType::F32, w2, kVocab, kRows, kRows * sizeof(float)};

    MetalBackend be(BackendOptions{});
    be.map_weights(base, bytes);
    ActShapes shapes;
    shapes.rows = kTokens;
    std::fill(std::begin(shapes.width), std::end(shapes.width), int64_t{kRows});
    be.alloc_activations(shapes);
    be.alloc_kv(KvLayout{1, 32, 1, kRows, KvType::F16});
    be.set_rope(0, {});
    const int32_t tokens[kTokens] = {5, 2};
    float logits[kTokens * kVocab];
    be.begin(kTokens, 0);
    be.embed(embd, tokens, ActBuf::x);
    const MatmulTo q[] = {{&wq, ActBuf::q}};
    be.matmul(ActBuf::x, 0, kTokens, q);
    be.lm_head(out, ActBuf::q, 0, kTokens, logits);
    be.finish();
    for (int t = 0; t < kTokens; ++t) {
      double h[kRows];
      for (int r = 0; r < kRows; ++r) {
        h[r] = 0;
        for (int c = 0; c < kRows; ++c) h[r] += double(w1[r * kRows + c]) * table[tokens[t] * kRows + c];
      }
      for (int v = 0; v < kVocab; ++v) {
        double y = 0;
        for (int c = 0; c < kRows; ++c) y += double(w2[v * kRows + c]) * h[c];
        CHECK(std::fabs(logits[t * kVocab + v] - y) <= 1e-5 * (1 + std::fabs(y)));
      }
    }

    // A matrix reaching past the mapping's end, and a norm vector outside it, in a step that has
    // recorded a dispatch already.
    be.begin(1, 0);
    be.embed(embd, tokens, ActBuf::x);
    const kernels::WeightMatrix past{DType::F32, base + bytes - 8 * sizeof(float), kRows, kRows, kRows * sizeof(float)};
    const MatmulTo bad[] = {{&past, ActBuf::q}};
    try {
      be.matmul(ActBuf::x, 0, 1, bad);
      FAIL("a weight past the mapping was accepted");
    } catch (const Error& e) {
      CHECK(e.kind() == Error::Kind::InvalidArgument);
      CHECK(std::string(e.what()).find("not inside") != std::string::npos);
    }
    const std::vector<float> outside(kRows, 1.0f);
    CHECK_THROWS_AS(be.rms_norm(ActBuf::x, 0, 1, outside.data(), 1e-5f, ActBuf::xb), Error);
    // The failed step is run out by the next begin(); the backend goes on giving right results.
    be.begin(kTokens, 0);
    be.embed(embd, tokens, ActBuf::x);
    be.matmul(ActBuf::x, 0, kTokens, q);
    float again[kTokens * kVocab];
    be.lm_head(out, ActBuf::q, 0, kTokens, again);
    be.finish();
    CHECK(std::memcmp(again, logits, sizeof logits) == 0);
  }
}

#if defined(EDGELLM_METAL_EMULATOR)
TEST_CASE("metal backend: a device whose SIMD-groups are not 32 wide is refused", "[metal][forward]") {
  metal_emu::Options eo;
  eo.simd_width = 64;
  try {
    MetalBackend be(BackendOptions{}, metal_emu::make_emulated_device(eo));
    FAIL("a 64-wide device was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Unsupported);
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("SIMD-groups of 64 threads") != std::string::npos);
    CHECK(what.find("need 32") != std::string::npos);
  }
  // The same device at 32 lanes is taken.
  metal_emu::Options ok;
  MetalBackend be(BackendOptions{}, metal_emu::make_emulated_device(ok));
  CHECK(be.name() == "metal");
}
#endif

TEST_CASE("metal: the C API with params.backend = \"metal\" gives the reference greedy tokens", "[metal][forward]") {
  const std::vector<int32_t> ref = read_ids(kModels + "/stories260K.greedy-t0-200.ids");
  REQUIRE(ref.size() == 200);
  edgellm_model* m = nullptr;
  REQUIRE(edgellm_model_load(kStories.c_str(), nullptr, &m) == EDGELLM_OK);
  edgellm_context_params cp = edgellm_context_default_params();
  cp.n_ctx = 32;
  cp.n_threads = 1;
  cp.backend = "metal";
  edgellm_context* c = nullptr;
  REQUIRE(edgellm_context_create(m, &cp, &c) == EDGELLM_OK);
  CHECK(std::string(edgellm_backend_name(c)) == "metal");
  edgellm_token t = 1;
  std::vector<int32_t> got;
  for (int i = 0; i < 16; ++i) {
    REQUIRE(edgellm_eval(c, &t, 1) == EDGELLM_OK);
    const float* logits = edgellm_get_logits(c);
    REQUIRE(logits);
    t = argmax(logits, 512);
    got.push_back(t);
  }
  CHECK(got == std::vector<int32_t>(ref.begin(), ref.begin() + 16));
  edgellm_context_free(c);
  edgellm_model_free(m);
}

// ---- the tools, as a user runs them ---------------------------------------------------------------

namespace {

struct Run {
  int rc = -1;
  std::string out, err;
};

// bin/<tool> with the arguments (single-quoted for the shell), stdin from /dev/null.
Run run_tool(const std::string& tool, const std::vector<std::string>& args) {
  static int n = 0;
  const std::string base = kTmp + "/metal-tools-" + std::to_string(getpid()) + "-" + std::to_string(++n);
  auto quoted = [](const std::string& s) {
    std::string q = " '";
    for (char c : s) {
      if (c == '\'') q += "'\\''";
      else q += c;
    }
    return q + "'";
  };
  std::string cmd = quoted(std::string(EDGELLM_BIN_DIR) + "/" + tool);
  for (const auto& a : args) cmd += quoted(a);
  cmd += " </dev/null >" + quoted(base + ".out") + " 2>" + quoted(base + ".err");
  Run r;
  const int status = std::system(cmd.c_str());
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  return r;
}

}  // namespace

TEST_CASE("metal: edgellm-cli --backend metal writes the CPU's greedy text; bench reports Metal", "[metal][forward]") {
  std::filesystem::create_directories(kTmp);
  auto cli = [](const char* backend) {
    return run_tool("edgellm-cli", {"-m", kStories, "-p", "Once upon a time", "-n", "32", "--temp", "0", "-t", "1",
                                    "-c", "64", "--backend", backend});
  };
  const Run cpu = cli("cpu"), gpu = cli("metal");
  INFO("cpu stderr: " << cpu.err << "\nmetal stderr: " << gpu.err);
  REQUIRE(cpu.rc == 0);
  REQUIRE(gpu.rc == 0);
  CHECK(cpu.out.size() > std::string("Once upon a time").size() + 32);  // the prompt and 32 tokens of text
  CHECK(gpu.out == cpu.out);

  const Run bad = cli("vulkan");
  CHECK(bad.rc == 1);
  CHECK(bad.err.find("unknown backend 'vulkan'") != std::string::npos);

  const Run bench = run_tool("edgellm-bench", {"-m", kStories, "-p", "12", "-n", "4", "-t", "1", "-r", "1", "--backend",
                                               "metal", "-o", "json"});
  INFO("bench stderr: " << bench.err);
  REQUIRE(bench.rc == 0);
  CHECK(bench.out.find("\"backends\": \"Metal\"") != std::string::npos);
  CHECK(bench.out.find("\"n_prompt\": 12") != std::string::npos);
}

// ---- the kernels' source text the Apple device compiles (cmake/metal_shaders.cmake) ---------------

TEST_CASE("metal: the embedded kernel sources are every .metal file with its local headers inlined once",
          "[metal][forward]") {
  namespace fs = std::filesystem;
  using engine::metal::kShaderSourceCount;
  using engine::metal::kShaderSources;
  const fs::path dir = fs::path(EDGELLM_SOURCE_DIR) / "engine" / "src" / "metal" / "shaders";
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".metal") files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  REQUIRE(kShaderSourceCount == static_cast<int>(files.size()));
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  for (int i = 0; i < kShaderSourceCount; ++i) {
    const std::string file = kShaderSources[i].file, text = kShaderSources[i].text;
    INFO(file);
    CHECK(file == files[static_cast<size_t>(i)]);
    const std::string original = slurp((dir / file).string());
    CHECK(text.find("#include \"") == std::string::npos);
    CHECK(text.find("#pragma once") == std::string::npos);
    CHECK(count(text, "#include <metal_stdlib>") >= 1);
    CHECK(count(text, "struct MatmulArgs {") == 1);  // args.h, once
    const bool blocks = original.find("block_formats.h") != std::string::npos ||
                        original.find("dequant.h") != std::string::npos;
    CHECK(count(text, "struct block_q4_K {") == (blocks ? 1u : 0u));
    // The file's own lines, in order, all there (the includes replaced by the headers' text).
    std::istringstream lines(original);
    size_t at = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("#include \"", 0) == 0 || line.empty()) continue;
      const size_t found = text.find(line, at);
      INFO("line: " << line);
      REQUIRE(found != std::string::npos);
      at = found + line.size();
    }
    // And every kernel it defines.
    size_t kernels = 0;
    const std::string head = "kernel void ";
    for (size_t k = original.find(head); k != std::string::npos; k = original.find(head, k + 1), ++kernels) {
      size_t end = k + head.size();
      while (end < original.size() && (std::isalnum(static_cast<unsigned char>(original[end])) || original[end] == '_'))
        ++end;
      CHECK(text.find(original.substr(k, end - k) + "(") != std::string::npos);
    }
    CHECK(kernels > 0);
  }
}

