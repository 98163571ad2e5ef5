// Kernel microbenchmarks (Google Benchmark), one row per ISA path:
//   dequantize/<type>/<isa>                 quantized bytes/s, in cache
//   gemv/<type>/<isa>/<rows>x<cols>/threads:T      decode shapes, weights rotated over 1.25 GiB
//   gemv/<type>/<isa>/<rows>x<cols>/threads:T/cached   the same matrix every time (cache speed)
//   gemv/<type>/llama.cpp-<lib>/...          llama.cpp's exported ggml_vec_dot_* (against its
//                                            q8_K / q8_0 / q8_1), same threads and row split
//   gemm/<type>/<isa>/<rows>x<cols>x512/threads:T   prefill of 512 prompt rows (GFLOP/s)
//   switch/<type>/<isa>/<gemv|gemm>/m:M/threads:T  both paths at small M (gemm_min_rows)
//   read_bandwidth/threads:T                 streaming sum over 1.25 GiB (the memory roofline)
//   peak/<vfmadd231ps|vpdpbusd>/threads:T    12 independent chains of the 512-bit instruction
//                                            (AVX-512 VNNI CPUs): the compute roofline, GOP/s
//                                            (an FMA 2 flops a lane, a vpdpbusd 2 ops a byte pair)
// Counters: bytes_per_second is weight bytes read per second; "pct_of_read_bw" compares it with
// the read_bandwidth row of the same thread count measured earlier in the same run.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(EDGELLM_GGML_BINS)
#include <dlfcn.h>
#endif

#include "edgellm/kernels/dispatch.hpp"
#include "edgellm/kernels/matmul.hpp"
#include "edgellm/kernels/thread_pool.hpp"

using namespace edgellm;
using namespace edgellm::kernels;

namespace {

constexpr size_t kRotateBytes = size_t{5} << 28;  // 1.25 GiB: far beyond the last-level cache

ThreadPool& pool(int threads) {
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return *p;
}

// One big buffer of random bytes, shared by every benchmark: random quants and scales (valid
// blocks; the values do not matter for speed).
const uint8_t* weight_bytes(size_t bytes) {
  static std::vector<uint8_t> buf;
  if (buf.size() < bytes) {
    buf.resize(std::max(bytes, kRotateBytes + (size_t{64} << 20)));  // once: every rotation fits
    std::mt19937_64 g(7);
    for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
      uint64_t v = g() & 0x3F3F3F3F3F3F3F3Full;  // fp16 scales stay finite and moderate
      std::memcpy(&buf[i], &v, 8);
    }
  }
  return buf.data();
}

std::vector<float> random_floats(int64_t n) {
  std::vector<float> v(n);
  std::mt19937 g(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& x : v) x = nd(g);
  return v;
}

size_t row_bytes(DType t, int64_t cols) { return *dtype_row_bytes(t, static_cast<uint64_t>(cols)); }

// Seconds for the percentage counters, on the clock the row's rates use: CPU time with one
// thread (robust when other processes share the cores), wall time with more.
struct Timer {
  explicit Timer(int threads) : cpu(threads == 1), c0(std::clock()), w0(std::chrono::steady_clock::now()) {}
  double seconds() const {
    if (cpu) return static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
  }
  bool cpu;
  std::clock_t c0;
  std::chrono::steady_clock::time_point w0;
};

// Read bandwidth per thread count, filled by read_bandwidth benchmarks (they run first).
std::map<int, double> g_read_bw;

void read_bandwidth(benchmark::State& state, int threads) {
  const size_t n = kRotateBytes / sizeof(uint64_t);
  const auto* p = reinterpret_cast<const uint64_t*>(weight_bytes(kRotateBytes));
  std::vector<uint64_t> sums(threads);
  const Timer timer(threads);
  for (auto _ : state) {
    pool(threads).run([&](int ith, int nth) {
      int64_t b, e;
      ThreadPool::split(static_cast<int64_t>(n), ith, nth, b, e);
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = b;
      // With the software prefetch the decode kernels use (2 KiB ahead): without it one core
      // reads slower than a GEMV does, and the roofline would be too low.
      for (; i + 8 <= e; i += 8) {
        __builtin_prefetch(p + i + 256);
        s0 += p[i] + p[i + 4], s1 += p[i + 1] + p[i + 5], s2 += p[i + 2] + p[i + 6], s3 += p[i + 3] + p[i + 7];
      }
      for (; i < e; ++i) s0 += p[i];
      sums[ith] = s0 + s1 + s2 + s3;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  const double seconds = timer.seconds();
  if (seconds > 0) g_read_bw[threads] = static_cast<double>(kRotateBytes) * state.iterations() / seconds;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRotateBytes));
  state.counters["GBps"] = benchmark::Counter(static_cast<double>(kRotateBytes) * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

#if defined(__x86_64__)
// The instruction peak a prefill GEMM (vpdpbusd) or an f32 attention product (vfmadd231ps) is
// measured against: 12 independent accumulators, more than latency x throughput on the cores
// seen, in registers (inline asm: the compiler can neither spill nor fold them).
#define EDGELLM_X12(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)
#define EDGELLM_FMA(i) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #i "\n\t"
#define EDGELLM_DPB(i) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #i "\n\t"
// zmm30 / zmm31, the sources, are zeroed first (zero idioms: no execution unit), so no input is
// denormal.
#define EDGELLM_ZERO "vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31\n\t"
#define EDGELLM_ZMM_CLOBBERS "xmm30", "xmm31", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
                             "xmm10", "xmm11"
__attribute__((target("avx512f,avx512vnni"))) void peak_loop(bool dpbusd, int64_t n) {
  if (dpbusd) {
    for (int64_t i = 0; i < n; ++i) __asm__ volatile(EDGELLM_ZERO EDGELLM_X12(EDGELLM_DPB)::: EDGELLM_ZMM_CLOBBERS);
  } else {
    for (int64_t i = 0; i < n; ++i) __asm__ volatile(EDGELLM_ZERO EDGELLM_X12(EDGELLM_FMA)::: EDGELLM_ZMM_CLOBBERS);
  }
}

void peak(benchmark::State& state, bool dpbusd, int threads) {
  const int64_t n = 1 << 22;  // x 12 instructions per thread per iteration
  for (auto _ : state) pool(threads).run([&](int, int) { peak_loop(dpbusd, n); });
  const double ops = (dpbusd ? 128.0 : 32.0) * 12 * double(n) * threads;  // per iteration
  state.counters["GOPs"] = benchmark::Counter(ops * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
#endif

// Cost of handing one (empty) job to the pool and waiting for it: a decoded token issues ~150.
void pool_handoff(benchmark::State& state, int threads) {
  std::vector<int> touched(threads * 16);
  for (auto _ : state) {
    pool(threads).run([&](int ith, int) { touched[ith * 16]++; });
  }
  benchmark::DoNotOptimize(touched.data());
}

struct Shape {
  int64_t rows, cols;
};
const Shape kDecodeShapes[] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};
const Shape kPrefillShapes[] = {{2048, 2048}, {256, 2048}, {5632, 2048}, {2048, 5632}};

// The per-row dot product both sides run: ours through matmul, llama.cpp's through its
// exported vec_dot with the same row split over the same pool.
using GgmlVecDot = void (*)(int n, float* s, size_t bs, const void* vx, size_t bx, const void* vy,
                            size_t by, int nrc);

void gemv(benchmark::State& state, DType type, const KernelSet* ks, GgmlVecDot ggml, Shape s,
          int threads, bool cached) {
  const size_t rb = row_bytes(type, s.cols), mat = rb * s.rows;
  const size_t n_mats = cached ? 1 : std::max<size_t>(2, (kRotateBytes + mat - 1) / mat);
  const uint8_t* base = weight_bytes(n_mats * mat);
  const auto x = random_floats(s.cols);
  Activations act;
  act.reset(x.data(), 1, s.cols);
  const KernelSet& qks = ks ? *ks : active_kernels();
  const void* xq = act.rows_for(qks.type(type)->act, qks, pool(threads));
  const size_t xq_bytes = act.row_bytes(qks, qks.type(type)->act);  // Q8_K, Q8_0 or Q8_1 rows
  std::vector<float> y(s.rows);
  size_t m = 0;
  const Timer timer(threads);
  for (auto _ : state) {
    const uint8_t* wdata = base + m * mat;
    if (ks) {
      const WeightMatrix w{type, wdata, s.rows, s.cols, rb};
      matmul(*ks, pool(threads), w, act, y.data(), s.rows);
    } else {
      pool(threads).run([&](int ith, int nth) {
        int64_t g0, g1;  // the row split matmul uses: 16-row grains
        const int64_t grains = (s.rows + 15) / 16;
        ThreadPool::split(grains, ith, nth, g0, g1);
        for (int64_t r = g0 * 16; r < std::min(g1 * 16, s.rows); ++r) {
          ggml(static_cast<int>(s.cols), &y[r], 0, wdata + r * rb, 0, xq, xq_bytes, 1);
        }
      });
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    m = (m + 1) % n_mats;
  }
  const double seconds = timer.seconds();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * mat));
  const auto bw = g_read_bw.find(threads);
  if (!cached && bw != g_read_bw.end() && bw->second > 0 && seconds > 0) {
    state.counters["pct_of_read_bw"] = 100.0 * static_cast<double>(mat) * state.iterations() / seconds / bw->second;
  }
}

void gemm(benchmark::State& state, DType type, const KernelSet& ks, Shape s, int64_t m, int threads) {
  const size_t rb = row_bytes(type, s.cols);
  const uint8_t* wdata = weight_bytes(rb * s.rows);
  const auto x = random_floats(m * s.cols);
  std::vector<float> y(m * s.rows);
  const WeightMatrix w{type, wdata, s.rows, s.cols, rb};
  Activations act;
  act.reset(x.data(), m, s.cols);
  act.rows_for(ks.type(type)->act, ks, pool(threads));  // once, as the engine does for Q, K and V
  for (auto _ : state) {
    matmul(ks, pool(threads), w, act, y.data(), s.rows);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * s.rows * s.cols * m * state.iterations() / 1e9,
                                                benchmark::Counter::kIsRate);
}

void dequantize(benchmark::State& state, DType type, const KernelSet& ks) {
  const int64_t n = 256 * 1024;  // 1 MiB of floats out: in L2
  const size_t bytes = row_bytes(type, n);
  const uint8_t* src = weight_bytes(bytes);
  std::vector<float> y(n);
  for (auto _ : state) {
    ks.type(type)->dequantize_row(src, y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

std::string type_name(DType t) { return dtype_name(static_cast<uint32_t>(t)); }
std::string shape_name(Shape s) { return std::to_string(s.rows) + "x" + std::to_string(s.cols); }

// llama.cpp's CPU library for this machine, if installed: of its builds, the one ggml itself
// would pick (highest ggml_backend_score, 0 = this CPU cannot run it), leaving out the AMX build
// (sapphirerapids), whose vec_dot is no different but whose name would mislead.
struct Ggml {
  std::string lib;
  std::map<DType, GgmlVecDot> dots;  // every type of kGemvTypes it exports
  GgmlVecDot dot(DType t) const {
    const auto it = dots.find(t);
    return it == dots.end() ? nullptr : it->second;
  }
};

// The weight types of the gemv rows (each next to llama.cpp's vec_dot of the same type) and of
// the gemm / switch rows (the types with a prefill tile).
const DType kGemvTypes[] = {DType::Q4_K, DType::Q6_K, DType::Q5_K, DType::Q3_K,   DType::Q2_K,
                            DType::IQ4_XS, DType::IQ4_NL, DType::Q4_1, DType::Q5_0, DType::Q5_1};
const DType kGemmTypes[] = {DType::Q4_K, DType::Q6_K, DType::Q5_K, DType::Q3_K, DType::Q2_K,  DType::Q8_0,
                            DType::Q4_0, DType::Q5_0, DType::Q4_1, DType::Q5_1, DType::IQ4_NL};

Ggml load_ggml() {
  Ggml g;
#if defined(__x86_64__) && defined(EDGELLM_GGML_BINS)
  int best = 0;
  void* best_handle = nullptr;
  for (const char* name : {"zen4", "icelake", "cooperlake", "cascadelake", "skylakex", "cannonlake",
                           "alderlake", "haswell"}) {
    const std::string path = std::string(EDGELLM_GGML_BINS) + "/libggml-cpu-" + name + ".so";
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    const auto score = reinterpret_cast<int (*)()>(dlsym(h, "ggml_backend_score"));
    const int s = score ? score() : 0;
    if (s > best) {
      if (best_handle) dlclose(best_handle);
      best = s;
      best_handle = h;
      g.lib = name;
    } else {
      dlclose(h);
    }
  }
  if (!best_handle) return Ggml{};
  if (auto init = reinterpret_cast<void (*)()>(dlsym(best_handle, "ggml_cpu_init"))) init();
  const std::pair<DType, const char*> names[] = {
      {DType::Q4_K, "ggml_vec_dot_q4_K_q8_K"},   {DType::Q6_K, "ggml_vec_dot_q6_K_q8_K"},
      {DType::Q5_K, "ggml_vec_dot_q5_K_q8_K"},   {DType::Q3_K, "ggml_vec_dot_q3_K_q8_K"},
      {DType::Q2_K, "ggml_vec_dot_q2_K_q8_K"},   {DType::IQ4_XS, "ggml_vec_dot_iq4_xs_q8_K"},
      {DType::IQ4_NL, "ggml_vec_dot_iq4_nl_q8_0"}, {DType::Q4_1, "ggml_vec_dot_q4_1_q8_1"},
      {DType::Q5_0, "ggml_vec_dot_q5_0_q8_0"},   {DType::Q5_1, "ggml_vec_dot_q5_1_q8_1"}};
  for (const auto& [type, name] : names)
    if (auto f = reinterpret_cast<GgmlVecDot>(dlsym(best_handle, name))) g.dots[type] = f;
  if (g.dots.empty()) return Ggml{};
#endif
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const int max_threads = std::max(2, physical_core_count());
  std::vector<int> thread_counts = {1, 2};
  if (max_threads > 2) thread_counts.push_back(max_threads);

  for (int t : thread_counts) {
    auto* b = benchmark::RegisterBenchmark(("read_bandwidth/threads:" + std::to_string(t)).c_str(),
                                           [t](benchmark::State& st) { read_bandwidth(st, t); });
    b->Unit(benchmark::kMillisecond)->MinTime(1.0);
    if (t > 1) b->UseRealTime();  // as the GEMV rows it is compared with
  }
#if defined(__x86_64__)
  if (kernels_for(Isa::avx512)) {  // AVX-512 F/BW/VL/DQ + VNNI, as the avx512 kernel set needs
    for (bool dpbusd : {true, false}) {
      for (int t : thread_counts) {
        const std::string name = std::string("peak/") + (dpbusd ? "vpdpbusd" : "vfmadd231ps") + "/threads:" + std::to_string(t);
        auto* b = benchmark::RegisterBenchmark(name.c_str(), [dpbusd, t](benchmark::State& st) { peak(st, dpbusd, t); });
        b->Unit(benchmark::kMillisecond);
        if (t > 1) b->UseRealTime();
      }
    }
  }
#endif
  for (int t : thread_counts) {
    benchmark::RegisterBenchmark(("thread_pool_handoff/threads:" + std::to_string(t)).c_str(),
                                 [t](benchmark::State& st) { pool_handoff(st, t); })
        ->UseRealTime();
  }
  const Ggml ggml = load_ggml();
  for (Isa isa : available_isas()) {
    const KernelSet& ks = *kernels_for(isa);
    const std::string in = std::string(isa_name(isa));
    for (DType type : {DType::Q4_K, DType::Q6_K}) {
      benchmark::RegisterBenchmark(("dequantize/" + type_name(type) + "/" + in).c_str(),
                                   [type, &ks](benchmark::State& st) { dequantize(st, type, ks); });
    }
  }
  for (DType type : kGemvTypes) {
    for (Shape s : kDecodeShapes) {
      for (int t : {1, 2}) {
        for (bool cached : {false, true}) {
          const std::string tail = "/" + shape_name(s) + "/threads:" + std::to_string(t) + (cached ? "/cached" : "");
          for (Isa isa : available_isas()) {
            const KernelSet* ks = kernels_for(isa);
            if (isa == Isa::scalar && !cached && s.rows > 2048) continue;  // minutes per run
            auto* b = benchmark::RegisterBenchmark(("gemv/" + type_name(type) + "/" + std::string(isa_name(isa)) + tail).c_str(),
                                                   [=](benchmark::State& st) { gemv(st, type, ks, nullptr, s, t, cached); });
            b->Unit(benchmark::kMicrosecond);
            if (t > 1) b->UseRealTime();  // one thread: rates from CPU time, robust on a busy machine
          }
          if (const GgmlVecDot f = ggml.dot(type)) {
            auto* b = benchmark::RegisterBenchmark(("gemv/" + type_name(type) + "/llama.cpp-" + ggml.lib + tail).c_str(),
                                                   [=](benchmark::State& st) { gemv(st, type, nullptr, f, s, t, cached); });
            b->Unit(benchmark::kMicrosecond);
            if (t > 1) b->UseRealTime();
          }
        }
      }
    }
  }
  for (Isa isa : available_isas()) {
    if (isa == Isa::scalar) continue;  // far too slow to be worth a row
    const KernelSet& ks = *kernels_for(isa);
    for (DType type : kGemmTypes) {
      for (Shape s : kPrefillShapes) {
        const int t = 2;
        benchmark::RegisterBenchmark(("gemm/" + type_name(type) + "/" + std::string(isa_name(isa)) + "/" +
                                      shape_name(s) + "x512/threads:" + std::to_string(t)).c_str(),
                                     [type, &ks, s, t](benchmark::State& st) { gemm(st, type, ks, s, 512, t); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  // The GEMV/GEMM switch (TypeKernels::gemm_min_rows): the same product of m activation rows
  // through the gemv tile and through the gemm tile, forced by a copy of the table whose switch
  // point is 1 (always gemm) or never; the crossover is the measured gemm_min_rows.
  static std::vector<std::unique_ptr<KernelSet>> forced;
  for (Isa isa : available_isas()) {
    for (DType type : kGemmTypes) {
      if (!kernels_for(isa)->type(type)->gemm) continue;
      for (const char* path : {"gemv", "gemm"}) {
        forced.push_back(std::make_unique<KernelSet>(*kernels_for(isa)));
        forced.back()->row(type).gemm_min_rows = std::string(path) == "gemm" ? 1 : INT64_MAX;
        const KernelSet& ks = *forced.back();
        for (int t : {1, 2}) {
          for (int64_t m : {2, 4, 6, 8, 12, 16}) {
            const Shape s{2048, 2048};
            auto* b = benchmark::RegisterBenchmark(
                ("switch/" + type_name(type) + "/" + std::string(isa_name(isa)) + "/" + path + "/m:" + std::to_string(m) +
                 "/threads:" + std::to_string(t)).c_str(),
                [type, &ks, s, m, t](benchmark::State& st) { gemm(st, type, ks, s, m, t); });
            b->Unit(benchmark::kMicrosecond);
            if (t > 1) b->UseRealTime();  // one thread: CPU time, robust on a busy machine
          }
        }
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
