// The tiled matrix-matrix kernels (shaders/mul_mm.metal, encode_mul_mm) against the CPU scalar
// reference, and encode_matmul's choice between them and the mat-vec kernels.
//
// Reference: the weights dequantized by the CPU's dequantize_row_*_ref, dotted with x in double.
// The kernel keeps weights, activations, products and sums in float (no half anywhere), so y is a
// float dot product of (nearly) the same weights. Its error, with u = 2^-24 and mag_c = |w_c|
// (Q4_K: |d_j q| + |m_j|, as a GPU compiler may fuse d_j q - m_j into one fma), is at worst
// (cols + 2) u sum_c mag_c |x_c| (recursive summation, plus the weight's own rounding); with
// random-sign products it grows like a random walk, ~sqrt(cols). Measured over every case below
// (all types, the three schedules, random and edge inputs): the largest |y - ref| / (u sum mag |x|)
// is 5.4 (Q8_0, cols 512; 4.2 at cols 32, 2.0 on the edge blocks). The assertion is
//   |y - ref| <= (4 + 2 sqrt(cols)) u sum_c mag_c |x_c|     (15 at cols 32, 49 at cols 512),
// a few times above that, and far below what a half-rounded operand would give (2^-11 relative
// per element: ratios in the hundreds; the 1e6-scaled tokens would be Inf).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../kernels/block_samples.hpp"
#include "error.hpp"
#include "metal_test_util.hpp"

namespace {

using namespace edgellm;
using namespace edgellm::test;
using namespace edgellm::test::metal;
using edgellm::engine::metal::BufView;
using edgellm::engine::metal::Device;
using edgellm::engine::metal::DispatchDesc;
using edgellm::engine::metal::WeightView;

// A weight matrix in its file bytes, with the CPU's dequantized values and the magnitudes the
// error bound scales with.
struct HostWeights {
  DType type = DType::F32;
  int64_t rows = 0, cols = 0;
  uint64_t row_bytes = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // rows x cols
  std::vector<float> mag;  // rows x cols
};

template <typename Block>
std::vector<Block> cycle(const std::vector<Block>& src, size_t n) {
  std::vector<Block> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = src[i % src.size()];
  return v;
}

template <typename Block>
void set_bytes(HostWeights& w, const std::vector<Block>& blocks) {
  w.bytes.resize(blocks.size() * sizeof(Block));
  std::memcpy(w.bytes.data(), blocks.data(), w.bytes.size());
}

void abs_of(HostWeights& w) {
  w.mag.resize(w.deq.size());
  for (size_t i = 0; i < w.deq.size(); ++i) w.mag[i] = std::fabs(w.deq[i]);
}

// Finite F32 weights over many magnitudes (1e-6 .. 1e6, signs mixed), or the edge values.
float random_f32_weight(Rng& rng) { return rng.normal() * std::pow(10.0f, std::floor(13.0f * rng.uniform()) - 6.0f); }
const std::vector<float>& edge_f32() {
  static const std::vector<float> v = {0.0f, -0.0f, 1e-40f, -1e-45f, std::numeric_limits<float>::min(),
                                       1.0f, -1.0f, 65504.0f, 65520.0f, -1e30f, 1e30f, 3.25f};
  return v;
}

// Random (edge = false) or edge blocks / values (edge = true: every edge block of the type,
// cycled to fill the matrix; for F16 every finite fp16 bit pattern in order).
HostWeights make_weights(DType type, int64_t rows, int64_t cols, Rng& rng, bool edge) {
  HostWeights w;
  w.type = type;
  w.rows = rows;
  w.cols = cols;
  w.row_bytes = *dtype_row_bytes(type, static_cast<uint64_t>(cols));
  const size_t n = static_cast<size_t>(rows * cols);
  w.deq.resize(n);
  switch (type) {
    case DType::Q4_K: {
      auto b = edge ? cycle(edge_q4_K(), n / QK_K) : random_q4_K(rng, n / QK_K);
      set_bytes(w, b);
      dequantize_row_q4_K_ref(b.data(), w.deq.data(), static_cast<int64_t>(n));
      for (block_q4_K& blk : b) {  // |d_j q| + |m_j| = (|d| sc) q - (-|dmin|) m
        blk.d = static_cast<fp16_t>(blk.d & 0x7FFF);
        blk.dmin = static_cast<fp16_t>(blk.dmin | 0x8000);
      }
      w.mag.resize(n);
      dequantize_row_q4_K_ref(b.data(), w.mag.data(), static_cast<int64_t>(n));
      break;
    }
    case DType::Q6_K: {
      const auto b = edge ? cycle(edge_q6_K(), n / QK_K) : random_q6_K(rng, n / QK_K);
      set_bytes(w, b);
      dequantize_row_q6_K_ref(b.data(), w.deq.data(), static_cast<int64_t>(n));
      abs_of(w);
      break;
    }
    case DType::Q8_0: {
      const auto b = edge ? cycle(edge_q8_0(), n / QK8_0) : random_q8_0(rng, n / QK8_0);
      set_bytes(w, b);
      dequantize_row_q8_0_ref(b.data(), w.deq.data(), static_cast<int64_t>(n));
      abs_of(w);
      break;
    }
    case DType::Q4_0: {
      const auto b = edge ? cycle(edge_q4_0(), n / QK4_0) : random_q4_0(rng, n / QK4_0);
      set_bytes(w, b);
      dequantize_row_q4_0_ref(b.data(), w.deq.data(), static_cast<int64_t>(n));
      abs_of(w);
      break;
    }
    case DType::F16: {
      std::vector<fp16_t> h(n);
      uint32_t next_finite = 0;
      for (fp16_t& v : h) {
        if (edge) {
          while (((next_finite >> 10) & 0x1F) == 0x1F) ++next_finite;
          v = static_cast<fp16_t>(next_finite++ & 0xFFFF);
        } else {
          v = random_finite_fp16(rng);
        }
      }
      set_bytes(w, h);
      dequantize_row_f16_ref(h.data(), w.deq.data(), static_cast<int64_t>(n));
      abs_of(w);
      break;
    }
    case DType::F32: {
      for (size_t i = 0; i < n; ++i) w.deq[i] = edge ? edge_f32()[i % edge_f32().size()] : random_f32_weight(rng);
      set_bytes(w, w.deq);
      abs_of(w);
      break;
    }
    default: FAIL("no test weights for this type");
  }
  REQUIRE(w.bytes.size() == static_cast<size_t>(rows) * w.row_bytes);
  return w;
}

// Activations: N(0, 1), every fifth token scaled by 1e6 (past half's range: a kernel that
// rounded x to half would give Inf there).
std::vector<float> make_x(Rng& rng, int n_tok, int64_t cols, int ldx) {
  std::vector<float> x(static_cast<size_t>(n_tok) * ldx, std::numeric_limits<float>::quiet_NaN());  // padding
  for (int t = 0; t < n_tok; ++t) {
    const float scale = t % 5 == 3 ? 1e6f : 1.0f;
    for (int64_t c = 0; c < cols; ++c) x[static_cast<size_t>(t) * ldx + c] = scale * rng.normal();
  }
  return x;
}

constexpr float kPadSentinel = -777.25f;
constexpr double kUnit = 0x1p-24;

struct Shape {
  int64_t rows, cols;
  int n_tok;
  int ldx_pad, ldy_pad;  // floats after each x / y row (x's are NaN, y's must stay kPadSentinel)
};

// Runs y = W x on dev with encode (encode_mul_mm or encode_matmul) and checks every element
// against the reference and the bound, and the padding untouched. Returns the largest ratio.
template <typename Encode>
double run_and_check(Device& dev, const HostWeights& hw, int n_tok, int ldx_pad, int ldy_pad, Rng& rng,
                     Encode encode) {
  const int ldx = static_cast<int>(hw.cols) + ldx_pad;
  const int ldy = static_cast<int>(hw.rows) + ldy_pad;
  const std::vector<float> x = make_x(rng, n_tok, hw.cols, ldx);

  // The weights at a nonzero offset in their buffer (a tensor inside the model's mapping).
  constexpr size_t kWeightOffset = 32;
  std::vector<uint8_t> wbuf(kWeightOffset, 0xA5);
  wbuf.insert(wbuf.end(), hw.bytes.begin(), hw.bytes.end());
  WeightView w;
  w.type = hw.type;
  w.data = upload(dev, wbuf).at(kWeightOffset);
  w.rows = hw.rows;
  w.cols = hw.cols;
  w.row_bytes = hw.row_bytes;
  const BufView xb = upload(dev, x);
  const BufView yb = upload(dev, std::vector<float>(static_cast<size_t>(n_tok) * ldy, kPadSentinel));
  encode(dev, w, xb, ldx, yb, ldy, n_tok);
  dev.commit_and_wait();
  const std::vector<float> y = download<float>(dev, yb, static_cast<size_t>(n_tok) * ldy);

  double worst = 0;
  int failures = 0;
  for (int t = 0; t < n_tok; ++t) {
    const float* xt = x.data() + static_cast<size_t>(t) * ldx;
    for (int64_t r = 0; r < hw.rows; ++r) {
      const float* wr = hw.deq.data() + r * hw.cols;
      const float* mr = hw.mag.data() + r * hw.cols;
      double ref = 0, scale = 0;
      for (int64_t c = 0; c < hw.cols; ++c) {
        ref += double(wr[c]) * xt[c];
        scale += double(mr[c]) * std::fabs(xt[c]);
      }
      const float got = y[static_cast<size_t>(t) * ldy + r];
      const double err = std::fabs(double(got) - ref);
      // (+ an absolute term for products a GPU may flush below FLT_MIN)
      const double bound = (4 + 2 * std::sqrt(double(hw.cols))) * kUnit * scale + 0x1p-126 * double(hw.cols);
      if (scale > 0) worst = std::max(worst, err / (kUnit * scale));
      if (!(err <= bound) && failures++ < 5) {
        FAIL_CHECK("t " << t << " r " << r << ": y " << got << ", ref " << ref << ", |err| " << err << " > bound "
                        << bound);
      }
    }
    for (int p = 0; p < ldy_pad; ++p) {
      const float pad = y[static_cast<size_t>(t) * ldy + hw.rows + p];
      if (std::memcmp(&pad, &kPadSentinel, sizeof pad) != 0 && failures++ < 5)
        FAIL_CHECK("t " << t << ": padding float " << p << " after the row was written: " << pad);
    }
  }
  CHECK(failures == 0);
  return worst;
}

void encode_mm(Device& dev, const WeightView& w, BufView x, int ldx, BufView y, int ldy, int n_tok) {
  edgellm::engine::metal::encode_mul_mm(dev, w, x, ldx, y, ldy, n_tok);
}
void encode_mat(Device& dev, const WeightView& w, BufView x, int ldx, BufView y, int ldy, int n_tok) {
  edgellm::engine::metal::encode_matmul(dev, w, x, ldx, y, ldy, n_tok);
}

const DType kTypes[] = {DType::Q4_K, DType::Q6_K, DType::Q8_0, DType::Q4_0, DType::F16, DType::F32};

int64_t block_cols(DType t) { return t == DType::Q4_K || t == DType::Q6_K ? 256 : 32; }

// Forwards to a device and records the kernel of every dispatch.
class RecordingDevice final : public Device {
 public:
  explicit RecordingDevice(Device& inner) : inner_(inner) {}
  std::string name() const override { return inner_.name(); }
  uint32_t simd_width() const override { return inner_.simd_width(); }
  edgellm::engine::metal::BufferId wrap(const void* data, size_t bytes) override { return inner_.wrap(data, bytes); }
  edgellm::engine::metal::BufferId alloc(size_t bytes) override { return inner_.alloc(bytes); }
  void* contents(edgellm::engine::metal::BufferId buf) override { return inner_.contents(buf); }
  void encode(const DispatchDesc& d) override {
    kernels.emplace_back(d.kernel ? d.kernel : "");
    inner_.encode(d);
  }
  void commit_and_wait() override { inner_.commit_and_wait(); }
  std::vector<std::string> kernels;

 private:
  Device& inner_;
};

std::string mm_kernel_name(DType t) { return "kernel_mul_mm_" + std::string(dtype_info(t)->name); }

}  // namespace

TEST_CASE("mul_mm: every weight type against the CPU reference, odd shapes, strided rows", "[metal][mul_mm]") {
  double worst = 0;
  for (TestDevice& td : test_devices()) {
    for (DType type : kTypes) {
      const int64_t bc = block_cols(type);
      // Rows and tokens not multiples of the 64 x 32 tile, one exact tile, partial and full tiles
      // mixed, K of one, two and three blocks (Q8_0 / Q4_0 / F16 / F32: 32, 64, 96 columns, an odd
      // number of 32-column steps), padded rows, and one larger case.
      const Shape shapes[] = {
          {1, bc, 9, 0, 0},           {37, 2 * bc, 33, 3, 5},   {70, bc, 40, 0, 1},
          {64, bc, 32, 0, 0},         {130, bc == 32 ? 96 : 256, 65, 7, 2},
          {256, 512, 64, 0, 0},
      };
      for (const Shape& s : shapes) {
        INFO(td.label << ", " << dtype_name(uint32_t(type)) << ", rows " << s.rows << " cols " << s.cols << " n_tok "
                      << s.n_tok << " ldx +" << s.ldx_pad << " ldy +" << s.ldy_pad);
        Rng rng(0x6d6d0000u + uint64_t(type) * 131 + uint64_t(s.rows) * 7 + uint64_t(s.n_tok));
        const HostWeights hw = make_weights(type, s.rows, s.cols, rng, false);
        worst = std::max(worst, run_and_check(*td.dev, hw, s.n_tok, s.ldx_pad, s.ldy_pad, rng, encode_mm));
      }
    }
  }
  UNSCOPED_INFO("largest |y - ref| / (u sum mag |x|): " << worst);
  CHECK(worst > 0);  // the measure saw rounding at all (so it is measuring something)
}

TEST_CASE("mul_mm: edge blocks and values of every type", "[metal][mul_mm]") {
  for (TestDevice& td : test_devices()) {
    for (DType type : kTypes) {
      // Every edge block of the type once at least (Q4_K: 2800 blocks, Q6_K: 1050), one block a row
      // (F16: all 63488 finite fp16 values, 32 a row).
      int64_t rows = 0;
      switch (type) {
        case DType::Q4_K: rows = int64_t(edge_q4_K().size()); break;
        case DType::Q6_K: rows = int64_t(edge_q6_K().size()); break;
        case DType::Q8_0: rows = int64_t(edge_q8_0().size()); break;
        case DType::Q4_0: rows = int64_t(edge_q4_0().size()); break;
        case DType::F16: rows = 63488 / 32; break;
        default: rows = 3 * int64_t(edge_f32().size()); break;
      }
      INFO(td.label << ", " << dtype_name(uint32_t(type)) << " edge, rows " << rows);
      Rng rng(0xed9e0000u + uint64_t(type));
      const HostWeights hw = make_weights(type, rows, block_cols(type), rng, true);
      run_and_check(*td.dev, hw, 9, 1, 3, rng, encode_mm);
    }
  }
}

TEST_CASE("encode_matmul: up to kMaxMvTokens rows take the mat-vec kernels, more the tiled ones", "[metal][mul_mm]") {
  for (TestDevice& td : test_devices()) {
    for (DType type : kTypes) {
      INFO(td.label << ", " << dtype_name(uint32_t(type)));
      Rng rng(0x5e1ec7u + uint64_t(type));
      const HostWeights hw = make_weights(type, 40, 2 * block_cols(type), rng, false);
      for (int n_tok : {1, edgellm::engine::metal::kMaxMvTokens}) {
        RecordingDevice rec(*td.dev);
        const BufView x = upload(rec, make_x(rng, n_tok, hw.cols, int(hw.cols)));
        const BufView y = zeros<float>(rec, size_t(n_tok) * size_t(hw.rows));
        WeightView w{hw.type, upload(rec, hw.bytes), hw.rows, hw.cols, hw.row_bytes};
        edgellm::engine::metal::encode_matmul(rec, w, x, int(hw.cols), y, int(hw.rows), n_tok);
        REQUIRE_FALSE(rec.kernels.empty());
        for (const std::string& k : rec.kernels) CHECK(k.rfind("kernel_mul_mm", 0) == std::string::npos);
        rec.commit_and_wait();
      }
      for (int n_tok : {edgellm::engine::metal::kMaxMvTokens + 1, 40}) {
        RecordingDevice rec(*td.dev);
        run_and_check(rec, hw, n_tok, 2, 1, rng, encode_mat);
        CHECK(rec.kernels == std::vector<std::string>{mm_kernel_name(type)});
      }
    }
  }
}

TEST_CASE("encode_matmul: F32 / F16 weights without whole K steps take the mat-vec kernels, 8 rows a dispatch",
          "[metal][mul_mm]") {
  for (TestDevice& td : test_devices()) {
    for (DType type : {DType::F16, DType::F32}) {
      INFO(td.label << ", " << dtype_name(uint32_t(type)));
      Rng rng(0xc0150u + uint64_t(type));
      const HostWeights hw = make_weights(type, 37, 20, rng, false);  // 20 columns: no 32-column K step
      RecordingDevice rec(*td.dev);
      run_and_check(rec, hw, 20, 2, 1, rng, encode_mat);
      const std::string mv = "kernel_mul_mv_" + std::string(dtype_info(type)->name);
      CHECK(rec.kernels == std::vector<std::string>{mv, mv, mv});  // rows 0-7, 8-15, 16-19
    }
  }
}

TEST_CASE("encode_mul_mm refuses what its kernels cannot compute, before dispatching", "[metal][mul_mm]") {
  auto devs = test_devices();
  RecordingDevice rec(*devs.front().dev);
  const BufView buf = zeros<float>(rec, 4096);
  auto expect = [&](WeightView w, int ldx, int ldy, int n_tok, Error::Kind kind, const char* says) {
    try {
      edgellm::engine::metal::encode_mul_mm(rec, w, buf, ldx, buf, ldy, n_tok);
      FAIL("no error for: " << says);
    } catch (const Error& e) {
      CHECK(e.kind() == kind);
      CHECK_THAT(e.what(), Catch::Matchers::Contains(says));
    }
  };
  expect({DType::Q5_K, buf, 4, 256, 176}, 256, 4, 16, Error::Kind::Unsupported, "q5_K");
  expect({DType::BF16, buf, 4, 32, 64}, 32, 4, 16, Error::Kind::Unsupported, "bf16");
  expect({DType::F16, buf, 4, 48, 96}, 48, 4, 16, Error::Kind::InvalidArgument, "multiple of 32");
  expect({DType::F32, buf, 4, 16, 64}, 16, 4, 16, Error::Kind::InvalidArgument, "multiple of 32");
  expect({DType::Q4_K, buf, 4, 32, 18}, 32, 4, 16, Error::Kind::InvalidArgument, "blocks");
  expect({DType::Q8_0, buf, 4, 64, 34}, 64, 4, 16, Error::Kind::InvalidArgument, "row_bytes");
  expect({DType::Q8_0, buf, 4, 64, 68}, 63, 4, 16, Error::Kind::InvalidArgument, "ldx");
  expect({DType::Q8_0, buf, 4, 64, 68}, 64, 3, 16, Error::Kind::InvalidArgument, "ldy");
  expect({DType::Q8_0, buf, 4, 64, 68}, 64, 4, -1, Error::Kind::InvalidArgument, "negative");
  CHECK(rec.kernels.empty());
  // Nothing to compute is not an error, and dispatches nothing.
  edgellm::engine::metal::encode_mul_mm(rec, {DType::Q8_0, buf, 4, 64, 68}, buf, 64, buf, 4, 0);
  edgellm::engine::metal::encode_mul_mm(rec, {DType::Q8_0, buf, 0, 64, 68}, buf, 64, buf, 4, 16);
  CHECK(rec.kernels.empty());
}
