// neon-count: one engine's vec_dot, called CALLS times over one row of BLOCKS super-blocks
// (256 weights each), for instruction counting under qemu (bench/neon_compare.sh). Built only in
// the aarch64 cross build. The engines:
//   ours   edgellm's NEON table for this CPU (kernels_for(Isa::neon): "neon+dotprod" where the
//          CPU has dotprod, else "neon"), the type's vec_dot
//   llama  llama.cpp's exported ggml_vec_dot_<type>_<act> from LIB (a libggml-cpu-*.so)
//   check  both and the scalar reference on the same row; exit 1 if either is off
//   probe  a loop of exactly 3 instructions per iteration, BLOCKS * 256 iterations a call (for
//          checking the counting method: the count must grow by exactly 3 per iteration)
// The row and the activations are fixed pseudo-random block bytes (any bytes are valid blocks;
// Q8_K's bsums are made consistent with its quants), so both engines read the same data and the
// start-up before the calls is the same for CALLS and 2 CALLS (the script subtracts it).
#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "edgellm/kernels/dispatch.hpp"

using namespace edgellm;
using namespace edgellm::kernels;

namespace {

using GgmlVecDot = void (*)(int n, float* s, size_t bs, const void* vx, size_t bx, const void* vy, size_t by,
                            int nrc);

struct TypeInfo {
  const char* name;
  DType type;
  size_t block_bytes;  // one weight block
  int block_elems;
  const char* ggml_symbol;
};

constexpr TypeInfo kTypes[] = {
    {"q4_K", DType::Q4_K, sizeof(block_q4_K), QK_K, "ggml_vec_dot_q4_K_q8_K"},
    {"q5_K", DType::Q5_K, sizeof(block_q5_K), QK_K, "ggml_vec_dot_q5_K_q8_K"},
    {"q6_K", DType::Q6_K, sizeof(block_q6_K), QK_K, "ggml_vec_dot_q6_K_q8_K"},
    {"q8_0", DType::Q8_0, sizeof(block_q8_0), QK8_0, "ggml_vec_dot_q8_0_q8_0"},
};

uint32_t next(uint32_t& s) {  // xorshift32: the same bytes on every run
  s ^= s << 13;
  s ^= s >> 17;
  s ^= s << 5;
  return s;
}

// A small positive fp16 in [2^-8, 2^-7): the block scales.
uint16_t small_fp16(uint32_t& s) { return static_cast<uint16_t>(0x1C00 | (next(s) & 0x3FF)); }

std::vector<uint8_t> weight_row(const TypeInfo& t, int64_t n) {
  const int64_t nb = n / t.block_elems;
  std::vector<uint8_t> w(nb * t.block_bytes);
  uint32_t s = 0x12345678u;
  for (auto& b : w) b = static_cast<uint8_t>(next(s));
  // The fp16 scale fields: random bytes there would be NaNs and huge values.
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t* b = w.data() + i * t.block_bytes;
    switch (t.type) {
      case DType::Q4_K: reinterpret_cast<block_q4_K*>(b)->d = small_fp16(s);
                        reinterpret_cast<block_q4_K*>(b)->dmin = small_fp16(s); break;
      case DType::Q5_K: reinterpret_cast<block_q5_K*>(b)->d = small_fp16(s);
                        reinterpret_cast<block_q5_K*>(b)->dmin = small_fp16(s); break;
      case DType::Q6_K: reinterpret_cast<block_q6_K*>(b)->d = small_fp16(s); break;
      case DType::Q8_0: reinterpret_cast<block_q8_0*>(b)->d = small_fp16(s); break;
      default: break;
    }
  }
  return w;
}

std::vector<uint8_t> act_row(const TypeInfo& t, int64_t n) {
  uint32_t s = 0x9E3779B9u;
  if (t.type == DType::Q8_0) {
    std::vector<uint8_t> a(n / QK8_0 * sizeof(block_q8_0));
    auto* b = reinterpret_cast<block_q8_0*>(a.data());
    for (int64_t i = 0; i < n / QK8_0; ++i) {
      b[i].d = small_fp16(s);
      for (auto& q : b[i].qs) q = static_cast<int8_t>(next(s));
    }
    return a;
  }
  std::vector<uint8_t> a(n / QK_K * sizeof(block_q8_K));
  auto* b = reinterpret_cast<block_q8_K*>(a.data());
  for (int64_t i = 0; i < n / QK_K; ++i) {
    b[i].d = 0.01f + 0.001f * static_cast<float>(next(s) % 16);
    for (auto& q : b[i].qs) q = static_cast<int8_t>(next(s));  // -128 included, as real rows may hold
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * j + l];
      b[i].bsums[j] = static_cast<int16_t>(sum);
    }
  }
  return a;
}

// Exactly 3 instructions per iteration (subs, add, b.ne), n >= 1 iterations.
[[gnu::noinline]] uint64_t probe(uint64_t n) {
  uint64_t acc = 0;
  asm volatile(
      "1:\n\t"
      "subs %[n], %[n], #1\n\t"
      "add %[acc], %[acc], #1\n\t"
      "b.ne 1b\n\t"
      : [n] "+r"(n), [acc] "+r"(acc)
      :
      : "cc");
  return acc;
}

GgmlVecDot load_ggml(const char* lib, const char* symbol) {
  void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "neon-count: %s\n", dlerror());
    return nullptr;
  }
  auto f = reinterpret_cast<GgmlVecDot>(dlsym(h, symbol));
  if (!f) std::fprintf(stderr, "neon-count: %s has no %s\n", lib, symbol);
  return f;
}

// Where the function the calls go to is loaded (stderr, for the script's llvm-mca input: the
// file, its load base and the function's address, to map the traced addresses to the file's).
void print_fn(const void* fn) {
  Dl_info info{};
  if (dladdr(fn, &info) && info.dli_fname)
    std::fprintf(stderr, "fn %s %p %p\n", info.dli_fname, info.dli_fbase, fn);
}

// The counting modes keep their sums here and print nothing that depends on CALLS (printing
// a different number would execute a different number of instructions).
volatile float g_sink_f;
volatile uint64_t g_sink_u;

int usage() {
  std::fprintf(stderr,
               "usage: neon-count ours|llama|check|probe q4_K|q5_K|q6_K|q8_0 BLOCKS CALLS [LIBGGML_CPU]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) return usage();
  const std::string_view mode = argv[1];
  const TypeInfo* t = nullptr;
  for (const auto& ti : kTypes)
    if (ti.name == std::string_view(argv[2])) t = &ti;
  const long blocks = std::strtol(argv[3], nullptr, 10), calls = std::strtol(argv[4], nullptr, 10);
  const char* lib = argc > 5 ? argv[5] : nullptr;
  const bool known = mode == "ours" || mode == "llama" || mode == "check" || mode == "probe";
  if (!known || !t || blocks <= 0 || calls <= 0 || ((mode == "llama" || mode == "check") && !lib)) return usage();
  const int64_t n = static_cast<int64_t>(blocks) * QK_K;

  if (mode == "probe") {
    uint64_t total = 0;
    for (long c = 0; c < calls; ++c) total += probe(static_cast<uint64_t>(n));
    g_sink_u = total;
    return 0;
  }

  const KernelSet* ks = kernels_for(Isa::neon);
  const TypeKernels* tk = ks ? ks->type(t->type) : nullptr;
  if (!tk) {
    std::fprintf(stderr, "neon-count: no NEON kernel for %s\n", t->name);
    return 1;
  }
  std::fprintf(stderr, "table %.*s\n", static_cast<int>(ks->name.size()), ks->name.data());
  const std::vector<uint8_t> w = weight_row(*t, n), a = act_row(*t, n);

  if (mode == "ours") {
    print_fn(reinterpret_cast<const void*>(tk->vec_dot));
    float total = 0.0f;
    for (long c = 0; c < calls; ++c) {
      total += tk->vec_dot(n, w.data(), a.data());
      asm volatile("" ::: "memory");  // one real call per iteration
    }
    g_sink_f = total;
    return 0;
  }

  const GgmlVecDot f = load_ggml(lib, t->ggml_symbol);
  if (!f) return 1;
  if (mode == "llama") {
    print_fn(reinterpret_cast<const void*>(f));
    float total = 0.0f;
    for (long c = 0; c < calls; ++c) {
      float s = 0.0f;
      f(static_cast<int>(n), &s, 0, w.data(), 0, a.data(), 0, 1);
      total += s;
      asm volatile("" ::: "memory");
    }
    g_sink_f = total;
    return 0;
  }

  // Same row through both engines and the scalar reference (double sums, rounded once).
  const float ours = tk->vec_dot(n, w.data(), a.data());
  float theirs = 0.0f;
  f(static_cast<int>(n), &theirs, 0, w.data(), 0, a.data(), 0, 1);
  const float ref = kernels_for(Isa::scalar)->type(t->type)->vec_dot(n, w.data(), a.data());
  // A wrong layout or function gives a different number, not a rounding difference.
  const double tol = 1e-4 * (std::fabs(static_cast<double>(ref)) + 1.0);
  const bool ok = std::fabs(ours - ref) <= tol && std::fabs(theirs - ref) <= tol;
  std::printf("%s %s ref %.9g ours %.9g llama.cpp %.9g %s\n", t->name, std::string(ks->name).c_str(),
              static_cast<double>(ref), static_cast<double>(ours), static_cast<double>(theirs), ok ? "ok" : "MISMATCH");
  return ok ? 0 : 1;
}
