// The row-wise kernels (shaders/rows.metal, rows.cpp) against the CPU's scalar references, on every
// test device (the emulator under three schedules; a Mac's GPU under tools/metal-check.sh):
//   embed     bit-exact with dequantize_row_*_ref, random and edge blocks of every Metal type
//   rms_norm  |y - y_ref| <= 4e-6 |y_ref| (float partial sums in another order than the ref's
//             double sum: at most width / threads + 62 roundings of the sum, halved by the sqrt)
//   rope      |x' - x'_ref| <= 1e-6 (|x0| + |x1|) (the angle recurrence is the CPU's; precise
//             cos / sin are <= 4 ulp on Apple GPUs), large positions and freq_factors included
//   silu_mul  |y - y_ref| <= 2e-6 |y_ref| + 1e-30 (precise exp <= 4 ulp, correctly rounded divide)
//   add       bit-exact
// Every output buffer carries sentinels past each row (ld > width), checked untouched.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../kernels/block_samples.hpp"
#include "edgellm/kernels/ops.hpp"
#include "edgellm/kernels/quants.hpp"
#include "edgellm/rng.hpp"
#include "error.hpp"
#include "metal_test_util.hpp"

namespace {

using namespace edgellm::test::metal;
namespace kn = edgellm::kernels;
using edgellm::DType;
using edgellm::Error;
using kn::Rng;

constexpr float kSentinel = -1234.5f;

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Bytes of a table of `rows` rows, `row_bytes` each, from a pool of blocks (cycled).
template <typename Block>
std::vector<uint8_t> table_of(const std::vector<Block>& blocks, size_t rows, size_t blocks_per_row) {
  std::vector<uint8_t> out(rows * blocks_per_row * sizeof(Block));
  for (size_t i = 0; i < rows * blocks_per_row; ++i)
    std::memcpy(out.data() + i * sizeof(Block), &blocks[i % blocks.size()], sizeof(Block));
  return out;
}

struct EmbedCase {
  DType type;
  std::string name;
  int64_t cols;
  uint64_t row_bytes;
  std::vector<uint8_t> table;
  // CPU reference of one row.
  void (*ref)(const uint8_t* row, float* y, int64_t cols);
};

// Blocks in the table are packed (a row of Q6_K blocks is 2-byte aligned at best): copied into an
// aligned array before the reference reads them.
template <typename Block, int kBlockElems, void (*F)(const Block*, float*, int64_t)>
void ref_blocks(const uint8_t* row, float* y, int64_t cols) {
  std::vector<Block> aligned(static_cast<size_t>(cols / kBlockElems));
  std::memcpy(aligned.data(), row, aligned.size() * sizeof(Block));
  F(aligned.data(), y, cols);
}

void ref_f16(const uint8_t* row, float* y, int64_t cols) {
  std::vector<kn::fp16_t> h(static_cast<size_t>(cols));
  std::memcpy(h.data(), row, h.size() * 2);
  kn::dequantize_row_f16_ref(h.data(), y, cols);
}

void ref_f32(const uint8_t* row, float* y, int64_t cols) { std::memcpy(y, row, static_cast<size_t>(cols) * 4); }

std::vector<EmbedCase> embed_cases() {
  Rng rng(0xe3bed);
  std::vector<EmbedCase> cases;
  auto both = [](auto random, auto edge) {
    random.insert(random.end(), edge.begin(), edge.end());
    return random;
  };
  {
    auto blocks = both(edgellm::test::random_q4_K(rng, 64), edgellm::test::edge_q4_K());
    const size_t rows = (blocks.size() + 1) / 2;  // 2 blocks per row: every block appears
    cases.push_back({DType::Q4_K, "q4_K", 512, 2 * sizeof(kn::block_q4_K), table_of(blocks, rows, 2),
                     ref_blocks<kn::block_q4_K, kn::QK_K, kn::dequantize_row_q4_K_ref>});
  }
  {
    auto blocks = both(edgellm::test::random_q6_K(rng, 64), edgellm::test::edge_q6_K());
    const size_t rows = blocks.size();  // 1 block per row
    cases.push_back({DType::Q6_K, "q6_K", 256, sizeof(kn::block_q6_K), table_of(blocks, rows, 1),
                     ref_blocks<kn::block_q6_K, kn::QK_K, kn::dequantize_row_q6_K_ref>});
  }
  {
    auto blocks = both(edgellm::test::random_q8_0(rng, 96), edgellm::test::edge_q8_0());
    const size_t rows = (blocks.size() + 2) / 3;  // 96 columns
    cases.push_back({DType::Q8_0, "q8_0", 96, 3 * sizeof(kn::block_q8_0), table_of(blocks, rows, 3),
                     ref_blocks<kn::block_q8_0, kn::QK8_0, kn::dequantize_row_q8_0_ref>});
  }
  {
    auto blocks = both(edgellm::test::random_q4_0(rng, 96), edgellm::test::edge_q4_0());
    const size_t rows = (blocks.size() + 2) / 3;
    cases.push_back({DType::Q4_0, "q4_0", 96, 3 * sizeof(kn::block_q4_0), table_of(blocks, rows, 3),
                     ref_blocks<kn::block_q4_0, kn::QK4_0, kn::dequantize_row_q4_0_ref>});
  }
  for (int64_t cols : {int64_t{33}, int64_t{100}}) {  // not multiples of 16: a partial last piece
    const size_t rows = 40;
    std::vector<uint8_t> t(rows * static_cast<size_t>(cols) * 2);
    for (size_t i = 0; i < t.size() / 2; ++i) {
      kn::fp16_t h = edgellm::test::random_finite_fp16(rng);
      if (i < 64) {  // specials first: zeros, subnormals, extremes, infinities, NaNs
        static const kn::fp16_t sp[] = {0x0000, 0x8000, 0x0001, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
                                        0x7E00, 0xFE00, 0x7C01, 0x3C00, 0x3555};
        h = sp[i % (sizeof sp / sizeof sp[0])];
      }
      std::memcpy(&t[2 * i], &h, 2);
    }
    cases.push_back({DType::F16, "f16", cols, uint64_t(cols) * 2, t, ref_f16});
    std::vector<uint8_t> f(rows * static_cast<size_t>(cols) * 4);
    for (size_t i = 0; i < f.size() / 4; ++i) {
      float v = rng.normal() * 100.0f;
      if (i < 8) {
        static const uint32_t sp[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x7F7FFFFFu,
                                      0x7F800000u, 0xFF800000u, 0x7FC00001u, 0xFFA00000u};
        std::memcpy(&v, &sp[i], 4);
      }
      std::memcpy(&f[4 * i], &v, 4);
    }
    cases.push_back({DType::F32, "f32", cols, uint64_t(cols) * 4, f, ref_f32});
  }
  return cases;
}

}  // namespace

TEST_CASE("metal embed: every row bit-exact with dequantize_row_*_ref", "[metal][rows]") {
  const auto cases = embed_cases();
  auto devs = test_devices();
  for (auto& td : devs) {
    Device& dev = *td.dev;
    for (const EmbedCase& c : cases) {
      INFO(td.label << ", " << c.name << ", " << c.cols << " columns");
      const int n_rows = static_cast<int>(c.table.size() / c.row_bytes);
      // Every row once, in a scrambled order, then row 0 and the last row again.
      std::vector<int32_t> tokens;
      for (int i = 0; i < n_rows; ++i) tokens.push_back(static_cast<int32_t>((int64_t{i} * 7919) % n_rows));
      tokens.push_back(0);
      tokens.push_back(n_rows - 1);
      const int n_tok = static_cast<int>(tokens.size());
      const int ldy = static_cast<int>(c.cols) + 3;
      const BufView table = upload(dev, c.table);
      const BufView tok = upload(dev, tokens);
      const BufView y = upload(dev, std::vector<float>(size_t(n_tok) * size_t(ldy), kSentinel));
      WeightView w;
      w.type = c.type;
      w.data = table;
      w.rows = n_rows;
      w.cols = c.cols;
      w.row_bytes = c.row_bytes;
      encode_embed(dev, w, tok, n_tok, y, ldy);
      dev.commit_and_wait();
      const auto got = download<float>(dev, y, size_t(n_tok) * size_t(ldy));
      std::vector<float> want(static_cast<size_t>(c.cols));
      int mismatches = 0;
      for (int t = 0; t < n_tok; ++t) {
        c.ref(c.table.data() + size_t(tokens[size_t(t)]) * c.row_bytes, want.data(), c.cols);
        for (int64_t j = 0; j < c.cols; ++j) {
          const float g = got[size_t(t) * size_t(ldy) + size_t(j)], r = want[size_t(j)];
          // NaN payloads are the hardware's (f16 -> f32 widening): NaN must stay NaN.
          const bool same = std::isnan(r) ? std::isnan(g) : bits(g) == bits(r);
          if (!same && mismatches++ < 5)
            FAIL_CHECK("row " << t << " (token " << tokens[size_t(t)] << ") element " << j << ": got " << g
                              << ", want " << r);
        }
        for (int j = static_cast<int>(c.cols); j < ldy; ++j)
          if (bits(got[size_t(t) * size_t(ldy) + size_t(j)]) != bits(kSentinel) && mismatches++ < 5)
            FAIL_CHECK("row " << t << ": padding element " << j << " was written");
      }
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("metal embed: types without a kernel and malformed tables are refused", "[metal][rows]") {
  auto devs = test_devices();
  Device& dev = *devs.front().dev;
  const BufView buf = zeros<uint8_t>(dev, 4096);
  WeightView w;
  w.type = DType::Q5_K;
  w.data = buf;
  w.rows = 4;
  w.cols = 256;
  w.row_bytes = 176;
  try {
    encode_embed(dev, w, buf, 1, buf, 256);
    FAIL("Q5_K embed was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Unsupported);
    CHECK(std::string(e.what()).find("q5_K") != std::string::npos);
  }
  w.type = DType::Q8_0;
  w.cols = 48;  // not a whole number of 32-element blocks
  w.row_bytes = 51;
  CHECK_THROWS_AS(encode_embed(dev, w, buf, 1, buf, 48), Error);
  w.cols = 64;
  w.row_bytes = 34;  // less than a row of 2 blocks
  CHECK_THROWS_AS(encode_embed(dev, w, buf, 1, buf, 64), Error);
}

TEST_CASE("metal rms_norm: within 4e-6 relative of rms_norm_ref", "[metal][rows]") {
  Rng rng(0x4a5);
  auto devs = test_devices();
  for (auto& td : devs) {
    Device& dev = *td.dev;
    for (int width : {1, 33, 100, 4096}) {
      for (bool in_place : {false, true}) {
        INFO(td.label << ", width " << width << (in_place ? ", in place" : ""));
        const int n_rows = 4, ld = width + 5;
        std::vector<float> x(size_t(n_rows) * size_t(ld), kSentinel), w(static_cast<size_t>(width));
        for (int r = 0; r < n_rows; ++r) {
          const float scale = r == 0 ? 1.0f : r == 1 ? 1e3f : r == 2 ? 1e-3f : 0.0f;  // row 3: zeros
          for (int i = 0; i < width; ++i) x[size_t(r) * size_t(ld) + size_t(i)] = rng.normal() * scale;
        }
        for (float& v : w) v = 1.0f + 0.5f * rng.normal();
        const float eps = 1e-5f;
        const BufView xb = upload(dev, x), wb = upload(dev, w);
        const BufView yb = in_place ? xb : upload(dev, std::vector<float>(x.size(), kSentinel));
        encode_rms_norm(dev, xb, wb, yb, n_rows, width, ld, eps);
        dev.commit_and_wait();
        const auto got = download<float>(dev, yb, x.size());
        std::vector<float> want(static_cast<size_t>(width));
        double worst = 0;
        for (int r = 0; r < n_rows; ++r) {
          kn::rms_norm_ref(&x[size_t(r) * size_t(ld)], w.data(), want.data(), width, eps);
          for (int i = 0; i < width; ++i) {
            const float g = got[size_t(r) * size_t(ld) + size_t(i)], ref = want[size_t(i)];
            const double err = std::fabs(double(g) - double(ref));
            worst = std::max(worst, ref != 0 ? err / std::fabs(double(ref)) : err);
            if (!(err <= 4e-6 * std::fabs(double(ref)))) {
              FAIL_CHECK("row " << r << " element " << i << ": got " << g << ", want " << ref);
              break;
            }
          }
          for (int i = width; i < ld; ++i) CHECK(got[size_t(r) * size_t(ld) + size_t(i)] == kSentinel);
        }
        INFO("worst relative error " << worst);
        CHECK(worst <= 4e-6);
        if (&td == &devs.front() && !in_place) WARN("rms_norm width " << width << ": worst relative error " << worst);
      }
    }
  }
}

namespace {

// The CPU's rope for one row of n_heads heads (rope_norm_cos_sin + rope_norm_with's formula).
void rope_row_ref(float* x, int n_heads, int head_dim, int n_rot, int64_t pos, float base, float scale,
                  const float* freq_factors) {
  const int n = std::max(0, std::min(n_rot, head_dim)) & ~1;
  std::vector<float> cs(static_cast<size_t>(n));
  kn::rope_norm_cos_sin(pos, n, base, scale, cs.data(), freq_factors);
  for (int h = 0; h < n_heads; ++h) {
    float* xh = x + size_t(h) * size_t(head_dim);
    for (int i = 0; i < n; i += 2) {
      const float c = cs[size_t(i)], s = cs[size_t(i) + 1], x0 = xh[i], x1 = xh[i + 1];
      xh[i] = x0 * c - x1 * s;
      xh[i + 1] = x0 * s + x1 * c;
    }
  }
}

}  // namespace

TEST_CASE("metal rope: the CPU's angles, within 1e-6 (|x0| + |x1|)", "[metal][rows]") {
  struct Case {
    int n_tok, n_heads, head_dim, n_rot, pos0;
    float base, scale;
    bool factors;
  };
  const Case cases[] = {
      {1, 4, 64, 64, 0, 10000.0f, 1.0f, false},     {3, 2, 64, 64, 4000, 10000.0f, 1.0f, false},
      {2, 3, 80, 32, 4093, 500000.0f, 0.25f, false}, {9, 2, 128, 128, 7, 500000.0f, 1.0f, true},
      {2, 2, 64, 64, 3999, 10000.0f, 1.0f, true},    {1, 2, 48, 50, 123, 10000.0f, 1.0f, false},  // n_rot capped
      {2, 1, 64, 33, 5, 10000.0f, 1.0f, false},      // n_rot odd: 32 rotated, as the CPU
  };
  Rng rng(0x20be);
  auto devs = test_devices();
  for (auto& td : devs) {
    Device& dev = *td.dev;
    for (const Case& c : cases) {
      INFO(td.label << ", " << c.n_tok << " rows x " << c.n_heads << " heads x " << c.head_dim << ", n_rot "
                    << c.n_rot << ", pos0 " << c.pos0 << (c.factors ? ", freq_factors" : ""));
      const int ld = c.n_heads * c.head_dim + 3;
      std::vector<float> x(size_t(c.n_tok) * size_t(ld), kSentinel);
      for (int t = 0; t < c.n_tok; ++t)
        for (int i = 0; i < c.n_heads * c.head_dim; ++i) x[size_t(t) * size_t(ld) + size_t(i)] = rng.normal() * 3.0f;
      std::vector<float> ff(static_cast<size_t>(c.head_dim / 2));
      for (float& f : ff) f = 1.0f + 7.0f * rng.uniform();
      const BufView xb = upload(dev, x);
      const BufView fb = c.factors ? upload(dev, ff) : BufView{};
      RopeShape shape{c.n_tok, ld, c.n_heads, c.head_dim, c.n_rot, c.pos0, c.base, c.scale};
      encode_rope(dev, xb, shape, fb);
      dev.commit_and_wait();
      const auto got = download<float>(dev, xb, x.size());
      std::vector<float> want = x;
      for (int t = 0; t < c.n_tok; ++t)
        rope_row_ref(&want[size_t(t) * size_t(ld)], c.n_heads, c.head_dim, c.n_rot, c.pos0 + t, c.base, c.scale,
                     c.factors ? ff.data() : nullptr);
      double worst = 0;
      int bad = 0;
      for (int t = 0; t < c.n_tok; ++t) {
        for (int i = 0; i < ld; i += 2) {
          const size_t at = size_t(t) * size_t(ld) + size_t(i);
          if (i + 1 >= ld) {  // the last padding float
            CHECK(got[at] == kSentinel);
            continue;
          }
          const double mag = std::fabs(double(x[at])) + std::fabs(double(x[at + 1]));
          for (size_t k = at; k < at + 2; ++k) {
            const double err = std::fabs(double(got[k]) - double(want[k]));
            worst = std::max(worst, mag > 0 ? err / mag : err);
            if (!(err <= 1e-6 * mag) && bad++ < 5)
              FAIL_CHECK("row " << t << " dim " << (k - size_t(t) * size_t(ld)) << ": got " << got[k] << ", want "
                                << want[k]);
          }
        }
      }
      INFO("worst error / (|x0| + |x1|): " << worst);
      CHECK(bad == 0);
      if (&td == &devs.front()) WARN("rope pos0 " << c.pos0 << ": worst error / (|x0| + |x1|) " << worst);
    }
  }
}

TEST_CASE("metal silu_mul and add against silu_mul_ref and add_ref", "[metal][rows]") {
  Rng rng(0x5111);
  const int64_t n = 4096 * 3 + 7;
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    a[size_t(i)] = (rng.uniform() - 0.5f) * 40.0f;
    b[size_t(i)] = rng.normal() * 10.0f;
  }
  const float specials[] = {0.0f, -0.0f, 100.0f, -100.0f, 88.7f, -88.7f, 89.5f, -89.5f, 1e30f, -1e30f, 1e-30f,
                            -1e-30f, 1e-40f, 3.4e38f, -3.4e38f, 15.9424f, -15.9424f};
  for (size_t i = 0; i < sizeof specials / sizeof specials[0]; ++i) a[i] = specials[i];
  auto devs = test_devices();
  for (auto& td : devs) {
    Device& dev = *td.dev;
    INFO(td.label);
    const BufView ab = upload(dev, a), bb = upload(dev, b);
    const BufView ys = upload(dev, std::vector<float>(size_t(n) + 4, kSentinel));
    const BufView ya = upload(dev, std::vector<float>(size_t(n) + 4, kSentinel));
    encode_silu_mul(dev, ab, bb, ys, n);
    encode_add(dev, ab, bb, ya, n);
    encode_add(dev, ab, bb, ya.at(uint64_t(n) * 4), 0);  // nothing to do: no dispatch, no write
    dev.commit_and_wait();
    const auto gs = download<float>(dev, ys, size_t(n) + 4), ga = download<float>(dev, ya, size_t(n) + 4);
    std::vector<float> ws(static_cast<size_t>(n)), wa(static_cast<size_t>(n));
    kn::silu_mul_ref(a.data(), b.data(), ws.data(), n);
    kn::add_ref(a.data(), b.data(), wa.data(), n);
    int bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double err = std::fabs(double(gs[size_t(i)]) - double(ws[size_t(i)]));
      if (ws[size_t(i)] != 0) worst = std::max(worst, err / std::fabs(double(ws[size_t(i)])));
      if (!(err <= 2e-6 * std::fabs(double(ws[size_t(i)])) + 1e-30) && bad++ < 5)
        FAIL_CHECK("silu_mul element " << i << " (gate " << a[size_t(i)] << "): got " << gs[size_t(i)] << ", want "
                                       << ws[size_t(i)]);
      if (bits(ga[size_t(i)]) != bits(wa[size_t(i)]) && bad++ < 5)
        FAIL_CHECK("add element " << i << ": got " << ga[size_t(i)] << ", want " << wa[size_t(i)]);
    }
    for (int64_t i = n; i < n + 4; ++i) {
      CHECK(gs[size_t(i)] == kSentinel);
      CHECK(ga[size_t(i)] == kSentinel);
    }
    INFO("silu_mul worst relative error " << worst);
    CHECK(bad == 0);
    if (&td == &devs.front()) WARN("silu_mul: worst relative error " << worst);
  }
}
