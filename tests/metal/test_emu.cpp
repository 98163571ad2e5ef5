// The Metal emulator's own checks (tests/metal/emu; docs/METAL.md, "The emulator"): the shim's
// types and functions, the runtime's collectives and schedules, its error reports, the emulated
// device's limits and buffers, and the prepass's refusals. Everything a kernel does runs through
// a test kernel of tests/metal/emu/test_kernels/emu_selftest.metal and is compared with a
// straightforward host computation (bit-exact: every value here is exact in float).
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "edgellm/kernels/quants.hpp"
#include "emu_device.hpp"
#include "error.hpp"
#include "metal_test_util.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define EMU_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_TEST_ASAN 1
#endif
#endif
#if defined(EMU_TEST_ASAN)
#include <sanitizer/asan_interface.h>
#endif

using namespace edgellm;
using namespace edgellm::test::metal;
namespace emu = edgellm::metal_emu;

namespace {

struct EmuTestArgs {  // emu_selftest.metal's
  uint32_t n = 0, mode = 0, a = 0, b = 0;
};

std::unique_ptr<emu::EmuDevice> emu_device(emu::Schedule s = emu::Schedule::forward, uint32_t simd_width = 32) {
  emu::Options o;
  o.schedule = s;
  o.seed = 7;
  o.simd_width = simd_width;
  return std::make_unique<emu::EmuDevice>(o);
}

DispatchDesc desc(const char* kernel, const EmuTestArgs& args, std::initializer_list<BufView> bufs, Size3 grid,
                  Size3 tg, uint32_t tg_mem = 0) {
  DispatchDesc d;
  d.kernel = kernel;
  d.args = &args;
  d.args_bytes = sizeof(args);
  for (BufView b : bufs) d.buffers[d.n_buffers++] = b;
  d.grid = grid;
  d.tg = tg;
  d.tg_mem_bytes = tg_mem;
  return d;
}

void run(Device& dev, const DispatchDesc& d) {
  dev.encode(d);
  dev.commit_and_wait();
}

// The message of the edgellm::Error(InvalidArgument) that f throws ("" and a failed check if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::InvalidArgument);
    return e.what();
  }
  FAIL_CHECK("no edgellm::Error thrown");
  return "";
}

// "emu_selftest.metal:L" for the line of emu_selftest.metal marked `// @name`.
std::string marked(const std::string& name) {
  std::ifstream in(std::string(EDGELLM_SOURCE_DIR) + "/tests/metal/emu/test_kernels/emu_selftest.metal");
  REQUIRE(in);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n)
    if (line.find("// @" + name) != std::string::npos &&
        (line.size() == line.find("// @" + name) + 4 + name.size()))
      return "emu_selftest.metal:" + std::to_string(n);
  FAIL("no line marked @" << name);
  return "";
}

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

}  // namespace

// ---- the shim: scalars --------------------------------------------------------------------------------

TEST_CASE("emu: half and bfloat conversions are the CPU's, bit for bit", "[metal][emu]") {
  auto dev = emu_device();
  // Edge values (ties, overflow to Inf, subnormals, the underflow boundary, signed zeros, NaN,
  // Inf) and random bit patterns of every magnitude.
  std::vector<float> x = {0.0f,           -0.0f,          1.0f,           -1.0f,        65504.0f,   65519.99f,
                          65520.0f,       -65520.0f,      65536.0f,       1e10f,        -1e30f,     0x1p-14f,
                          0x1p-24f,       0x1p-25f,       0x1.0002p-25f,  0x1.8p-24f,   0x1.4p-24f, 0x1.ffcp-15f,
                          1.0f + 0x1p-11f, 1.0f + 0x3p-11f, 1.0f + 0x1p-12f, 0x1p-126f, 1e-40f,     -1e-45f,
                          INFINITY,       -INFINITY,      from_bits(0x7fc00000), from_bits(0xffc00000), 0.1f, 3.14159f};
  std::mt19937 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    float f = from_bits(rng());
    if (i % 2) f = std::ldexp(float(rng() % 100000) / 1000.0f - 50.0f, int(rng() % 50) - 35);  // half's range
    x.push_back(f);
  }
  const uint32_t n = uint32_t(x.size());
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = uint16_t(i);
  BufView bx = upload(*dev, x), bh = upload(*dev, all);
  BufView bout = zeros<uint16_t>(*dev, 65536), bfo = zeros<float>(*dev, 65536);
  auto convert = [&](uint32_t mode, uint32_t count) {
    EmuTestArgs a;
    a.n = count;
    a.mode = mode;
    run(*dev, desc("emu_test_convert", a, {bx, bh, bout, bfo}, {(count + 255) / 256, 1, 1}, {256, 1, 1}));
  };

  SECTION("float -> half rounds to nearest even, overflows to Inf, keeps subnormals") {
    convert(0, n);
    auto out = download<uint16_t>(*dev, bout, n);
    for (uint32_t i = 0; i < n; ++i) {
      INFO("x = " << x[i] << " (bits 0x" << std::hex << bits(x[i]) << ")");
      const uint16_t want = kernels::fp32_to_fp16(x[i]);
      if (std::isnan(x[i])) {
        // A NaN stays a NaN of the same sign; the canonical quiet NaN is exactly the CPU's.
        CHECK((out[i] & 0x7C00) == 0x7C00);
        CHECK((out[i] & 0x3FF) != 0);
        CHECK((out[i] & 0x8000) == (want & 0x8000));
        if ((bits(x[i]) & 0x7FFFFFFF) == 0x7fc00000) CHECK(out[i] == want);
      } else {
        REQUIRE(out[i] == want);
      }
    }
  }
  SECTION("half -> float is exact for all 65536 halves") {
    convert(1, 65536);
    auto fo = download<float>(*dev, bfo, 65536);
    for (uint32_t h = 0; h < 65536; ++h) {
      INFO("half bits 0x" << std::hex << h);
      const float want = kernels::fp16_to_fp32(uint16_t(h));
      if (std::isnan(want)) {
        CHECK(std::isnan(fo[h]));
        CHECK(std::signbit(fo[h]) == std::signbit(want));
      } else {
        REQUIRE(bits(fo[h]) == bits(want));
      }
    }
  }
  SECTION("float -> bfloat rounds to nearest even, NaN quiet, as the CPU's") {
    convert(2, n);
    auto out = download<uint16_t>(*dev, bout, n);
    for (uint32_t i = 0; i < n; ++i) {
      INFO("x bits 0x" << std::hex << bits(x[i]));
      REQUIRE(out[i] == kernels::fp32_to_bf16(x[i]));
    }
  }
  SECTION("bfloat -> float is exact for all 65536 bfloats") {
    convert(3, 65536);
    auto fo = download<float>(*dev, bfo, 65536);
    for (uint32_t h = 0; h < 65536; ++h) {
      INFO("bfloat bits 0x" << std::hex << h);
      REQUIRE(bits(fo[h]) == bits(kernels::bf16_to_fp32(uint16_t(h))));
    }
  }
  SECTION("half + half and half * half round once, to the nearest half") {
    // Random finite halves (as their float values): the exact float sum / product rounded by
    // the CPU's conversion is the correctly rounded half result.
    std::vector<float> hx(4097);
    for (float& v : hx) {
      uint16_t hb;
      do hb = uint16_t(rng());
      while ((hb & 0x7C00) == 0x7C00);
      v = kernels::fp16_to_fp32(hb);
    }
    BufView bhx = upload(*dev, hx);
    for (uint32_t mode : {4u, 5u}) {
      EmuTestArgs a;
      a.n = 4096;
      a.mode = mode;
      run(*dev, desc("emu_test_convert", a, {bhx, bh, bout, bfo}, {16, 1, 1}, {256, 1, 1}));
      auto out = download<uint16_t>(*dev, bout, 4096);
      for (uint32_t i = 0; i < 4096; ++i) {
        const float exact = mode == 4 ? hx[i] + hx[i + 1] : hx[i] * hx[i + 1];
        INFO((mode == 4 ? "sum" : "product") << " of " << hx[i] << " and " << hx[i + 1]);
        REQUIRE(out[i] == kernels::fp32_to_fp16(exact));
      }
    }
  }
}

// ---- the shim: vectors, math, matrices, as_type ----------------------------------------------------------

TEST_CASE("emu: vectors convert values, swizzle, compute component-wise; as_type casts bits", "[metal][emu]") {
  auto dev = emu_device();
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  BufView bx = upload(*dev, x), by = zeros<float>(*dev, 128), bu = zeros<uint32_t>(*dev, 8);
  run(*dev, desc("emu_test_vectors", EmuTestArgs{}, {bx, by, bu}, {1, 1, 1}, {32, 1, 1}));
  const std::vector<float> want = {
      1, 2, 7, 8,                    // float4(a.xy, b.zw)
      4, 3, 2, 1,                    // a.wzyx
      5, 2, 3,                       // float3(b.x, a.yz)
      8, 7,                          // pa->zx + a.yy: (7 + 2, 5 + 2)... see below
      1, 10, 3, 5,                   // .y and .w written
      3.5f, 6, 8.5f, 11,             // 2a + b/2 - 1
      5, 6, 3, 4,                    // select(a, b, a < 2.5)
      0.5f, 1, 1.5f, 2,              // float4(half4(a / 2))
      -3, 7, 100000, 0,              // float4(int4)
      2, -2, 0, 9,                   // int4(float4) truncates
      9, 10.5f, 12, 13.5f,           // max(a, 2.5) + min(b, 6) + clamp(a, 1.5, 3.5)
      1, 2, 3, 4,                    // sqrt(a * a)
      70, 5.25f, 2,                  // dot, fma, mix
      5, 8, 13, 4,                   // float4x4 * float4
      3,                             // half2x2 column 1, row 0
  };
  std::vector<float> w = want;
  w[11] = 7 + 2;  // pa->zx + a.yy with pa = &b: (b.z + a.y, b.x + a.y)
  w[12] = 5 + 2;
  auto y = download<float>(*dev, by, w.size() + 1);
  for (size_t i = 0; i < w.size(); ++i) {
    INFO("value " << i);
    CHECK(y[i] == w[i]);
  }
  CHECK(y[w.size()] == float(w.size()));  // the kernel wrote exactly this many values before
  auto u = download<uint32_t>(*dev, bu, 6);
  CHECK(u[0] == bits(2.0f));
  CHECK(u[1] == 0xC0003C00u);  // half2(1, -2): x in the low half
  CHECK(u[2] == bits(1.0f));
  CHECK(u[3] == 0x80000000u);
  CHECK(u[4] == 12u + 1600u + 80000u);  // sizeof(packed_float3), sizeof(float3), sizeof(half4)
  CHECK(u[5] == 8u + 3100u + 30000u);   // popcount, clz, ctz
}

// ---- the runtime: SIMD-group functions -------------------------------------------------------------------

TEST_CASE("emu: SIMD-group functions against the host", "[metal][emu]") {
  for (uint32_t width : {32u, 16u}) {
    auto dev = emu_device(emu::Schedule::random, width);
    const uint32_t n = 128;  // 4 or 8 SIMD-groups, 2 threadgroups
    std::vector<float> x(n), xp(n);
    for (uint32_t i = 0; i < n; ++i) {
      x[i] = float(int((i * 37 + 11) % 23) - 9);
      xp[i] = (i % 7 == 0) ? 2.0f : (i % 5 == 0 ? -1.0f : 1.0f);  // a product that stays exact
    }
    BufView bx = upload(*dev, x), bxp = upload(*dev, xp), by = zeros<float>(*dev, n);
    for (uint32_t mode = 0; mode <= 20; ++mode) {
      for (uint32_t a : {0u, 1u, 3u, 5u}) {
        if ((mode == 6 || mode == 7) && a >= width) continue;
        const std::vector<float>& in = mode == 11 ? xp : x;
        EmuTestArgs args;
        args.mode = mode;
        args.a = a;
        run(*dev, desc("emu_test_simd", args, {mode == 11 ? bxp : bx, by}, {2, 1, 1}, {64, 1, 1}));
        auto y = download<float>(*dev, by, n);
        for (uint32_t i = 0; i < n; ++i) {
          const uint32_t g0 = i / width * width, lane = i % width;
          auto at = [&](uint32_t l) { return in[g0 + l]; };
          float want = 0.0f;
          float s = 0.0f, mx = -1e30f, mn = 1e30f, p = 1.0f;
          bool all = true, any = false;
          uint32_t band = ~0u, bor = 0, bxor = 0, ballot = 0;
          int imax = -1000;
          for (uint32_t l = 0; l < width; ++l) {
            s += at(l);
            mx = std::max(mx, at(l));
            mn = std::min(mn, at(l));
            p *= at(l);
            all = all && at(l) > float(a);
            any = any || at(l) > float(a);
            band &= uint32_t(int(at(l)));
            bor |= uint32_t(int(at(l)));
            bxor ^= uint32_t(int(at(l)));
            imax = std::max(imax, int(at(l)) - 50);
            if (at(l) > float(a)) ballot |= 1u << l;
          }
          float prefix_ex = 0.0f;
          for (uint32_t l = 0; l < lane; ++l) prefix_ex += at(l);
          switch (mode) {
            case 0: want = s; break;
            case 1: want = mx; break;
            case 2: want = mn; break;
            case 3: want = at((lane * 7 + a) % width); break;
            case 4: want = lane + a < width ? at(lane + a) : at(lane); break;
            case 5: want = lane >= a ? at(lane - a) : at(lane); break;
            case 6: want = at(lane ^ a); break;
            case 7: want = at(a); break;
            case 8: want = at(0); break;
            case 9: want = prefix_ex; break;
            case 10: want = prefix_ex + at(lane); break;
            case 11: want = p; break;
            case 12: want = all ? 1.0f : 0.0f; break;
            case 13: want = any ? 1.0f : 0.0f; break;
            case 14: want = float(band); break;
            case 15: want = float(bor); break;
            case 16: want = float(bxor); break;
            case 17: want = s + 10000.0f * (2 * s) + 100.0f * (-s) + 1000000.0f * float(width); break;
            case 18: {
              const float v = at((lane + 1) % width);
              want = v - 1000.0f * (-v);
              break;
            }
            case 19: want = float(imax); break;
            case 20: want = float(ballot & 0xFFFFu); break;
          }
          INFO("SIMD width " << width << ", mode " << mode << ", a " << a << ", thread " << i);
          REQUIRE(y[i] == want);
        }
      }
    }
  }
}

// ---- the runtime: simdgroup matrices ----------------------------------------------------------------------

TEST_CASE("emu: simdgroup matrix load, store, multiply(-accumulate) against a host 8x8 product", "[metal][emu]") {
  auto dev = emu_device(emu::Schedule::reverse);
  const uint32_t stride = 11;
  std::vector<float> a_src(12 * stride), b_src(8 * 12), c_src(64);
  std::vector<uint16_t> ah(12 * stride), bh(8 * 12);
  for (size_t i = 0; i < a_src.size(); ++i) {
    a_src[i] = float(int(i * 7 % 13) - 6) * 0.5f;
    ah[i] = kernels::fp32_to_fp16(a_src[i] + 0.25f);
  }
  for (size_t i = 0; i < b_src.size(); ++i) {
    b_src[i] = float(int(i * 5 % 11) - 5);
    bh[i] = kernels::fp32_to_fp16(b_src[i] * 0.5f);
  }
  for (size_t i = 0; i < c_src.size(); ++i) c_src[i] = float(i) - 20.0f;
  BufView ba = upload(*dev, a_src), bb = upload(*dev, b_src), bc = upload(*dev, c_src);
  BufView bah = upload(*dev, ah), bbh = upload(*dev, bh), bd = zeros<float>(*dev, 80);
  for (uint32_t mode : {0u, 1u, 2u, 3u, 4u, 5u, 8u, 9u, 11u, 12u, 16u, 17u, 19u, 24u, 32u, 33u, 40u, 58u}) {
    for (uint32_t org : {0u, 5u, 14u}) {
      std::vector<float> zero(80, 0.0f);
      std::memcpy(dev->contents(bd.buf), zero.data(), 80 * sizeof(float));
      EmuTestArgs args;
      args.mode = mode;
      args.a = stride;
      args.b = org;
      run(*dev, desc("emu_test_matrix", args, {ba, bb, bc, bd, bah, bbh}, {1, 1, 1}, {32, 1, 1}, 576));
      auto d = download<float>(*dev, bd, 80);
      const bool half_ab = mode & 8;
      const uint32_t ox = org % 4, oy = org / 4 % 4;
      auto A = [&](int i, int j) {
        const int r = (mode & 1) ? j : i, c = (mode & 1) ? i : j;
        const size_t at = (oy + r) * stride + ox + c;
        return half_ab ? kernels::fp16_to_fp32(ah[at]) : a_src[at];
      };
      auto B = [&](int i, int j) {
        const int r = (mode & 2) ? j : i, c = (mode & 2) ? i : j;
        return half_ab ? kernels::fp16_to_fp32(bh[r * 12 + c]) : b_src[r * 12 + c];
      };
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j) {
          float s = 0.0f;
          for (int k = 0; k < 8; ++k) s += A(i, k) * B(k, j);
          if (!(mode & 32)) s += (mode & 4) ? 0.5f : c_src[i * 8 + j];
          const int at = (mode & 16) ? j * 10 + i : i * 10 + j;
          INFO("mode " << mode << ", origin " << ox << "," << oy << ", D(" << i << "," << j << ")");
          REQUIRE(d[at] == s);
        }
      for (int i = 0; i < 8; ++i)
        for (int j = 8; j < 10; ++j) CHECK(d[i * 10 + j] == 0.0f);  // outside the 8x8 block: untouched
    }
  }
}

// ---- the runtime: schedules and threadgroup memory ------------------------------------------------------

TEST_CASE("emu: a missing barrier gives wrong results under some schedule, the barrier right ones under all",
          "[metal][emu]") {
  const uint32_t tg = 256, groups = 3, n = tg * groups;
  std::vector<float> x(n);
  for (uint32_t i = 0; i < n; ++i) x[i] = float(i) + 0.5f;
  int wrong_without = 0;
  for (auto& td : test_devices()) {
    INFO(td.label);
    Device& dev = *td.dev;
    BufView bx = upload(dev, x), by = zeros<float>(dev, n);
    for (uint32_t mode : {0u, 1u}) {
      EmuTestArgs a;
      a.mode = mode;
      run(dev, desc("emu_test_tg_reverse", a, {bx, by}, {groups, 1, 1}, {tg, 1, 1}, tg * 4));
      auto y = download<float>(dev, by, n);
      int bad = 0, nan = 0;
      for (uint32_t i = 0; i < n; ++i) {
        const uint32_t g = i / tg, t = i % tg;
        bad += y[i] != x[g * tg + tg - 1 - t];
        nan += std::isnan(y[i]);
      }
      if (mode == 0) CHECK(bad == 0);
      if (mode == 1) {
        CHECK(bad == nan);  // every wrong value is the NaN threadgroup memory starts with
        wrong_without += bad > 0;
      }
    }
  }
  CHECK(wrong_without >= 1);
}

TEST_CASE("emu: every position attribute of every thread", "[metal][emu]") {
  auto dev = emu_device(emu::Schedule::random);
  const Size3 grid{2, 3, 2}, tg{8, 4, 2};
  const uint32_t gx = grid.x * tg.x, gy = grid.y * tg.y, gz = grid.z * tg.z;
  BufView out = zeros<uint32_t>(*dev, 16 * gx * gy * gz);
  run(*dev, desc("emu_test_positions", EmuTestArgs{}, {out}, grid, tg));
  auto o = download<uint32_t>(*dev, out, 16 * gx * gy * gz);
  for (uint32_t z = 0; z < gz; ++z)
    for (uint32_t y = 0; y < gy; ++y)
      for (uint32_t x = 0; x < gx; ++x) {
        const uint32_t* v = &o[16 * (x + gx * (y + gy * z))];
        const uint32_t lx = x % tg.x, ly = y % tg.y, lz = z % tg.z;
        const uint32_t lin = lx + tg.x * (ly + tg.y * lz);
        INFO("thread " << x << "," << y << "," << z);
        const std::vector<uint32_t> got(v, v + 16);
        const std::vector<uint32_t> want = {x, y, z, lx, ly, lz, x / tg.x, y / tg.y, z / tg.z, lin, lin % 32,
                                            lin / 32, 32, 64 / 32, tg.x * 10000 + tg.y * 100 + tg.z + 1000000 * grid.x,
                                            1};
        REQUIRE(got == want);
      }
}

// ---- the runtime: errors ----------------------------------------------------------------------------------

TEST_CASE("emu: divergent SIMD-group functions, unreached barriers and deadlocks are errors naming the line",
          "[metal][emu]") {
  for (auto& td : test_devices()) {
    INFO(td.label);
    Device& dev = *td.dev;
    BufView by = zeros<float>(dev, 256);
    auto misuse = [&](uint32_t mode) {
      EmuTestArgs a;
      a.mode = mode;
      const std::string e = error_of([&] { run(dev, desc("emu_test_misuse", a, {by}, {2, 1, 1}, {64, 1, 1})); });
      CHECK(e.find("metal (emulated): kernel emu_test_misuse, threadgroup (0,0,0): ") == 0);
      return e;
    };
    std::string e = misuse(0);
    INFO(e);
    // (both SIMD-groups diverge; the reverse and random schedules may resolve group 1 first)
    CHECK((e.find("divergent simd_sum in SIMD-group 0") != std::string::npos ||
           e.find("divergent simd_sum in SIMD-group 1") != std::string::npos));
    CHECK(e.find("lanes 0-15 at simd_sum (" + marked("misuse-sum-a") + ")") != std::string::npos);
    CHECK(e.find("lanes 16-31 at simd_sum (" + marked("misuse-sum-b") + ")") != std::string::npos);

    e = misuse(1);
    INFO(e);
    CHECK(e.find("divergent simd_sum") != std::string::npos);
    CHECK(e.find("lanes 0-15 at simd_sum (" + marked("misuse-sum-half") + ")") != std::string::npos);
    CHECK(e.find("lanes 16-31 finished") != std::string::npos);

    e = misuse(2);
    INFO(e);
    CHECK(e.find("threadgroup_barrier at " + marked("misuse-barrier-if") + " not reached by every thread") !=
          std::string::npos);
    CHECK(e.find("threads 16-63 finished") != std::string::npos);

    e = misuse(3);
    INFO(e);
    CHECK(e.find("threadgroup_barrier at " + marked("misuse-barrier-return") + " not reached") != std::string::npos);
    CHECK(e.find("threads 5 finished") != std::string::npos);

    e = misuse(4);
    INFO(e);
    CHECK(e.find("deadlock") != std::string::npos);
    CHECK(e.find("at threadgroup_barrier (" + marked("misuse-deadlock-barrier") + ")") != std::string::npos);
    CHECK(e.find("at simd_max (" + marked("misuse-deadlock-simd") + ")") != std::string::npos);

    e = misuse(5);
    INFO(e);
    CHECK(e.find("simd_broadcast (" + marked("misuse-broadcast") + ")") != std::string::npos);
    CHECK(e.find("differs across lanes") != std::string::npos);

    e = misuse(6);
    INFO(e);
    CHECK(e.find("simdgroup_load (" + marked("misuse-matrix") + ")") != std::string::npos);
    CHECK(e.find("differs from lane 0's in lane 16") != std::string::npos);

    e = misuse(7);
    INFO(e);
    CHECK(e.find("threads at different threadgroup barriers: threads 0-31 at threadgroup_barrier (" +
                 marked("misuse-barrier-a") + "), threads 32-63 at threadgroup_barrier (" + marked("misuse-barrier-b") +
                 ")") != std::string::npos);

    // The failed commit dropped its dispatches; the device still runs kernels.
    std::vector<float> x = {1, 2, 3};
    BufView bx = upload(dev, x), bo = zeros<float>(dev, 3);
    EmuTestArgs a;
    a.n = 3;
    dev.encode(desc("emu_test_add_one", a, {bx, bo}, {1, 1, 1}, {32, 1, 1}));
    dev.commit_and_wait();
    CHECK(download<float>(dev, bo, 3) == std::vector<float>{2, 3, 4});
  }
}

TEST_CASE("emu: an error inside a kernel's fiber comes back as the dispatch's error", "[metal][emu]") {
  // The launcher's own check of the argument bytes (the device checks them first at encode;
  // the runtime is driven directly here).
  emu::Options o;
  emu::Runtime rt(o);
  const emu::KernelInfo* k = emu::find_kernel("emu_test_add_one");
  REQUIRE(k);
  CHECK(k->args_bytes == sizeof(EmuTestArgs));
  CHECK(k->buffer_mask == 0x6u);
  CHECK_FALSE(k->uses_tg_memory);
  std::vector<float> x(32, 1.0f), y(32, 0.0f);
  uint64_t args[1] = {32};
  emu::Launch l;
  l.kernel = k;
  l.args = args;
  l.args_bytes = 8;
  l.buffers[1] = reinterpret_cast<char*>(x.data());
  l.buffers[2] = reinterpret_cast<char*>(y.data());
  l.tg[0] = 32;
  try {
    rt.run(l);
    FAIL("no error");
  } catch (const emu::DispatchError& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("kernel emu_test_add_one, threadgroup (0,0,0): thread 0: the kernel binds "
                                     "EmuTestArgs (16 bytes) at buffer(0), the dispatch set 8 argument bytes") == 0);
  }
  EmuTestArgs good;
  good.n = 32;
  l.args = &good;
  l.args_bytes = sizeof(good);
  rt.run(l);  // the runtime is usable after an error
  CHECK(y == std::vector<float>(32, 2.0f));
}

// ---- the device: limits ------------------------------------------------------------------------------------

TEST_CASE("emu: encode refuses what a GPU would not run", "[metal][emu]") {
  auto dev = emu_device();
  BufView bx = zeros<float>(*dev, 64), by = zeros<float>(*dev, 64);
  EmuTestArgs a;
  a.n = 64;
  auto refused = [&](const DispatchDesc& d, const std::string& what) {
    const std::string e = error_of([&] { dev->encode(d); });
    INFO(e);
    CHECK(e.find("metal (emulated): ") == 0);
    CHECK(e.find(what) != std::string::npos);
    CHECK(dev->pending_dispatches() == 0);
  };
  refused(desc("emu_test_tg_reverse", a, {bx, by}, {1, 1, 1}, {32, 1, 1}, 32784),
          "emu_test_tg_reverse: 32784 bytes of threadgroup memory: a multiple of 16, at most 32768");
  refused(desc("emu_test_tg_reverse", a, {bx, by}, {1, 1, 1}, {32, 1, 1}, 20), "20 bytes of threadgroup memory");
  refused(desc("emu_test_tg_reverse", a, {bx, by}, {1, 1, 1}, {32, 1, 1}, 0),
          "the kernel uses threadgroup(0), the dispatch gives it 0 bytes");
  refused(desc("emu_test_add_one", a, {bx, by}, {1, 1, 1}, {1025, 1, 1}), "1025 threads per threadgroup, more than 1024");
  refused(desc("emu_test_add_one", a, {bx, by}, {1, 1, 1}, {32, 33, 1}), "1056 threads per threadgroup");
  refused(desc("emu_test_add_one", a, {bx, by}, {1, 1, 1}, {48, 1, 1}), "not a multiple of the SIMD width 32");
  refused(desc("emu_test_add_one", a, {bx, by}, {1, 1, 1}, {0, 1, 1}), "a threadgroup of zero threads");
  refused(desc("emu_test_add_one", a, {bx, by}, {1, 0, 1}, {32, 1, 1}), "a grid with no threadgroups");
  refused(desc("no_such_kernel", a, {bx, by}, {1, 1, 1}, {32, 1, 1}), "no_such_kernel: no such kernel");
  refused(desc("emu_test_add_one", a, {bx}, {1, 1, 1}, {32, 1, 1}), "the kernel reads buffer(2)");
  refused(desc("emu_test_add_one", a, {bx, {0, 0}}, {1, 1, 1}, {32, 1, 1}), "buffer(2) is bound to no buffer");
  refused(desc("emu_test_add_one", a, {bx, {99, 0}}, {1, 1, 1}, {32, 1, 1}), "buffer(2): no buffer 99");
  refused(desc("emu_test_add_one", a, {bx, by.at(257)}, {1, 1, 1}, {32, 1, 1}),
          "buffer(2): offset 257 past the end of buffer 2 (256 bytes)");
  DispatchDesc d = desc("emu_test_add_one", a, {bx, by}, {1, 1, 1}, {32, 1, 1});
  d.args_bytes = 12;
  refused(d, "its argument struct at buffer(0) is 16 bytes, the dispatch sets 12");
  d.n_buffers = 9;
  d.args_bytes = 16;
  refused(d, "9 buffers bound");
  // The limits themselves are allowed (an offset at the very end, with nothing to write).
  dev->encode(desc("emu_test_tg_reverse", a, {bx, by}, {1, 1, 1}, {32, 1, 1}, 32768));
  EmuTestArgs none;
  dev->encode(desc("emu_test_add_one", none, {bx, by.at(256)}, {1, 1, 1}, {1024, 1, 1}));
  CHECK(dev->pending_dispatches() == 2);
  dev->commit_and_wait();
  CHECK(dev->pending_dispatches() == 0);
  // A device of SIMD width 16 takes threadgroups of 16 threads.
  auto dev16 = emu_device(emu::Schedule::forward, 16);
  CHECK(dev16->simd_width() == 16);
  BufView b16 = zeros<float>(*dev16, 64);
  dev16->encode(desc("emu_test_add_one", a, {b16, b16}, {1, 1, 1}, {16, 1, 1}));
  dev16->commit_and_wait();
}

// ---- the device: buffers -----------------------------------------------------------------------------------

#if !defined(EMU_TEST_ASAN)
namespace {

// The permissions of the mapping holding address p in /proc/self/maps ("rw-p", "---p"), "" if none.
std::string mapping_perms(const void* p) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const uintptr_t a = uintptr_t(p);
  while (std::getline(maps, line)) {
    unsigned long lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) == 3 && a >= lo && a < hi) return perms;
  }
  return "";
}

}  // namespace
#endif

TEST_CASE("emu: alloc() buffers are exact, zero-filled and guarded right after the end", "[metal][emu]") {
  auto dev = emu_device();
  for (size_t bytes : {size_t(16), size_t(4096), size_t(3 * 4096 + 48), size_t(100000)}) {
    INFO(bytes << " bytes");
    const BufferId id = dev->alloc(bytes);
    CHECK(dev->buffer_bytes(id) == bytes);
    auto* p = static_cast<unsigned char*>(dev->contents(id));
    CHECK(uintptr_t(p) % 16 == 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < bytes; ++i) nonzero += p[i] != 0;
    CHECK(nonzero == 0);
    p[bytes - 1] = 1;  // the last byte is the buffer's
#if defined(EMU_TEST_ASAN)
    CHECK(__asan_address_is_poisoned(p + bytes));  // ASan's redzone right after the end
    CHECK_FALSE(__asan_address_is_poisoned(p + bytes - 1));
#else
    CHECK(mapping_perms(p + bytes - 1).substr(0, 2) == "rw");
    CHECK(mapping_perms(p + bytes) == "---p");  // the guard page: any access past the end faults
#endif
  }
  // A size that is not a multiple of 16: a write past the end (before the guard page) is reported.
  const uint32_t n = 37;
  BufView b = zeros<float>(*dev, n);
  EmuTestArgs a;
  a.n = n;
  a.mode = 0;
  run(*dev, desc("emu_test_write_end", a, {b}, {1, 1, 1}, {32, 1, 1}));
  CHECK(download<float>(*dev, b, n)[n - 1] == 7.0f);
#if !defined(EMU_TEST_ASAN)  // under ASan the write is ASan's report (a heap-buffer-overflow)
  a.mode = 1;
  const std::string e = error_of([&] { run(*dev, desc("emu_test_write_end", a, {b}, {1, 1, 1}, {32, 1, 1})); });
  CHECK(e == "metal (emulated): kernel emu_test_write_end wrote past the end of buffer " + std::to_string(b.buf) +
                 " (148 bytes; at byte 148)");
#endif
  // wrap() buffers are the caller's memory.
  std::vector<float> host = {1, 2, 3, 4};
  const BufferId w = dev->wrap(host.data(), 16);
  CHECK(dev->contents(w) == host.data());
  CHECK(dev->buffer_bytes(w) == 16);
  CHECK(error_of([&] { dev->contents(999); }).find("no buffer 999") != std::string::npos);
}

TEST_CASE("emu: threadgroup memory starts as NaN and ends at a guard page", "[metal][emu]") {
  auto dev = emu_device();
  BufView out = zeros<uint64_t>(*dev, 3);
  for (uint32_t bytes : {16u, 4096u, 32768u}) {
    INFO(bytes << " bytes");
    run(*dev, desc("emu_test_tg_memory", EmuTestArgs{}, {out}, {1, 1, 1}, {32, 1, 1}, bytes));
    auto o = download<uint64_t>(*dev, out, 3);
    CHECK(std::isnan(from_bits(uint32_t(o[1]))));
    CHECK((o[2] & 0x7C00) == 0x7C00);  // NaN as a half too
    CHECK((o[2] & 0x3FF) != 0);
    CHECK(o[0] % 16 == 0);
#if !defined(EMU_TEST_ASAN)
    const char* end = reinterpret_cast<const char*>(uintptr_t(o[0])) + bytes;
    CHECK(mapping_perms(end - 1).substr(0, 2) == "rw");
    CHECK(mapping_perms(end) == "---p");
#endif
  }
}

TEST_CASE("emu: a buffer past 4 GiB is cheap and reachable through 64-bit offsets", "[metal][emu]") {
  auto dev = emu_device();
  const size_t bytes = (size_t(5) << 30) + 12;  // touched only where written
  const BufferId id = dev->alloc(bytes);
  auto* base = static_cast<float*>(dev->contents(id));
  // A BufView offset past 2^32 ...
  const uint64_t off = (uint64_t(1) << 32) + 4096;
  std::vector<float> x(32, 1.5f);
  BufView bx = upload(*dev, x);
  EmuTestArgs a;
  a.n = 32;
  run(*dev, desc("emu_test_add_one", a, {bx, BufView{id, off}}, {1, 1, 1}, {32, 1, 1}));
  for (int i = 0; i < 32; ++i) CHECK(base[off / 4 + size_t(i)] == 2.5f);
  // ... and a 64-bit element index inside a kernel, at the last float.
  const uint64_t last = bytes / 4 - 1;
  a.a = uint32_t(last >> 32);
  a.b = uint32_t(last & 0xFFFFFFFFu);
  run(*dev, desc("emu_test_store_far", a, {BufView{id, 0}}, {1, 1, 1}, {32, 1, 1}));
  CHECK(base[last] == 42.0f);
  CHECK(base[0] == 0.0f);
}

// ---- the device: schedules ---------------------------------------------------------------------------------

TEST_CASE("emu: the schedule comes from EDGELLM_METAL_EMU_SCHEDULE", "[metal][emu]") {
  CHECK(emu::options_from_schedule_text(nullptr).schedule == emu::Schedule::forward);
  CHECK(emu::options_from_schedule_text("").schedule == emu::Schedule::forward);
  CHECK(emu::options_from_schedule_text("reverse").schedule == emu::Schedule::reverse);
  const emu::Options r = emu::options_from_schedule_text("random:1234567");
  CHECK(r.schedule == emu::Schedule::random);
  CHECK(r.seed == 1234567u);
  CHECK(emu::options_from_schedule_text("random").schedule == emu::Schedule::random);
  for (const char* bad : {"Forward", "random:", "random:12x", "random:99999999999999999999999", "rev\x1b[2J"}) {
    INFO(bad);
    const std::string e = error_of([&] { emu::options_from_schedule_text(bad); });
    CHECK(e.find("EDGELLM_METAL_EMU_SCHEDULE=") == 0);
    CHECK(e.find('\x1b') == std::string::npos);  // escaped
  }
  CHECK(error_of([] { emu::options_from_schedule_text("rev\x1b[2J"); }).find("rev\\x1b[2J") != std::string::npos);

  const char* old = std::getenv("EDGELLM_METAL_EMU_SCHEDULE");
  const std::string saved = old ? old : "";
  setenv("EDGELLM_METAL_EMU_SCHEDULE", "reverse", 1);
  CHECK(make_device()->name() == "emulated Metal device (reverse schedule)");
  setenv("EDGELLM_METAL_EMU_SCHEDULE", "bogus", 1);
  CHECK(error_of([] { make_device(); }).find("'bogus'") != std::string::npos);
  unsetenv("EDGELLM_METAL_EMU_SCHEDULE");
  auto def = make_device();
  CHECK(def->name() == "emulated Metal device (forward schedule)");
  CHECK(def->simd_width() == 32);
  if (old) setenv("EDGELLM_METAL_EMU_SCHEDULE", saved.c_str(), 1);
}

// ---- the prepass -------------------------------------------------------------------------------------------

namespace {

struct PrepassResult {
  int status = -1;
  std::string output, errors;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

PrepassResult prepass(const std::string& name, const std::string& source) {
  const std::string dir = EDGELLM_TEST_TMP;
  const std::string in = dir + "/" + name + ".metal", out = dir + "/" + name + ".cpp", err = dir + "/" + name + ".err";
  {
    std::ofstream f(in);
    f << source;
  }
  std::remove(out.c_str());
  const std::string cmd = "python3 '" + std::string(EDGELLM_SOURCE_DIR) + "/tests/metal/emu/msl_prepass.py' '" + in +
                          "' '" + out + "' " + name + " 2> '" + err + "'";
  PrepassResult r;
  const int s = std::system(cmd.c_str());
  r.status = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  r.output = slurp(out);
  r.errors = slurp(err);
  return r;
}

}  // namespace

TEST_CASE("emu: the prepass rewrites swizzles and attributes, keeps lines, refuses what it cannot model",
          "[metal][emu]") {
  const std::string head = "#include <metal_stdlib>\nusing namespace metal;\n";
  SECTION("a kernel") {
    const PrepassResult r = prepass("pp_ok", head +
                                                 "// v.xy in a comment stays\n"
                                                 "kernel void k1(constant float & s [[buffer(0)]],\n"
                                                 "               device float4 * p [[buffer(2)]],\n"
                                                 "               uint3 g [[threadgroup_position_in_grid]]) {\n"
                                                 "  float2 a = p[0].xy + p->zw; float x = p[0].x; float h = 1.5h;\n"
                                                 "  float f = 1.0f; (void)a; (void)x; (void)f; (void)h; (void)s; (void)g;\n"
                                                 "}\n");
    INFO(r.errors);
    REQUIRE(r.status == 0);
    CHECK(r.output.find("// v.xy in a comment stays") != std::string::npos);
    CHECK(r.output.find("float2 a = p[0].xy() + p->zw(); float x = p[0].x; float h = ((half)(1.5f));") !=
          std::string::npos);
    CHECK(r.output.find("[[") == std::string::npos);
    CHECK(r.output.find("#line 1 ") != std::string::npos);
    CHECK(r.output.find("static void emu_launch_k1(") != std::string::npos);
    CHECK(r.output.find("t.args_ref(uint32_t(sizeof(::std::remove_reference_t<constant float &>)), \"float\")") !=
          std::string::npos);
    CHECK(r.output.find("(device float4 *)t.buffer(2)") != std::string::npos);
    CHECK(r.output.find("attr_value<uint3>(t.attr[::edgellm::metal_emu::kThreadgroupPositionInGrid])") !=
          std::string::npos);
    CHECK(r.output.find("k.buffer_mask = 0x4u;") != std::string::npos);
    // The source keeps its line numbers: the kernel's body line is line 7 of the .metal file.
    const size_t line1 = r.output.find("#line 1 ");
    const size_t body = r.output.find("float2 a = ");
    REQUIRE(body != std::string::npos);
    int lines = 0;
    for (size_t i = r.output.find('\n', line1) + 1; i < body; ++i) lines += r.output[i] == '\n';
    CHECK(lines + 1 == 7);
  }
  SECTION("refusals name the file and line") {
    struct Bad {
      const char* name;
      std::string src;
      std::string what;
    };
    const std::vector<Bad> bad = {
        {"pp_attr", head + "kernel void k(device float * p [[buffer(1)]],\n  uint i [[stage_in]]) {}\n",
         "pp_attr.metal:4: error: kernel k: unknown or unmodelled attribute [[stage_in]]"},
        {"pp_template", head + "template <typename T>\nkernel void k(device T * p [[buffer(1)]]) {}\n",
         "pp_template.metal:4: error: kernel k: template kernels"},
        {"pp_form", head + "[[kernel]] void k() {}\n", "pp_form.metal:3: error: unsupported kernel form"},
        {"pp_noattr", head + "kernel void k(device float * p) {}\n", "pp_noattr.metal:3: error: kernel k: parameter"},
        {"pp_decl", head + "kernel void k(device float * p [[buffer(1)]]);\n",
         "pp_decl.metal:3: error: kernel k: expected its body"},
        {"pp_tgarray", head + "kernel void k(device float * p [[buffer(1)]]) {\n  threadgroup float t[32];\n}\n",
         "pp_tgarray.metal:4: error: a threadgroup variable"},
        {"pp_postype", head + "kernel void k(int i [[thread_position_in_grid]]) {}\n",
         "pp_postype.metal:3: error: kernel k: [[thread_position_in_grid]] parameter of type `int`"},
        {"pp_hostname", head + "[[host_name(\"x\")]] kernel void k() {}\n", "pp_hostname.metal:3: error: [[host_name]]"},
    };
    for (const Bad& b : bad) {
      const PrepassResult r = prepass(b.name, b.src);
      INFO(b.name << ": " << r.errors);
      CHECK(r.status == 1);
      CHECK(r.errors.find(b.what) != std::string::npos);
      CHECK(r.output.empty());
    }
  }
}
