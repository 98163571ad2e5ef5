// The NEON kernels (aarch64 only), both flavours: the armv8.0 table always (called directly, so it
// is tested on dotprod CPUs too) and the armv8.2 dotprod table when the CPU has it, each against
// the scalar references on random and edge inputs:
//   - dequantization and Q8_K / Q8_0 / Q8_1 quantization bit for bit;
//   - dot products of every quantized type (Q4_K, Q5_K, Q6_K, Q3_K, Q2_K, IQ4_XS against Q8_K;
//     Q8_0, Q4_0, Q5_0, IQ4_NL against Q8_0; Q4_1, Q5_1 against Q8_1), on random blocks and every
//     kind of edge block (zero / subnormal / 65504 scales, all quants at their maximum), in rows of
//     one block and of many, within |r - ref| <= (n / 16 + 16) * 2^-23 * sum_i |w_i a_i|
//     (neon_dots.hpp: exact integer block sums, float scaling and accumulation; for Q4_K / Q5_K /
//     Q2_K |w_i| counts d sc q and dmin m separately, for Q4_1 / Q5_1 d q and m);
//   - the dispatch choice: "neon+dotprod" exactly when HWCAP has ASIMDDP (qemu -cpu max /
//     neoverse-n1), "neon" without (cortex-a72), where dotprod code would die with SIGILL.
// tools/test.sh runs this under both qemu CPUs.
#include <catch2/catch.hpp>

#include <asm/hwcap.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "block_samples.hpp"
#include "edgellm/kernels/dispatch.hpp"
#include "edgellm/kernels/quants.hpp"
#include "neon_kernels.hpp"  // kernels/src: both flavours' tables

using namespace edgellm;
using namespace edgellm::kernels;
using namespace edgellm::test;

namespace {

bool hwcap_dotprod() { return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }

// The NEON tables this CPU can run: armv8.0 always, dotprod when the CPU has it.
std::vector<const KernelSet*> flavours() {
  std::vector<const KernelSet*> v = {neon_v8_kernels()};
  if (hwcap_dotprod()) v.push_back(neon_dotprod_kernels());
  return v;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

double dot_bound(int64_t n, double magnitude) {
  return (static_cast<double>(n) / 16 + 16) * std::ldexp(1.0, -23) * magnitude;
}

double abs_dot(const std::vector<float>& w_abs, const std::vector<float>& a) {
  double s = 0;
  for (size_t i = 0; i < w_abs.size(); ++i) s += std::abs(static_cast<double>(w_abs[i]) * a[i]);
  return s;
}

// Random blocks followed by edge blocks.
template <typename Block>
std::vector<Block> mixed(std::vector<Block> random, const std::vector<Block>& edge) {
  random.insert(random.end(), edge.begin(), edge.end());
  return random;
}

// The edge rows of block_samples.hpp whose values the float kernels can scale: the kernels take
// d_w * d_a in float (the reference in double), so rows near FLT_MAX (3e38) are left out.
std::vector<std::vector<float>> scalable_edge_rows(size_t n) {
  std::vector<std::vector<float>> rows;
  for (auto& r : edge_rows(n)) {
    if (std::abs(r[0]) < 1e30f) rows.push_back(std::move(r));
  }
  return rows;
}

// Q8_K activation rows: quantized Gaussian and edge rows (the ways real activations look), plus
// raw bytes with consistent bsums, among them all -128 (the extreme of every product).
std::vector<std::vector<block_q8_K>> q8_K_rows(Rng& rng, int64_t nb) {
  std::vector<std::vector<float>> floats = scalable_edge_rows(nb * QK_K);
  for (int r = 0; r < 4; ++r) floats.push_back(gaussian(rng, nb * QK_K, r == 0 ? 1e-3f : 1.0f));
  std::vector<std::vector<block_q8_K>> rows;
  for (const auto& f : floats) {
    std::vector<block_q8_K> q(nb);
    quantize_row_q8_K_ref(f.data(), q.data(), nb * QK_K);
    rows.push_back(q);
  }
  for (int fill : {-1, -128}) {
    std::vector<block_q8_K> q(nb);
    for (auto& b : q) {
      for (auto& v : b.qs) v = fill == -1 ? static_cast<int8_t>(rng.next()) : static_cast<int8_t>(fill);
      for (int j = 0; j < QK_K / 16; ++j) {
        int s = 0;
        for (int l = 0; l < 16; ++l) s += b.qs[16 * j + l];
        b.bsums[j] = static_cast<int16_t>(s);
      }
      b.d = fp16_to_fp32(static_cast<fp16_t>(0x2000 + rng.next() % 0x1000)) * ((rng.next() & 1) ? 1 : -1);
    }
    rows.push_back(q);
  }
  return rows;
}

std::vector<std::vector<block_q8_0>> q8_0_rows(Rng& rng, int64_t nb) {
  std::vector<std::vector<float>> floats = scalable_edge_rows(nb * QK8_0);
  floats.push_back(gaussian(rng, nb * QK8_0));
  std::vector<std::vector<block_q8_0>> rows;
  for (const auto& f : floats) {
    std::vector<block_q8_0> q(nb);
    quantize_row_q8_0_ref(f.data(), q.data(), nb * QK8_0);
    rows.push_back(q);
  }
  rows.push_back(random_q8_0(rng, nb));
  std::vector<block_q8_0> all_min(nb);
  for (auto& b : all_min) {
    std::memset(b.qs, 0x80, sizeof b.qs);  // -128
    b.d = 0x3C00;
  }
  rows.push_back(all_min);
  return rows;
}

// Q8_1 activation rows: the quantizer's blocks of edge and Gaussian rows, then raw bytes with s =
// d sum(q) (d of either sign, small enough that s stays finite in fp16), among them all -128.
std::vector<std::vector<block_q8_1>> q8_1_rows(Rng& rng, int64_t nb) {
  std::vector<std::vector<float>> floats = scalable_edge_rows(nb * QK8_1);
  floats.push_back(gaussian(rng, nb * QK8_1));
  std::vector<std::vector<block_q8_1>> rows;
  for (const auto& f : floats) {
    std::vector<block_q8_1> q(nb);
    quantize_row_q8_1_act_ref(f.data(), q.data(), nb * QK8_1);
    rows.push_back(q);
  }
  for (int fill : {-1, -128}) {
    std::vector<block_q8_1> q(nb);
    for (auto& b : q) {
      int sum = 0;
      for (auto& v : b.qs) sum += v = fill == -1 ? static_cast<int8_t>(rng.next()) : static_cast<int8_t>(fill);
      b.d = static_cast<fp16_t>((0x2000 + rng.next() % 0x1000) | ((rng.next() & 1) ? 0x8000 : 0));
      b.s = fp32_to_fp16(fp16_to_fp32(b.d) * static_cast<float>(sum));
    }
    rows.push_back(q);
  }
  return rows;
}

// Weight rows of nb blocks: `n_random` random rows, then runs of nb consecutive edge blocks
// starting every nb * step blocks (step coprime to the edge lists' pattern periods 3, 4, 5, 7, 10,
// so one-block rows still meet every pattern).
template <typename Block, typename Random>
std::vector<std::vector<Block>> weight_rows(Rng& rng, Random random, const std::vector<Block>& edge, int64_t nb,
                                            size_t step) {
  std::vector<std::vector<Block>> rows;
  for (int r = 0; r < 4; ++r) rows.push_back(random(rng, nb));
  for (size_t s = 0; s + nb <= edge.size(); s += nb * step) rows.emplace_back(edge.begin() + s, edge.begin() + s + nb);
  return rows;
}

// |w| per element of a row, from its dequantization: `split` gives the block with d >= 0 and
// dmin <= 0 (exact fp16 sign flips), so d sc q and dmin m add up in magnitude.
template <typename Block, typename Deq>
std::vector<float> magnitudes(std::vector<Block> w, int64_t elems, Deq deq) {
  std::vector<float> y(w.size() * elems);
  deq(w.data(), y.data(), static_cast<int64_t>(y.size()));
  for (float& v : y) v = std::abs(v);
  return y;
}
template <typename Block, typename Deq>
std::vector<float> split_magnitudes(std::vector<Block> w, int64_t elems, Deq deq) {
  for (auto& b : w) b.d &= 0x7FFF, b.dmin |= 0x8000;
  return magnitudes(w, elems, deq);
}
// Q4_1 / Q5_1: |d q| + |m|.
template <typename Block, typename Deq>
std::vector<float> min_magnitudes(std::vector<Block> w, int64_t elems, Deq deq) {
  std::vector<float> mins(w.size() * elems);
  for (size_t i = 0; i < mins.size(); ++i) mins[i] = std::abs(fp16_to_fp32(w[i / elems].m));
  for (auto& b : w) b.m = 0;
  std::vector<float> y = magnitudes(w, elems, deq);
  for (size_t i = 0; i < y.size(); ++i) y[i] += mins[i];
  return y;
}

// Every (weight row, activation row) pair, every flavour: vec_dot of type t within dot_bound of
// the reference. abs_w(row) gives the row's |w| per element, deq_a an activation row's values.
template <typename WB, typename AB, typename Ref, typename Abs, typename DeqA>
void check_vec_dots(DType t, const std::vector<std::vector<WB>>& w, const std::vector<std::vector<AB>>& acts,
                    int64_t n, Ref ref, Abs abs_w, DeqA deq_a) {
  std::vector<std::vector<float>> w_abs;
  for (const auto& row : w) w_abs.push_back(abs_w(row));
  int bad = 0;
  size_t checked = 0;
  for (size_t i = 0; i < acts.size(); ++i) {
    std::vector<float> a_f(n);
    deq_a(acts[i].data(), a_f.data(), n);
    for (size_t r = 0; r < w.size(); ++r) {
      const double want = ref(n, w[r].data(), acts[i].data());
      const double bound = dot_bound(n, abs_dot(w_abs[r], a_f));
      for (const KernelSet* ks : flavours()) {
        const double got = ks->type(t)->vec_dot(n, w[r].data(), acts[i].data());
        ++checked;
        if (!(std::abs(got - want) <= bound) && ++bad <= 3) {
          FAIL_CHECK(dtype_name(static_cast<uint32_t>(t)) << " flavour " << ks->name << " n " << n << " weight row "
                                                          << r << " activation row " << i << ": got " << got
                                                          << ", reference " << want << " +- " << bound);
        }
      }
    }
  }
  INFO(dtype_name(static_cast<uint32_t>(t)) << " n " << n << ": " << bad << " of " << checked << " out of bound");
  CHECK(bad == 0);
  CHECK(checked >= 8 * flavours().size());
}

}  // namespace

TEST_CASE("NEON dispatch picks the dotprod flavour exactly when HWCAP has ASIMDDP", "[neon][dispatch]") {
  const bool dotprod = hwcap_dotprod();
  CHECK(cpu_has_dotprod() == dotprod);
  // When run through cmake/qemu-aarch64.sh, the emulated CPU is known: check HWCAP agrees.
  if (const char* cpu = std::getenv("EDGELLM_QEMU_CPU")) {
    const std::string c = cpu;
    if (c == "cortex-a72") CHECK(!dotprod);
    if (c == "neoverse-n1" || c == "max") CHECK(dotprod);
  }
  const KernelSet* neon = kernels_for(Isa::neon);
  REQUIRE(neon != nullptr);
  CHECK(neon->isa == Isa::neon);
  CHECK(std::string(neon->name) == (dotprod ? "neon+dotprod" : "neon"));
  CHECK(neon == (dotprod ? neon_dotprod_kernels() : neon_v8_kernels()));
  CHECK((neon_dotprod_kernels() != nullptr) == dotprod);
  CHECK(std::string(neon_v8_kernels()->name) == "neon");
  CHECK(available_isas().back() == Isa::neon);
  if (std::getenv("EDGELLM_ISA") == nullptr) CHECK(&active_kernels() == neon);

  // Every entry is a NEON kernel, not the scalar fallback; the dotprod table differs from the
  // armv8.0 one exactly in the integer dot products and their tiles.
  const KernelSet* v8 = neon_v8_kernels();
  const KernelSet* scalar = kernels_for(Isa::scalar);
  for (DType t : {DType::Q4_K, DType::Q6_K, DType::Q8_0, DType::Q4_0, DType::F16, DType::BF16, DType::F32}) {
    INFO(dtype_name(static_cast<uint32_t>(t)));
    REQUIRE(v8->type(t) != nullptr);
    if (t != DType::F32) CHECK(v8->type(t)->dequantize_row != scalar->type(t)->dequantize_row);
    CHECK(v8->type(t)->vec_dot != scalar->type(t)->vec_dot);
    CHECK(v8->type(t)->gemv != scalar->type(t)->gemv);
    CHECK(v8->type(t)->gemm == nullptr);  // armv8.0: no prefill tile
  }
  // These have NEON dot products (and gemv tiles of them); dequantization is the reference's.
  const DType dot_only[] = {DType::Q5_K, DType::Q3_K, DType::Q2_K, DType::IQ4_XS,
                            DType::Q5_0, DType::IQ4_NL, DType::Q4_1, DType::Q5_1};
  for (DType t : dot_only) {
    INFO(dtype_name(static_cast<uint32_t>(t)));
    REQUIRE(v8->type(t) != nullptr);
    CHECK(v8->type(t)->dequantize_row == scalar->type(t)->dequantize_row);
    CHECK(v8->type(t)->vec_dot != scalar->type(t)->vec_dot);
    CHECK(v8->type(t)->gemv != scalar->type(t)->gemv);
    CHECK(v8->type(t)->act == scalar->type(t)->act);
    CHECK(v8->type(t)->gemm == nullptr);
  }
  CHECK(v8->act(ActForm::q8_K).from_f32 != scalar->act(ActForm::q8_K).from_f32);
  CHECK(v8->act(ActForm::q8_0).from_f32 != scalar->act(ActForm::q8_0).from_f32);
  CHECK(v8->act(ActForm::q8_1).from_f32 != scalar->act(ActForm::q8_1).from_f32);
  if (const KernelSet* dp = neon_dotprod_kernels()) {
    for (DType t : dot_only) {
      INFO(dtype_name(static_cast<uint32_t>(t)));
      CHECK(dp->type(t)->vec_dot != v8->type(t)->vec_dot);
      CHECK(dp->type(t)->gemv != v8->type(t)->gemv);
      CHECK(dp->type(t)->dequantize_row == v8->type(t)->dequantize_row);
    }
    CHECK(dp->act(ActForm::q8_1).from_f32 == v8->act(ActForm::q8_1).from_f32);
    for (DType t : {DType::Q4_K, DType::Q6_K, DType::Q8_0, DType::Q4_0}) {
      INFO(dtype_name(static_cast<uint32_t>(t)));
      CHECK(dp->type(t)->vec_dot != v8->type(t)->vec_dot);
      CHECK(dp->type(t)->gemv != v8->type(t)->gemv);
      CHECK(dp->type(t)->dequantize_row == v8->type(t)->dequantize_row);
    }
    CHECK(dp->type(DType::Q4_K)->gemm != nullptr);
    CHECK(dp->type(DType::Q5_K)->gemm != nullptr);
    CHECK(dp->type(DType::Q5_K)->gemm_min_rows > 1);
    CHECK(dp->type(DType::Q6_K)->gemm != nullptr);
    CHECK(dp->type(DType::Q4_K)->gemm_min_rows > 1);
    CHECK(dp->act(ActForm::q8_K).from_f32 == v8->act(ActForm::q8_K).from_f32);
    CHECK(dp->type(DType::F32)->vec_dot == v8->type(DType::F32)->vec_dot);
  }
}

// The reason for the run-time check: the sdot kernels run on a dotprod CPU and die with SIGILL on
// one without (under qemu -cpu cortex-a72), so a pass there shows that none of them was called.
TEST_CASE("the sdot kernels fault exactly on CPUs without dotprod", "[neon][dispatch]") {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // child: one dotprod kernel, then a plain exit (or death by SIGILL, unreported)
    std::signal(SIGILL, SIG_DFL);  // not Catch's handler, which would report a failure
    block_q8_0 b{};
    b.d = 0x3C00;
    b.qs[0] = 3;
    const float r = dotprod::vec_dot_q8_0_q8_0(QK8_0, &b, &b);
    _exit(r == 9.0f ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  if (hwcap_dotprod()) {
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  } else {
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGILL);
  }
}

TEST_CASE("NEON dequantization is bit-exact with the reference", "[neon][dequantize]") {
  Rng rng(7);
  const auto q4k = mixed(random_q4_K(rng, 64), edge_q4_K());
  const auto q6k = mixed(random_q6_K(rng, 64), edge_q6_K());
  const auto q80 = mixed(random_q8_0(rng, 64), edge_q8_0());
  const auto q40 = mixed(random_q4_0(rng, 64), edge_q4_0());
  std::vector<uint16_t> all(65536 + 16);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  for (const KernelSet* ks : flavours()) {
    INFO("flavour " << ks->name);
    auto check = [&](const auto& blocks, int64_t block_elems, auto ref, auto got_fn) {
      const int64_t k = static_cast<int64_t>(blocks.size()) * block_elems;
      std::vector<float> want(k, 0.0f), got(k, 1.0f);
      ref(blocks.data(), want.data(), k);
      got_fn(blocks.data(), got.data(), k);
      CHECK(same_bits(want, got));
    };
    check(q4k, QK_K, dequantize_row_q4_K_ref, ks->type(DType::Q4_K)->dequantize_row);
    check(q6k, QK_K, dequantize_row_q6_K_ref, ks->type(DType::Q6_K)->dequantize_row);
    check(q80, QK8_0, dequantize_row_q8_0_ref, ks->type(DType::Q8_0)->dequantize_row);
    check(q40, QK4_0, dequantize_row_q4_0_ref, ks->type(DType::Q4_0)->dequantize_row);
    // Every 16-bit pattern (subnormals, Inf, NaN with payloads), at odd offsets and lengths.
    for (int64_t off : {0, 3}) {
      for (int64_t n : {int64_t{65536}, int64_t{1}, int64_t{15}, int64_t{17}, int64_t{47}}) {
        INFO("offset " << off << " length " << n);
        std::vector<float> want(n, 0.0f), got(n, 1.0f);
        dequantize_row_f16_ref(all.data() + off, want.data(), n);
        ks->type(DType::F16)->dequantize_row(all.data() + off, got.data(), n);
        CHECK(same_bits(want, got));
        dequantize_row_bf16_ref(all.data() + off, want.data(), n);
        ks->type(DType::BF16)->dequantize_row(all.data() + off, got.data(), n);
        CHECK(same_bits(want, got));
      }
    }
  }
}

TEST_CASE("NEON Q8_K / Q8_0 / Q8_1 quantization is bit-exact with the reference", "[neon][quantize]") {
  Rng rng(11);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::vector<float>> inputs = edge_rows(2 * QK_K);
  for (float sigma : {1.0f, 1e-3f, 1e30f, 1e-38f}) inputs.push_back(gaussian(rng, 4 * QK_K, sigma));
  {
    auto v = gaussian(rng, 2 * QK_K);
    v[5] = 7.0f, v[100] = -7.0f;  // equal magnitudes: the first one gives the sign
    v[QK_K + 7] = -9.0f, v[QK_K + 200] = 9.0f;
    inputs.push_back(v);
    auto s = gaussian(rng, 2 * QK_K);
    s[3] = nan, s[40] = -nan;                      // NaN elements
    s[QK_K + 8] = inf, s[QK_K + 9] = -inf;         // Inf blocks
    inputs.push_back(s);
    std::vector<float> all_nan(QK_K, nan);
    inputs.push_back(all_nan);
    auto t = gaussian(rng, QK_K, 1e-3f);
    t[17] = 1e-37f * 3, t[200] = -std::numeric_limits<float>::denorm_min();
    inputs.push_back(t);
    std::vector<float> tiny_block(QK_K, 0.0f);
    tiny_block[31] = -std::numeric_limits<float>::denorm_min();  // -127 / max overflows
    inputs.push_back(tiny_block);
    std::vector<float> halves(QK_K);
    for (int i = 0; i < QK_K; ++i) halves[i] = (i - 128) * 0.5f + (i % 3 == 0 ? 0.25f : 0.0f);
    halves[0] = -127.0f;  // x * -127 / max lands on many exact .5 ties
    inputs.push_back(halves);
  }
  for (const KernelSet* ks : flavours()) {
    INFO("flavour " << ks->name);
    for (size_t t = 0; t < inputs.size(); ++t) {
      INFO("input " << t);
      const auto& x = inputs[t];
      const int64_t n = static_cast<int64_t>(x.size());
      std::vector<block_q8_K> want(n / QK_K), got(n / QK_K);
      std::memset(got.data(), 0x5A, got.size() * sizeof(block_q8_K));
      quantize_row_q8_K_ref(x.data(), want.data(), n);
      ks->act(ActForm::q8_K).from_f32(x.data(), got.data(), n);
      CHECK(same_bits(want, got));
      std::vector<block_q8_0> want0(n / QK8_0), got0(n / QK8_0);
      std::memset(got0.data(), 0x5A, got0.size() * sizeof(block_q8_0));
      quantize_row_q8_0_act_ref(x.data(), want0.data(), n);
      ks->act(ActForm::q8_0).from_f32(x.data(), got0.data(), n);
      CHECK(same_bits(want0, got0));
      std::vector<block_q8_1> want1(n / QK8_1), got1(n / QK8_1);
      std::memset(got1.data(), 0x5A, got1.size() * sizeof(block_q8_1));
      quantize_row_q8_1_act_ref(x.data(), want1.data(), n);
      ks->act(ActForm::q8_1).from_f32(x.data(), got1.data(), n);
      CHECK(same_bits(want1, got1));
    }
  }
}

TEST_CASE("NEON K-quant dot products stay within the stated bound", "[neon][vec_dot]") {
  Rng rng(13);
  for (int64_t nb : {1, 2, 3, 8, 17}) {
    const int64_t n = nb * QK_K;
    const auto acts = q8_K_rows(rng, nb);
    // Weight rows: random blocks, then every edge block in rows of nb.
    std::vector<std::vector<block_q4_K>> w4;
    std::vector<std::vector<block_q6_K>> w6;
    for (int r = 0; r < 4; ++r) w4.push_back(random_q4_K(rng, nb)), w6.push_back(random_q6_K(rng, nb));
    const auto e4 = edge_q4_K();
    const auto e6 = edge_q6_K();
    for (size_t s = 0; s + nb <= e4.size(); s += nb * 7) w4.emplace_back(e4.begin() + s, e4.begin() + s + nb);
    for (size_t s = 0; s + nb <= e6.size(); s += nb * 3) w6.emplace_back(e6.begin() + s, e6.begin() + s + nb);
    // |w| per element, once per weight row (for Q4_K: d >= 0 and dmin <= 0, exact fp16 sign flips).
    std::vector<std::vector<float>> w4_abs, w6_abs;
    for (auto w : w4) {
      for (auto& b : w) b.d &= 0x7FFF, b.dmin |= 0x8000;
      w4_abs.emplace_back(n);
      dequantize_row_q4_K_ref(w.data(), w4_abs.back().data(), n);
    }
    for (const auto& w : w6) {
      w6_abs.emplace_back(n);
      dequantize_row_q6_K_ref(w.data(), w6_abs.back().data(), n);
      for (float& v : w6_abs.back()) v = std::abs(v);
    }
    for (const auto& a : acts) {
      std::vector<float> a_f(n);
      dequantize_row_q8_K_ref(a.data(), a_f.data(), n);
      for (size_t r = 0; r < w4.size(); ++r) {
        const double ref = vec_dot_q4_K_q8_K_ref(n, w4[r].data(), a.data());
        const double bound = dot_bound(n, abs_dot(w4_abs[r], a_f));
        for (const KernelSet* ks : flavours()) {
          const double got = ks->type(DType::Q4_K)->vec_dot(n, w4[r].data(), a.data());
          INFO("Q4_K flavour " << ks->name << " blocks " << nb << " row " << r << " ref " << ref << " got " << got);
          CHECK(std::abs(got - ref) <= bound);
        }
      }
      for (size_t r = 0; r < w6.size(); ++r) {
        const double ref = vec_dot_q6_K_q8_K_ref(n, w6[r].data(), a.data());
        const double bound = dot_bound(n, abs_dot(w6_abs[r], a_f));
        for (const KernelSet* ks : flavours()) {
          const double got = ks->type(DType::Q6_K)->vec_dot(n, w6[r].data(), a.data());
          INFO("Q6_K flavour " << ks->name << " blocks " << nb << " row " << r << " ref " << ref << " got " << got);
          CHECK(std::abs(got - ref) <= bound);
        }
      }
    }
  }
}

TEST_CASE("NEON Q8_0 / Q4_0 dot products stay within the stated bound", "[neon][vec_dot]") {
  Rng rng(17);
  for (int64_t nb : {1, 2, 3, 5, 8, 33}) {
    const int64_t n = nb * QK8_0;
    const auto acts = q8_0_rows(rng, nb);
    std::vector<std::vector<block_q8_0>> w8;
    std::vector<std::vector<block_q4_0>> w4;
    for (int r = 0; r < 4; ++r) w8.push_back(random_q8_0(rng, nb)), w4.push_back(random_q4_0(rng, nb));
    const auto e8 = edge_q8_0();
    const auto e4 = edge_q4_0();
    for (size_t s = 0; s + nb <= e8.size(); s += nb) w8.emplace_back(e8.begin() + s, e8.begin() + s + nb);
    for (size_t s = 0; s + nb <= e4.size(); s += nb) w4.emplace_back(e4.begin() + s, e4.begin() + s + nb);
    for (const auto& a : acts) {
      std::vector<float> a_f(n), w_f(n);
      dequantize_row_q8_0_ref(a.data(), a_f.data(), n);
      for (const auto& w : w8) {
        dequantize_row_q8_0_ref(w.data(), w_f.data(), n);
        const double ref = vec_dot_q8_0_q8_0_ref(n, w.data(), a.data());
        const double bound = dot_bound(n, abs_dot(w_f, a_f));
        for (const KernelSet* ks : flavours()) {
          const double got = ks->type(DType::Q8_0)->vec_dot(n, w.data(), a.data());
          INFO("Q8_0 flavour " << ks->name << " blocks " << nb << " ref " << ref << " got " << got);
          CHECK(std::abs(got - ref) <= bound);
        }
      }
      for (const auto& w : w4) {
        dequantize_row_q4_0_ref(w.data(), w_f.data(), n);
        const double ref = vec_dot_q4_0_q8_0_ref(n, w.data(), a.data());
        const double bound = dot_bound(n, abs_dot(w_f, a_f));
        for (const KernelSet* ks : flavours()) {
          const double got = ks->type(DType::Q4_0)->vec_dot(n, w.data(), a.data());
          INFO("Q4_0 flavour " << ks->name << " blocks " << nb << " ref " << ref << " got " << got);
          CHECK(std::abs(got - ref) <= bound);
        }
      }
    }
  }
}

TEST_CASE("NEON Q5_K / Q3_K / Q2_K / IQ4_XS dot products stay within the stated bound", "[neon][vec_dot]") {
  Rng rng(29);
  const auto e5 = edge_q5_K();
  const auto e3 = edge_q3_K();
  const auto e2 = edge_q2_K();
  const auto exs = edge_iq4_xs();
  for (int64_t nb : {1, 2, 3, 8, 17}) {
    const int64_t n = nb * QK_K;
    const auto acts = q8_K_rows(rng, nb);
    check_vec_dots(DType::Q5_K, weight_rows(rng, random_q5_K, e5, nb, 11), acts, n, vec_dot_q5_K_q8_K_ref,
                   [](const auto& w) { return split_magnitudes(w, QK_K, dequantize_row_q5_K_ref); },
                   dequantize_row_q8_K_ref);
    check_vec_dots(DType::Q3_K, weight_rows(rng, random_q3_K, e3, nb, 1), acts, n, vec_dot_q3_K_q8_K_ref,
                   [](const auto& w) { return magnitudes(w, QK_K, dequantize_row_q3_K_ref); }, dequantize_row_q8_K_ref);
    check_vec_dots(DType::Q2_K, weight_rows(rng, random_q2_K, e2, nb, 11), acts, n, vec_dot_q2_K_q8_K_ref,
                   [](const auto& w) { return split_magnitudes(w, QK_K, dequantize_row_q2_K_ref); },
                   dequantize_row_q8_K_ref);
    check_vec_dots(DType::IQ4_XS, weight_rows(rng, random_iq4_xs, exs, nb, 1), acts, n, vec_dot_iq4_xs_q8_K_ref,
                   [](const auto& w) { return magnitudes(w, QK_K, dequantize_row_iq4_xs_ref); },
                   dequantize_row_q8_K_ref);
  }
}

TEST_CASE("NEON Q5_0 / IQ4_NL (Q8_0) and Q4_1 / Q5_1 (Q8_1) dot products stay within the stated bound",
          "[neon][vec_dot]") {
  Rng rng(31);
  const auto e50 = edge_q5_0();
  const auto e51 = edge_q5_1();
  const auto e41 = edge_q4_1();
  const auto enl = edge_iq4_nl();
  for (int64_t nb : {1, 2, 3, 5, 8, 33}) {
    const int64_t n = nb * QK8_0;
    const auto a0 = q8_0_rows(rng, nb);
    const auto a1 = q8_1_rows(rng, nb);
    check_vec_dots(DType::Q5_0, weight_rows(rng, random_q5_0, e50, nb, 1), a0, n, vec_dot_q5_0_q8_0_ref,
                   [](const auto& w) { return magnitudes(w, QK5_0, dequantize_row_q5_0_ref); }, dequantize_row_q8_0_ref);
    check_vec_dots(DType::IQ4_NL, weight_rows(rng, random_iq4_nl, enl, nb, 1), a0, n, vec_dot_iq4_nl_q8_0_ref,
                   [](const auto& w) { return magnitudes(w, QK4_NL, dequantize_row_iq4_nl_ref); },
                   dequantize_row_q8_0_ref);
    check_vec_dots(DType::Q4_1, weight_rows(rng, random_q4_1, e41, nb, 1), a1, n, vec_dot_q4_1_q8_1_ref,
                   [](const auto& w) { return min_magnitudes(w, QK4_1, dequantize_row_q4_1_ref); },
                   dequantize_row_q8_1_ref);
    check_vec_dots(DType::Q5_1, weight_rows(rng, random_q5_1, e51, nb, 1), a1, n, vec_dot_q5_1_q8_1_ref,
                   [](const auto& w) { return min_magnitudes(w, QK5_1, dequantize_row_q5_1_ref); },
                   dequantize_row_q8_1_ref);
  }
}

TEST_CASE("NEON float dot products stay within the stated bound", "[neon][vec_dot]") {
  Rng rng(19);
  for (int64_t n = 1; n <= 70; ++n) {
    for (int64_t len : {n, n * 61}) {
      INFO("length " << len);
      auto x = gaussian(rng, len), y = gaussian(rng, len);
      if (len > 8) x[len / 2] = 1e4f, y[len / 3] = -1e-4f;  // mixed magnitudes
      std::vector<fp16_t> h(len);
      std::vector<bf16_t> b(len);
      quantize_row_f16_ref(x.data(), h.data(), len);
      quantize_row_bf16_ref(x.data(), b.data(), len);
      std::vector<float> hf(len), bf(len);
      dequantize_row_f16_ref(h.data(), hf.data(), len);
      dequantize_row_bf16_ref(b.data(), bf.data(), len);
      for (const KernelSet* ks : flavours()) {
        INFO("flavour " << ks->name);
        CHECK(std::abs(ks->type(DType::F32)->vec_dot(len, x.data(), y.data()) - vec_dot_f32_f32_ref(len, x.data(), y.data())) <=
              dot_bound(len, abs_dot(x, y)));
        CHECK(std::abs(ks->type(DType::F16)->vec_dot(len, h.data(), y.data()) - vec_dot_f16_f32_ref(len, h.data(), y.data())) <=
              dot_bound(len, abs_dot(hf, y)));
        CHECK(std::abs(ks->type(DType::BF16)->vec_dot(len, b.data(), y.data()) - vec_dot_bf16_f32_ref(len, b.data(), y.data())) <=
              dot_bound(len, abs_dot(bf, y)));
      }
    }
  }
}

// The matmul tiles: every type's gemv tile (built from the flavour's dot products) and, where
// the flavour has one, its gemm tile (the dotprod flavour's packed 8-row Q4_K / Q5_K / Q6_K
// prefill kernel, kernels_dotprod.cpp), each for every activation count (matmul() picks between them). Every output within the dot-product bound of the reference, for row
// counts that leave partial 8-row tiles and activation counts that leave partial groups of 4.
static std::vector<MatmulTile> tiles_of(const KernelSet& ks, DType t) {
  std::vector<MatmulTile> v{ks.type(t)->gemv};
  if (ks.type(t)->gemm) v.push_back(ks.type(t)->gemm);
  return v;
}

TEST_CASE("NEON matmul tiles stay within the dot-product bound", "[neon][matmul]") {
  Rng rng(23);
  const int64_t n = 3 * QK_K;
  for (int64_t rows : {1, 8, 13, 19}) {
    const auto w4 = random_q4_K(rng, rows * n / QK_K);
    const auto w6 = random_q6_K(rng, rows * n / QK_K);
    const auto w8 = random_q8_0(rng, rows * n / QK8_0);
    const auto w40 = random_q4_0(rng, rows * n / QK4_0);
    auto w5k = random_q5_K(rng, rows * n / QK_K);
    {  // the later blocks are edge blocks (extreme scales, all quants 31, ...), for Q5_K's gemm tile
      const auto e5 = edge_q5_K();
      for (size_t b = w5k.size() / 2, e = 0; b < w5k.size(); ++b, e += 11) w5k[b] = e5[e % e5.size()];
    }
    const auto w3k = random_q3_K(rng, rows * n / QK_K);
    const auto w2k = random_q2_K(rng, rows * n / QK_K);
    const auto wxs = random_iq4_xs(rng, rows * n / QK_K);
    const auto w50 = random_q5_0(rng, rows * n / QK5_0);
    const auto wnl = random_iq4_nl(rng, rows * n / QK4_NL);
    const auto w41 = random_q4_1(rng, rows * n / QK4_1);
    const auto w51 = random_q5_1(rng, rows * n / QK5_1);
    const auto wf = gaussian(rng, rows * n);
    for (int64_t n_act : {1, 3, 6, 9, 16}) {
      const auto x = gaussian(rng, n_act * n);
      std::vector<block_q8_K> a8k(n_act * n / QK_K);
      std::vector<block_q8_0> a80(n_act * n / QK8_0);
      quantize_row_q8_K_ref(x.data(), a8k.data(), n_act * n);
      quantize_row_q8_0_ref(x.data(), a80.data(), n_act * n);
      std::vector<block_q8_1> a81(n_act * n / QK8_1);
      quantize_row_q8_1_act_ref(x.data(), a81.data(), n_act * n);
      const int64_t ldy = rows + 2;
      for (const KernelSet* ks : flavours()) {
        // tile(...) against ref(...) and |w| . |a| for every (weight row, activation row).
        auto check = [&](const char* what, auto tile, auto ref, auto deq_w, auto deq_a, const auto& w, const auto& a) {
          using WB = std::remove_cvref_t<decltype(w[0])>;
          using AB = std::remove_cvref_t<decltype(a[0])>;
          const int64_t wb = static_cast<int64_t>(w.size()) / rows, ab = static_cast<int64_t>(a.size()) / n_act;
          std::vector<float> y(n_act * ldy, -1.0f), wv(n), av(n);
          tile(n, w.data(), wb * sizeof(WB), rows, a.data(), ab * sizeof(AB), n_act, y.data(), ldy);
          int bad = 0;
          for (int64_t i = 0; i < n_act; ++i) {
            deq_a(a.data() + i * ab, av.data(), n);
            for (int64_t r = 0; r < rows; ++r) {
              deq_w(w.data() + r * wb, wv.data(), n);
              for (float& v : wv) v = std::abs(v);
              const double want = ref(n, w.data() + r * wb, a.data() + i * ab);
              if (!(std::abs(y[i * ldy + r] - want) <= dot_bound(n, abs_dot(wv, av))) && ++bad <= 3) {
                FAIL_CHECK(what << " flavour " << ks->name << " rows " << rows << " n_act " << n_act << ": y[" << i
                                << "][" << r << "] = " << y[i * ldy + r] << ", reference " << want);
              }
            }
            CHECK(y[i * ldy + rows] == -1.0f);  // padding untouched
          }
          CHECK(bad == 0);
        };
        // Q4_K's bound needs |d sc q| + |dmin m|: dequantize with d >= 0, dmin <= 0.
        auto q4_K_abs = [](const block_q4_K* b, float* out, int64_t k) {
          std::vector<block_q4_K> m(b, b + k / QK_K);
          for (auto& blk : m) blk.d &= 0x7FFF, blk.dmin |= 0x8000;
          dequantize_row_q4_K_ref(m.data(), out, k);
        };
        auto copy_f32 = [](const float* v, float* out, int64_t k) { std::memcpy(out, v, k * sizeof(float)); };
        for (MatmulTile tile : tiles_of(*ks, DType::Q4_K)) check("Q4_K", tile, vec_dot_q4_K_q8_K_ref, q4_K_abs, dequantize_row_q8_K_ref, w4, a8k);
        for (MatmulTile tile : tiles_of(*ks, DType::Q6_K)) check("Q6_K", tile, vec_dot_q6_K_q8_K_ref, dequantize_row_q6_K_ref, dequantize_row_q8_K_ref,
              w6, a8k);
        for (MatmulTile tile : tiles_of(*ks, DType::Q8_0)) check("Q8_0", tile, vec_dot_q8_0_q8_0_ref, dequantize_row_q8_0_ref, dequantize_row_q8_0_ref,
              w8, a80);
        for (MatmulTile tile : tiles_of(*ks, DType::Q4_0)) check("Q4_0", tile, vec_dot_q4_0_q8_0_ref, dequantize_row_q4_0_ref, dequantize_row_q8_0_ref,
              w40, a80);
        for (MatmulTile tile : tiles_of(*ks, DType::F32)) check("F32", tile, vec_dot_f32_f32_ref, copy_f32, copy_f32, wf, x);
        // The other types: their gemv tiles, and Q5_K's gemm tile (|w| as in check_vec_dots).
        auto split = [](auto deq, int64_t elems) {
          return [=](const auto* b, float* out, int64_t k) {
            const auto m = split_magnitudes(std::vector(b, b + k / elems), elems, deq);
            std::memcpy(out, m.data(), k * sizeof(float));
          };
        };
        auto with_min = [](auto deq, int64_t elems) {
          return [=](const auto* b, float* out, int64_t k) {
            const auto m = min_magnitudes(std::vector(b, b + k / elems), elems, deq);
            std::memcpy(out, m.data(), k * sizeof(float));
          };
        };
        for (MatmulTile tile : tiles_of(*ks, DType::Q5_K))
          check("Q5_K", tile, vec_dot_q5_K_q8_K_ref, split(dequantize_row_q5_K_ref, QK_K), dequantize_row_q8_K_ref, w5k,
                a8k);
        check("Q3_K", ks->type(DType::Q3_K)->gemv, vec_dot_q3_K_q8_K_ref, dequantize_row_q3_K_ref,
              dequantize_row_q8_K_ref, w3k, a8k);
        check("Q2_K", ks->type(DType::Q2_K)->gemv, vec_dot_q2_K_q8_K_ref, split(dequantize_row_q2_K_ref, QK_K),
              dequantize_row_q8_K_ref, w2k, a8k);
        check("IQ4_XS", ks->type(DType::IQ4_XS)->gemv, vec_dot_iq4_xs_q8_K_ref, dequantize_row_iq4_xs_ref,
              dequantize_row_q8_K_ref, wxs, a8k);
        check("Q5_0", ks->type(DType::Q5_0)->gemv, vec_dot_q5_0_q8_0_ref, dequantize_row_q5_0_ref,
              dequantize_row_q8_0_ref, w50, a80);
        check("IQ4_NL", ks->type(DType::IQ4_NL)->gemv, vec_dot_iq4_nl_q8_0_ref, dequantize_row_iq4_nl_ref,
              dequantize_row_q8_0_ref, wnl, a80);
        check("Q4_1", ks->type(DType::Q4_1)->gemv, vec_dot_q4_1_q8_1_ref, with_min(dequantize_row_q4_1_ref, QK4_1),
              dequantize_row_q8_1_ref, w41, a81);
        check("Q5_1", ks->type(DType::Q5_1)->gemv, vec_dot_q5_1_q8_1_ref, with_min(dequantize_row_q5_1_ref, QK5_1),
              dequantize_row_q8_1_ref, w51, a81);
      }
    }
  }
}
