// Every instruction-set path (available_isas(), not only the one this CPU picks) against the
// scalar references: dequantization and activation quantization bit for bit, dot products and
// matrix products within the bounds written down below. Also the dispatch choice (EDGELLM_ISA)
// and the thread pool.
#include <catch2/catch.hpp>

#include <Eigen/Dense>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "edgellm/kernels/dispatch.hpp"
#include "edgellm/kernels/matmul.hpp"
#include "edgellm/kernels/ops.hpp"
#include "edgellm/kernels/quants.hpp"
#include "edgellm/kernels/thread_pool.hpp"

using namespace edgellm;
using namespace edgellm::kernels;

namespace {

std::mt19937& rng() {
  static std::mt19937 g(12345);
  return g;
}

float normal(float sigma = 1.0f) { return std::normal_distribution<float>(0.0f, sigma)(rng()); }
uint8_t byte() { return static_cast<uint8_t>(rng()() & 0xFF); }

std::vector<float> random_floats(int64_t n, float sigma = 1.0f) {
  std::vector<float> v(n);
  for (auto& x : v) x = normal(sigma);
  return v;
}

// How a test block is filled: random bytes with sane scales, every quant at its maximum, or
// zero scales; scales may be negative.
enum class Fill { random, all_max, zero_scale };

fp16_t random_scale(bool allow_negative) {
  float s = std::abs(normal(0.02f)) + 1e-4f;
  if (allow_negative && (rng()() & 1)) s = -s;
  return fp32_to_fp16(s);
}

std::vector<block_q4_K> make_q4_K(int64_t nb, Fill fill) {
  std::vector<block_q4_K> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& s : b.scales) s = fill == Fill::all_max ? 0xFF : byte();
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
    b.dmin = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

std::vector<block_q6_K> make_q6_K(int64_t nb, Fill fill) {
  std::vector<block_q6_K> v(nb);
  for (auto& b : v) {
    for (auto& q : b.ql) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& q : b.qh) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& s : b.scales) s = fill == Fill::all_max ? -128 : static_cast<int8_t>(byte());
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

std::vector<block_q5_K> make_q5_K(int64_t nb, Fill fill) {
  std::vector<block_q5_K> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& q : b.qh) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& s : b.scales) s = fill == Fill::all_max ? 0xFF : byte();
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
    b.dmin = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

// Q3_K: all_max: every quant 3 (2 low bits 3, hmask set) and every scale 31.
std::vector<block_q3_K> make_q3_K(int64_t nb, Fill fill) {
  std::vector<block_q3_K> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& q : b.hmask) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& s : b.scales) s = fill == Fill::all_max ? 0xFF : byte();
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

std::vector<block_q2_K> make_q2_K(int64_t nb, Fill fill) {
  std::vector<block_q2_K> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& s : b.scales) s = fill == Fill::all_max ? 0xFF : byte();
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
    b.dmin = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

// IQ4_XS: all_max: every quant on the top level (113) and every scale 31.
std::vector<block_iq4_xs> make_iq4_xs(int64_t nb, Fill fill) {
  std::vector<block_iq4_xs> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& s : b.scales_l) s = fill == Fill::all_max ? 0xFF : byte();
    b.scales_h = fill == Fill::all_max ? 0xFFFF : static_cast<uint16_t>(byte() | byte() << 8);
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

std::vector<block_q8_0> make_q8_0(int64_t nb, Fill fill) {
  std::vector<block_q8_0> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? -128 : static_cast<int8_t>(byte());
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

std::vector<block_q4_0> make_q4_0(int64_t nb, Fill fill) {
  std::vector<block_q4_0> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

// Q5_0 / Q5_1: random quant bytes and 5th bits (all_max: every quant 31).
std::vector<block_q5_0> make_q5_0(int64_t nb, Fill fill) {
  std::vector<block_q5_0> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& q : b.qh) q = fill == Fill::all_max ? 0xFF : byte();
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

std::vector<block_q5_1> make_q5_1(int64_t nb, Fill fill) {
  std::vector<block_q5_1> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    for (auto& q : b.qh) q = fill == Fill::all_max ? 0xFF : byte();
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
    b.m = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

// Q4_1 (all_max: every quant 15) and IQ4_NL (all_max: every quant on the top level, 113).
std::vector<block_q4_1> make_q4_1(int64_t nb, Fill fill) {
  std::vector<block_q4_1> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
    b.m = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

std::vector<block_iq4_nl> make_iq4_nl(int64_t nb, Fill fill) {
  std::vector<block_iq4_nl> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? 0xFF : byte();
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
  }
  return v;
}

// Q8_1 activations: as make_q8_0, with s = d * sum(q) as the quantizer makes it.
std::vector<block_q8_1> make_q8_1(int64_t nb, Fill fill) {
  std::vector<block_q8_1> v(nb);
  for (auto& b : v) {
    int sum = 0;
    for (auto& q : b.qs) {
      q = fill == Fill::all_max ? -128 : static_cast<int8_t>(byte());
      sum += q;
    }
    b.d = fill == Fill::zero_scale ? 0 : random_scale(true);
    b.s = fp32_to_fp16(fp16_to_fp32(b.d) * static_cast<float>(sum));
  }
  return v;
}

// Q8_K activations: random bytes (all_max: every quant -128, the extreme vpdpbusd sees), bsums
// consistent with the quants, d of either sign.
std::vector<block_q8_K> make_q8_K(int64_t nb, Fill fill) {
  std::vector<block_q8_K> v(nb);
  for (auto& b : v) {
    for (auto& q : b.qs) q = fill == Fill::all_max ? -128 : static_cast<int8_t>(byte());
    for (int j = 0; j < QK_K / 16; ++j) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += b.qs[16 * j + l];
      b.bsums[j] = static_cast<int16_t>(s);
    }
    b.d = fill == Fill::zero_scale ? 0.0f : fp16_to_fp32(random_scale(true));
  }
  return v;
}

std::string isa_label(Isa isa) { return std::string(isa_name(isa)); }

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Dot-product bound: the optimized kernels sum exact integer block sums in float, so against the
// reference (correctly rounded from double)
//   |r - ref| <= (n / 16 + 16) * 2^-23 * S,   S = sum_i |w_i| * |a_i|
// (float rounding of each scale product and of a sum over at most n / 16 terms per lane). For
// Q4_K, |w_i| is |d sc q| + |dmin m|, the two parts the kernel sums separately.
double dot_bound(int64_t n, double magnitude) {
  return (static_cast<double>(n) / 16 + 16) * std::ldexp(1.0, -23) * magnitude;
}

double abs_dot(const std::vector<float>& w_abs, const std::vector<float>& a) {
  double s = 0;
  for (size_t i = 0; i < w_abs.size(); ++i) s += std::abs(static_cast<double>(w_abs[i]) * a[i]);
  return s;
}

// |d sc q| + |dmin m| per element: the same block with d >= 0 and dmin <= 0 (sign flips of fp16
// are exact).
std::vector<float> q4_K_magnitudes(std::vector<block_q4_K> b) {
  for (auto& x : b) {
    x.d &= 0x7FFF;
    x.dmin |= 0x8000;
  }
  std::vector<float> y(b.size() * QK_K);
  dequantize_row_q4_K_ref(b.data(), y.data(), static_cast<int64_t>(y.size()));
  return y;
}

// The same for Q5_K (Q4_K's fields) and Q2_K (4-bit mins).
std::vector<float> q5_K_magnitudes(std::vector<block_q5_K> b) {
  for (auto& x : b) {
    x.d &= 0x7FFF;
    x.dmin |= 0x8000;
  }
  std::vector<float> y(b.size() * QK_K);
  dequantize_row_q5_K_ref(b.data(), y.data(), static_cast<int64_t>(y.size()));
  return y;
}

std::vector<float> q2_K_magnitudes(std::vector<block_q2_K> b) {
  for (auto& x : b) {
    x.d &= 0x7FFF;
    x.dmin |= 0x8000;
  }
  std::vector<float> y(b.size() * QK_K);
  dequantize_row_q2_K_ref(b.data(), y.data(), static_cast<int64_t>(y.size()));
  return y;
}

std::vector<float> deq_q8_K(const std::vector<block_q8_K>& a) {
  std::vector<float> y(a.size() * QK_K);
  dequantize_row_q8_K_ref(a.data(), y.data(), static_cast<int64_t>(y.size()));
  return y;
}

std::vector<float> deq_q8_0(const std::vector<block_q8_0>& a) {
  std::vector<float> y(a.size() * QK8_0);
  dequantize_row_q8_0_ref(a.data(), y.data(), static_cast<int64_t>(y.size()));
  return y;
}

std::vector<float> deq_q8_1(const std::vector<block_q8_1>& a) {
  std::vector<float> y(a.size() * QK8_1);
  dequantize_row_q8_1_ref(a.data(), y.data(), static_cast<int64_t>(y.size()));
  return y;
}

// |d q| + |m| per Q5_1 element: the two parts the kernels sum separately.
std::vector<float> q5_1_magnitudes(std::vector<block_q5_1> b) {
  std::vector<float> mins(b.size() * QK5_1);
  for (size_t i = 0; i < mins.size(); ++i) mins[i] = std::abs(fp16_to_fp32(b[i / QK5_1].m));
  for (auto& x : b) x.m = 0;
  std::vector<float> y(b.size() * QK5_1);
  dequantize_row_q5_1_ref(b.data(), y.data(), static_cast<int64_t>(y.size()));
  for (size_t i = 0; i < y.size(); ++i) y[i] = std::abs(y[i]) + mins[i];
  return y;
}

// |d q| + |m| per Q4_1 element, as q5_1_magnitudes.
std::vector<float> q4_1_magnitudes(std::vector<block_q4_1> b) {
  std::vector<float> mins(b.size() * QK4_1);
  for (size_t i = 0; i < mins.size(); ++i) mins[i] = std::abs(fp16_to_fp32(b[i / QK4_1].m));
  for (auto& x : b) x.m = 0;
  std::vector<float> y(b.size() * QK4_1);
  dequantize_row_q4_1_ref(b.data(), y.data(), static_cast<int64_t>(y.size()));
  for (size_t i = 0; i < y.size(); ++i) y[i] = std::abs(y[i]) + mins[i];
  return y;
}

const Fill kFills[] = {Fill::random, Fill::all_max, Fill::zero_scale};

}  // namespace

TEST_CASE("dispatch lists scalar first and every listed ISA has a full table", "[dispatch]") {
  const auto isas = available_isas();
  REQUIRE(!isas.empty());
  CHECK(isas.front() == Isa::scalar);
  for (Isa isa : isas) {
    const KernelSet* ks = kernels_for(isa);
    REQUIRE(ks != nullptr);
    CHECK(ks->isa == isa);
    // Every weight type the engine computes with has a full row; the activation forms are set.
    for (DType t : {DType::Q4_K, DType::Q6_K, DType::Q5_K, DType::Q3_K, DType::Q2_K, DType::IQ4_XS, DType::Q8_0,
                    DType::Q4_0, DType::Q5_0, DType::Q5_1, DType::Q4_1, DType::IQ4_NL, DType::F16, DType::BF16,
                    DType::F32}) {
      INFO(isa_label(isa) << " " << dtype_name(static_cast<uint32_t>(t)));
      const TypeKernels* row = ks->type(t);
      REQUIRE(row != nullptr);
      CHECK(row->dequantize_row != nullptr);
      CHECK(row->quantize_row_ref != nullptr);
      CHECK(row->gemv != nullptr);
      CHECK((row->gemm == nullptr || row->gemm_min_rows > 1));
      CHECK((row->act == ActForm::f32 || ks->act(row->act).from_f32 != nullptr));
    }
    CHECK(ks->type(DType::IQ2_XXS) == nullptr);  // no kernels yet: refused, not half-set
    CHECK(ks->type(static_cast<DType>(1000)) == nullptr);
    const void* entries[] = {
        reinterpret_cast<const void*>(ks->matmul_kn_f16_f32), reinterpret_cast<const void*>(ks->matmul_kn_f32_f32),
        reinterpret_cast<const void*>(ks->rms_norm), reinterpret_cast<const void*>(ks->add),
        reinterpret_cast<const void*>(ks->rope_norm_with), reinterpret_cast<const void*>(ks->softmax_scaled),
        reinterpret_cast<const void*>(ks->silu_mul)};
    for (const void* e : entries) CHECK(e != nullptr);
  }
  // kernels_for() of an ISA that is not listed is nullptr.
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512, Isa::neon}) {
    bool listed = false;
    for (Isa a : isas) listed = listed || a == isa;
    CHECK((kernels_for(isa) != nullptr) == listed);
  }
#if defined(__aarch64__)
  CHECK(kernels_for(Isa::neon) != nullptr);
#endif
}

TEST_CASE("the AVX-512 table keeps the AVX2 kernel of every type it has none of its own for", "[dispatch]") {
  // Every CPU that runs the AVX-512 table runs the AVX2 one too, so wherever AVX2 has its own
  // kernel (not the scalar reference's entry) AVX-512 must not fall back to the reference.
  const KernelSet* avx512 = kernels_for(Isa::avx512);
  const KernelSet* avx2 = kernels_for(Isa::avx2);
#if defined(__x86_64__) && defined(EDGELLM_HAVE_AVX512) && defined(EDGELLM_HAVE_AVX2)
  // On an AVX-512 VNNI CPU the table must be there, so the comparison below cannot go unrun.
  if (__builtin_cpu_supports("avx512vnni")) REQUIRE(avx512 != nullptr);
#endif
  if (avx512 == nullptr || avx2 == nullptr) return;  // nothing to compare on this CPU/build
  const KernelSet& scalar = *kernels_for(Isa::scalar);
  int inherited_or_own = 0;
  for (size_t id = 0; id < KernelSet::kTypeSlots; ++id) {
    const auto t = static_cast<DType>(id);
    const TypeKernels* ref = scalar.type(t);
    if (ref == nullptr) continue;
    const TypeKernels *a2 = avx2->type(t), *a5 = avx512->type(t);
    REQUIRE(a2 != nullptr);
    REQUIRE(a5 != nullptr);
    INFO(dtype_name(static_cast<uint32_t>(t)));
    if (a2->vec_dot != ref->vec_dot) {
      CHECK(a5->vec_dot != ref->vec_dot);
      CHECK(a5->gemv != ref->gemv);
      ++inherited_or_own;
    }
    if (a2->dequantize_row != ref->dequantize_row) CHECK(a5->dequantize_row != ref->dequantize_row);
    if (a2->gemm != nullptr) CHECK(a5->gemm != nullptr);
  }
  CHECK(inherited_or_own > 0);
  for (int i = 0; i < kActForms; ++i) {
    const auto f = static_cast<ActForm>(i);
    if (avx2->act(f).from_f32 != scalar.act(f).from_f32) CHECK(avx512->act(f).from_f32 != scalar.act(f).from_f32);
  }
}

TEST_CASE("EDGELLM_ISA values are parsed and unavailable ones fall back", "[dispatch]") {
  CHECK(parse_isa("scalar") == Isa::scalar);
  CHECK(parse_isa("avx2") == Isa::avx2);
  CHECK(parse_isa("avx512") == Isa::avx512);
  CHECK(parse_isa("neon") == Isa::neon);
  CHECK(!parse_isa("AVX9"));
  CHECK(!parse_isa(""));
  const Isa best = available_isas().back();
  bool fell_back = true;
  CHECK(choose_isa(nullptr, &fell_back) == best);
  CHECK(!fell_back);
  CHECK(choose_isa("", &fell_back) == best);
  CHECK(choose_isa("scalar", &fell_back) == Isa::scalar);
  CHECK(!fell_back);
  CHECK(choose_isa("bogus", &fell_back) == best);
  CHECK(fell_back);
  for (Isa isa : {Isa::avx2, Isa::avx512, Isa::neon}) {
    const Isa got = choose_isa(std::string(isa_name(isa)).c_str(), &fell_back);
    if (kernels_for(isa)) {
      CHECK(got == isa);
      CHECK(!fell_back);
    } else {
      CHECK(got == best);
      CHECK(fell_back);
    }
  }
}

// Run by CMake in its own process with EDGELLM_ISA set (see CMakeLists.txt): the process-wide
// choice must honour it.
TEST_CASE("active_kernels honours EDGELLM_ISA", "[.env]") {
  const char* env = std::getenv("EDGELLM_ISA");
  REQUIRE(env != nullptr);
  const auto wanted = parse_isa(env);
  const bool honoured = wanted && kernels_for(*wanted);
  const Isa expected = honoured ? *wanted : available_isas().back();
  CHECK(active_kernels().isa == expected);
  CHECK(&active_kernels() == kernels_for(expected));
  // The fallback is reported to the caller (the engine logs it), never printed by the kernels.
  const std::string note(isa_fallback_note());
  CHECK(note.empty() == honoured);
  if (!honoured) {
    CHECK(note.find(std::string("EDGELLM_ISA=") + env) != std::string::npos);
    CHECK(note.find("using " + isa_label(expected)) != std::string::npos);
  }
}

TEST_CASE("dequantize is bit-exact with the reference on every ISA", "[dequantize]") {
  const int64_t nb = 9;
  for (Isa isa : available_isas()) {
    const KernelSet& ks = *kernels_for(isa);
    INFO("isa " << isa_label(isa));
    for (Fill fill : kFills) {
      std::vector<float> ref, got;
      auto q4k = make_q4_K(nb, fill);
      ref.assign(nb * QK_K, 0), got.assign(nb * QK_K, 1);
      dequantize_row_q4_K_ref(q4k.data(), ref.data(), nb * QK_K);
      ks.type(DType::Q4_K)->dequantize_row(q4k.data(), got.data(), nb * QK_K);
      CHECK(same_bits(ref, got));

      auto q6k = make_q6_K(nb, fill);
      dequantize_row_q6_K_ref(q6k.data(), ref.data(), nb * QK_K);
      ks.type(DType::Q6_K)->dequantize_row(q6k.data(), got.data(), nb * QK_K);
      CHECK(same_bits(ref, got));

      auto q5k = make_q5_K(nb, fill);
      dequantize_row_q5_K_ref(q5k.data(), ref.data(), nb * QK_K);
      ks.type(DType::Q5_K)->dequantize_row(q5k.data(), got.data(), nb * QK_K);
      CHECK(same_bits(ref, got));

      auto q3k = make_q3_K(nb, fill);
      dequantize_row_q3_K_ref(q3k.data(), ref.data(), nb * QK_K);
      ks.type(DType::Q3_K)->dequantize_row(q3k.data(), got.data(), nb * QK_K);
      CHECK(same_bits(ref, got));

      auto q2k = make_q2_K(nb, fill);
      dequantize_row_q2_K_ref(q2k.data(), ref.data(), nb * QK_K);
      ks.type(DType::Q2_K)->dequantize_row(q2k.data(), got.data(), nb * QK_K);
      CHECK(same_bits(ref, got));

      auto qxs = make_iq4_xs(nb, fill);
      dequantize_row_iq4_xs_ref(qxs.data(), ref.data(), nb * QK_K);
      ks.type(DType::IQ4_XS)->dequantize_row(qxs.data(), got.data(), nb * QK_K);
      CHECK(same_bits(ref, got));

      const int64_t n32 = nb * 8 * QK8_0;
      auto q80 = make_q8_0(n32 / QK8_0, fill);
      ref.assign(n32, 0), got.assign(n32, 1);
      dequantize_row_q8_0_ref(q80.data(), ref.data(), n32);
      ks.type(DType::Q8_0)->dequantize_row(q80.data(), got.data(), n32);
      CHECK(same_bits(ref, got));

      auto q40 = make_q4_0(n32 / QK4_0, fill);
      dequantize_row_q4_0_ref(q40.data(), ref.data(), n32);
      ks.type(DType::Q4_0)->dequantize_row(q40.data(), got.data(), n32);
      CHECK(same_bits(ref, got));

      auto q50 = make_q5_0(n32 / QK5_0, fill);
      dequantize_row_q5_0_ref(q50.data(), ref.data(), n32);
      ks.type(DType::Q5_0)->dequantize_row(q50.data(), got.data(), n32);
      CHECK(same_bits(ref, got));

      auto q51 = make_q5_1(n32 / QK5_1, fill);
      dequantize_row_q5_1_ref(q51.data(), ref.data(), n32);
      ks.type(DType::Q5_1)->dequantize_row(q51.data(), got.data(), n32);
      CHECK(same_bits(ref, got));
    }
    // Every 16-bit pattern (subnormals, Inf, NaN included), and odd lengths.
    std::vector<uint16_t> all(65536);
    for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
    for (int64_t n : {int64_t{65536 - 100}, int64_t{1}, int64_t{7}, int64_t{33}}) {
      std::vector<float> ref(n, 0), got(n, 1);
      dequantize_row_f16_ref(all.data() + 100, ref.data(), n);
      ks.type(DType::F16)->dequantize_row(all.data() + 100, got.data(), n);
      CHECK(same_bits(ref, got));
      dequantize_row_bf16_ref(all.data() + 100, ref.data(), n);
      ks.type(DType::BF16)->dequantize_row(all.data() + 100, got.data(), n);
      CHECK(same_bits(ref, got));
    }
  }
}

TEST_CASE("activation quantization is bit-exact with the reference on every ISA", "[quantize]") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::vector<float>> inputs;
  for (int64_t nb : {1, 2, 5, 16}) inputs.push_back(random_floats(nb * QK_K));
  inputs.push_back(std::vector<float>(QK_K, 0.0f));               // all zero
  inputs.push_back(std::vector<float>(2 * QK_K, -3.0f));          // constant, negative max
  {
    auto v = random_floats(2 * QK_K, 1e-3f);
    v[5] = 7.0f, v[100] = -7.0f;  // equal magnitudes: the first one wins
    v[300] = -9.0f, v[400] = 9.0f;
    inputs.push_back(v);
    std::vector<float> ties(QK_K);
    for (int i = 0; i < QK_K; ++i) ties[i] = (i - 128) * 0.5f;  // many exact .5 products
    ties[0] = -127.0f;
    inputs.push_back(ties);
    auto big = random_floats(QK_K, 1e30f);
    inputs.push_back(big);
    auto tiny = random_floats(QK_K, 1e-38f);
    inputs.push_back(tiny);
    auto special = random_floats(2 * QK_K);
    special[3] = nan;
    special[QK_K + 8] = inf;
    inputs.push_back(special);
  }
  for (Isa isa : available_isas()) {
    const KernelSet& ks = *kernels_for(isa);
    INFO("isa " << isa_label(isa));
    for (size_t t = 0; t < inputs.size(); ++t) {
      INFO("input " << t);
      const auto& x = inputs[t];
      const int64_t n = static_cast<int64_t>(x.size());
      std::vector<block_q8_K> ref(n / QK_K), got(n / QK_K);
      std::memset(got.data(), 0x5A, got.size() * sizeof(block_q8_K));
      quantize_row_q8_K_ref(x.data(), ref.data(), n);
      ks.act(ActForm::q8_K).from_f32(x.data(), got.data(), n);
      CHECK(same_bits(ref, got));
      std::vector<block_q8_0> ref0(n / QK8_0), got0(n / QK8_0);
      std::memset(got0.data(), 0x5A, got0.size() * sizeof(block_q8_0));
      quantize_row_q8_0_act_ref(x.data(), ref0.data(), n);
      ks.act(ActForm::q8_0).from_f32(x.data(), got0.data(), n);
      CHECK(same_bits(ref0, got0));
      std::vector<block_q8_1> ref1(n / QK8_1), got1(n / QK8_1);
      std::memset(got1.data(), 0x5A, got1.size() * sizeof(block_q8_1));
      quantize_row_q8_1_act_ref(x.data(), ref1.data(), n);
      ks.act(ActForm::q8_1).from_f32(x.data(), got1.data(), n);
      CHECK(same_bits(ref1, got1));
    }
  }
}

TEST_CASE("dot products stay within the stated bound of the reference on every ISA", "[vec_dot]") {
  for (Isa isa : available_isas()) {
    const KernelSet& ks = *kernels_for(isa);
    INFO("isa " << isa_label(isa));
    for (Fill fill : kFills) {
      for (int64_t nb = 1; nb <= 16; ++nb) {
        INFO("blocks " << nb << " fill " << static_cast<int>(fill));
        const int64_t n = nb * QK_K;
        const auto a = make_q8_K(nb, fill == Fill::zero_scale ? Fill::random : fill);
        const auto a_f = deq_q8_K(a);
        {
          const auto w = make_q4_K(nb, fill);
          const double ref = vec_dot_q4_K_q8_K_ref(n, w.data(), a.data());
          const double got = ks.type(DType::Q4_K)->vec_dot(n, w.data(), a.data());
          CHECK(std::abs(got - ref) <= dot_bound(n, abs_dot(q4_K_magnitudes(w), a_f)));
        }
        {
          const auto w = make_q6_K(nb, fill);
          std::vector<float> w_f(n);
          dequantize_row_q6_K_ref(w.data(), w_f.data(), n);
          const double ref = vec_dot_q6_K_q8_K_ref(n, w.data(), a.data());
          const double got = ks.type(DType::Q6_K)->vec_dot(n, w.data(), a.data());
          CHECK(std::abs(got - ref) <= dot_bound(n, abs_dot(w_f, a_f)));
        }
        {
          const auto w = make_q5_K(nb, fill);
          const double ref = vec_dot_q5_K_q8_K_ref(n, w.data(), a.data());
          const double got = ks.type(DType::Q5_K)->vec_dot(n, w.data(), a.data());
          INFO("q5_K ref " << ref << " got " << got);
          CHECK(std::abs(got - ref) <= dot_bound(n, abs_dot(q5_K_magnitudes(w), a_f)));
        }
        {
          const auto w = make_q3_K(nb, fill);
          std::vector<float> w_f(n);
          dequantize_row_q3_K_ref(w.data(), w_f.data(), n);
          const double ref = vec_dot_q3_K_q8_K_ref(n, w.data(), a.data());
          const double got = ks.type(DType::Q3_K)->vec_dot(n, w.data(), a.data());
          INFO("q3_K ref " << ref << " got " << got);
          CHECK(std::abs(got - ref) <= dot_bound(n, abs_dot(w_f, a_f)));
        }
        {
          const auto w = make_q2_K(nb, fill);
          const double ref = vec_dot_q2_K_q8_K_ref(n, w.data(), a.data());
          const double got = ks.type(DType::Q2_K)->vec_dot(n, w.data(), a.data());
          CHECK(std::abs(got - ref) <= dot_bound(n, abs_dot(q2_K_magnitudes(w), a_f)));
        }
        {
          const auto w = make_iq4_xs(nb, fill);
          std::vector<float> w_f(n);
          dequantize_row_iq4_xs_ref(w.data(), w_f.data(), n);
          const double ref = vec_dot_iq4_xs_q8_K_ref(n, w.data(), a.data());
          const double got = ks.type(DType::IQ4_XS)->vec_dot(n, w.data(), a.data());
          CHECK(std::abs(got - ref) <= dot_bound(n, abs_dot(w_f, a_f)));
        }
        // short rows for the 32-element formats: an odd block count at odd nb (1, 5, 9, ...: the
        // single last block of kernels that take two blocks per step)
        const int64_t n32 = (2 * nb - nb % 2) * QK8_0;
        const auto a0 = make_q8_0(n32 / QK8_0, fill == Fill::zero_scale ? Fill::random : fill);
        const auto a0_f = deq_q8_0(a0);
        {
          const auto w = make_q8_0(n32 / QK8_0, fill);
          const double ref = vec_dot_q8_0_q8_0_ref(n32, w.data(), a0.data());
          const double got = ks.type(DType::Q8_0)->vec_dot(n32, w.data(), a0.data());
          CHECK(std::abs(got - ref) <= dot_bound(n32, abs_dot(deq_q8_0(w), a0_f)));
        }
        {
          const auto w = make_q4_0(n32 / QK4_0, fill);
          std::vector<float> w_f(n32);
          dequantize_row_q4_0_ref(w.data(), w_f.data(), n32);
          const double ref = vec_dot_q4_0_q8_0_ref(n32, w.data(), a0.data());
          const double got = ks.type(DType::Q4_0)->vec_dot(n32, w.data(), a0.data());
          CHECK(std::abs(got - ref) <= dot_bound(n32, abs_dot(w_f, a0_f)));
        }
        {
          const auto w = make_q5_0(n32 / QK5_0, fill);
          std::vector<float> w_f(n32);
          dequantize_row_q5_0_ref(w.data(), w_f.data(), n32);
          const double ref = vec_dot_q5_0_q8_0_ref(n32, w.data(), a0.data());
          const double got = ks.type(DType::Q5_0)->vec_dot(n32, w.data(), a0.data());
          CHECK(std::abs(got - ref) <= dot_bound(n32, abs_dot(w_f, a0_f)));
        }
        {
          const auto a1 = make_q8_1(n32 / QK8_1, fill == Fill::zero_scale ? Fill::random : fill);
          const auto w = make_q5_1(n32 / QK5_1, fill);
          const double ref = vec_dot_q5_1_q8_1_ref(n32, w.data(), a1.data());
          const double got = ks.type(DType::Q5_1)->vec_dot(n32, w.data(), a1.data());
          INFO("q5_1 ref " << ref << " got " << got);
          CHECK(std::abs(got - ref) <= dot_bound(n32, abs_dot(q5_1_magnitudes(w), deq_q8_1(a1))));
        }
        {
          const auto a1 = make_q8_1(n32 / QK8_1, fill == Fill::zero_scale ? Fill::random : fill);
          const auto w = make_q4_1(n32 / QK4_1, fill);
          const double ref = vec_dot_q4_1_q8_1_ref(n32, w.data(), a1.data());
          const double got = ks.type(DType::Q4_1)->vec_dot(n32, w.data(), a1.data());
          INFO("q4_1 ref " << ref << " got " << got);
          CHECK(std::abs(got - ref) <= dot_bound(n32, abs_dot(q4_1_magnitudes(w), deq_q8_1(a1))));
        }
        {
          const auto w = make_iq4_nl(n32 / QK4_NL, fill);
          std::vector<float> w_f(n32);
          dequantize_row_iq4_nl_ref(w.data(), w_f.data(), n32);
          const double ref = vec_dot_iq4_nl_q8_0_ref(n32, w.data(), a0.data());
          const double got = ks.type(DType::IQ4_NL)->vec_dot(n32, w.data(), a0.data());
          INFO("iq4_nl ref " << ref << " got " << got);
          CHECK(std::abs(got - ref) <= dot_bound(n32, abs_dot(w_f, a0_f)));
        }
      }
    }
    // Float rows of every length 1..67 and a long one.
    for (int64_t n : {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 67, 4096}) {
      INFO("float length " << n);
      const auto x = random_floats(n), y = random_floats(n);
      std::vector<fp16_t> h(n);
      std::vector<bf16_t> b(n);
      quantize_row_f16_ref(x.data(), h.data(), n);
      quantize_row_bf16_ref(x.data(), b.data(), n);
      std::vector<float> hf(n), bf(n);
      dequantize_row_f16_ref(h.data(), hf.data(), n);
      dequantize_row_bf16_ref(b.data(), bf.data(), n);
      CHECK(std::abs(ks.type(DType::F32)->vec_dot(n, x.data(), y.data()) - vec_dot_f32_f32_ref(n, x.data(), y.data())) <=
            dot_bound(n, abs_dot(x, y)));
      CHECK(std::abs(ks.type(DType::F16)->vec_dot(n, h.data(), y.data()) - vec_dot_f16_f32_ref(n, h.data(), y.data())) <=
            dot_bound(n, abs_dot(hf, y)));
      CHECK(std::abs(ks.type(DType::BF16)->vec_dot(n, b.data(), y.data()) - vec_dot_bf16_f32_ref(n, b.data(), y.data())) <=
            dot_bound(n, abs_dot(bf, y)));
    }
  }
}

namespace {

// A weight matrix of one type made from random floats with the reference quantizer, plus its
// dequantized values (what the product is checked against).
struct TestMatrix {
  DType type;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  Eigen::MatrixXd values;  // rows x cols
  WeightMatrix view() const {
    return {type, bytes.data(), rows, cols, bytes.size() / static_cast<size_t>(rows)};
  }
};

TestMatrix make_matrix(DType type, int64_t rows, int64_t cols) {
  TestMatrix m{type, rows, cols, {}, Eigen::MatrixXd(rows, cols)};
  const size_t row_bytes = *dtype_row_bytes(type, static_cast<uint64_t>(cols));
  m.bytes.resize(row_bytes * rows);
  std::vector<float> row(cols), back(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = normal(0.05f);
    void* dst = m.bytes.data() + r * row_bytes;
    switch (type) {
      case DType::Q4_K:
        quantize_row_q4_K_ref(row.data(), static_cast<block_q4_K*>(dst), cols);
        dequantize_row_q4_K_ref(static_cast<block_q4_K*>(dst), back.data(), cols);
        break;
      case DType::Q6_K:
        quantize_row_q6_K_ref(row.data(), static_cast<block_q6_K*>(dst), cols);
        dequantize_row_q6_K_ref(static_cast<block_q6_K*>(dst), back.data(), cols);
        break;
      case DType::Q5_K:
        quantize_row_q5_K_ref(row.data(), static_cast<block_q5_K*>(dst), cols);
        dequantize_row_q5_K_ref(static_cast<block_q5_K*>(dst), back.data(), cols);
        break;
      case DType::Q3_K:
        quantize_row_q3_K_ref(row.data(), static_cast<block_q3_K*>(dst), cols);
        dequantize_row_q3_K_ref(static_cast<block_q3_K*>(dst), back.data(), cols);
        break;
      case DType::Q2_K:
        quantize_row_q2_K_ref(row.data(), static_cast<block_q2_K*>(dst), cols);
        dequantize_row_q2_K_ref(static_cast<block_q2_K*>(dst), back.data(), cols);
        break;
      case DType::IQ4_XS:
        quantize_row_iq4_xs_ref(row.data(), static_cast<block_iq4_xs*>(dst), cols);
        dequantize_row_iq4_xs_ref(static_cast<block_iq4_xs*>(dst), back.data(), cols);
        break;
      case DType::Q8_0:
        quantize_row_q8_0_ref(row.data(), static_cast<block_q8_0*>(dst), cols);
        dequantize_row_q8_0_ref(static_cast<block_q8_0*>(dst), back.data(), cols);
        break;
      case DType::Q4_0:
        quantize_row_q4_0_ref(row.data(), static_cast<block_q4_0*>(dst), cols);
        dequantize_row_q4_0_ref(static_cast<block_q4_0*>(dst), back.data(), cols);
        break;
      case DType::Q5_0:
        quantize_row_q5_0_ref(row.data(), static_cast<block_q5_0*>(dst), cols);
        dequantize_row_q5_0_ref(static_cast<block_q5_0*>(dst), back.data(), cols);
        break;
      case DType::Q5_1:
        quantize_row_q5_1_ref(row.data(), static_cast<block_q5_1*>(dst), cols);
        dequantize_row_q5_1_ref(static_cast<block_q5_1*>(dst), back.data(), cols);
        break;
      case DType::Q4_1:
        quantize_row_q4_1_ref(row.data(), static_cast<block_q4_1*>(dst), cols);
        dequantize_row_q4_1_ref(static_cast<block_q4_1*>(dst), back.data(), cols);
        break;
      case DType::IQ4_NL:
        quantize_row_iq4_nl_ref(row.data(), static_cast<block_iq4_nl*>(dst), cols);
        dequantize_row_iq4_nl_ref(static_cast<block_iq4_nl*>(dst), back.data(), cols);
        break;
      case DType::F16:
        quantize_row_f16_ref(row.data(), static_cast<fp16_t*>(dst), cols);
        dequantize_row_f16_ref(static_cast<fp16_t*>(dst), back.data(), cols);
        break;
      case DType::BF16:
        quantize_row_bf16_ref(row.data(), static_cast<bf16_t*>(dst), cols);
        dequantize_row_bf16_ref(static_cast<bf16_t*>(dst), back.data(), cols);
        break;
      default:
        std::memcpy(dst, row.data(), cols * sizeof(float));
        back = row;
        break;
    }
    for (int64_t c = 0; c < cols; ++c) m.values(r, c) = back[c];
  }
  return m;
}

// Per-element bound on how far the activation the kernel uses is from x: half a quantization step
// of x's block (Q8_K / Q8_0 with d = amax / 127), plus float rounding of that step; for F16 / BF16
// weights half an ulp of x in that format (activations are rounded to it, as llama.cpp does), plus
// half the smallest fp16 subnormal; 0 for F32 weights, which use x as is.
Eigen::MatrixXd activation_error(DType weight_type, const Eigen::MatrixXd& x) {
  if (weight_type == DType::F16) return (x.cwiseAbs() * std::ldexp(1.0, -11)).array() + std::ldexp(1.0, -25);
  if (weight_type == DType::BF16) return x.cwiseAbs() * std::ldexp(1.0, -8);
  int64_t block = 0;
  if (weight_type == DType::Q4_K || weight_type == DType::Q6_K || weight_type == DType::Q5_K ||
      weight_type == DType::Q3_K || weight_type == DType::Q2_K || weight_type == DType::IQ4_XS)
    block = QK_K;
  if (weight_type == DType::Q8_0 || weight_type == DType::Q4_0 || weight_type == DType::Q5_0 ||
      weight_type == DType::Q5_1 || weight_type == DType::Q4_1 || weight_type == DType::IQ4_NL)
    block = QK8_0;  // Q8_0 / Q8_1 activations: the same d and quants
  Eigen::MatrixXd e = Eigen::MatrixXd::Zero(x.rows(), x.cols());
  if (block == 0) return e;
  for (int64_t i = 0; i < x.rows(); ++i) {
    for (int64_t c0 = 0; c0 < x.cols(); c0 += block) {
      const double amax = x.row(i).segment(c0, block).cwiseAbs().maxCoeff();
      e.row(i).segment(c0, block).setConstant(0.5 * amax / 127 * (1 + 1e-5) + 1e-30);
    }
  }
  return e;
}

}  // namespace

// matmul against a double-precision Eigen product of the dequantized weights:
//   |y - W x| <= |W| e + (cols / 16 + 16) * 2^-23 * |W| |x|   (elementwise)
// with e the activation quantization error above and the second term the float summation bound
// of the dot products (as for vec_dot, on the quantized activations, whose magnitude is at most
// |x| (1 + 2^-7)).
TEST_CASE("matmul (GEMV and GEMM) matches a double-precision product on every ISA", "[matmul]") {
  struct Shape {
    int64_t rows, cols;
  };
  const DType types[] = {DType::Q4_K, DType::Q6_K, DType::Q5_K,   DType::Q3_K, DType::Q2_K, DType::IQ4_XS,
                         DType::Q8_0, DType::Q4_0, DType::Q5_0,   DType::Q5_1, DType::Q4_1, DType::IQ4_NL,
                         DType::F16,  DType::BF16, DType::F32};
  const Shape shapes[] = {{1, 256}, {37, 512}, {70, 768}, {16, 256}};
  const int64_t batch_sizes[] = {1, 2, 3, 5, 14, 15, 16, 37};  // tails of 6 and 7 after a pass of 8
  for (DType type : types) {
    for (const Shape& s : shapes) {
      const TestMatrix w = make_matrix(type, s.rows, s.cols);
      const Eigen::MatrixXd w_abs = w.values.cwiseAbs();
      for (int64_t m : batch_sizes) {
        if (s.rows == 70 && m > 5 && m != 37) continue;  // keep the run short
        Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xf(m, s.cols);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t c = 0; c < s.cols; ++c) xf(i, c) = normal();
        const Eigen::MatrixXd x = xf.cast<double>();
        const Eigen::MatrixXd expected = x * w.values.transpose();  // m x rows
        const Eigen::MatrixXd bound =
            activation_error(type, x) * w_abs.transpose() +
            (static_cast<double>(s.cols) / 16 + 16) * std::ldexp(1.0, -23) * (1 + 1.0 / 128) *
                (x.cwiseAbs() * w_abs.transpose());
        for (Isa isa : available_isas()) {
          const KernelSet& ks = *kernels_for(isa);
          for (int threads : {1, 2, 3}) {
            INFO("isa " << isa_label(isa) << " type " << dtype_name(static_cast<uint32_t>(type))
                        << " rows " << s.rows << " cols " << s.cols << " m " << m << " threads "
                        << threads);
            ThreadPool pool(threads);
            Activations act;
            act.reset(xf.data(), m, s.cols);
            const int64_t ldy = s.rows + 3;  // a padded output stride
            std::vector<float> y(m * ldy, std::numeric_limits<float>::quiet_NaN());
            matmul(ks, pool, w.view(), act, y.data(), ldy);
            int bad = 0;
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t r = 0; r < s.rows; ++r) {
                const double err = std::abs(y[i * ldy + r] - expected(i, r));
                if (!(err <= bound(i, r))) {
                  if (++bad <= 3) FAIL_CHECK("y[" << i << "][" << r << "] = " << y[i * ldy + r]
                                               << ", expected " << expected(i, r) << " +- "
                                               << bound(i, r));
                }
              }
              for (int64_t r = s.rows; r < ldy; ++r) CHECK(std::isnan(y[i * ldy + r]));  // padding untouched
            }
            CHECK(bad == 0);
          }
        }
      }
    }
  }
}

// matmul_kn (the attention scores over the transposed key cache) against the double-precision
// reference: each y is one float fma chain over n terms, so
//   |y - ref| <= (n + 1) * 2^-24 * sum_k |x_k w_k|
// Shapes cover column tails of every width up to the widest block (32) and query-row tails up to
// 8; the padding of y (ldy > n_cols) must stay untouched.
TEST_CASE("matmul_kn stays within the fma-chain bound of the reference on every ISA", "[matmul]") {
  const int64_t ks_[] = {1, 7, 64, 128};
  const int64_t cols_[] = {1, 5, 8, 15, 16, 17, 31, 32, 33, 47, 100};
  const int64_t rows_[] = {1, 3, 4, 5, 8, 9, 13};
  for (int64_t n : ks_) {
    for (int64_t n_cols : cols_) {
      const int64_t ldw = n_cols + 3, ldx = n + 2, ldy = n_cols + 5;
      std::vector<float> wf(n * ldw);
      for (auto& v : wf) v = normal();
      std::vector<fp16_t> wh(wf.size());
      quantize_row_f16_ref(wf.data(), wh.data(), static_cast<int64_t>(wf.size()));
      std::vector<float> wh_f(wf.size());
      dequantize_row_f16_ref(wh.data(), wh_f.data(), static_cast<int64_t>(wh.size()));
      for (int64_t n_x : rows_) {
        std::vector<float> x(n_x * ldx);
        for (auto& v : x) v = normal();
        for (bool f16 : {true, false}) {
          const std::vector<float>& wv = f16 ? wh_f : wf;
          std::vector<float> ref(n_x * ldy);
          if (f16) matmul_kn_f16_f32_ref(n, wh.data(), ldw, n_cols, x.data(), ldx, n_x, ref.data(), ldy);
          else matmul_kn_f32_f32_ref(n, wf.data(), ldw, n_cols, x.data(), ldx, n_x, ref.data(), ldy);
          for (Isa isa : available_isas()) {
            const KernelSet& k = *kernels_for(isa);
            INFO("isa " << isa_label(isa) << (f16 ? " f16" : " f32") << " n " << n << " cols " << n_cols
                        << " rows " << n_x);
            std::vector<float> y(n_x * ldy, std::numeric_limits<float>::quiet_NaN());
            if (f16) k.matmul_kn_f16_f32(n, wh.data(), ldw, n_cols, x.data(), ldx, n_x, y.data(), ldy);
            else k.matmul_kn_f32_f32(n, wf.data(), ldw, n_cols, x.data(), ldx, n_x, y.data(), ldy);
            int bad = 0;
            for (int64_t i = 0; i < n_x; ++i) {
              for (int64_t j = 0; j < n_cols; ++j) {
                double mag = 0;
                for (int64_t c = 0; c < n; ++c) mag += std::fabs(double(x[i * ldx + c]) * wv[c * ldw + j]);
                const double bound = double(n + 1) * std::ldexp(1.0, -24) * mag + 1e-30;
                if (!(std::fabs(double(y[i * ldy + j]) - ref[i * ldy + j]) <= bound) && ++bad <= 3)
                  FAIL_CHECK("y[" << i << "][" << j << "] = " << y[i * ldy + j] << ", ref " << ref[i * ldy + j]);
              }
              for (int64_t j = n_cols; j < ldy; ++j) CHECK(std::isnan(y[i * ldy + j]));
            }
            CHECK(bad == 0);
          }
        }
      }
    }
  }
}

// Several products in one call split all their rows over the threads by weight bytes; every row
// must come out exactly as the one-matrix call computes it (the same tile on the same rows).
TEST_CASE("matmul of several matrices equals one call per matrix", "[matmul]") {
  const TestMatrix a = make_matrix(DType::Q4_K, 37, 512), b = make_matrix(DType::Q6_K, 16, 512),
                   c = make_matrix(DType::Q4_K, 70, 512), d = make_matrix(DType::F16, 5, 512);
  const TestMatrix* mats[] = {&a, &b, &c, &d};
  for (int64_t m : {1, 3, 9}) {
    std::vector<float> xf(m * 512);
    for (auto& v : xf) v = normal();
    for (Isa isa : available_isas()) {
      const KernelSet& ks = *kernels_for(isa);
      for (int threads : {1, 2, 3}) {
        INFO("isa " << isa_label(isa) << " rows " << m << " threads " << threads);
        ThreadPool pool(threads);
        Activations act;
        act.reset(xf.data(), m, 512);
        std::vector<WeightMatrix> views;
        for (const TestMatrix* t : mats) views.push_back(t->view());
        std::vector<std::vector<float>> one(4), many(4);
        std::vector<MatmulOut> outs;
        for (size_t j = 0; j < 4; ++j) {
          const int64_t ldy = views[j].rows + 1;
          one[j].assign(m * ldy, 0.0f);
          many[j].assign(m * ldy, std::numeric_limits<float>::quiet_NaN());
          matmul(ks, pool, views[j], act, one[j].data(), ldy);
          outs.push_back({&views[j], many[j].data(), ldy});
        }
        matmul(ks, pool, outs, act);
        for (size_t j = 0; j < 4; ++j) {
          const int64_t ldy = views[j].rows + 1;
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t r = 0; r < views[j].rows; ++r) REQUIRE(many[j][i * ldy + r] == one[j][i * ldy + r]);
            CHECK(std::isnan(many[j][i * ldy + views[j].rows]));  // padding untouched
          }
        }
      }
    }
  }
}

// The KernelSet's row ops against ops.hpp's references, bit for bit on every ISA: rms_norm, add
// and rope_norm_with (also with n_rot < head_dim and odd widths, which leave scalar tails), on
// random rows with a few extreme values (huge, tiny, zero, negative zero).
TEST_CASE("rms_norm, add and rope are bit-identical with the reference on every ISA", "[ops]") {
  for (Isa isa : available_isas()) {
    const KernelSet& k = *kernels_for(isa);
    for (int64_t n : {1, 2, 7, 8, 15, 16, 17, 64, 100, 2048, 2051}) {
      INFO("isa " << isa_label(isa) << " n " << n);
      std::vector<float> x = random_floats(n, 2.0f), w = random_floats(n), b = random_floats(n, 0.5f);
      if (n > 8) x[3] = 3e30f, x[5] = 1e-38f, x[6] = 0.0f, x[7] = -0.0f;
      for (float eps : {1e-5f, 1e-6f}) {
        std::vector<float> ref(n), got(n, -1.0f);
        rms_norm_ref(x.data(), w.data(), ref.data(), n, eps);
        k.rms_norm(x.data(), w.data(), got.data(), n, eps);
        CHECK(same_bits(ref, got));
      }
      std::vector<float> ref(n), got(n, -1.0f);
      add_ref(x.data(), b.data(), ref.data(), n);
      k.add(x.data(), b.data(), got.data(), n);
      CHECK(same_bits(ref, got));
    }
    for (int64_t head_dim : {2, 8, 16, 64, 80}) {
      for (int64_t n_rot : {head_dim, head_dim / 2, int64_t{6}}) {
        if (n_rot > head_dim || n_rot % 2) continue;
        for (int64_t pos : {0, 1, 17, 4095}) {
          INFO("isa " << isa_label(isa) << " head_dim " << head_dim << " n_rot " << n_rot << " pos " << pos);
          const int64_t n_heads = 3;
          std::vector<float> ref = random_floats(n_heads * head_dim), got = ref, cs(n_rot);
          rope_norm_ref(ref.data(), n_heads, head_dim, n_rot, pos, 10000.0f, 1.0f);
          rope_norm_cos_sin(pos, n_rot, 10000.0f, 1.0f, cs.data());
          k.rope_norm_with(got.data(), n_heads, head_dim, n_rot, cs.data());
          CHECK(same_bits(ref, got));
        }
      }
    }
  }
}

// The KernelSet's softmax_scaled and silu_mul against ops.hpp's references: within the bound
// dispatch.hpp states, widened for the softmax's float sum over n values (a lane adds n / 8).
TEST_CASE("softmax_scaled and silu_mul stay within the stated bound on every ISA", "[ops]") {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> rows;
  for (int64_t n : {1, 2, 7, 8, 15, 16, 17, 31, 33, 100, 512, 2049}) rows.push_back(random_floats(n, 3.0f));
  std::vector<float> masked = random_floats(64, 5.0f);
  for (size_t i = 20; i < 64; ++i) masked[i] = -inf;  // causal mask
  rows.push_back(masked);
  std::vector<float> wide(300);
  for (size_t i = 0; i < wide.size(); ++i) wide[i] = -90.0f + 0.6f * float(i);  // exp from ~0 to huge
  rows.push_back(wide);
  for (Isa isa : available_isas()) {
    const KernelSet& k = *kernels_for(isa);
    for (size_t t = 0; t < rows.size(); ++t) {
      const std::vector<float>& x = rows[t];
      const int64_t n = int64_t(x.size());
      INFO("isa " << isa_label(isa) << " row " << t << " n " << n);
      for (float sc : {1.0f, 0.125f}) {
        std::vector<float> ref = x, got = x;
        for (float& v : ref) v *= sc;
        softmax_ref(ref.data(), n);
        k.softmax_scaled(got.data(), n, sc);
        const double rel = (8.0 + double(n) / 8) * std::ldexp(1.0, -24);
        int bad = 0;
        for (int64_t i = 0; i < n; ++i) {
          if (!(std::fabs(double(got[i]) - ref[i]) <= rel * std::fabs(ref[i]) + 1e-30) && ++bad <= 3)
            FAIL_CHECK("softmax y[" << i << "] = " << got[i] << ", ref " << ref[i]);
        }
        CHECK(bad == 0);
      }
      const std::vector<float> up = random_floats(n, 2.0f);
      std::vector<float> ref(static_cast<size_t>(n)), got(static_cast<size_t>(n));
      std::vector<float> gate = x;
      for (float& v : gate) v = std::isinf(v) ? -100.0f : v * 10.0f;  // wide gate range, finite
      silu_mul_ref(gate.data(), up.data(), ref.data(), n);
      k.silu_mul(gate.data(), up.data(), got.data(), n);
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (!(std::fabs(double(got[i]) - ref[i]) <= std::ldexp(1.0, -20) * std::fabs(ref[i]) + 1e-30) && ++bad <= 3)
          FAIL_CHECK("silu_mul y[" << i << "] = " << got[i] << ", ref " << ref[i] << " (gate " << gate[i] << ")");
      }
      CHECK(bad == 0);
    }
  }
}

// The one GEMV/GEMM switch: matmul() gives exactly the gemv tile's numbers below a type's
// gemm_min_rows and the gemm tile's from there on (one thread: one tile call over all rows).
TEST_CASE("matmul switches from the gemv to the gemm tile at gemm_min_rows", "[matmul]") {
  ThreadPool pool(1);
  const int64_t rows = 40, cols = 512;
  int switched = 0;
  for (Isa isa : available_isas()) {
    const KernelSet& ks = *kernels_for(isa);
    for (DType type : {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q3_K, DType::Q2_K}) {
      const TypeKernels& t = *ks.type(type);
      if (!t.gemm) continue;
      ++switched;
      const TestMatrix w = make_matrix(type, rows, cols);
      for (int64_t m : {t.gemm_min_rows - 1, t.gemm_min_rows, t.gemm_min_rows + 1}) {
        INFO(isa_label(isa) << " " << dtype_name(static_cast<uint32_t>(type)) << " m " << m);
        const std::vector<float> x = random_floats(m * cols);
        Activations act;
        act.reset(x.data(), m, cols);
        std::vector<float> got(m * rows), want(m * rows);
        matmul(ks, pool, w.view(), act, got.data(), rows);
        const MatmulTile tile = m >= t.gemm_min_rows ? t.gemm : t.gemv;
        tile(cols, w.bytes.data(), w.view().row_bytes, rows, act.rows_for(t.act, ks, pool),
             act.row_bytes(ks, t.act), m, want.data(), rows);
        CHECK(same_bits(got, want));
      }
    }
  }
  if (kernels_for(Isa::avx2) || kernels_for(Isa::avx512)) CHECK(switched > 0);
}

// The inputs of the gemm-tile tests, nb blocks a row: weight rows cycling random, all-max and
// zero-scale blocks (row r % 4 == 0 or 2, 1, 3), with each row's element magnitudes (w_abs, what
// dot_bound sums); kGemmTileActs activation rows, every fourth (i % 4 == 2) all-max (every quant
// -128), and their values (a_f).
constexpr int64_t kGemmTileActs = 40;

template <typename WB, typename AB>
struct GemmTileRows {
  std::vector<WB> w;
  std::vector<float> w_abs;
  std::vector<AB> a;
  std::vector<float> a_f;
};

template <typename Make, typename Magnitudes, typename MakeAct, typename DeqAct>
auto make_gemm_tile_rows(int64_t nb, int64_t rows, Make make, Magnitudes magnitudes, MakeAct make_act,
                         DeqAct deq_act) {
  GemmTileRows<typename decltype(make(nb, Fill::random))::value_type,
               typename decltype(make_act(nb, Fill::random))::value_type> in;
  for (int64_t r = 0; r < rows; ++r) {
    const Fill fill = r % 4 == 1 ? Fill::all_max : r % 4 == 3 ? Fill::zero_scale : Fill::random;
    const auto blocks = make(nb, fill);
    in.w.insert(in.w.end(), blocks.begin(), blocks.end());
    const auto m = magnitudes(blocks);
    in.w_abs.insert(in.w_abs.end(), m.begin(), m.end());
  }
  for (int64_t i = 0; i < kGemmTileActs; ++i) {
    const auto blocks = make_act(nb, i % 4 == 2 ? Fill::all_max : Fill::random);
    in.a.insert(in.a.end(), blocks.begin(), blocks.end());
  }
  in.a_f = deq_act(in.a);
  return in;
}

// |dequantized value| per element of a type without a min, block_elems elements a block (the
// magnitudes of make_gemm_tile_rows for those types).
template <int64_t block_elems, typename Deq>
auto abs_dequantized(Deq deq) {
  return [=](const auto& blocks) {
    std::vector<float> v(blocks.size() * block_elems);
    deq(blocks.data(), v.data(), static_cast<int64_t>(v.size()));
    for (float& x : v) x = std::abs(x);
    return v;
  };
}

// One type's gemm tile on every ISA that has one, for every activation count from 1 to
// gemm_min_rows + 17: each y[i][r] within the dot-product bound of ref(n, weight row r, act row i);
// the two ldy padding columns untouched. Returns the number of ISAs tested.
template <typename WB, typename AB, typename Ref>
int check_gemm_tile(DType type, int64_t n, int64_t nb, const GemmTileRows<WB, AB>& in, Ref ref) {
  const int64_t rows = static_cast<int64_t>(in.w.size()) / nb;
  const std::vector<WB>& w = in.w;
  const std::vector<float>& w_abs = in.w_abs;
  const std::vector<AB>& a = in.a;
  const std::vector<float>& a_f = in.a_f;
  int tested = 0;
  for (Isa isa : available_isas()) {
    const TypeKernels& t = *kernels_for(isa)->type(type);
    if (!t.gemm) continue;
    ++tested;
    REQUIRE(t.gemm_min_rows + 17 <= kGemmTileActs);
    for (int64_t n_act = 1; n_act <= t.gemm_min_rows + 17; ++n_act) {
      const int64_t ldy = rows + 2;
      std::vector<float> y(n_act * ldy, -1.0f);
      t.gemm(n, w.data(), nb * sizeof(WB), rows, a.data(), nb * sizeof(AB), n_act, y.data(), ldy);
      int bad = 0;
      for (int64_t i = 0; i < n_act; ++i) {
        const std::vector<float> ai(a_f.begin() + i * n, a_f.begin() + (i + 1) * n);
        for (int64_t r = 0; r < rows; ++r) {
          const double want = ref(n, w.data() + r * nb, a.data() + i * nb);
          const std::vector<float> wr(w_abs.begin() + r * n, w_abs.begin() + (r + 1) * n);
          if (!(std::abs(y[i * ldy + r] - want) <= dot_bound(n, abs_dot(wr, ai))) && ++bad <= 3)
            FAIL_CHECK(isa_label(isa) << " " << dtype_name(static_cast<uint32_t>(type)) << " blocks " << nb
                                      << " rows " << rows << " n_act " << n_act << ": y[" << i << "][" << r
                                      << "] = " << y[i * ldy + r] << ", reference " << want);
        }
        CHECK(y[i * ldy + rows] == -1.0f);  // padding untouched
        CHECK(y[i * ldy + rows + 1] == -1.0f);
      }
      CHECK(bad == 0);
    }
  }
  return tested;
}

// Every K-quant gemm tile (the prefill kernels: Q4_K, Q5_K, Q6_K, Q3_K, Q2_K), called directly for
// every activation count from 1 to well past its gemm_min_rows (so every pass width and tail of
// the tile driver), against the scalar vec_dot of each (weight row, activation row) within
// dot_bound. Row counts leave partial 8- and 16-row weight tiles; rows cycle through random,
// all-max and zero-scale blocks, and every fourth activation row is all -128 (the 16-bit partial
// sums' worst case with all-max weights).
TEST_CASE("K-quant gemm tiles stay within the dot-product bound for every activation count", "[matmul][gemm]") {
  const int64_t nb = 3, n = nb * QK_K;
  int tested = 0;
  auto run = [&](DType type, auto make, auto ref, auto magnitudes) {
    for (int64_t rows : {1, 8, 13, 19, 35})
      tested += check_gemm_tile(type, n, nb, make_gemm_tile_rows(nb, rows, make, magnitudes, make_q8_K, deq_q8_K), ref);
  };
  run(DType::Q4_K, make_q4_K, vec_dot_q4_K_q8_K_ref, q4_K_magnitudes);
  run(DType::Q5_K, make_q5_K, vec_dot_q5_K_q8_K_ref, q5_K_magnitudes);
  run(DType::Q6_K, make_q6_K, vec_dot_q6_K_q8_K_ref, abs_dequantized<QK_K>(dequantize_row_q6_K_ref));
  run(DType::Q3_K, make_q3_K, vec_dot_q3_K_q8_K_ref, abs_dequantized<QK_K>(dequantize_row_q3_K_ref));
  run(DType::Q2_K, make_q2_K, vec_dot_q2_K_q8_K_ref, q2_K_magnitudes);
  if (kernels_for(Isa::avx2)) CHECK(tested >= 5 * 5);  // every K type has an AVX2 tile
}

// The 32-element formats' tiles, on rows of 5 and 36 blocks (1152 wide: a Gemma-3-1B row, not a
// multiple of 256). Edge rows: every weight quant at its extreme (Q8_0 -128) or a zero scale;
// edge activations: every quant -128.
TEST_CASE("32-element-format gemm tiles stay within the dot-product bound for every activation count", "[matmul][gemm]") {
  int tested = 0;
  auto run = [&](DType type, auto make, auto ref, auto magnitudes, auto make_act, auto deq_act) {
    for (int64_t nb : {5, 36})
      for (int64_t rows : {1, 8, 13, 19, 35})
        tested += check_gemm_tile(type, nb * 32, nb, make_gemm_tile_rows(nb, rows, make, magnitudes, make_act, deq_act),
                                  ref);
  };
  run(DType::Q8_0, make_q8_0, vec_dot_q8_0_q8_0_ref, abs_dequantized<32>(dequantize_row_q8_0_ref), make_q8_0, deq_q8_0);
  run(DType::Q4_0, make_q4_0, vec_dot_q4_0_q8_0_ref, abs_dequantized<32>(dequantize_row_q4_0_ref), make_q8_0, deq_q8_0);
  run(DType::Q5_0, make_q5_0, vec_dot_q5_0_q8_0_ref, abs_dequantized<32>(dequantize_row_q5_0_ref), make_q8_0, deq_q8_0);
  run(DType::IQ4_NL, make_iq4_nl, vec_dot_iq4_nl_q8_0_ref, abs_dequantized<32>(dequantize_row_iq4_nl_ref), make_q8_0, deq_q8_0);
  run(DType::Q4_1, make_q4_1, vec_dot_q4_1_q8_1_ref, q4_1_magnitudes, make_q8_1, deq_q8_1);
  run(DType::Q5_1, make_q5_1, vec_dot_q5_1_q8_1_ref, q5_1_magnitudes, make_q8_1, deq_q8_1);
  if (kernels_for(Isa::avx2)) CHECK(tested >= 6 * 2 * 5);  // every 32-element type has an AVX2 tile
}

TEST_CASE("matmul rejects bad shapes with an exception", "[matmul]") {
  ThreadPool pool(1);
  const KernelSet& ks = *kernels_for(Isa::scalar);
  std::vector<float> x(300, 1.0f), y(16, 0.0f);
  std::vector<uint8_t> bytes(144);
  Activations act;
  act.reset(x.data(), 1, 300);
  WeightMatrix w{DType::Q4_K, bytes.data(), 1, 300, 144};  // 300 is not a multiple of 256
  CHECK_THROWS_AS(matmul(ks, pool, w, act, y.data(), 16), std::invalid_argument);
  act.reset(x.data(), 1, 256);
  w.cols = 256;
  CHECK_THROWS_AS(matmul(ks, pool, w, act, y.data(), 0), std::invalid_argument);  // ldy < rows
  w.data = nullptr;
  CHECK_THROWS_AS(matmul(ks, pool, w, act, y.data(), 16), std::invalid_argument);
  w.data = bytes.data();
  w.type = DType::IQ2_XXS;
  CHECK_THROWS_AS(matmul(ks, pool, w, act, y.data(), 16), std::invalid_argument);
  CHECK(!matmul_supports(ks, DType::IQ2_XXS));
  CHECK(matmul_supports(ks, DType::Q4_K));
}

TEST_CASE("thread pool runs every job on every thread, awake or after sleeping", "[thread_pool][tsan]") {
  // The workers only count (Catch2's assertions are not thread-safe); the main thread checks.
  // 64 threads is more than this machine's CPUs: the pool then waits on a condition variable
  // instead of spinning, and must still run every job on every thread, in bounded time.
  const int oversubscribed = std::max(64, 4 * static_cast<int>(std::thread::hardware_concurrency()));
  for (int n : {1, 2, 3, 5, oversubscribed}) {
    INFO("threads " << n);
    ThreadPool pool(n);
    REQUIRE(pool.size() == n);
    std::vector<std::atomic<int>> hits(n);
    std::atomic<int> wrong_nth{0}, bad_ith{0};
    const int jobs = n > 8 ? 300 : 2000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int job = 0; job < jobs; ++job) {
      pool.run([&](int ith, int nth) {
        if (nth != n) wrong_nth.fetch_add(1);
        if (ith < 0 || ith >= n) bad_ith.fetch_add(1);
        else hits[ith].fetch_add(1);
      });
      if (job % 500 == 0 || (n > 8 && job % 100 == 0))
        std::this_thread::sleep_for(std::chrono::milliseconds(30));  // workers sleep
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(wrong_nth.load() == 0);
    CHECK(bad_ith.load() == 0);
    for (int i = 0; i < n; ++i) CHECK(hits[i].load() == jobs);
    CHECK(seconds < 20.0);  // a hang detector, not a speed test
  }
  // split() covers [0, n) exactly, in order.
  for (int64_t n : {0, 1, 7, 100}) {
    for (int nth : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int ith = 0; ith < nth; ++ith) {
        int64_t b, e;
        ThreadPool::split(n, ith, nth, b, e);
        CHECK(b == next);
        CHECK(e >= b);
        next = e;
      }
      CHECK(next == n);
    }
  }
  CHECK(physical_core_count() >= 1);
}
