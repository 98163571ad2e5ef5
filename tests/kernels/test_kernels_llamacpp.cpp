// Our scalar references against llama.cpp's own code, run live from the pinned prebuilt libraries
// (tools/setup.sh installs them): dequantization, Q8_K / Q8_0 / Q8_1 activation quantization, the
// Q8_0 / Q4_0 / Q5_0 / Q5_1 / Q4_1 / IQ4_NL weight quantizers and the fp16 conversions must match
// bit for bit; our Q4_K / Q6_K / Q5_K / Q3_K / Q2_K / IQ4_XS weight quantizers must be as good
// (RMSE <= 1.01 x llama.cpp's on Gaussian data and on the real weights of stories260K); our dot
// products must agree with llama.cpp's within a stated bound. x86-64 only (dlopen of x86 .so).
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "block_samples.hpp"
#include "edgellm/kernels/ops.hpp"
#include "edgellm/kernels/quants.hpp"
#include "edgellm/rng.hpp"

using namespace edgellm::kernels;
using namespace edgellm::test;

namespace {

const std::string kBins =
    std::string(EDGELLM_ORACLE_DIR) + "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/";

// Signatures as declared in llama.cpp's ggml-quants.h, ggml.h, ggml-cpu.h and gguf.h.
using QuantizeFn = void (*)(const float*, void*, int64_t);
// ggml's per-type chunk quantizers (quantize_iq4_nl(src, dst, nrow, n_per_row, importance)):
// what llama_model_quantize calls for a tensor.
using QuantizeChunkFn = size_t (*)(const float*, void*, int64_t, int64_t, const float*);
using DequantizeFn = void (*)(const void*, float*, int64_t);
using VecDotFn = void (*)(int n, float* s, size_t bs, const void* x, size_t bx, const void* y,
                          size_t by, int nrc);
struct Bf16 {
  uint16_t bits;
};
struct GgufInitParams {
  bool no_alloc;
  void** ctx;
};
struct GgmlInitParams {
  size_t mem_size;
  void* mem_buffer;
  bool no_alloc;
};
using Tensor = void*;  // struct ggml_tensor*, only passed around (data via ggml_get_data)
constexpr int kGgmlF32 = 0, kGgmlI32 = 26;

// llama.cpp's functions, loaded once. Missing libraries are a failure, not a skip.
struct Llama {
  void* base = nullptr;
  void* cpu = nullptr;
  std::string cpu_name;
  std::string error;

  QuantizeFn quantize_q4_K = nullptr, quantize_q6_K = nullptr, quantize_q8_K = nullptr,
             quantize_q8_0 = nullptr, quantize_q4_0 = nullptr, quantize_q5_0 = nullptr,
             quantize_q5_1 = nullptr, quantize_q4_1 = nullptr, quantize_iq4_nl = nullptr,
             quantize_q5_K = nullptr, quantize_q3_K = nullptr, quantize_q2_K = nullptr,
             quantize_iq4_xs = nullptr;
  QuantizeChunkFn quantize_chunk_iq4_nl = nullptr;
  // The CPU backend's activation quantizers (not the refs).
  QuantizeFn quantize_q8_0_cpu = nullptr, quantize_q8_1_cpu = nullptr;
  DequantizeFn dequantize_q4_K = nullptr, dequantize_q6_K = nullptr, dequantize_q8_K = nullptr,
               dequantize_q8_0 = nullptr, dequantize_q4_0 = nullptr, dequantize_q5_0 = nullptr,
               dequantize_q5_1 = nullptr, dequantize_q4_1 = nullptr, dequantize_iq4_nl = nullptr,
               dequantize_q5_K = nullptr, dequantize_q3_K = nullptr, dequantize_q2_K = nullptr,
               dequantize_iq4_xs = nullptr;
  float (*fp16_to_fp32)(uint16_t) = nullptr;
  uint16_t (*fp32_to_fp16)(float) = nullptr;
  float (*bf16_to_fp32)(Bf16) = nullptr;
  Bf16 (*fp32_to_bf16)(float) = nullptr;
  VecDotFn dot_q4_K = nullptr, dot_q6_K = nullptr, dot_q8_0 = nullptr, dot_q4_0 = nullptr,
           dot_q5_0 = nullptr, dot_q5_1 = nullptr, dot_q4_1 = nullptr, dot_iq4_nl = nullptr,
           dot_q5_K = nullptr, dot_q3_K = nullptr, dot_q2_K = nullptr, dot_iq4_xs = nullptr;
  void* (*gguf_init_from_file)(const char*, GgufInitParams) = nullptr;
  void (*gguf_free)(void*) = nullptr;
  int64_t (*gguf_get_n_tensors)(const void*) = nullptr;
  const char* (*gguf_get_tensor_name)(const void*, int64_t) = nullptr;
  int (*gguf_get_tensor_type)(const void*, int64_t) = nullptr;
  size_t (*gguf_get_tensor_offset)(const void*, int64_t) = nullptr;
  size_t (*gguf_get_tensor_size)(const void*, int64_t) = nullptr;
  size_t (*gguf_get_data_offset)(const void*) = nullptr;
  // A few graph operations, to run ggml's own element-wise ops.
  void* (*ggml_init)(GgmlInitParams) = nullptr;
  void (*ggml_free)(void*) = nullptr;
  Tensor (*ggml_new_tensor_1d)(void*, int, int64_t) = nullptr;
  Tensor (*ggml_new_tensor_2d)(void*, int, int64_t, int64_t) = nullptr;
  Tensor (*ggml_new_tensor_3d)(void*, int, int64_t, int64_t, int64_t) = nullptr;
  void* (*ggml_get_data)(Tensor) = nullptr;
  Tensor (*ggml_rope_ext)(void*, Tensor, Tensor, Tensor, int, int, int, float, float, float, float,
                          float, float) = nullptr;
  Tensor (*ggml_rms_norm)(void*, Tensor, float) = nullptr;
  Tensor (*ggml_soft_max)(void*, Tensor) = nullptr;
  Tensor (*ggml_silu)(void*, Tensor) = nullptr;
  Tensor (*ggml_mul)(void*, Tensor, Tensor) = nullptr;
  void* (*ggml_new_graph)(void*) = nullptr;
  void (*ggml_build_forward_expand)(void*, Tensor) = nullptr;
  int (*ggml_graph_compute_with_ctx)(void*, void*, int) = nullptr;

  template <typename F>
  void load(void* lib, F& fn, const char* name) {
    fn = reinterpret_cast<F>(dlsym(lib, name));
    if (!fn) error += std::string("missing symbol ") + name + "; ";
  }

  Llama() {
    const std::string base_path = kBins + "libggml-base.so";
    base = dlopen(base_path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!base) {
      error = "cannot load " + base_path + " (" + dlerror() + "): run tools/setup.sh";
      return;
    }
    // The AVX2 build of ggml's CPU kernels when this CPU has AVX2/FMA/F16C, else the SSE2 one.
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    cpu_name = avx2 ? "libggml-cpu-haswell.so" : "libggml-cpu-x64.so";
    const std::string cpu_path = kBins + cpu_name;
    cpu = dlopen(cpu_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!cpu) {
      error = "cannot load " + cpu_path + " (" + dlerror() + "): run tools/setup.sh";
      return;
    }
    load(base, quantize_q4_K, "quantize_row_q4_K_ref");
    load(base, quantize_q6_K, "quantize_row_q6_K_ref");
    load(base, quantize_q8_K, "quantize_row_q8_K_ref");
    load(base, quantize_q8_0, "quantize_row_q8_0_ref");
    load(base, quantize_q4_0, "quantize_row_q4_0_ref");
    load(base, quantize_q5_0, "quantize_row_q5_0_ref");
    load(base, quantize_q5_1, "quantize_row_q5_1_ref");
    load(base, quantize_q4_1, "quantize_row_q4_1_ref");
    load(base, quantize_iq4_nl, "quantize_row_iq4_nl_ref");
    load(base, quantize_chunk_iq4_nl, "quantize_iq4_nl");
    load(base, quantize_q5_K, "quantize_row_q5_K_ref");
    load(base, quantize_q3_K, "quantize_row_q3_K_ref");
    load(base, quantize_q2_K, "quantize_row_q2_K_ref");
    load(base, quantize_iq4_xs, "quantize_row_iq4_xs_ref");
    load(base, dequantize_q4_K, "dequantize_row_q4_K");
    load(base, dequantize_q6_K, "dequantize_row_q6_K");
    load(base, dequantize_q8_K, "dequantize_row_q8_K");
    load(base, dequantize_q8_0, "dequantize_row_q8_0");
    load(base, dequantize_q4_0, "dequantize_row_q4_0");
    load(base, dequantize_q5_0, "dequantize_row_q5_0");
    load(base, dequantize_q5_1, "dequantize_row_q5_1");
    load(base, dequantize_q4_1, "dequantize_row_q4_1");
    load(base, dequantize_iq4_nl, "dequantize_row_iq4_nl");
    load(base, dequantize_q5_K, "dequantize_row_q5_K");
    load(base, dequantize_q3_K, "dequantize_row_q3_K");
    load(base, dequantize_q2_K, "dequantize_row_q2_K");
    load(base, dequantize_iq4_xs, "dequantize_row_iq4_xs");
    load(base, fp16_to_fp32, "ggml_fp16_to_fp32");
    load(base, fp32_to_fp16, "ggml_fp32_to_fp16");
    load(base, bf16_to_fp32, "ggml_bf16_to_fp32");
    load(base, fp32_to_bf16, "ggml_fp32_to_bf16");
    load(base, gguf_init_from_file, "gguf_init_from_file");
    load(base, gguf_free, "gguf_free");
    load(base, gguf_get_n_tensors, "gguf_get_n_tensors");
    load(base, gguf_get_tensor_name, "gguf_get_tensor_name");
    load(base, gguf_get_tensor_type, "gguf_get_tensor_type");
    load(base, gguf_get_tensor_offset, "gguf_get_tensor_offset");
    load(base, gguf_get_tensor_size, "gguf_get_tensor_size");
    load(base, gguf_get_data_offset, "gguf_get_data_offset");
    load(base, ggml_init, "ggml_init");
    load(base, ggml_free, "ggml_free");
    load(base, ggml_new_tensor_1d, "ggml_new_tensor_1d");
    load(base, ggml_new_tensor_2d, "ggml_new_tensor_2d");
    load(base, ggml_new_tensor_3d, "ggml_new_tensor_3d");
    load(base, ggml_get_data, "ggml_get_data");
    load(base, ggml_rope_ext, "ggml_rope_ext");
    load(base, ggml_rms_norm, "ggml_rms_norm");
    load(base, ggml_soft_max, "ggml_soft_max");
    load(base, ggml_silu, "ggml_silu");
    load(base, ggml_mul, "ggml_mul");
    load(base, ggml_new_graph, "ggml_new_graph");
    load(base, ggml_build_forward_expand, "ggml_build_forward_expand");
    load(cpu, ggml_graph_compute_with_ctx, "ggml_graph_compute_with_ctx");
    load(cpu, dot_q4_K, "ggml_vec_dot_q4_K_q8_K");
    load(cpu, dot_q6_K, "ggml_vec_dot_q6_K_q8_K");
    load(cpu, dot_q8_0, "ggml_vec_dot_q8_0_q8_0");
    load(cpu, dot_q4_0, "ggml_vec_dot_q4_0_q8_0");
    load(cpu, dot_q5_0, "ggml_vec_dot_q5_0_q8_0");
    load(cpu, dot_q5_1, "ggml_vec_dot_q5_1_q8_1");
    load(cpu, dot_q4_1, "ggml_vec_dot_q4_1_q8_1");
    load(cpu, dot_iq4_nl, "ggml_vec_dot_iq4_nl_q8_0");
    load(cpu, dot_q5_K, "ggml_vec_dot_q5_K_q8_K");
    load(cpu, dot_q3_K, "ggml_vec_dot_q3_K_q8_K");
    load(cpu, dot_q2_K, "ggml_vec_dot_q2_K_q8_K");
    load(cpu, dot_iq4_xs, "ggml_vec_dot_iq4_xs_q8_K");
    load(cpu, quantize_q8_0_cpu, "quantize_row_q8_0");
    load(cpu, quantize_q8_1_cpu, "quantize_row_q8_1");
    void (*cpu_init)() = nullptr;
    load(cpu, cpu_init, "ggml_cpu_init");  // fills the CPU library's conversion tables
    if (cpu_init) cpu_init();
  }
  // The libraries stay loaded until exit: ggml registers things at load time.
};

const Llama& llama() {
  static const Llama l;
  return l;
}

// Every test starts with this: a missing library or symbol fails the test with the reason.
const Llama& require_llama() {
  const Llama& l = llama();
  INFO(l.error);
  REQUIRE(l.error.empty());
  return l;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Index of the first float whose bits differ, or -1.
int64_t first_bit_difference(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (bits(a[i]) != bits(b[i])) return int64_t(i);
  }
  return -1;
}

template <typename Block>
void check_dequant_identical(const char* what, const std::vector<Block>& blocks, int qk,
                             void (*ours)(const Block*, float*, int64_t), DequantizeFn theirs) {
  const int64_t n = int64_t(blocks.size()) * qk;
  std::vector<float> a(size_t(n), 1.0f), b(size_t(n), 2.0f);
  ours(blocks.data(), a.data(), n);
  theirs(blocks.data(), b.data(), n);
  const int64_t i = first_bit_difference(a, b);
  INFO(what << ": " << blocks.size() << " blocks; first difference at element " << i
            << (i >= 0 ? " ours " + std::to_string(a[size_t(i)]) + " theirs " + std::to_string(b[size_t(i)]) : ""));
  REQUIRE(i == -1);
}

double sq_error(const std::vector<float>& x, const std::vector<float>& y) {
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
  return s;
}

// Squared errors of our and llama.cpp's K-quant quantizer on x (a multiple of 256 floats), and
// how many of the blocks came out byte-identical.
struct QuantizerScore {
  double ours = 0, theirs = 0;
  size_t blocks = 0, identical = 0;
};

template <typename Block>
QuantizerScore score_quantizer(const std::vector<float>& x,
                               void (*quantize)(const float*, Block*, int64_t),
                               void (*dequantize)(const Block*, float*, int64_t),
                               QuantizeFn their_quantize) {
  const int64_t n = int64_t(x.size());
  std::vector<Block> qa(x.size() / QK_K), qb(x.size() / QK_K);
  quantize(x.data(), qa.data(), n);
  their_quantize(x.data(), qb.data(), n);
  std::vector<float> ya(x.size()), yb(x.size());
  dequantize(qa.data(), ya.data(), n);
  dequantize(qb.data(), yb.data(), n);  // the dequantizers are bit-identical (tested above)
  QuantizerScore s;
  s.ours = sq_error(x, ya);
  s.theirs = sq_error(x, yb);
  s.blocks = qa.size();
  for (size_t i = 0; i < qa.size(); ++i) s.identical += std::memcmp(&qa[i], &qb[i], sizeof(Block)) == 0;
  return s;
}

void report_and_check(const std::string& what, const QuantizerScore& s, size_t n, bool print = true) {
  const double ours = std::sqrt(s.ours / double(n)), theirs = std::sqrt(s.theirs / double(n));
  if (print) std::printf("%-40s RMSE ours %.7g  llama.cpp %.7g  ratio %.6f  identical blocks %zu/%zu\n",
              what.c_str(), ours, theirs, theirs > 0 ? ours / theirs : 1.0, s.identical, s.blocks);
  INFO(what << ": RMSE ours " << ours << " llama.cpp " << theirs);
  CHECK(ours <= 1.01 * theirs + 1e-12);
}

// The F32 tensors of stories260K.gguf with at least 256 elements, each cut to a multiple of 256
// (K-quants need 256-element rows; the model's rows are 64 long, so a tensor's data is used as
// one long row). Read with llama.cpp's own GGUF reader.
std::vector<std::pair<std::string, std::vector<float>>> stories_weights(const Llama& l) {
  const std::string path = std::string(EDGELLM_SHARED_MODELS) + "/stories260K.gguf";
  std::vector<std::pair<std::string, std::vector<float>>> out;
  void* ctx = l.gguf_init_from_file(path.c_str(), GgufInitParams{true, nullptr});
  INFO("reading " << path);
  REQUIRE(ctx != nullptr);
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  const size_t data = l.gguf_get_data_offset(ctx);
  for (int64_t t = 0; t < l.gguf_get_n_tensors(ctx); ++t) {
    if (l.gguf_get_tensor_type(ctx, t) != 0) continue;  // GGML_TYPE_F32
    const size_t n = l.gguf_get_tensor_size(ctx, t) / 4 / QK_K * QK_K;
    if (n == 0) continue;
    std::vector<float> v(n);
    f.seekg(std::streamoff(data + l.gguf_get_tensor_offset(ctx, t)));
    f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 4));
    REQUIRE(f.good());
    out.emplace_back(l.gguf_get_tensor_name(ctx, t), std::move(v));
  }
  l.gguf_free(ctx);
  return out;
}

}  // namespace

TEST_CASE("llama.cpp's libraries load (else run tools/setup.sh)", "[oracle]") {
  const Llama& l = require_llama();
  std::printf("llama.cpp CPU library for the dot products: %s\n", l.cpu_name.c_str());
}

TEST_CASE("fp16 / bf16 conversions are bit-identical to ggml's", "[oracle]") {
  const Llama& l = require_llama();
  for (uint32_t h = 0; h < 65536; ++h) {
    INFO("half 0x" << std::hex << h);
    REQUIRE(bits(fp16_to_fp32(uint16_t(h))) == bits(l.fp16_to_fp32(uint16_t(h))));
    REQUIRE(bits(bf16_to_fp32(uint16_t(h))) == bits(l.bf16_to_fp32(Bf16{uint16_t(h)})));
  }
  Rng rng(21);
  for (int i = 0; i < 4000000; ++i) {
    // Random bit patterns (every exponent, NaNs included) and values near the fp16 range.
    uint32_t u = uint32_t(rng.next());
    if (i & 1) u = (u & 0x8FFFFFFF) | 0x30000000;  // exponents around 2^-31 .. 2^32
    float f;
    std::memcpy(&f, &u, 4);
    INFO("float bits 0x" << std::hex << u);
    REQUIRE(fp32_to_fp16(f) == l.fp32_to_fp16(f));
    REQUIRE(fp32_to_bf16(f) == l.fp32_to_bf16(f).bits);
  }
}

TEST_CASE("dequantization is bit-identical to llama.cpp's on random and edge blocks", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(22);
  check_dequant_identical("Q4_K random", random_q4_K(rng, 4096), QK_K, dequantize_row_q4_K_ref,
                          l.dequantize_q4_K);
  check_dequant_identical("Q4_K edge", edge_q4_K(), QK_K, dequantize_row_q4_K_ref, l.dequantize_q4_K);
  check_dequant_identical("Q6_K random", random_q6_K(rng, 4096), QK_K, dequantize_row_q6_K_ref,
                          l.dequantize_q6_K);
  check_dequant_identical("Q6_K edge", edge_q6_K(), QK_K, dequantize_row_q6_K_ref, l.dequantize_q6_K);
  check_dequant_identical("Q8_0 random", random_q8_0(rng, 32768), QK8_0, dequantize_row_q8_0_ref,
                          l.dequantize_q8_0);
  check_dequant_identical("Q8_0 edge", edge_q8_0(), QK8_0, dequantize_row_q8_0_ref, l.dequantize_q8_0);
  check_dequant_identical("Q4_0 random", random_q4_0(rng, 32768), QK4_0, dequantize_row_q4_0_ref,
                          l.dequantize_q4_0);
  check_dequant_identical("Q4_0 edge", edge_q4_0(), QK4_0, dequantize_row_q4_0_ref, l.dequantize_q4_0);
  check_dequant_identical("Q5_0 random", random_q5_0(rng, 32768), QK5_0, dequantize_row_q5_0_ref,
                          l.dequantize_q5_0);
  check_dequant_identical("Q5_0 edge", edge_q5_0(), QK5_0, dequantize_row_q5_0_ref, l.dequantize_q5_0);
  check_dequant_identical("Q5_1 random", random_q5_1(rng, 32768), QK5_1, dequantize_row_q5_1_ref,
                          l.dequantize_q5_1);
  check_dequant_identical("Q5_1 edge", edge_q5_1(), QK5_1, dequantize_row_q5_1_ref, l.dequantize_q5_1);
  check_dequant_identical("Q4_1 random", random_q4_1(rng, 32768), QK4_1, dequantize_row_q4_1_ref,
                          l.dequantize_q4_1);
  check_dequant_identical("Q4_1 edge", edge_q4_1(), QK4_1, dequantize_row_q4_1_ref, l.dequantize_q4_1);
  check_dequant_identical("IQ4_NL random", random_iq4_nl(rng, 32768), QK4_NL, dequantize_row_iq4_nl_ref,
                          l.dequantize_iq4_nl);
  check_dequant_identical("IQ4_NL edge", edge_iq4_nl(), QK4_NL, dequantize_row_iq4_nl_ref,
                          l.dequantize_iq4_nl);
  check_dequant_identical("Q5_K random", random_q5_K(rng, 4096), QK_K, dequantize_row_q5_K_ref,
                          l.dequantize_q5_K);
  check_dequant_identical("Q5_K edge", edge_q5_K(), QK_K, dequantize_row_q5_K_ref, l.dequantize_q5_K);
  check_dequant_identical("Q3_K random", random_q3_K(rng, 4096), QK_K, dequantize_row_q3_K_ref,
                          l.dequantize_q3_K);
  check_dequant_identical("Q3_K edge", edge_q3_K(), QK_K, dequantize_row_q3_K_ref, l.dequantize_q3_K);
  check_dequant_identical("Q2_K random", random_q2_K(rng, 4096), QK_K, dequantize_row_q2_K_ref,
                          l.dequantize_q2_K);
  check_dequant_identical("Q2_K edge", edge_q2_K(), QK_K, dequantize_row_q2_K_ref, l.dequantize_q2_K);
  check_dequant_identical("IQ4_XS random", random_iq4_xs(rng, 4096), QK_K, dequantize_row_iq4_xs_ref,
                          l.dequantize_iq4_xs);
  check_dequant_identical("IQ4_XS edge", edge_iq4_xs(), QK_K, dequantize_row_iq4_xs_ref,
                          l.dequantize_iq4_xs);
  // Q8_K: random bytes with a finite float d.
  auto q8k = random_blocks<block_q8_K>(rng, 1024, [&](block_q8_K& b) {
    b.d = fp16_to_fp32(random_finite_fp16(rng)) * 1e-3f;
  });
  check_dequant_identical("Q8_K random", q8k, QK_K, dequantize_row_q8_K_ref, l.dequantize_q8_K);
}

TEST_CASE("Q8_K, Q8_0 and Q4_0 quantization is bit-identical to llama.cpp's", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(23);
  std::vector<std::pair<std::string, std::vector<float>>> rows;
  // 1e-38: blocks whose scale is subnormal, where 1/d overflows (the quantizers' edge case)
  for (float sigma : {1.0f, 1e-3f, 30.0f, 1e4f, 1e-38f}) {
    rows.emplace_back("N(0, " + std::to_string(sigma) + "^2)", gaussian(rng, 256 * 64, sigma));
  }
  std::vector<float> heavy(256 * 64);  // heavy tails: occasional outliers, as in activations
  for (float& v : heavy) v = rng.normal() * (rng.uniform() < 0.01f ? 50.0f : 1.0f);
  rows.emplace_back("outliers", heavy);
  int k = 0;
  for (auto& r : edge_rows(512)) rows.emplace_back("edge row " + std::to_string(k++), r);

  for (const auto& [name, x] : rows) {
    INFO(name);
    const int64_t n = int64_t(x.size());
    // llama.cpp leaves bsums of an all-zero block unwritten: start both from zeros.
    std::vector<block_q8_K> a(x.size() / QK_K), b(x.size() / QK_K);
    std::memset(a.data(), 0, a.size() * sizeof(block_q8_K));
    std::memset(b.data(), 0, b.size() * sizeof(block_q8_K));
    quantize_row_q8_K_ref(x.data(), a.data(), n);
    l.quantize_q8_K(x.data(), b.data(), n);
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("Q8_K block " << i << " d ours " << a[i].d << " theirs " << b[i].d);
      REQUIRE(std::memcmp(&a[i], &b[i], sizeof(block_q8_K)) == 0);
    }
    std::vector<block_q8_0> c(x.size() / QK8_0), d(x.size() / QK8_0);
    quantize_row_q8_0_ref(x.data(), c.data(), n);
    l.quantize_q8_0(x.data(), d.data(), n);
    for (size_t i = 0; i < c.size(); ++i) {
      INFO("Q8_0 block " << i);
      REQUIRE(std::memcmp(&c[i], &d[i], sizeof(block_q8_0)) == 0);
    }
    std::vector<block_q4_0> e(x.size() / QK4_0), f(x.size() / QK4_0);
    quantize_row_q4_0_ref(x.data(), e.data(), n);
    l.quantize_q4_0(x.data(), f.data(), n);
    for (size_t i = 0; i < e.size(); ++i) {
      INFO("Q4_0 block " << i);
      REQUIRE(std::memcmp(&e[i], &f[i], sizeof(block_q4_0)) == 0);
    }
  }
}

// Q5_0 / Q5_1 weights: our quantizers give llama.cpp's bytes on every finite row, also where
// 1/d overflows (blocks of subnormal-sized values: d is 0 in fp16 and the quants are what
// llama.cpp's x86 build stores for its out-of-range conversions).
TEST_CASE("Q5_0, Q5_1, Q4_1 and IQ4_NL quantization is bit-identical to llama.cpp's", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(27);
  std::vector<std::pair<std::string, std::vector<float>>> rows;
  for (float sigma : {1.0f, 1e-3f, 30.0f, 1e4f, 1e-38f}) {
    char name[48];
    std::snprintf(name, sizeof name, "N(0, %g^2)", double(sigma));
    rows.emplace_back(name, gaussian(rng, 256 * 64, sigma));
  }
  std::vector<float> shifted = gaussian(rng, 256 * 64, 0.5f);  // Q5_1's min matters
  for (float& v : shifted) v += 2.0f;
  rows.emplace_back("N(2, 0.25)", shifted);
  int k = 0;
  for (auto& r : edge_rows(512)) rows.emplace_back("edge row " + std::to_string(k++), r);
  for (const auto& [name, x] : rows) {
    INFO(name);
    const int64_t n = int64_t(x.size());
    std::vector<block_q5_0> a(x.size() / QK5_0), b(a.size());
    quantize_row_q5_0_ref(x.data(), a.data(), n);
    l.quantize_q5_0(x.data(), b.data(), n);
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("Q5_0 block " << i);
      REQUIRE(std::memcmp(&a[i], &b[i], sizeof(block_q5_0)) == 0);
    }
    std::vector<block_q5_1> c(x.size() / QK5_1), d(c.size());
    quantize_row_q5_1_ref(x.data(), c.data(), n);
    l.quantize_q5_1(x.data(), d.data(), n);
    for (size_t i = 0; i < c.size(); ++i) {
      INFO("Q5_1 block " << i);
      REQUIRE(std::memcmp(&c[i], &d[i], sizeof(block_q5_1)) == 0);
    }
    std::vector<block_q4_1> e(x.size() / QK4_1), f(e.size());
    quantize_row_q4_1_ref(x.data(), e.data(), n);
    l.quantize_q4_1(x.data(), f.data(), n);
    for (size_t i = 0; i < e.size(); ++i) {
      INFO("Q4_1 block " << i);
      REQUIRE(std::memcmp(&e[i], &f[i], sizeof(block_q4_1)) == 0);
    }
    // IQ4_NL: llama.cpp leaves the quants of a block with amax < 1e-15 (d = 0) as whatever its
    // index scratch held; there only d is compared (both 0), elsewhere every byte.
    std::vector<block_iq4_nl> g(x.size() / QK4_NL), h(g.size());
    quantize_row_iq4_nl_ref(x.data(), g.data(), n);
    l.quantize_iq4_nl(x.data(), h.data(), n);
    for (size_t i = 0; i < g.size(); ++i) {
      INFO("IQ4_NL block " << i);
      float amax = 0.0f;
      for (int j = 0; j < QK4_NL; ++j) amax = std::max(amax, std::fabs(x[i * QK4_NL + j]));
      if (amax < 1e-15f) {
        REQUIRE(g[i].d == h[i].d);
        REQUIRE(fp16_to_fp32(g[i].d) == 0.0f);
      } else {
        REQUIRE(std::memcmp(&g[i], &h[i], sizeof(block_iq4_nl)) == 0);
      }
    }
  }
}

// What llama.cpp's CPU backend feeds a Q8_0/Q4_0 product is its own quantize_row_q8_0 (AVX2:
// 127 / amax, halves to even), not quantize_row_q8_0_ref; ours and every ISA's must equal it. The
// one allowed difference: a block with amax < 127 / FLT_MAX has d = 0 in both, and our q are 0
// where llama.cpp's overflowed multiplier gives -128 (d = 0 makes them irrelevant).
// What llama-quantize writes for IQ4_NL is not its quantize_row_iq4_nl_ref but quantize_iq4_nl
// (15 more scales tried per block): ours for files against that, every byte.
TEST_CASE("IQ4_NL file quantization is bit-identical to llama.cpp's quantize_iq4_nl", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(29);
  std::vector<std::pair<std::string, std::vector<float>>> rows;
  for (float sigma : {1.0f, 1e-3f, 30.0f, 1e4f, 1e-38f}) {
    char name[48];
    std::snprintf(name, sizeof name, "N(0, %g^2)", double(sigma));
    rows.emplace_back(name, gaussian(rng, 256 * 64, sigma));
  }
  int k = 0;
  for (auto& r : edge_rows(512)) rows.emplace_back("edge row " + std::to_string(k++), r);
  double err_file = 0, err_ref = 0;  // squared error over the Gaussian rows
  for (const auto& [name, x] : rows) {
    INFO(name);
    const int64_t n = int64_t(x.size());
    std::vector<block_iq4_nl> a(x.size() / QK4_NL), b(a.size()), c(a.size());
    quantize_row_iq4_nl_file_ref(x.data(), a.data(), n);
    // As llama_model_quantize calls it: rows of 256 elements.
    REQUIRE(l.quantize_chunk_iq4_nl(x.data(), b.data(), n / 256, 256, nullptr) == b.size() * sizeof(block_iq4_nl));
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("IQ4_NL block " << i);
      REQUIRE(std::memcmp(&a[i], &b[i], sizeof(block_iq4_nl)) == 0);
    }
    if (name[0] == 'N' && name != "N(0, 1e-38^2)") {
      quantize_row_iq4_nl_ref(x.data(), c.data(), n);
      std::vector<float> ya(x.size()), yc(x.size());
      dequantize_row_iq4_nl_ref(a.data(), ya.data(), n);
      dequantize_row_iq4_nl_ref(c.data(), yc.data(), n);
      double fa = 0, fc = 0, sx = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        fa += double(ya[i] - x[i]) * (ya[i] - x[i]);
        fc += double(yc[i] - x[i]) * (yc[i] - x[i]);
        sx += double(x[i]) * x[i];
      }
      err_file += fa / sx;
      err_ref += fc / sx;
    }
  }
  // The search is why files use it: a lower error than the one-scale reference.
  WARN("IQ4_NL relative squared error, file quantizer " << err_file << " vs reference " << err_ref);
  CHECK(err_file < err_ref);
}

TEST_CASE("Q8_0 activation quantization is bit-identical to llama.cpp's CPU backend", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(26);
  std::vector<std::pair<std::string, std::vector<float>>> rows;
  for (float sigma : {1.0f, 1e-3f, 30.0f, 1e4f}) {
    rows.emplace_back("N(0, " + std::to_string(sigma) + "^2)", gaussian(rng, 256 * 64, sigma));
  }
  // Dequantized Q4_0 rows (embeddings), normalized as RMSNorm would: ties under rounding.
  const std::vector<float> w = gaussian(rng, 256 * 64, 0.02f);
  std::vector<block_q4_0> q40(w.size() / QK4_0);
  quantize_row_q4_0_ref(w.data(), q40.data(), int64_t(w.size()));
  std::vector<float> grid(w.size());
  dequantize_row_q4_0_ref(q40.data(), grid.data(), int64_t(grid.size()));
  rows.emplace_back("dequantized Q4_0", grid);
  int k = 0;
  for (auto& r : edge_rows(512)) rows.emplace_back("edge row " + std::to_string(k++), r);

  int ties_seen = 0;  // blocks where the weight quantizer (halves away) gives other bits
  for (const auto& [name, x] : rows) {
    INFO(name << " via " << l.cpu_name);
    const int64_t n = int64_t(x.size());
    std::vector<block_q8_0> theirs(x.size() / QK8_0), ours(theirs.size()), weights(theirs.size());
    l.quantize_q8_0_cpu(x.data(), theirs.data(), n);
    quantize_row_q8_0_act_ref(x.data(), ours.data(), n);
    quantize_row_q8_0_ref(x.data(), weights.data(), n);
    for (size_t i = 0; i < ours.size(); ++i) {
      INFO("block " << i);
      REQUIRE(ours[i].d == theirs[i].d);
      if (ours[i].d != 0) REQUIRE(std::memcmp(ours[i].qs, theirs[i].qs, QK8_0) == 0);
      ties_seen += std::memcmp(&ours[i], &weights[i], sizeof(block_q8_0)) != 0;
    }
  }
  // The inputs do reach the cases where the two quantizers differ.
  CHECK(ties_seen > 10);
}

// Q8_1 (the input of a Q5_1 product): llama.cpp's x86 quantize_row_q8_1 is its Q8_0 one plus
// s = fp16(d * sum(q)) with the unrounded d; ours and every ISA's must equal it (the same
// tiny-amax exception as for Q8_0, where d = 0 and s = 0 in both).
TEST_CASE("Q8_1 activation quantization is bit-identical to llama.cpp's CPU backend", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(28);
  std::vector<std::pair<std::string, std::vector<float>>> rows;
  for (float sigma : {1.0f, 1e-3f, 30.0f, 1e4f}) {
    rows.emplace_back("N(0, " + std::to_string(sigma) + "^2)", gaussian(rng, 256 * 64, sigma));
  }
  const std::vector<float> w = gaussian(rng, 256 * 64, 0.02f);  // a dequantized Q5_1 row: ties
  std::vector<block_q5_1> q51(w.size() / QK5_1);
  quantize_row_q5_1_ref(w.data(), q51.data(), int64_t(w.size()));
  std::vector<float> grid(w.size());
  dequantize_row_q5_1_ref(q51.data(), grid.data(), int64_t(grid.size()));
  rows.emplace_back("dequantized Q5_1", grid);
  int k = 0;
  for (auto& r : edge_rows(512)) rows.emplace_back("edge row " + std::to_string(k++), r);
  int nonzero_s = 0;
  for (const auto& [name, x] : rows) {
    INFO(name << " via " << l.cpu_name);
    const int64_t n = int64_t(x.size());
    std::vector<block_q8_1> theirs(x.size() / QK8_1), ours(theirs.size());
    l.quantize_q8_1_cpu(x.data(), theirs.data(), n);
    quantize_row_q8_1_act_ref(x.data(), ours.data(), n);
    for (size_t i = 0; i < ours.size(); ++i) {
      INFO("block " << i << " s ours 0x" << std::hex << ours[i].s << " theirs 0x" << theirs[i].s);
      REQUIRE(ours[i].d == theirs[i].d);
      REQUIRE(ours[i].s == theirs[i].s);
      if (ours[i].d != 0) REQUIRE(std::memcmp(ours[i].qs, theirs[i].qs, QK8_1) == 0);
      nonzero_s += (ours[i].s & 0x7FFF) != 0;
    }
  }
  CHECK(nonzero_s > 1000);  // the sums are really compared
}

TEST_CASE("Q4_K / Q6_K quantizers: RMSE <= 1.01 x llama.cpp's (Gaussian, stories260K)", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(24);
  for (float sigma : {1.0f, 0.02f}) {
    const std::vector<float> x = gaussian(rng, 256 * 1024, sigma);
    const std::string name = "N(0, " + std::to_string(sigma) + "^2)";
    report_and_check("Q4_K " + name,
                     score_quantizer<block_q4_K>(x, quantize_row_q4_K_ref, dequantize_row_q4_K_ref, l.quantize_q4_K),
                     x.size());
    report_and_check("Q6_K " + name,
                     score_quantizer<block_q6_K>(x, quantize_row_q6_K_ref, dequantize_row_q6_K_ref, l.quantize_q6_K),
                     x.size());
  }
  const auto weights = stories_weights(l);
  REQUIRE(weights.size() >= 10);  // token_embd, output and 5 layers x 7 matrices
  QuantizerScore all4, all6;
  size_t n_all = 0;
  for (const auto& [name, x] : weights) {
    const auto s4 = score_quantizer<block_q4_K>(x, quantize_row_q4_K_ref, dequantize_row_q4_K_ref, l.quantize_q4_K);
    const auto s6 = score_quantizer<block_q6_K>(x, quantize_row_q6_K_ref, dequantize_row_q6_K_ref, l.quantize_q6_K);
    report_and_check("Q4_K stories260K " + name, s4, x.size(), false);  // each tensor, quietly
    report_and_check("Q6_K stories260K " + name, s6, x.size(), false);
    for (auto* p : {&all4, &all6}) {
      const auto& s = p == &all4 ? s4 : s6;
      p->ours += s.ours;
      p->theirs += s.theirs;
      p->blocks += s.blocks;
      p->identical += s.identical;
    }
    n_all += x.size();
  }
  std::printf("stories260K: %zu F32 tensors of >= 256 elements, %zu values\n", weights.size(), n_all);
  report_and_check("Q4_K stories260K, all those tensors", all4, n_all);
  report_and_check("Q6_K stories260K, all those tensors", all6, n_all);
}

namespace {

// Index of the first element where the dequantization of our and llama.cpp's quantization of x
// differ in bits, or -1.
template <typename Block>
int64_t dequantized_difference(const std::vector<float>& x, void (*quantize)(const float*, Block*, int64_t),
                               void (*dequantize)(const Block*, float*, int64_t), QuantizeFn their_quantize) {
  const int64_t n = int64_t(x.size());
  std::vector<Block> qa(x.size() / QK_K), qb(x.size() / QK_K);
  quantize(x.data(), qa.data(), n);
  their_quantize(x.data(), qb.data(), n);
  std::vector<float> ya(x.size()), yb(x.size());
  dequantize(qa.data(), ya.data(), n);
  dequantize(qb.data(), yb.data(), n);
  return first_bit_difference(ya, yb);
}

}  // namespace

// Q5_K, Q3_K, Q2_K and IQ4_XS weights: as Q4_K / Q6_K (RMSE <= 1.01 x llama.cpp's reference
// quantizer) on Gaussian data, shifted data (the K-quants' mins matter), heavy tails and every F32
// tensor of stories260K; the identical-block counts are printed. On the edge rows (zeros, a spike,
// constants, subnormals, 3e38 = beyond the fp16 super-block scales, ties) the dequantized values
// must be llama.cpp's bit for bit: a block whose scales are 0 may carry other quants (where 1/d
// overflows, llama.cpp's quants come from its integer conversion of Inf), which dequantize the same.
TEST_CASE("Q5_K / Q3_K / Q2_K / IQ4_XS quantizers: RMSE <= 1.01 x llama.cpp's (Gaussian, stories260K), edge rows as llama.cpp's", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(29);
  struct Scored {
    const char* name;
    std::function<QuantizerScore(const std::vector<float>&)> score;
    std::function<int64_t(const std::vector<float>&)> difference;
  };
  const Scored types[] = {
      {"Q5_K",
       [&](const std::vector<float>& x) {
         return score_quantizer<block_q5_K>(x, quantize_row_q5_K_ref, dequantize_row_q5_K_ref, l.quantize_q5_K);
       },
       [&](const std::vector<float>& x) {
         return dequantized_difference<block_q5_K>(x, quantize_row_q5_K_ref, dequantize_row_q5_K_ref, l.quantize_q5_K);
       }},
      {"Q3_K",
       [&](const std::vector<float>& x) {
         return score_quantizer<block_q3_K>(x, quantize_row_q3_K_ref, dequantize_row_q3_K_ref, l.quantize_q3_K);
       },
       [&](const std::vector<float>& x) {
         return dequantized_difference<block_q3_K>(x, quantize_row_q3_K_ref, dequantize_row_q3_K_ref, l.quantize_q3_K);
       }},
      {"Q2_K",
       [&](const std::vector<float>& x) {
         return score_quantizer<block_q2_K>(x, quantize_row_q2_K_ref, dequantize_row_q2_K_ref, l.quantize_q2_K);
       },
       [&](const std::vector<float>& x) {
         return dequantized_difference<block_q2_K>(x, quantize_row_q2_K_ref, dequantize_row_q2_K_ref, l.quantize_q2_K);
       }},
      {"IQ4_XS",
       [&](const std::vector<float>& x) {
         return score_quantizer<block_iq4_xs>(x, quantize_row_iq4_xs_ref, dequantize_row_iq4_xs_ref, l.quantize_iq4_xs);
       },
       [&](const std::vector<float>& x) {
         return dequantized_difference<block_iq4_xs>(x, quantize_row_iq4_xs_ref, dequantize_row_iq4_xs_ref,
                                                     l.quantize_iq4_xs);
       }},
  };
  std::vector<std::pair<std::string, std::vector<float>>> rows;
  for (float sigma : {1.0f, 0.02f, 1e-3f, 1e4f}) {
    char name[48];
    std::snprintf(name, sizeof name, "N(0, %g^2)", double(sigma));
    rows.emplace_back(name, gaussian(rng, 256 * 512, sigma));
  }
  std::vector<float> shifted = gaussian(rng, 256 * 512, 0.5f);
  for (float& v : shifted) v += 2.0f;
  rows.emplace_back("N(2, 0.25)", shifted);
  std::vector<float> heavy(256 * 512);
  for (float& v : heavy) v = rng.normal() * (rng.uniform() < 0.01f ? 50.0f : 1.0f);
  rows.emplace_back("outliers", heavy);
  const auto edges = edge_rows(512);
  const auto weights = stories_weights(l);
  REQUIRE(weights.size() >= 10);
  for (const Scored& t : types) {
    for (const auto& [name, x] : rows) report_and_check(std::string(t.name) + " " + name, t.score(x), x.size());
    for (size_t r = 0; r < edges.size(); ++r) {
      const int64_t at = t.difference(edges[r]);
      INFO(t.name << " edge row " << r << ": dequantized values differ first at element " << at);
      CHECK(at == -1);
    }
    QuantizerScore all;
    size_t n_all = 0;
    for (const auto& [name, x] : weights) {
      const QuantizerScore s = t.score(x);
      report_and_check(std::string(t.name) + " stories260K " + name, s, x.size(), false);
      all.ours += s.ours;
      all.theirs += s.theirs;
      all.blocks += s.blocks;
      all.identical += s.identical;
      n_all += x.size();
    }
    report_and_check(std::string(t.name) + " stories260K, all F32 tensors", all, n_all);
  }
}

// Dot products. Our refs are (nearly) exact: integer block sums, double scaling and accumulation.
// llama.cpp's AVX2 kernels scale and accumulate in float (with FMA), so the two may differ by
//   |ours - theirs| <= (n_blocks + 8) * 2^-24 * M,
//   M = sum_i (|w_i| + |dmin m_i|) |a_i|   (w, a: the dequantized weights and activations;
//                                           the dmin term only for Q4_K / Q5_K / Q2_K)
// i.e. a float rounding per block and a few per element group, relative to the magnitude sum.
TEST_CASE("vec_dot refs agree with llama.cpp's dot products within the stated bound", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(25);
  constexpr int kTypes = 12;
  double worst[kTypes] = {};  // max |ours - theirs| / (2^-24 M), per type
  const char* names[kTypes] = {"q4_K.q8_K", "q6_K.q8_K", "q8_0.q8_0",   "q4_0.q8_0", "q5_0.q8_0", "q5_1.q8_1",
                               "q4_1.q8_1", "iq4_nl.q8_0", "q5_K.q8_K", "q3_K.q8_K", "q2_K.q8_K", "iq4_xs.q8_K"};

  auto compare = [&](int which, int64_t n, float ours, float theirs, double mag, int64_t blocks) {
    const double err = std::fabs(double(ours) - double(theirs));
    const double unit = 0x1p-24 * mag + 1e-30;
    worst[which] = std::max(worst[which], err / unit);
    INFO(names[which] << " n " << n << " ours " << ours << " theirs " << theirs << " M " << mag);
    REQUIRE(err <= double(blocks + 8) * unit);
  };

  for (int64_t n : {256, 512, 2048, 5632, 256 * 64}) {
    for (int kind = 0; kind < 3; ++kind) {  // 0: quantized Gaussian, 1: random blocks, 2: edge blocks
      const std::vector<float> act = gaussian(rng, size_t(n), kind == 0 ? 1.0f : 3.0f);
      std::vector<block_q8_K> y8k(static_cast<size_t>(n / QK_K));
      std::vector<block_q8_0> y80(static_cast<size_t>(n / QK8_0));
      std::vector<block_q8_1> y81(static_cast<size_t>(n / QK8_1));
      quantize_row_q8_K_ref(act.data(), y8k.data(), n);
      quantize_row_q8_0_ref(act.data(), y80.data(), n);
      quantize_row_q8_1_act_ref(act.data(), y81.data(), n);
      const size_t un = static_cast<size_t>(n);
      std::vector<float> a8k(un), a80(un), a81(un), w(un);
      dequantize_row_q8_K_ref(y8k.data(), a8k.data(), n);
      dequantize_row_q8_0_ref(y80.data(), a80.data(), n);
      dequantize_row_q8_1_ref(y81.data(), a81.data(), n);

      std::vector<block_q4_K> x4k;
      std::vector<block_q6_K> x6k;
      std::vector<block_q8_0> x80;
      std::vector<block_q4_0> x40;
      std::vector<block_q5_0> x50;
      std::vector<block_q5_1> x51;
      std::vector<block_q4_1> x41;
      std::vector<block_iq4_nl> xnl;
      std::vector<block_q5_K> x5k;
      std::vector<block_q3_K> x3k;
      std::vector<block_q2_K> x2k;
      std::vector<block_iq4_xs> xxs;
      if (kind == 0) {
        const std::vector<float> wt = gaussian(rng, size_t(n), 0.05f);
        x4k.resize(size_t(n / QK_K));
        x6k.resize(size_t(n / QK_K));
        x80.resize(size_t(n / QK8_0));
        x40.resize(size_t(n / QK4_0));
        x50.resize(size_t(n / QK5_0));
        x51.resize(size_t(n / QK5_1));
        quantize_row_q5_0_ref(wt.data(), x50.data(), n);
        quantize_row_q5_1_ref(wt.data(), x51.data(), n);
        x41.resize(size_t(n / QK4_1));
        xnl.resize(size_t(n / QK4_NL));
        quantize_row_q4_1_ref(wt.data(), x41.data(), n);
        quantize_row_iq4_nl_ref(wt.data(), xnl.data(), n);
        quantize_row_q4_K_ref(wt.data(), x4k.data(), n);
        quantize_row_q6_K_ref(wt.data(), x6k.data(), n);
        quantize_row_q8_0_ref(wt.data(), x80.data(), n);
        quantize_row_q4_0_ref(wt.data(), x40.data(), n);
        x5k.resize(size_t(n / QK_K));
        x3k.resize(size_t(n / QK_K));
        x2k.resize(size_t(n / QK_K));
        xxs.resize(size_t(n / QK_K));
        quantize_row_q5_K_ref(wt.data(), x5k.data(), n);
        quantize_row_q3_K_ref(wt.data(), x3k.data(), n);
        quantize_row_q2_K_ref(wt.data(), x2k.data(), n);
        quantize_row_iq4_xs_ref(wt.data(), xxs.data(), n);
      } else if (kind == 1) {
        x4k = random_q4_K(rng, size_t(n / QK_K));
        x6k = random_q6_K(rng, size_t(n / QK_K));
        x80 = random_q8_0(rng, size_t(n / QK8_0));
        x40 = random_q4_0(rng, size_t(n / QK4_0));
        x50 = random_q5_0(rng, size_t(n / QK5_0));
        x51 = random_q5_1(rng, size_t(n / QK5_1));
        x41 = random_q4_1(rng, size_t(n / QK4_1));
        xnl = random_iq4_nl(rng, size_t(n / QK4_NL));
        x5k = random_q5_K(rng, size_t(n / QK_K));
        x3k = random_q3_K(rng, size_t(n / QK_K));
        x2k = random_q2_K(rng, size_t(n / QK_K));
        xxs = random_iq4_xs(rng, size_t(n / QK_K));
      } else {
        const auto e4 = edge_q4_K();
        const auto e6 = edge_q6_K();
        const auto e80 = edge_q8_0();
        const auto e40 = edge_q4_0();
        for (int64_t i = 0; i < n / QK_K; ++i) x4k.push_back(e4[size_t(i * 131) % e4.size()]);
        for (int64_t i = 0; i < n / QK_K; ++i) x6k.push_back(e6[size_t(i * 131) % e6.size()]);
        for (int64_t i = 0; i < n / QK8_0; ++i) x80.push_back(e80[size_t(i * 13) % e80.size()]);
        for (int64_t i = 0; i < n / QK4_0; ++i) x40.push_back(e40[size_t(i * 13) % e40.size()]);
        const auto e50 = edge_q5_0();
        const auto e51 = edge_q5_1();
        for (int64_t i = 0; i < n / QK5_0; ++i) x50.push_back(e50[size_t(i * 13) % e50.size()]);
        for (int64_t i = 0; i < n / QK5_1; ++i) x51.push_back(e51[size_t(i * 131) % e51.size()]);
        const auto e41 = edge_q4_1();
        const auto enl = edge_iq4_nl();
        for (int64_t i = 0; i < n / QK4_1; ++i) x41.push_back(e41[size_t(i * 131) % e41.size()]);
        for (int64_t i = 0; i < n / QK4_NL; ++i) xnl.push_back(enl[size_t(i * 13) % enl.size()]);
        const auto e5k = edge_q5_K();
        const auto e3k = edge_q3_K();
        const auto e2k = edge_q2_K();
        const auto exs = edge_iq4_xs();
        for (int64_t i = 0; i < n / QK_K; ++i) {
          x5k.push_back(e5k[size_t(i * 131) % e5k.size()]);
          x3k.push_back(e3k[size_t(i * 131) % e3k.size()]);
          x2k.push_back(e2k[size_t(i * 131) % e2k.size()]);
          xxs.push_back(exs[size_t(i * 13) % exs.size()]);
        }
      }

      float theirs = 0;
      // Q4_K . Q8_K
      dequantize_row_q4_K_ref(x4k.data(), w.data(), n);
      double mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        uint8_t sc, m;
        q4_K_scale_min(x4k[size_t(i / QK_K)].scales, int(i % QK_K) / 32, &sc, &m);
        const double dm = std::fabs(double(fp16_to_fp32(x4k[size_t(i / QK_K)].dmin)) * m);
        mag += (std::fabs(double(w[size_t(i)])) + dm) * std::fabs(double(a8k[size_t(i)]));
      }
      l.dot_q4_K(int(n), &theirs, 0, x4k.data(), 0, y8k.data(), 0, 1);
      compare(0, n, vec_dot_q4_K_q8_K_ref(n, x4k.data(), y8k.data()), theirs, mag, n / QK_K);

      auto plain_mag = [&](const std::vector<float>& a) {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += std::fabs(double(w[size_t(i)]) * a[size_t(i)]);
        return s;
      };
      dequantize_row_q6_K_ref(x6k.data(), w.data(), n);
      l.dot_q6_K(int(n), &theirs, 0, x6k.data(), 0, y8k.data(), 0, 1);
      compare(1, n, vec_dot_q6_K_q8_K_ref(n, x6k.data(), y8k.data()), theirs, plain_mag(a8k), n / QK_K);

      dequantize_row_q8_0_ref(x80.data(), w.data(), n);
      l.dot_q8_0(int(n), &theirs, 0, x80.data(), 0, y80.data(), 0, 1);
      compare(2, n, vec_dot_q8_0_q8_0_ref(n, x80.data(), y80.data()), theirs, plain_mag(a80), n / QK8_0);

      dequantize_row_q4_0_ref(x40.data(), w.data(), n);
      l.dot_q4_0(int(n), &theirs, 0, x40.data(), 0, y80.data(), 0, 1);
      compare(3, n, vec_dot_q4_0_q8_0_ref(n, x40.data(), y80.data()), theirs, plain_mag(a80), n / QK4_0);

      dequantize_row_q5_0_ref(x50.data(), w.data(), n);
      l.dot_q5_0(int(n), &theirs, 0, x50.data(), 0, y80.data(), 0, 1);
      compare(4, n, vec_dot_q5_0_q8_0_ref(n, x50.data(), y80.data()), theirs, plain_mag(a80), n / QK5_0);

      // Q5_1: M = sum_i (|d q_i| + |m|) |a_i| (the kernels sum the two parts separately).
      std::vector<block_q5_1> dq = x51;
      for (auto& b : dq) b.m = 0;
      dequantize_row_q5_1_ref(dq.data(), w.data(), n);
      double mag51 = 0;
      for (int64_t i = 0; i < n; ++i)
        mag51 += (std::fabs(double(w[size_t(i)])) + std::fabs(double(fp16_to_fp32(x51[size_t(i / QK5_1)].m)))) *
                 std::fabs(double(a81[size_t(i)]));
      l.dot_q5_1(int(n), &theirs, 0, x51.data(), 0, y81.data(), 0, 1);
      compare(5, n, vec_dot_q5_1_q8_1_ref(n, x51.data(), y81.data()), theirs, mag51, n / QK5_1);

      // Q4_1: M as Q5_1's.
      std::vector<block_q4_1> dq41 = x41;
      for (auto& b : dq41) b.m = 0;
      dequantize_row_q4_1_ref(dq41.data(), w.data(), n);
      double mag41 = 0;
      for (int64_t i = 0; i < n; ++i)
        mag41 += (std::fabs(double(w[size_t(i)])) + std::fabs(double(fp16_to_fp32(x41[size_t(i / QK4_1)].m)))) *
                 std::fabs(double(a81[size_t(i)]));
      l.dot_q4_1(int(n), &theirs, 0, x41.data(), 0, y81.data(), 0, 1);
      compare(6, n, vec_dot_q4_1_q8_1_ref(n, x41.data(), y81.data()), theirs, mag41, n / QK4_1);

      dequantize_row_iq4_nl_ref(xnl.data(), w.data(), n);
      l.dot_iq4_nl(int(n), &theirs, 0, xnl.data(), 0, y80.data(), 0, 1);
      compare(7, n, vec_dot_iq4_nl_q8_0_ref(n, xnl.data(), y80.data()), theirs, plain_mag(a80), n / QK4_NL);

      // Q5_K: M as Q4_K's.
      dequantize_row_q5_K_ref(x5k.data(), w.data(), n);
      double mag5k = 0;
      for (int64_t i = 0; i < n; ++i) {
        uint8_t sc, m;
        q4_K_scale_min(x5k[size_t(i / QK_K)].scales, int(i % QK_K) / 32, &sc, &m);
        const double dm = std::fabs(double(fp16_to_fp32(x5k[size_t(i / QK_K)].dmin)) * m);
        mag5k += (std::fabs(double(w[size_t(i)])) + dm) * std::fabs(double(a8k[size_t(i)]));
      }
      l.dot_q5_K(int(n), &theirs, 0, x5k.data(), 0, y8k.data(), 0, 1);
      compare(8, n, vec_dot_q5_K_q8_K_ref(n, x5k.data(), y8k.data()), theirs, mag5k, n / QK_K);

      dequantize_row_q3_K_ref(x3k.data(), w.data(), n);
      l.dot_q3_K(int(n), &theirs, 0, x3k.data(), 0, y8k.data(), 0, 1);
      compare(9, n, vec_dot_q3_K_q8_K_ref(n, x3k.data(), y8k.data()), theirs, plain_mag(a8k), n / QK_K);

      // Q2_K: M = sum_i (|w_i| + |dmin m_i|) |a_i| with m_i the 4-bit min of element i's sub-block.
      dequantize_row_q2_K_ref(x2k.data(), w.data(), n);
      double mag2k = 0;
      for (int64_t i = 0; i < n; ++i) {
        const block_q2_K& b = x2k[size_t(i / QK_K)];
        const double dm = std::fabs(double(fp16_to_fp32(b.dmin)) * (b.scales[(i % QK_K) / 16] >> 4));
        mag2k += (std::fabs(double(w[size_t(i)])) + dm) * std::fabs(double(a8k[size_t(i)]));
      }
      l.dot_q2_K(int(n), &theirs, 0, x2k.data(), 0, y8k.data(), 0, 1);
      compare(10, n, vec_dot_q2_K_q8_K_ref(n, x2k.data(), y8k.data()), theirs, mag2k, n / QK_K);

      dequantize_row_iq4_xs_ref(xxs.data(), w.data(), n);
      l.dot_iq4_xs(int(n), &theirs, 0, xxs.data(), 0, y8k.data(), 0, 1);
      compare(11, n, vec_dot_iq4_xs_q8_K_ref(n, xxs.data(), y8k.data()), theirs, plain_mag(a8k), n / QK_K);
    }
  }
  for (int t = 0; t < kTypes; ++t) {
    std::printf("vec_dot %s: max |ours - llama.cpp| = %.3f x 2^-24 M (allowed (n_blocks + 8) x 2^-24 M)\n",
                names[t], worst[t]);
  }
}

// ---- element-wise ops against ggml's (run as one-node graphs on ggml's CPU backend) ----

namespace {

// A ggml context with its own memory; frees it at scope exit.
struct GgmlContext {
  const Llama& l;
  void* ctx;
  explicit GgmlContext(const Llama& ll) : l(ll), ctx(ll.ggml_init(GgmlInitParams{64 << 20, nullptr, false})) {
    REQUIRE(ctx != nullptr);
  }
  ~GgmlContext() { l.ggml_free(ctx); }
  Tensor f32(const std::vector<float>& v, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) {
    Tensor t = l.ggml_new_tensor_3d(ctx, kGgmlF32, ne0, ne1, ne2);
    std::memcpy(l.ggml_get_data(t), v.data(), v.size() * 4);
    return t;
  }
  std::vector<float> compute(Tensor out, size_t n) {
    void* graph = l.ggml_new_graph(ctx);
    l.ggml_build_forward_expand(graph, out);
    REQUIRE(l.ggml_graph_compute_with_ctx(ctx, graph, 1) == 0);
    std::vector<float> v(n);
    std::memcpy(v.data(), l.ggml_get_data(out), n * 4);
    return v;
  }
};

// Largest |a - b| / (rel |b| + abs), and how many elements are bit-identical.
struct Agreement {
  double worst = 0;
  size_t identical = 0, n = 0;
  void add(float a, float b, double rel, double abs) {
    worst = std::max(worst, std::fabs(double(a) - b) / (rel * std::fabs(double(b)) + abs));
    identical += bits(a) == bits(b);
    ++n;
  }
};

}  // namespace

// Bounds (each |ours - ggml| <= bound):
//   rope_norm     the angles are bit-identical: ggml's result is exactly ours or what ours gives
//                 with x0 c - x1 s (and x0 s + x1 c) fused into one FMA, as ggml's AVX2 build does;
//                 so |ours - ggml| <= 2^-23 (|x0| + |x1|)
//   rms_norm_ref  bit-identical (same sum of float squares in double, same roundings);
//   rms_norm      1e-6 |y| (float partial sums in the xsimd version)
//   softmax       1e-6 |y| + 1e-12 (ggml uses its own vectorized expf)
//   silu_mul      1e-6 |y| + 1e-12 (same)
TEST_CASE("element-wise ops agree with ggml's within stated bounds", "[oracle]") {
  const Llama& l = require_llama();
  Rng rng(26);

  SECTION("rope_norm (llama's NORM mode, freq_base 10000 and 500000, freq_scale 1 and 0.25)") {
    Agreement agree;
    for (int64_t head_dim : {64, 128}) {
      for (int64_t n_rot : {head_dim, head_dim / 2}) {
        for (float base : {10000.0f, 500000.0f}) {
          for (float fscale : {1.0f, 0.25f}) {
            const int64_t n_heads = 4, n_tok = 6;
            const int32_t positions[n_tok] = {0, 1, 2, 17, 511, 4095};
            const std::vector<float> x = gaussian(rng, size_t(head_dim * n_heads * n_tok));
            GgmlContext g(l);
            Tensor tx = g.f32(x, head_dim, n_heads, n_tok);
            Tensor tp = l.ggml_new_tensor_1d(g.ctx, kGgmlI32, n_tok);
            std::memcpy(l.ggml_get_data(tp), positions, sizeof positions);
            Tensor out = l.ggml_rope_ext(g.ctx, tx, tp, nullptr, int(n_rot), 0, 0, base, fscale, 0.0f,
                                         1.0f, 32.0f, 1.0f);
            const std::vector<float> theirs = g.compute(out, x.size());
            std::vector<float> ours = x;
            for (int64_t t = 0; t < n_tok; ++t) {
              rope_norm(ours.data() + t * n_heads * head_dim, n_heads, head_dim, n_rot, positions[t],
                        base, fscale);
            }
            std::vector<float> cs(static_cast<size_t>(n_rot));
            for (int64_t t = 0; t < n_tok; ++t) {
              rope_norm_cos_sin(positions[t], n_rot, base, fscale, cs.data());
              for (int64_t i = 0; i < n_heads * head_dim; i += 2) {
                const size_t k = size_t(t * n_heads * head_dim + i);
                const float x0 = x[k], x1 = x[k + 1];
                const double pair = std::fabs(double(x0)) + std::fabs(double(x1));
                agree.add(ours[k], theirs[k], 0.0, 0x1p-23 * pair + 1e-30);
                agree.add(ours[k + 1], theirs[k + 1], 0.0, 0x1p-23 * pair + 1e-30);
                INFO("pos " << positions[t] << " dim " << i % head_dim << " ours " << ours[k] << ", "
                     << ours[k + 1] << " ggml " << theirs[k] << ", " << theirs[k + 1]);
                if (i % head_dim >= n_rot) {
                  REQUIRE(bits(theirs[k]) == bits(ours[k]));
                  REQUIRE(bits(theirs[k + 1]) == bits(ours[k + 1]));
                  continue;
                }
                const float c = cs[size_t(i % head_dim)], sn = cs[size_t(i % head_dim) + 1];
                const uint32_t first[3] = {bits(ours[k]), bits(std::fma(x0, c, -(x1 * sn))),
                                           bits(std::fma(-x1, sn, x0 * c))};
                const uint32_t second[3] = {bits(ours[k + 1]), bits(std::fma(x0, sn, x1 * c)),
                                            bits(std::fma(x1, c, x0 * sn))};
                REQUIRE((bits(theirs[k]) == first[0] || bits(theirs[k]) == first[1] ||
                         bits(theirs[k]) == first[2]));
                REQUIRE((bits(theirs[k + 1]) == second[0] || bits(theirs[k + 1]) == second[1] ||
                         bits(theirs[k + 1]) == second[2]));
              }
            }
          }
        }
      }
    }
    std::printf("rope_norm vs ggml: %zu/%zu bit-identical, max error %.3f x bound\n", agree.identical,
                agree.n, agree.worst);
  }

  SECTION("rms_norm * weight, softmax, silu(gate) * up") {
    Agreement a_rms, a_rms_ref, a_soft, a_silu;
    for (int64_t n : {64, 100, 2048, 5632}) {
      const std::vector<float> x = gaussian(rng, size_t(n), 2.0f);
      const std::vector<float> w = gaussian(rng, size_t(n), 1.0f);
      std::vector<float> ours(static_cast<size_t>(n));
      {
        GgmlContext g(l);
        Tensor out = l.ggml_mul(g.ctx, l.ggml_rms_norm(g.ctx, g.f32(x, n), 1e-5f), g.f32(w, n));
        const std::vector<float> theirs = g.compute(out, size_t(n));
        rms_norm(x.data(), w.data(), ours.data(), n, 1e-5f);
        for (int64_t i = 0; i < n; ++i) a_rms.add(ours[size_t(i)], theirs[size_t(i)], 1e-6, 1e-30);
        rms_norm_ref(x.data(), w.data(), ours.data(), n, 1e-5f);
        for (int64_t i = 0; i < n; ++i) a_rms_ref.add(ours[size_t(i)], theirs[size_t(i)], 1e-6, 1e-30);
      }
      {
        GgmlContext g(l);
        const std::vector<float> theirs = g.compute(l.ggml_soft_max(g.ctx, g.f32(x, n)), size_t(n));
        ours = x;
        softmax(ours.data(), n);
        for (int64_t i = 0; i < n; ++i) a_soft.add(ours[size_t(i)], theirs[size_t(i)], 1e-6, 1e-12);
      }
      {
        GgmlContext g(l);
        Tensor out = l.ggml_mul(g.ctx, l.ggml_silu(g.ctx, g.f32(x, n)), g.f32(w, n));
        const std::vector<float> theirs = g.compute(out, size_t(n));
        silu_mul(x.data(), w.data(), ours.data(), n);
        for (int64_t i = 0; i < n; ++i) a_silu.add(ours[size_t(i)], theirs[size_t(i)], 1e-6, 1e-12);
      }
    }
    std::printf("rms_norm_ref vs ggml: %zu/%zu bit-identical\n", a_rms_ref.identical, a_rms_ref.n);
    std::printf("rms_norm vs ggml: %zu/%zu bit-identical, max error %.3f x bound\n", a_rms.identical,
                a_rms.n, a_rms.worst);
    std::printf("softmax  vs ggml: %zu/%zu bit-identical, max error %.3f x bound\n", a_soft.identical,
                a_soft.n, a_soft.worst);
    std::printf("silu_mul vs ggml: %zu/%zu bit-identical, max error %.3f x bound\n", a_silu.identical,
                a_silu.n, a_silu.worst);
    CHECK(a_rms_ref.identical == a_rms_ref.n);  // same sums, same roundings
    CHECK(a_rms.worst <= 1.0);
    CHECK(a_soft.worst <= 1.0);
    CHECK(a_silu.worst <= 1.0);
  }
}
