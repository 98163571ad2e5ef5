// Properties of the scalar reference kernels that need no llama.cpp: block layout, fp16/bf16
// conversions against independent formulas, quantization round-trip errors, dot products against
// dequantize-then-dot, edge blocks, non-finite input, and the xsimd element-wise ops against
// their scalar refs. Portable: runs natively, under ASan/UBSan and under qemu for aarch64.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "block_samples.hpp"
#include "edgellm/dtype.hpp"
#include "edgellm/kernels/ops.hpp"
#include "edgellm/kernels/quants.hpp"
#include "edgellm/rng.hpp"
#include "gemm_tile.hpp"

using namespace edgellm::kernels;
using namespace edgellm::test;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s / double(a.size()));
}

// The value of an fp16 by the textbook formula, in double.
double fp16_value(fp16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  if (exp == 0) return sign * std::ldexp(double(mant), -24);
  if (exp == 31) return mant ? std::nan("") : sign * std::numeric_limits<double>::infinity();
  return sign * std::ldexp(1.0 + mant / 1024.0, exp - 15);
}

}  // namespace

TEST_CASE("block structs have the file format's sizes and field offsets", "[kernels]") {
  using edgellm::DType;
  CHECK(sizeof(block_q4_K) == edgellm::dtype_info(DType::Q4_K)->type_size);
  CHECK(sizeof(block_q6_K) == edgellm::dtype_info(DType::Q6_K)->type_size);
  CHECK(sizeof(block_q8_K) == edgellm::dtype_info(DType::Q8_K)->type_size);
  CHECK(sizeof(block_q8_0) == edgellm::dtype_info(DType::Q8_0)->type_size);
  CHECK(sizeof(block_q4_0) == edgellm::dtype_info(DType::Q4_0)->type_size);
  CHECK(uint32_t(QK_K) == edgellm::dtype_info(DType::Q4_K)->block_size);
  CHECK(uint32_t(QK8_0) == edgellm::dtype_info(DType::Q8_0)->block_size);
  CHECK(uint32_t(QK4_0) == edgellm::dtype_info(DType::Q4_0)->block_size);
  CHECK(offsetof(block_q4_K, dmin) == 2);
  CHECK(offsetof(block_q4_K, scales) == 4);
  CHECK(offsetof(block_q4_K, qs) == 16);
  CHECK(offsetof(block_q6_K, qh) == 128);
  CHECK(offsetof(block_q6_K, scales) == 192);
  CHECK(offsetof(block_q6_K, d) == 208);
  CHECK(offsetof(block_q8_K, qs) == 4);
  CHECK(offsetof(block_q8_K, bsums) == 260);
  CHECK(offsetof(block_q8_0, qs) == 2);
  CHECK(offsetof(block_q4_0, qs) == 2);
  CHECK(sizeof(block_q5_0) == edgellm::dtype_info(DType::Q5_0)->type_size);
  CHECK(sizeof(block_q5_1) == edgellm::dtype_info(DType::Q5_1)->type_size);
  CHECK(sizeof(block_q8_1) == edgellm::dtype_info(DType::Q8_1)->type_size);
  CHECK(uint32_t(QK5_0) == edgellm::dtype_info(DType::Q5_0)->block_size);
  CHECK(uint32_t(QK5_1) == edgellm::dtype_info(DType::Q5_1)->block_size);
  CHECK(uint32_t(QK8_1) == edgellm::dtype_info(DType::Q8_1)->block_size);
  CHECK(offsetof(block_q5_0, qh) == 2);
  CHECK(offsetof(block_q5_0, qs) == 6);
  CHECK(offsetof(block_q5_1, m) == 2);
  CHECK(offsetof(block_q5_1, qh) == 4);
  CHECK(offsetof(block_q5_1, qs) == 8);
  CHECK(offsetof(block_q8_1, s) == 2);
  CHECK(offsetof(block_q8_1, qs) == 4);
  CHECK(sizeof(block_q4_1) == edgellm::dtype_info(DType::Q4_1)->type_size);
  CHECK(sizeof(block_iq4_nl) == edgellm::dtype_info(DType::IQ4_NL)->type_size);
  CHECK(uint32_t(QK4_1) == edgellm::dtype_info(DType::Q4_1)->block_size);
  CHECK(uint32_t(QK4_NL) == edgellm::dtype_info(DType::IQ4_NL)->block_size);
  CHECK(offsetof(block_q4_1, m) == 2);
  CHECK(offsetof(block_q4_1, qs) == 4);
  CHECK(offsetof(block_iq4_nl, qs) == 2);
  for (DType t : {DType::Q5_K, DType::Q3_K, DType::Q2_K, DType::IQ4_XS}) {
    CHECK(uint32_t(QK_K) == edgellm::dtype_info(t)->block_size);
  }
  CHECK(sizeof(block_q5_K) == edgellm::dtype_info(DType::Q5_K)->type_size);
  CHECK(sizeof(block_q3_K) == edgellm::dtype_info(DType::Q3_K)->type_size);
  CHECK(sizeof(block_q2_K) == edgellm::dtype_info(DType::Q2_K)->type_size);
  CHECK(sizeof(block_iq4_xs) == edgellm::dtype_info(DType::IQ4_XS)->type_size);
  CHECK(offsetof(block_q5_K, dmin) == 2);
  CHECK(offsetof(block_q5_K, scales) == 4);
  CHECK(offsetof(block_q5_K, qh) == 16);
  CHECK(offsetof(block_q5_K, qs) == 48);
  CHECK(offsetof(block_q3_K, qs) == 32);
  CHECK(offsetof(block_q3_K, scales) == 96);
  CHECK(offsetof(block_q3_K, d) == 108);
  CHECK(offsetof(block_q2_K, qs) == 16);
  CHECK(offsetof(block_q2_K, d) == 80);
  CHECK(offsetof(block_q2_K, dmin) == 82);
  CHECK(offsetof(block_iq4_xs, scales_h) == 2);
  CHECK(offsetof(block_iq4_xs, scales_l) == 4);
  CHECK(offsetof(block_iq4_xs, qs) == 8);
}

TEST_CASE("fp16_to_fp32 matches the textbook formula for all 65536 halves", "[kernels]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(fp16_t(h));
    const double want = fp16_value(fp16_t(h));
    if (std::isnan(want)) {
      REQUIRE(std::isnan(f));
      REQUIRE(((bits(f) >> 13) & 0x3FF) == ((h & 0x3FF) | 0x200));  // payload kept, quiet
      REQUIRE((bits(f) >> 31) == (h >> 15));
    } else {
      REQUIRE(double(f) == want);
      REQUIRE(std::signbit(f) == bool(h >> 15));               // -0 stays -0
    }
  }
}

TEST_CASE("fp32_to_fp16 rounds to nearest even, saturating to Inf", "[kernels]") {
  // Every half converts back to itself (NaN to the canonical quiet NaN).
  for (uint32_t h = 0; h < 65536; ++h) {
    const fp16_t back = fp32_to_fp16(fp16_to_fp32(fp16_t(h)));
    if (std::isnan(fp16_value(fp16_t(h)))) {
      REQUIRE(back == ((h & 0x8000) | 0x7E00));
    } else {
      REQUIRE(back == h);
    }
  }
  // Around every midpoint between neighbouring finite halves (and between 65504 and the first
  // value past it, 65536, which is Inf): ties go to the even one, anything off the tie to the
  // nearer one. Both signs.
  for (uint32_t h = 0; h < 0x7BFF + 1; ++h) {
    for (uint32_t sign : {0u, 0x8000u}) {
      const double lo = fp16_value(fp16_t(h));
      const double hi = h == 0x7BFF ? 65536.0 : fp16_value(fp16_t(h + 1));
      const float mid = float((lo + hi) / 2);  // exact: 12 significant bits
      REQUIRE(double(mid) == (lo + hi) / 2);
      const float s = sign ? -1.0f : 1.0f;
      const fp16_t even = fp16_t(((h & 1) ? h + 1 : h) | sign);
      REQUIRE(fp32_to_fp16(s * mid) == even);
      REQUIRE(fp32_to_fp16(s * std::nextafter(mid, 0.0f)) == fp16_t(h | sign));
      REQUIRE(fp32_to_fp16(s * std::nextafter(mid, 1e30f)) == fp16_t((h + 1) | sign));
    }
  }
  CHECK(fp32_to_fp16(1e10f) == 0x7C00);
  CHECK(fp32_to_fp16(-INFINITY) == 0xFC00);
  CHECK(fp32_to_fp16(1e-30f) == 0x0000);
  CHECK(fp32_to_fp16(-1e-30f) == 0x8000);
  CHECK(fp32_to_fp16(std::nanf("")) == 0x7E00);
}

TEST_CASE("bf16 conversions: exact widening, round to nearest even, quiet NaN", "[kernels]") {
  for (uint32_t h = 0; h < 65536; ++h) REQUIRE(bits(bf16_to_fp32(bf16_t(h))) == h << 16);
  Rng rng(7);
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t u = uint32_t(rng.next());
    const float f = from_bits(u);
    const bf16_t b = fp32_to_bf16(f);
    if (std::isnan(f)) {
      REQUIRE(std::isnan(bf16_to_fp32(b)));
      REQUIRE((b & 0x40) != 0);
      continue;
    }
    // The two bf16 neighbours of f (truncation and the next one up in magnitude) by value.
    const uint32_t t = u >> 16;
    const double a = bf16_to_fp32(bf16_t(t));
    const double c = (t & 0x7FFF) == 0x7F7F ? std::copysign(std::ldexp(1.0, 128), a)
                                             : double(bf16_to_fp32(bf16_t(t + 1)));
    const double da = std::fabs(double(f) - a), dc = std::fabs(double(f) - c);
    const uint32_t want = da < dc ? t : dc < da ? t + 1 : ((t & 1) ? t + 1 : t);
    REQUIRE(b == bf16_t(want));
  }
}

TEST_CASE("quantize -> dequantize errors are within the formats' bounds", "[kernels]") {
  Rng rng(1);
  const size_t n = 256 * 64;
  const std::vector<float> x = gaussian(rng, n);
  std::vector<float> y(n);

  SECTION("Q8_K: |x - y| <= d/2") {
    std::vector<block_q8_K> q(n / QK_K);
    quantize_row_q8_K_ref(x.data(), q.data(), n);
    dequantize_row_q8_K_ref(q.data(), y.data(), n);
    for (size_t i = 0; i < n; ++i) {
      REQUIRE(std::fabs(x[i] - y[i]) <= 0.5001f * std::fabs(q[i / QK_K].d));
    }
    for (const auto& b : q) {  // bsums are the sums of 16 quants
      for (int j = 0; j < QK_K / 16; ++j) {
        int s = 0;
        for (int l = 0; l < 16; ++l) s += b.qs[16 * j + l];
        REQUIRE(b.bsums[j] == s);
      }
    }
  }
  SECTION("Q8_0: |x - y| <= d/2 + 127 |d - fp16(d)|, i.e. <= 0.57 amax/127") {
    std::vector<block_q8_0> q(n / QK8_0);
    quantize_row_q8_0_ref(x.data(), q.data(), n);
    dequantize_row_q8_0_ref(q.data(), y.data(), n);
    for (size_t b = 0; b < n / QK8_0; ++b) {
      float amax = 0;
      for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[b * QK8_0 + j]));
      for (int j = 0; j < QK8_0; ++j) {
        REQUIRE(std::fabs(x[b * QK8_0 + j] - y[b * QK8_0 + j]) <= 0.57f * amax / 127);
      }
    }
  }
  // The largest magnitude maps to q = 0 (x = -8 d); values of the other sign clip at q = 15.
  SECTION("Q4_0: |x - y| <= |d| + 8 |d - fp16(d)|, i.e. <= 1.01 amax/8") {
    std::vector<block_q4_0> q(n / QK4_0);
    quantize_row_q4_0_ref(x.data(), q.data(), n);
    dequantize_row_q4_0_ref(q.data(), y.data(), n);
    for (size_t b = 0; b < n / QK4_0; ++b) {
      float amax = 0;
      for (int j = 0; j < QK4_0; ++j) amax = std::max(amax, std::fabs(x[b * QK4_0 + j]));
      for (int j = 0; j < QK4_0; ++j) {
        REQUIRE(std::fabs(x[b * QK4_0 + j] - y[b * QK4_0 + j]) <= 1.01f * amax / 8);
      }
    }
  }
  // As Q4_0 with 32 levels: the largest magnitude maps to q = 0 (x = -16 d), values of the other
  // sign clip at q = 31 (one step); the others are within half a step (plus fp16 rounding of d).
  SECTION("Q5_0: |x - y| <= 1.01 amax/16, and <= 0.51 amax/16 below the clip") {
    std::vector<block_q5_0> q(n / QK5_0);
    quantize_row_q5_0_ref(x.data(), q.data(), n);
    dequantize_row_q5_0_ref(q.data(), y.data(), n);
    int clipped = 0;
    for (size_t b = 0; b < n / QK5_0; ++b) {
      float amax = 0;
      for (int j = 0; j < QK5_0; ++j) amax = std::max(amax, std::fabs(x[b * QK5_0 + j]));
      const uint32_t qh = q5_high_bits(q[b].qh);
      for (int j = 0; j < QK5_0; ++j) {
        const int lo = j < 16 ? (q[b].qs[j] & 0xF) : (q[b].qs[j - 16] >> 4);
        const int quant = lo | int((qh >> j) & 1) << 4;
        const float err = std::fabs(x[b * QK5_0 + j] - y[b * QK5_0 + j]);
        clipped += quant == 31;
        REQUIRE(err <= (quant == 31 ? 1.01f : 0.51f) * amax / 16);
      }
    }
    CHECK(clipped > 0);
    CHECK(rmse(x, y) < 0.05);  // ~amax/16/sqrt(12) for amax ~2.2 sigma
  }
  SECTION("Q4_1: |x - y| <= 0.52 (max - min)/15 + 2^-11 |min|") {
    std::vector<block_q4_1> q(n / QK4_1);
    quantize_row_q4_1_ref(x.data(), q.data(), n);
    dequantize_row_q4_1_ref(q.data(), y.data(), n);
    for (size_t b = 0; b < n / QK4_1; ++b) {
      float mn = x[b * QK4_1], mx = mn;
      for (int j = 0; j < QK4_1; ++j) {
        mn = std::min(mn, x[b * QK4_1 + j]);
        mx = std::max(mx, x[b * QK4_1 + j]);
      }
      CHECK(fp16_to_fp32(q[b].m) == fp16_to_fp32(fp32_to_fp16(mn)));
      for (int j = 0; j < QK4_1; ++j) {
        REQUIRE(std::fabs(x[b * QK4_1 + j] - y[b * QK4_1 + j]) <= 0.52f * (mx - mn) / 15 + 0x1p-11f * std::fabs(mn));
      }
    }
    CHECK(rmse(x, y) < 0.12);  // ~(max - min)/15/sqrt(12) for a range of ~4.3 sigma
  }
  SECTION("IQ4_NL: every element on its block's nearest level; d the least-squares scale") {
    std::vector<block_iq4_nl> q(n / QK4_NL);
    quantize_row_iq4_nl_ref(x.data(), q.data(), n);
    dequantize_row_iq4_nl_ref(q.data(), y.data(), n);
    for (size_t b = 0; b < n / QK4_NL; ++b) {
      float amax = 0;
      for (int j = 0; j < QK4_NL; ++j) amax = std::max(amax, std::fabs(x[b * QK4_NL + j]));
      // The levels are at most 26 apart on a scale of 127 per amax, and the least-squares d stays
      // within a few percent of amax / 127: half a gap, with margin.
      for (int j = 0; j < QK4_NL; ++j) REQUIRE(std::fabs(x[b * QK4_NL + j] - y[b * QK4_NL + j]) <= 0.13f * amax);
      // d is the scale minimising the x^2-weighted error for the chosen levels: small changes raise it.
      const float d = fp16_to_fp32(q[b].d);
      auto werr = [&](float dd) {
        double e = 0;
        for (int j = 0; j < QK4_NL; ++j) {
          const int l = j < 16 ? (q[b].qs[j] & 0xF) : (q[b].qs[j - 16] >> 4);
          const double xv = x[b * QK4_NL + j], diff = xv - double(dd) * kvalues_iq4nl[l];
          e += xv * xv * diff * diff;
        }
        return e;
      };
      REQUIRE(werr(d) <= werr(d * 1.01f) * (1 + 1e-6));
      REQUIRE(werr(d) <= werr(d * 0.99f) * (1 + 1e-6));
    }
    CHECK(rmse(x, y) < 0.11);
  }
  SECTION("Q5_1: |x - y| <= 0.52 (max - min)/31 + 2^-11 |min|") {
    std::vector<block_q5_1> q(n / QK5_1);
    quantize_row_q5_1_ref(x.data(), q.data(), n);
    dequantize_row_q5_1_ref(q.data(), y.data(), n);
    for (size_t b = 0; b < n / QK5_1; ++b) {
      float mn = x[b * QK5_1], mx = mn;
      for (int j = 0; j < QK5_1; ++j) {
        mn = std::min(mn, x[b * QK5_1 + j]);
        mx = std::max(mx, x[b * QK5_1 + j]);
      }
      CHECK(fp16_to_fp32(q[b].m) == fp16_to_fp32(fp32_to_fp16(mn)));
      for (int j = 0; j < QK5_1; ++j) {
        REQUIRE(std::fabs(x[b * QK5_1 + j] - y[b * QK5_1 + j]) <= 0.52f * (mx - mn) / 31 + 0x1p-11f * std::fabs(mn));
      }
    }
  }
  SECTION("Q8_1 activations: a = d q within Q8_0's bound, s = fp16(amax / 127 * sum q)") {
    std::vector<block_q8_1> q(n / QK8_1);
    quantize_row_q8_1_act_ref(x.data(), q.data(), n);
    dequantize_row_q8_1_ref(q.data(), y.data(), n);
    std::vector<block_q8_0> q0(n / QK8_0);
    quantize_row_q8_0_act_ref(x.data(), q0.data(), n);
    for (size_t b = 0; b < n / QK8_1; ++b) {
      float amax = 0;
      int sum = 0;
      for (int j = 0; j < QK8_1; ++j) amax = std::max(amax, std::fabs(x[b * QK8_1 + j]));
      for (int j = 0; j < QK8_1; ++j) {
        REQUIRE(std::fabs(x[b * QK8_1 + j] - y[b * QK8_1 + j]) <= 0.57f * amax / 127);
        sum += q[b].qs[j];
      }
      REQUIRE(q[b].d == q0[b].d);  // the same d and quants as the Q8_0 activations
      REQUIRE(std::memcmp(q[b].qs, q0[b].qs, QK8_1) == 0);
      REQUIRE(q[b].s == fp32_to_fp16(amax / 127 * float(sum)));
    }
  }
  // K-quants of N(0, 1): the expected quality of a 4.5 / 6.6 bit-per-weight format (llama.cpp's
  // quantizer reaches RMSE ~0.071 and ~0.018; test_kernels_llamacpp compares with it directly).
  SECTION("Q4_K: RMSE < 0.075 sigma, max error < 0.5 sigma") {
    std::vector<block_q4_K> q(n / QK_K);
    quantize_row_q4_K_ref(x.data(), q.data(), n);
    dequantize_row_q4_K_ref(q.data(), y.data(), n);
    const double e = rmse(x, y);
    INFO("Q4_K RMSE " << e);
    CHECK(e < 0.075);
    for (size_t i = 0; i < n; ++i) REQUIRE(std::fabs(x[i] - y[i]) < 0.5f);
  }
  SECTION("Q6_K: RMSE < 0.02 sigma, max error < 0.15 sigma") {
    std::vector<block_q6_K> q(n / QK_K);
    quantize_row_q6_K_ref(x.data(), q.data(), n);
    dequantize_row_q6_K_ref(q.data(), y.data(), n);
    const double e = rmse(x, y);
    INFO("Q6_K RMSE " << e);
    CHECK(e < 0.02);
    for (size_t i = 0; i < n; ++i) REQUIRE(std::fabs(x[i] - y[i]) < 0.15f);
  }
  // The other K-quants and IQ4_XS of N(0, 1): llama.cpp's reference quantizers reach RMSE ~0.036
  // (Q5_K, 5.5 bits per weight), 0.150 (Q3_K, 3.44), 0.296 (Q2_K, 2.63), 0.076 (IQ4_XS, 4.25);
  // test_kernels_llamacpp compares with them directly. Measured max errors: 0.13, 0.50, 0.99, 0.26.
  SECTION("Q5_K: RMSE < 0.038 sigma, max error < 0.15 sigma") {
    std::vector<block_q5_K> q(n / QK_K);
    quantize_row_q5_K_ref(x.data(), q.data(), n);
    dequantize_row_q5_K_ref(q.data(), y.data(), n);
    const double e = rmse(x, y);
    INFO("Q5_K RMSE " << e);
    CHECK(e < 0.038);
    for (size_t i = 0; i < n; ++i) REQUIRE(std::fabs(x[i] - y[i]) < 0.15f);
  }
  SECTION("Q3_K: RMSE < 0.16 sigma, max error < 0.6 sigma") {
    std::vector<block_q3_K> q(n / QK_K);
    quantize_row_q3_K_ref(x.data(), q.data(), n);
    dequantize_row_q3_K_ref(q.data(), y.data(), n);
    const double e = rmse(x, y);
    INFO("Q3_K RMSE " << e);
    CHECK(e < 0.16);
    for (size_t i = 0; i < n; ++i) REQUIRE(std::fabs(x[i] - y[i]) < 0.6f);
  }
  SECTION("Q2_K: RMSE < 0.31 sigma, max error < 1.2 sigma") {
    std::vector<block_q2_K> q(n / QK_K);
    quantize_row_q2_K_ref(x.data(), q.data(), n);
    dequantize_row_q2_K_ref(q.data(), y.data(), n);
    const double e = rmse(x, y);
    INFO("Q2_K RMSE " << e);
    CHECK(e < 0.31);
    for (size_t i = 0; i < n; ++i) REQUIRE(std::fabs(x[i] - y[i]) < 1.2f);
  }
  SECTION("IQ4_XS: RMSE < 0.08 sigma, max error < 0.3 sigma") {
    std::vector<block_iq4_xs> q(n / QK_K);
    quantize_row_iq4_xs_ref(x.data(), q.data(), n);
    dequantize_row_iq4_xs_ref(q.data(), y.data(), n);
    const double e = rmse(x, y);
    INFO("IQ4_XS RMSE " << e);
    CHECK(e < 0.08);
    for (size_t i = 0; i < n; ++i) REQUIRE(std::fabs(x[i] - y[i]) < 0.3f);
  }
  SECTION("f16 / bf16: relative error <= 2^-11 / 2^-8") {
    std::vector<fp16_t> h(n);
    quantize_row_f16_ref(x.data(), h.data(), n);
    dequantize_row_f16_ref(h.data(), y.data(), n);
    for (size_t i = 0; i < n; ++i) {
      REQUIRE(std::fabs(x[i] - y[i]) <= std::ldexp(std::fabs(x[i]), -11) + 0x1p-25f);
    }
    quantize_row_bf16_ref(x.data(), h.data(), n);
    dequantize_row_bf16_ref(h.data(), y.data(), n);
    for (size_t i = 0; i < n; ++i) REQUIRE(std::fabs(x[i] - y[i]) <= std::ldexp(std::fabs(x[i]), -8));
  }
}

TEST_CASE("zero rows quantize to zero blocks", "[kernels]") {
  const std::vector<float> x(512, 0.0f);
  std::vector<float> y(512, 1.0f);
  std::vector<block_q4_K> q4(2);
  quantize_row_q4_K_ref(x.data(), q4.data(), 512);
  dequantize_row_q4_K_ref(q4.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
  std::vector<block_q6_K> q6(2);
  quantize_row_q6_K_ref(x.data(), q6.data(), 512);
  dequantize_row_q6_K_ref(q6.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
  std::vector<block_q8_K> q8(2);
  quantize_row_q8_K_ref(x.data(), q8.data(), 512);
  CHECK(q8[0].d == 0.0f);
  for (int16_t s : q8[1].bsums) REQUIRE(s == 0);
  std::vector<block_q5_0> q50(512 / QK5_0);
  quantize_row_q5_0_ref(x.data(), q50.data(), 512);
  dequantize_row_q5_0_ref(q50.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
  std::vector<block_q5_1> q51(512 / QK5_1);
  quantize_row_q5_1_ref(x.data(), q51.data(), 512);
  dequantize_row_q5_1_ref(q51.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
  std::vector<block_q4_1> q41(512 / QK4_1);
  quantize_row_q4_1_ref(x.data(), q41.data(), 512);
  dequantize_row_q4_1_ref(q41.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
  std::vector<block_iq4_nl> qnl(512 / QK4_NL);
  quantize_row_iq4_nl_ref(x.data(), qnl.data(), 512);
  for (const auto& b : qnl) {
    REQUIRE(b.d == 0);
    for (uint8_t v : b.qs) REQUIRE(v == 0);
  }
  dequantize_row_iq4_nl_ref(qnl.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
  std::vector<block_q8_1> q81(512 / QK8_1);
  quantize_row_q8_1_act_ref(x.data(), q81.data(), 512);
  for (const auto& b : q81) REQUIRE((b.d == 0 && b.s == 0));
  std::vector<block_q5_K> q5k(2);
  quantize_row_q5_K_ref(x.data(), q5k.data(), 512);
  dequantize_row_q5_K_ref(q5k.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
  std::vector<block_q3_K> q3k(2);
  quantize_row_q3_K_ref(x.data(), q3k.data(), 512);
  for (const auto& b : q3k) REQUIRE(b.d == 0);
  dequantize_row_q3_K_ref(q3k.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
  std::vector<block_q2_K> q2k(2);
  quantize_row_q2_K_ref(x.data(), q2k.data(), 512);
  for (const auto& b : q2k) REQUIRE((b.d == 0 && b.dmin == 0));
  dequantize_row_q2_K_ref(q2k.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
  std::vector<block_iq4_xs> qxs(2);
  quantize_row_iq4_xs_ref(x.data(), qxs.data(), 512);
  for (const auto& b : qxs) REQUIRE(fp16_to_fp32(b.d) == 0.0f);  // -0, as llama.cpp
  dequantize_row_iq4_xs_ref(qxs.data(), y.data(), 512);
  for (float v : y) REQUIRE(v == 0.0f);
}

// Dot products: the reference against the dot product of the dequantized rows taken in double.
// Bound (see quants_ref.cpp): the integer parts are exact and the scaling and block sum are in
// double, so the only differences are the float roundings inside dequantization:
//   |dot_ref - sum w_i a_i| <= 4 * 2^-24 * sum (|w_i| + |dmin m_i|) |a_i|   (Q4_K)
//   |dot_ref - sum w_i a_i| <= 4 * 2^-24 * sum |w_i a_i|                     (the others)
TEST_CASE("vec_dot refs equal dequantize + dot within the stated bound", "[kernels]") {
  Rng rng(3);
  const int64_t n = 256 * 16;
  const std::vector<float> act = gaussian(rng, n);
  std::vector<block_q8_K> y8k(n / QK_K);
  quantize_row_q8_K_ref(act.data(), y8k.data(), n);
  std::vector<block_q8_0> y80(n / QK8_0);
  quantize_row_q8_0_ref(act.data(), y80.data(), n);
  std::vector<float> a8k(n), a80(n), w(n);
  dequantize_row_q8_K_ref(y8k.data(), a8k.data(), n);
  dequantize_row_q8_0_ref(y80.data(), a80.data(), n);
  const double eps4 = 4 * 0x1p-24;

  auto check = [](double got, double want, double bound) {
    INFO("got " << got << " want " << want << " bound " << bound);
    REQUIRE(std::fabs(got - want) <= bound);
  };
  auto dot_and_mag = [&](const std::vector<float>& a, const std::vector<float>& extra) {
    double s = 0, m = 0;
    for (int64_t i = 0; i < n; ++i) {
      s += double(w[i]) * a[i];
      m += (std::fabs(double(w[i])) + (extra.empty() ? 0.0 : extra[i])) * std::fabs(a[i]);
    }
    return std::pair<double, double>(s, m);
  };

  for (int round = 0; round < 3; ++round) {
    // round 0: quantized Gaussian weights; 1: random blocks; 2: edge blocks (Q4_K/Q6_K cycled)
    std::vector<block_q4_K> x4k;
    std::vector<block_q6_K> x6k;
    if (round == 0) {
      const std::vector<float> wt = gaussian(rng, n, 0.02f);
      x4k.resize(n / QK_K);
      x6k.resize(n / QK_K);
      quantize_row_q4_K_ref(wt.data(), x4k.data(), n);
      quantize_row_q6_K_ref(wt.data(), x6k.data(), n);
    } else if (round == 1) {
      x4k = random_q4_K(rng, n / QK_K);
      x6k = random_q6_K(rng, n / QK_K);
    } else {
      const auto e4 = edge_q4_K();
      const auto e6 = edge_q6_K();
      for (int64_t i = 0; i < n / QK_K; ++i) {
        x4k.push_back(e4[(i * 37) % e4.size()]);
        x6k.push_back(e6[(i * 37) % e6.size()]);
      }
    }
    dequantize_row_q4_K_ref(x4k.data(), w.data(), n);
    std::vector<float> mins(n);
    for (int64_t i = 0; i < n; ++i) {
      uint8_t sc, m;
      q4_K_scale_min(x4k[i / QK_K].scales, int(i % QK_K) / 32, &sc, &m);
      mins[i] = std::fabs(fp16_to_fp32(x4k[i / QK_K].dmin) * float(m));
    }
    auto [s4, m4] = dot_and_mag(a8k, mins);
    check(vec_dot_q4_K_q8_K_ref(n, x4k.data(), y8k.data()), s4, eps4 * m4 + 1e-30);

    dequantize_row_q6_K_ref(x6k.data(), w.data(), n);
    auto [s6, m6] = dot_and_mag(a8k, {});
    check(vec_dot_q6_K_q8_K_ref(n, x6k.data(), y8k.data()), s6, eps4 * m6 + 1e-30);
  }

  const auto x80 = random_q8_0(rng, n / QK8_0);
  dequantize_row_q8_0_ref(x80.data(), w.data(), n);
  auto [s80, m80] = dot_and_mag(a80, {});
  check(vec_dot_q8_0_q8_0_ref(n, x80.data(), y80.data()), s80, eps4 * m80 + 1e-30);

  const auto x40 = random_q4_0(rng, n / QK4_0);
  dequantize_row_q4_0_ref(x40.data(), w.data(), n);
  auto [s40, m40] = dot_and_mag(a80, {});
  check(vec_dot_q4_0_q8_0_ref(n, x40.data(), y80.data()), s40, eps4 * m40 + 1e-30);

  // Q5_0 . Q8_0 and Q5_1 . Q8_1 on random and edge blocks. Q5_1's min term goes through the
  // activation's s: the exact value is sum_i d q_i a_i + sum_blocks m s.
  std::vector<block_q8_1> y81(n / QK8_1);
  quantize_row_q8_1_act_ref(act.data(), y81.data(), n);
  std::vector<float> a81(n);
  dequantize_row_q8_1_ref(y81.data(), a81.data(), n);
  const auto e50 = edge_q5_0();
  const auto e51 = edge_q5_1();
  for (int round = 0; round < 2; ++round) {
    std::vector<block_q5_0> x50 = random_q5_0(rng, n / QK5_0);
    std::vector<block_q5_1> x51 = random_q5_1(rng, n / QK5_1);
    if (round == 1) {
      for (int64_t i = 0; i < n / QK5_0; ++i) x50[i] = e50[(i * 37) % e50.size()];
      for (int64_t i = 0; i < n / QK5_1; ++i) x51[i] = e51[(i * 37) % e51.size()];
    }
    dequantize_row_q5_0_ref(x50.data(), w.data(), n);
    auto [s50, m50] = dot_and_mag(a80, {});
    check(vec_dot_q5_0_q8_0_ref(n, x50.data(), y80.data()), s50, eps4 * m50 + 1e-30);

    std::vector<block_q5_1> no_min = x51;
    for (auto& b : no_min) b.m = 0;
    dequantize_row_q5_1_ref(no_min.data(), w.data(), n);
    std::vector<float> mins(n);
    for (int64_t i = 0; i < n; ++i) mins[i] = std::fabs(fp16_to_fp32(x51[i / QK5_1].m));
    auto [s51, m51] = dot_and_mag(a81, mins);
    for (int64_t b = 0; b < n / QK5_1; ++b) s51 += double(fp16_to_fp32(x51[b].m)) * fp16_to_fp32(y81[b].s);
    check(vec_dot_q5_1_q8_1_ref(n, x51.data(), y81.data()), s51, eps4 * m51 + 1e-30);
  }

  // Q4_1 . Q8_1 (min through s, as Q5_1) and IQ4_NL . Q8_0, random and edge blocks.
  const auto e41 = edge_q4_1();
  const auto enl = edge_iq4_nl();
  for (int round = 0; round < 2; ++round) {
    std::vector<block_q4_1> x41 = random_q4_1(rng, n / QK4_1);
    std::vector<block_iq4_nl> xnl = random_iq4_nl(rng, n / QK4_NL);
    if (round == 1) {
      for (int64_t i = 0; i < n / QK4_1; ++i) x41[i] = e41[(i * 37) % e41.size()];
      for (int64_t i = 0; i < n / QK4_NL; ++i) xnl[i] = enl[(i * 7) % enl.size()];
    }
    std::vector<block_q4_1> no_min = x41;
    for (auto& b : no_min) b.m = 0;
    dequantize_row_q4_1_ref(no_min.data(), w.data(), n);
    std::vector<float> mins(n);
    for (int64_t i = 0; i < n; ++i) mins[i] = std::fabs(fp16_to_fp32(x41[i / QK4_1].m));
    auto [s41, m41] = dot_and_mag(a81, mins);
    for (int64_t b = 0; b < n / QK4_1; ++b) s41 += double(fp16_to_fp32(x41[b].m)) * fp16_to_fp32(y81[b].s);
    check(vec_dot_q4_1_q8_1_ref(n, x41.data(), y81.data()), s41, eps4 * m41 + 1e-30);

    dequantize_row_iq4_nl_ref(xnl.data(), w.data(), n);
    auto [snl, mnl] = dot_and_mag(a80, {});
    check(vec_dot_iq4_nl_q8_0_ref(n, xnl.data(), y80.data()), snl, eps4 * mnl + 1e-30);
  }

  // Q5_K, Q3_K, Q2_K and IQ4_XS . Q8_K: quantized Gaussian weights, random and edge blocks. Q5_K
  // and Q2_K have Q4_K's min term (|dmin m| in the magnitude).
  const auto e5k = edge_q5_K();
  const auto e3k = edge_q3_K();
  const auto e2k = edge_q2_K();
  const auto exs = edge_iq4_xs();
  for (int round = 0; round < 3; ++round) {
    std::vector<block_q5_K> x5k(n / QK_K);
    std::vector<block_q3_K> x3k(n / QK_K);
    std::vector<block_q2_K> x2k(n / QK_K);
    std::vector<block_iq4_xs> xxs(n / QK_K);
    if (round == 0) {
      const std::vector<float> wt = gaussian(rng, n, 0.02f);
      quantize_row_q5_K_ref(wt.data(), x5k.data(), n);
      quantize_row_q3_K_ref(wt.data(), x3k.data(), n);
      quantize_row_q2_K_ref(wt.data(), x2k.data(), n);
      quantize_row_iq4_xs_ref(wt.data(), xxs.data(), n);
    } else if (round == 1) {
      x5k = random_q5_K(rng, n / QK_K);
      x3k = random_q3_K(rng, n / QK_K);
      x2k = random_q2_K(rng, n / QK_K);
      xxs = random_iq4_xs(rng, n / QK_K);
    } else {
      for (int64_t i = 0; i < n / QK_K; ++i) {
        x5k[i] = e5k[(i * 37) % e5k.size()];
        x3k[i] = e3k[(i * 37) % e3k.size()];
        x2k[i] = e2k[(i * 37) % e2k.size()];
        xxs[i] = exs[(i * 7) % exs.size()];
      }
    }
    std::vector<float> mins(n);
    dequantize_row_q5_K_ref(x5k.data(), w.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      uint8_t sc, m;
      q4_K_scale_min(x5k[i / QK_K].scales, int(i % QK_K) / 32, &sc, &m);
      mins[i] = std::fabs(fp16_to_fp32(x5k[i / QK_K].dmin) * float(m));
    }
    auto [s5, m5] = dot_and_mag(a8k, mins);
    check(vec_dot_q5_K_q8_K_ref(n, x5k.data(), y8k.data()), s5, eps4 * m5 + 1e-30);

    dequantize_row_q3_K_ref(x3k.data(), w.data(), n);
    auto [s3, m3] = dot_and_mag(a8k, {});
    check(vec_dot_q3_K_q8_K_ref(n, x3k.data(), y8k.data()), s3, eps4 * m3 + 1e-30);

    dequantize_row_q2_K_ref(x2k.data(), w.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const block_q2_K& b = x2k[i / QK_K];
      mins[i] = std::fabs(fp16_to_fp32(b.dmin) * float(b.scales[(i % QK_K) / 16] >> 4));
    }
    auto [s2, m2] = dot_and_mag(a8k, mins);
    check(vec_dot_q2_K_q8_K_ref(n, x2k.data(), y8k.data()), s2, eps4 * m2 + 1e-30);

    dequantize_row_iq4_xs_ref(xxs.data(), w.data(), n);
    auto [sxs, mxs] = dot_and_mag(a8k, {});
    check(vec_dot_iq4_xs_q8_K_ref(n, xxs.data(), y8k.data()), sxs, eps4 * mxs + 1e-30);
  }

  // Plain types: the ref is the double-accumulated dot rounded once.
  const std::vector<float> xf = gaussian(rng, n);
  std::vector<fp16_t> xh(n), xb(n);
  quantize_row_f16_ref(xf.data(), xh.data(), n);
  quantize_row_bf16_ref(xf.data(), xb.data(), n);
  double sf = 0, sh = 0, sb = 0, mag = 0;
  for (int64_t i = 0; i < n; ++i) {
    sf += double(xf[i]) * act[i];
    sh += double(fp16_to_fp32(xh[i])) * act[i];
    sb += double(bf16_to_fp32(xb[i])) * act[i];
    mag += std::fabs(double(xf[i]) * act[i]);
  }
  check(vec_dot_f32_f32_ref(n, xf.data(), act.data()), sf, 2 * 0x1p-24 * mag);
  check(vec_dot_f16_f32_ref(n, xh.data(), act.data()), sh, 2 * 0x1p-24 * mag);
  check(vec_dot_bf16_f32_ref(n, xb.data(), act.data()), sb, 2 * 0x1p-24 * mag);
}

TEST_CASE("edge blocks dequantize to what their fields say", "[kernels]") {
  std::vector<float> y(QK_K);
  for (const block_q4_K& b : edge_q4_K()) {
    dequantize_row_q4_K_ref(&b, y.data(), QK_K);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < QK_K; ++e) {
      uint8_t sc, m;
      q4_K_scale_min(b.scales, e / 32, &sc, &m);
      const uint8_t byte = b.qs[32 * (e / 64) + e % 32];
      const int q = (e % 64) < 32 ? (byte & 0xF) : (byte >> 4);
      REQUIRE(y[e] == (d * sc) * float(q) - dmin * m);
    }
  }
  for (const block_q6_K& b : edge_q6_K()) {
    dequantize_row_q6_K_ref(&b, y.data(), QK_K);
    for (int e = 0; e < QK_K; ++e) {
      const int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
      const uint8_t lo = b.ql[64 * h + l + 32 * (quarter & 1)];
      const int q = ((quarter < 2 ? lo & 0xF : lo >> 4) | (((b.qh[32 * h + l] >> (2 * quarter)) & 3) << 4)) - 32;
      REQUIRE(y[e] == fp16_to_fp32(b.d) * float(b.scales[e / 16]) * float(q));
    }
  }
  for (const block_q8_0& b : edge_q8_0()) {
    dequantize_row_q8_0_ref(&b, y.data(), QK8_0);
    for (int j = 0; j < QK8_0; ++j) REQUIRE(y[j] == float(b.qs[j]) * fp16_to_fp32(b.d));
  }
  for (const block_q4_0& b : edge_q4_0()) {
    dequantize_row_q4_0_ref(&b, y.data(), QK4_0);
    for (int j = 0; j < QK4_0; ++j) {
      const int q = j < 16 ? (b.qs[j] & 0xF) : (b.qs[j - 16] >> 4);
      REQUIRE(y[j] == float(q - 8) * fp16_to_fp32(b.d));
    }
  }
  // Q5: the 5th bit of element e is bit e % 8 of qh[e / 8].
  for (const block_q5_0& b : edge_q5_0()) {
    dequantize_row_q5_0_ref(&b, y.data(), QK5_0);
    for (int e = 0; e < QK5_0; ++e) {
      const int q = (e < 16 ? (b.qs[e] & 0xF) : (b.qs[e - 16] >> 4)) | (((b.qh[e / 8] >> (e % 8)) & 1) << 4);
      REQUIRE(y[e] == float(q - 16) * fp16_to_fp32(b.d));
    }
  }
  for (const block_q4_1& b : edge_q4_1()) {
    dequantize_row_q4_1_ref(&b, y.data(), QK4_1);
    for (int e = 0; e < QK4_1; ++e) {
      const int q = e < 16 ? (b.qs[e] & 0xF) : (b.qs[e - 16] >> 4);
      const float dq = float(q) * fp16_to_fp32(b.d);
      REQUIRE(bits(y[e]) == bits(dq + fp16_to_fp32(b.m)));
    }
  }
  for (const block_iq4_nl& b : edge_iq4_nl()) {
    dequantize_row_iq4_nl_ref(&b, y.data(), QK4_NL);
    for (int e = 0; e < QK4_NL; ++e) {
      const int q = e < 16 ? (b.qs[e] & 0xF) : (b.qs[e - 16] >> 4);
      REQUIRE(bits(y[e]) == bits(fp16_to_fp32(b.d) * float(kvalues_iq4nl[q])));
    }
  }
  // Q5_K: Q4_K's fields plus the 5th bit, bit e / 32 of qh[e % 32].
  for (const block_q5_K& b : edge_q5_K()) {
    dequantize_row_q5_K_ref(&b, y.data(), QK_K);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < QK_K; ++e) {
      uint8_t sc, m;
      q4_K_scale_min(b.scales, e / 32, &sc, &m);
      const uint8_t byte = b.qs[32 * (e / 64) + e % 32];
      const int q = ((e % 64) < 32 ? (byte & 0xF) : (byte >> 4)) | (((b.qh[e % 32] >> (e / 32)) & 1) << 4);
      REQUIRE(bits(y[e]) == bits((d * sc) * float(q) - dmin * m));
    }
  }
  // Q3_K: 2 low bits in qs as Q2_K, bit e / 32 of hmask[e % 32] on top; the 6-bit scale j has its
  // low nibble in scales[j % 8] (j < 8: low, else high nibble), top 2 bits in scales[8 + j % 4].
  for (const block_q3_K& b : edge_q3_K()) {
    dequantize_row_q3_K_ref(&b, y.data(), QK_K);
    for (int e = 0; e < QK_K; ++e) {
      const int j = e / 16;
      const int sc = ((j < 8 ? b.scales[j] : b.scales[j - 8] >> 4) & 0xF) | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
      const int low = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      const int q = low | (((b.hmask[e % 32] >> (e / 32)) & 1) << 2);
      REQUIRE(bits(y[e]) == bits((fp16_to_fp32(b.d) * float(sc - 32)) * float(q - 4)));
    }
  }
  for (const block_q2_K& b : edge_q2_K()) {
    dequantize_row_q2_K_ref(&b, y.data(), QK_K);
    for (int e = 0; e < QK_K; ++e) {
      const uint8_t sc = b.scales[e / 16];
      const int q = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      REQUIRE(bits(y[e]) == bits((fp16_to_fp32(b.d) * float(sc & 0xF)) * float(q) - fp16_to_fp32(b.dmin) * float(sc >> 4)));
    }
  }
  for (const block_iq4_xs& b : edge_iq4_xs()) {
    dequantize_row_iq4_xs_ref(&b, y.data(), QK_K);
    for (int e = 0; e < QK_K; ++e) {
      const int j = e / 32, r = e % 32;
      const int ls = ((b.scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | (((b.scales_h >> (2 * j)) & 3) << 4);
      const uint8_t byte = b.qs[16 * j + r % 16];
      const int q = r < 16 ? (byte & 0xF) : (byte >> 4);
      REQUIRE(bits(y[e]) == bits((fp16_to_fp32(b.d) * float(ls - 32)) * float(kvalues_iq4nl[q])));
    }
  }
  for (const block_q5_1& b : edge_q5_1()) {
    dequantize_row_q5_1_ref(&b, y.data(), QK5_1);
    for (int e = 0; e < QK5_1; ++e) {
      const int q = (e < 16 ? (b.qs[e] & 0xF) : (b.qs[e - 16] >> 4)) | (((b.qh[e / 8] >> (e % 8)) & 1) << 4);
      const float dq = float(q) * fp16_to_fp32(b.d);  // rounded before the min is added
      REQUIRE(bits(y[e]) == bits(dq + fp16_to_fp32(b.m)));
    }
  }
}

TEST_CASE("quantizers survive NaN and Inf input as documented", "[kernels]") {
  for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    std::vector<float> x(QK_K, 0.5f);
    x[17] = bad;
    x[200] = -2.0f;
    block_q8_K q8k;
    quantize_row_q8_K_ref(x.data(), &q8k, QK_K);
    if (std::isnan(bad)) {
      CHECK(q8k.d == Approx(2.0f / 127));
      CHECK(q8k.qs[17] == 0);
      CHECK(q8k.qs[200] == -127);
    } else {
      CHECK(std::isinf(q8k.d));
      for (int8_t q : q8k.qs) REQUIRE(q == 0);
    }
    std::vector<block_q8_0> q80(QK_K / QK8_0);
    quantize_row_q8_0_ref(x.data(), q80.data(), QK_K);
    CHECK(q80[0].qs[17] == 0);
    if (std::isnan(bad)) CHECK(fp16_to_fp32(q80[0].d) == Approx(0.5f / 127).epsilon(1e-3));
    std::vector<block_q4_0> q40(QK_K / QK4_0);
    quantize_row_q4_0_ref(x.data(), q40.data(), QK_K);
    CHECK((q40[0].qs[1] >> 4) == 0);  // element 17: NaN or Inf -> 0, the byte llama.cpp x86 stores (d = -+Inf for Inf)
    if (!std::isnan(bad)) CHECK(std::isinf(fp16_to_fp32(q40[0].d)));
    std::vector<block_q8_1> q81(QK_K / QK8_1);
    quantize_row_q8_1_act_ref(x.data(), q81.data(), QK_K);
    CHECK(q81[0].qs[17] == 0);
    if (std::isnan(bad)) {
      CHECK(fp16_to_fp32(q81[0].d) == Approx(0.5f / 127).epsilon(1e-3));
      CHECK(fp16_to_fp32(q81[0].s) == Approx(31 * 0.5f).epsilon(1e-3));  // 31 quants of 127
    } else {
      CHECK(std::isinf(fp16_to_fp32(q81[0].d)));
      for (int8_t v : q81[0].qs) REQUIRE(v == 0);
    }
    // Q5_0 / Q5_1: no crash and no undefined behaviour (UBSan); the numbers are unspecified.
    std::vector<block_q5_0> q50(QK_K / QK5_0);
    quantize_row_q5_0_ref(x.data(), q50.data(), QK_K);
    std::vector<block_q5_1> q51(QK_K / QK5_1);
    quantize_row_q5_1_ref(x.data(), q51.data(), QK_K);
    // Q4_1 / IQ4_NL: likewise.
    std::vector<block_q4_1> q41(QK_K / QK4_1);
    quantize_row_q4_1_ref(x.data(), q41.data(), QK_K);
    std::vector<block_iq4_nl> qnl(QK_K / QK4_NL);
    quantize_row_iq4_nl_ref(x.data(), qnl.data(), QK_K);
    // Q4_K / Q6_K / Q5_K / Q3_K / Q2_K / IQ4_XS: no crash and no undefined behaviour (UBSan); the
    // numbers are unspecified.
    block_q5_K q5k;
    quantize_row_q5_K_ref(x.data(), &q5k, QK_K);
    block_q3_K q3k;
    quantize_row_q3_K_ref(x.data(), &q3k, QK_K);
    block_q2_K q2k;
    quantize_row_q2_K_ref(x.data(), &q2k, QK_K);
    block_iq4_xs qxs;
    quantize_row_iq4_xs_ref(x.data(), &qxs, QK_K);
    block_q4_K q4k;
    quantize_row_q4_K_ref(x.data(), &q4k, QK_K);
    block_q6_K q6k;
    quantize_row_q6_K_ref(x.data(), &q6k, QK_K);
    std::vector<float> y(QK_K);
    dequantize_row_q4_K_ref(&q4k, y.data(), QK_K);
    dequantize_row_q6_K_ref(&q6k, y.data(), QK_K);
    dequantize_row_q5_K_ref(&q5k, y.data(), QK_K);
    dequantize_row_q3_K_ref(&q3k, y.data(), QK_K);
    dequantize_row_q2_K_ref(&q2k, y.data(), QK_K);
    dequantize_row_iq4_xs_ref(&qxs, y.data(), QK_K);
  }
}

TEST_CASE("Rng is reproducible and its normal() looks standard", "[kernels]") {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const uint64_t va = a.next();
    REQUIRE(va == b.next());
    REQUIRE(va != c.next());
  }
  Rng r(5);
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double v = r.normal();
    s += v;
    s2 += v * v;
  }
  CHECK(std::fabs(s / n) < 0.01);
  CHECK(std::fabs(s2 / n - 1.0) < 0.02);
  for (int i = 0; i < 1000; ++i) {
    const float u = r.uniform();
    REQUIRE((u >= 0.0f && u < 1.0f));
  }
}

// ---- element-wise ops: xsimd versions against the scalar refs (tolerances from ops.hpp) ----

namespace {

void check_close(const std::vector<float>& got, const std::vector<float>& want, double rel) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("i = " << i << " got " << got[i] << " want " << want[i]);
    REQUIRE(std::fabs(double(got[i]) - want[i]) <= rel * std::fabs(double(want[i])) + 1e-30);
  }
}

}  // namespace

TEST_CASE("xsimd ops match their scalar refs", "[kernels]") {
  Rng rng(11);
  for (int64_t n : {0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 64, 100, 1000, 4099}) {
    INFO("n = " << n);
    const std::vector<float> a = gaussian(rng, size_t(n), 3.0f);
    const std::vector<float> b = gaussian(rng, size_t(n), 3.0f);
    std::vector<float> y(n), r(n);

    add(a.data(), b.data(), y.data(), n);
    add_ref(a.data(), b.data(), r.data(), n);
    check_close(y, r, 0.0);

    y = a;
    r = a;
    scale(y.data(), 0.37f, n);
    scale_ref(r.data(), 0.37f, n);
    check_close(y, r, 0.0);

    rms_norm(a.data(), b.data(), y.data(), n, 1e-5f);
    rms_norm_ref(a.data(), b.data(), r.data(), n, 1e-5f);
    check_close(y, r, 1e-6);

    silu_mul(a.data(), b.data(), y.data(), n);
    silu_mul_ref(a.data(), b.data(), r.data(), n);
    check_close(y, r, 4e-6);

    y = a;
    r = a;
    softmax(y.data(), n);
    softmax_ref(r.data(), n);
    check_close(y, r, 4e-6);
    double sum = 0;
    for (float v : r) sum += v;
    if (n > 0) CHECK(sum == Approx(1.0).epsilon(1e-6));
  }
  // silu and softmax at the edges of exp's range
  std::vector<float> g = {-100.f, -88.f, -20.f, -1e-8f, 0.f, 1e-8f, 20.f, 88.f, 100.f};
  std::vector<float> up(g.size(), 1.5f), y(g.size()), r(g.size());
  silu_mul(g.data(), up.data(), y.data(), int64_t(g.size()));
  silu_mul_ref(g.data(), up.data(), r.data(), int64_t(g.size()));
  check_close(y, r, 4e-6);
  y = {-1000.f, 0.f, 50.f, 50.f, -INFINITY};
  softmax(y.data(), 5);
  CHECK(y[2] == Approx(0.5f));
  CHECK(y[4] == 0.0f);
}

TEST_CASE("rope_norm: bit-identical to its ref, and a rotation by pos * base^(-2i/n)", "[kernels]") {
  Rng rng(13);
  for (int64_t head_dim : {2, 8, 10, 64, 128}) {
    for (int64_t n_rot : {head_dim, head_dim / 2, head_dim - 1}) {
      for (int64_t pos : {0, 1, 7, 100, 4095}) {
        const int64_t n_heads = 3;
        std::vector<float> x = gaussian(rng, size_t(n_heads * head_dim));
        std::vector<float> y = x, r = x;
        rope_norm(y.data(), n_heads, head_dim, n_rot, pos, 10000.0f, 1.0f);
        rope_norm_ref(r.data(), n_heads, head_dim, n_rot, pos, 10000.0f, 1.0f);
        for (size_t i = 0; i < x.size(); ++i) REQUIRE(bits(y[i]) == bits(r[i]));

        const int64_t rot = std::min(n_rot, head_dim) & ~int64_t{1};
        for (int64_t h = 0; h < n_heads; ++h) {
          for (int64_t i = 0; i < head_dim; i += 2) {
            const size_t k = size_t(h * head_dim + i);
            if (i >= rot) {  // untouched dims
              REQUIRE(r[k] == x[k]);
              if (i + 1 < head_dim) REQUIRE(r[k + 1] == x[k + 1]);
              continue;
            }
            // Double-precision rotation. The float angle recurrence drifts by ~ i ulps of the
            // angle, which at pos 4095 is ~1e-3 rad, hence the pos-scaled tolerance.
            const double theta = double(pos) * std::pow(10000.0, -double(i) / double(rot));
            const double c = std::cos(theta), s = std::sin(theta);
            const double e0 = x[k] * c - x[k + 1] * s, e1 = x[k] * s + x[k + 1] * c;
            const double tol = 1e-5 + 4e-7 * double(pos) * double(i / 2 + 1);
            REQUIRE(std::fabs(r[k] - e0) <= tol * 4);
            REQUIRE(std::fabs(r[k + 1] - e1) <= tol * 4);
          }
        }
      }
    }
  }
  // The table form gives the same as the one-call form.
  std::vector<float> cs(64), x = gaussian(rng, 4 * 64), y = x;
  rope_norm_cos_sin(37, 64, 10000.0f, 1.0f, cs.data());
  rope_norm_with(x.data(), 4, 64, 64, cs.data());
  rope_norm(y.data(), 4, 64, 64, 37, 10000.0f, 1.0f);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(bits(x[i]) == bits(y[i]));
}

TEST_CASE("rope_neox_with rotates the pairs (i, i + n_rot/2) as rope_norm_with rotates adjacent ones", "[kernels]") {
  Rng rng(21);
  for (const auto& [head_dim, n_rot] : {std::pair{64, 64}, std::pair{128, 64}, std::pair{96, 96}, std::pair{256, 256}, std::pair{64, 32}}) {
    INFO("head_dim " << head_dim << " n_rot " << n_rot);
    const int n_heads = 3, half = n_rot / 2;
    std::vector<float> x(size_t(n_heads) * head_dim);
    for (float& v : x) v = rng.normal();
    std::vector<float> cs(static_cast<size_t>(n_rot));
    rope_norm_cos_sin(1234, n_rot, 1e6f, 0.5f, cs.data(), nullptr, 1.25f);
    // The same rotation on the NORM layout: dims (i, i + half) moved next to each other.
    std::vector<float> perm = x;
    for (int h = 0; h < n_heads; ++h)
      for (int i = 0; i < half; ++i) {
        perm[size_t(h) * head_dim + 2 * i] = x[size_t(h) * head_dim + i];
        perm[size_t(h) * head_dim + 2 * i + 1] = x[size_t(h) * head_dim + i + half];
      }
    std::vector<float> neox = x;
    rope_neox_with(neox.data(), n_heads, head_dim, n_rot, cs.data());
    rope_norm_with(perm.data(), n_heads, head_dim, n_rot, cs.data());
    for (int h = 0; h < n_heads; ++h) {
      for (int i = 0; i < half; ++i) {
        CHECK(neox[size_t(h) * head_dim + i] == perm[size_t(h) * head_dim + 2 * i]);
        CHECK(neox[size_t(h) * head_dim + i + half] == perm[size_t(h) * head_dim + 2 * i + 1]);
      }
      for (int d = n_rot; d < head_dim; ++d) CHECK(neox[size_t(h) * head_dim + d] == x[size_t(h) * head_dim + d]);
    }
  }
  // attn_factor scales every entry of the table, 1 leaves it as it was.
  std::vector<float> a(64), b(64);
  rope_norm_cos_sin(77, 64, 10000.0f, 1.0f, a.data());
  rope_norm_cos_sin(77, 64, 10000.0f, 1.0f, b.data(), nullptr, 1.0f);
  CHECK(a == b);
  rope_norm_cos_sin(77, 64, 10000.0f, 1.0f, b.data(), nullptr, 2.0f);
  for (size_t i = 0; i < a.size(); ++i) CHECK(b[i] == a[i] * 2.0f);
}

TEST_CASE("gelu_mul: ggml's F16 GELU table for every half, 0 below -10, identity above 10", "[kernels]") {
  // Every F16 input: the lookup equals GELU computed directly and rounded like the table.
  std::vector<float> g, up;
  for (uint32_t i = 0; i < 65536; ++i) {
    const float x = fp16_to_fp32(static_cast<fp16_t>(i));
    if (std::isfinite(x)) g.push_back(x);
  }
  up.assign(g.size(), 1.5f);
  std::vector<float> y(g.size());
  gelu_mul(g.data(), up.data(), y.data(), static_cast<int64_t>(g.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const double x = g[i];
    const double exact = 0.5 * x * (1 + std::tanh(0.7978845608028654 * x * (1 + 0.044715 * x * x)));
    INFO("g = " << g[i]);
    REQUIRE(y[i] == gelu_f16_rounded(g[i]) * 1.5f);
    if (g[i] <= -10.0f) CHECK(y[i] == 0.0f);
    else if (g[i] >= 10.0f) CHECK(y[i] == g[i] * 1.5f);
    // F16 rounding of x and of GELU(x); and float 1 + tanh(t) cancels for t << 0 (as in ggml).
    else CHECK(std::fabs(y[i] / 1.5 - exact) <= 1e-3 * std::fabs(exact) + 1e-6);
  }
  // Non-F16 inputs round to their nearest half first.
  const float x = 0.123456f;
  CHECK(gelu_f16_rounded(x) == gelu_f16_rounded(fp16_to_fp32(fp32_to_fp16(x))));
}

// gemm_tile.hpp's portable unpacker of the 32-element formats (Small<B>::raw and the levels
// raw - offset the prefill tiles pack): at d = 1 and m = 0 the reference dequantizes every element
// to its integer level, exactly.
TEST_CASE("the portable 32-element unpacker gives the reference's levels", "[kernels]") {
  Rng rng(17);
  auto check = [&](const char* name, auto blocks, auto dequantize) {
    INFO(name);
    for (auto& b : blocks) {
      b.d = fp32_to_fp16(1.0f);
      if constexpr (requires { b.m; }) b.m = 0;
    }
    std::vector<float> want(blocks.size() * 32);
    dequantize(blocks.data(), want.data(), static_cast<int64_t>(want.size()));
    int bad = 0;
    for (size_t i = 0; i < blocks.size(); ++i) {
      int16_t q[32];
      gemm::Unpack32::levels(blocks[i], q);
      for (int e = 0; e < 32; ++e) bad += q[e] != want[i * 32 + e];
    }
    CHECK(bad == 0);
  };
  check("Q8_0", random_q8_0(rng, 64), dequantize_row_q8_0_ref);
  check("Q4_0", random_q4_0(rng, 64), dequantize_row_q4_0_ref);
  check("Q4_1", random_q4_1(rng, 64), dequantize_row_q4_1_ref);
  check("Q5_0", random_q5_0(rng, 64), dequantize_row_q5_0_ref);
  check("Q5_1", random_q5_1(rng, 64), dequantize_row_q5_1_ref);
  check("IQ4_NL", random_iq4_nl(rng, 64), dequantize_row_iq4_nl_ref);
}
