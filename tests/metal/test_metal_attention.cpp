// The KV cache and attention kernels (shaders/attention.metal, attention.cpp) on every test device.
//
// kv_store: the cache bytes after the step equal the bytes the CPU backend's kv_store writes
// (engine/src/backend_cpu.cpp: K^T blocks through KvLayout::k_index, fp32_to_fp16 rounding), f16
// specials included (ties, subnormals, overflow to Inf, NaN).
//
// attention: against softmax(q . K * scale) . V computed in double over the same (f16-rounded)
// cache. The bound, per output element d of row t, head h (eps = 2^-24, n = visible positions,
// nb = their 32-position blocks, Vmax = max |v[i][d]| over them):
//   the float scores are off by at most D_s = (head_dim + 1) eps scale max_i sum_d |q_d k_id|
//   (a sequential dot product), each weight exp(s_i - m) by a factor within exp(D_s) and the exp
//   and rescaling roundings (<= 4 ulp each, at most nb + 2 of them): relative D = expm1(D_s) +
//   (10 nb + 24) eps; a weighted mean whose weights move by a relative D moves by <= 4 D / (1 - D)
//   Vmax; the sums of the weights and of weight * v add (n + nb + 100) eps Vmax. So
//   |out - ref| <= Vmax (4 D / (1 - D) + (n + nb + 100) eps).
// The inputs keep D_s small or zero: Gaussian q, k, or integer q, k in [-300, 300] whose dot
// products (~6e6, past half's range) are exact in float.
//
// Cache rows past the filled positions hold NaN, so a kernel that reads a masked position (or
// multiplies one by a zero weight) fails. Every output row carries sentinels past its width.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "edgellm/kernels/quants.hpp"
#include "edgellm/rng.hpp"
#include "error.hpp"
#include "kv_cache.hpp"
#include "metal_test_util.hpp"

namespace edgellm::engine::metal {
// Test hooks of attention.cpp: one path on its own, and decode's split count.
void encode_attention_decode(Device& dev, const KvView& kv, int n_head, BufView q, int ldq, BufView out, int ldo,
                             int n_tok, int pos0, BufView scratch, int n_splits);
void encode_attention_prefill(Device& dev, const KvView& kv, int n_head, BufView q, int ldq, BufView out, int ldo,
                              int n_tok, int pos0);
int attention_decode_splits(int n_pos);
}  // namespace edgellm::engine::metal

namespace {

using namespace edgellm::test::metal;
namespace kn = edgellm::kernels;
using edgellm::Error;
using edgellm::engine::KvLayout;
using edgellm::engine::KvType;
using kn::Rng;

constexpr float kSentinel = -1234.5f;
constexpr int kLayer = 1;  // the cache has 2 layers; the tests use the second (nonzero offsets)

// A host image of the whole cache, filled with NaN (the positions no step has written).
std::vector<uint8_t> nan_cache(const KvLayout& layout) {
  std::vector<uint8_t> img(layout.bytes());
  if (layout.type == KvType::F16) {
    const kn::fp16_t nan = 0x7E00;
    for (size_t i = 0; i < img.size(); i += 2) std::memcpy(&img[i], &nan, 2);
  } else {
    const float nan = std::nanf("");
    for (size_t i = 0; i < img.size(); i += 4) std::memcpy(&img[i], &nan, 4);
  }
  return img;
}

// CpuBackend::kv_store's writes, on a host image: rows t < n of k and v (n_head_kv heads each, ld
// floats apart) at positions pos0 + t.
void cpu_kv_store(std::vector<uint8_t>& img, const KvLayout& L, int layer, const float* k, int ldk, const float* v,
                  int ldv, int n, int pos0) {
  const int hd = L.head_dim;
  for (int i = 0; i < n; ++i) {
    const int pos = pos0 + i;
    for (int h = 0; h < L.n_head_kv; ++h) {
      const float* kh = k + size_t(i) * size_t(ldk) + size_t(h) * size_t(hd);
      const float* vh = v + size_t(i) * size_t(ldv) + size_t(h) * size_t(hd);
      uint8_t* vd = img.data() + L.v_offset(layer, h) + size_t(pos) * size_t(hd) * L.elem_bytes();
      const size_t k0 = KvLayout::k_index(pos, 0, hd);
      if (L.type == KvType::F32) {
        auto* kd = reinterpret_cast<float*>(img.data() + L.k_offset(layer, h)) + k0;
        for (int d = 0; d < hd; ++d) kd[size_t(d) * KvLayout::kKeyBlock] = kh[d];
        std::memcpy(vd, vh, size_t(hd) * sizeof(float));
      } else {
        auto* kd = reinterpret_cast<kn::fp16_t*>(img.data() + L.k_offset(layer, h)) + k0;
        for (int d = 0; d < hd; ++d) kd[size_t(d) * KvLayout::kKeyBlock] = kn::fp32_to_fp16(kh[d]);
        kn::quantize_row_f16_ref(vh, reinterpret_cast<kn::fp16_t*>(vd), hd);
      }
    }
  }
}

double cache_elem(const std::vector<uint8_t>& img, const KvLayout& L, size_t byte_offset, size_t index) {
  if (L.type == KvType::F32) {
    float f;
    std::memcpy(&f, img.data() + byte_offset + index * 4, 4);
    return f;
  }
  kn::fp16_t h;
  std::memcpy(&h, img.data() + byte_offset + index * 2, 2);
  return kn::fp16_to_fp32(h);
}

KvView kv_view(const KvLayout& L, BufferId buf) {
  KvView kv;
  kv.k0 = {buf, L.k_offset(kLayer, 0)};
  kv.v0 = {buf, L.v_offset(kLayer, 0)};
  kv.head_elems = L.head_bytes() / L.elem_bytes();
  kv.f16 = L.type == KvType::F16;
  kv.n_head_kv = L.n_head_kv;
  kv.head_dim = L.head_dim;
  kv.n_ctx = L.n_ctx;
  return kv;
}

enum class Path { automatic, decode, prefill };

struct Case {
  int n_head_kv, group, head_dim, n_ctx;
  KvType type;
  int pos0, n_tok;
  Path path = Path::automatic;
  int n_splits = 0;           // Path::decode
  bool integer_qk = false;    // q, k integers in [-300, 300] (scores ~ 6e6)
};

std::string describe(const Case& c) {
  return std::to_string(c.n_head_kv) + " KV heads x group " + std::to_string(c.group) + ", head_dim " +
         std::to_string(c.head_dim) + ", n_ctx " + std::to_string(c.n_ctx) + (c.type == KvType::F16 ? ", f16" : ", f32") +
         ", pos0 " + std::to_string(c.pos0) + ", n_tok " + std::to_string(c.n_tok) +
         (c.path == Path::decode     ? ", decode with " + std::to_string(c.n_splits) + " splits"
          : c.path == Path::prefill ? ", prefill"
                                     : ", automatic") +
         (c.integer_qk ? ", integer q/k up to 300" : "");
}

void run_case(const Case& c) {
  const int n_head = c.n_head_kv * c.group, hd = c.head_dim;
  const KvLayout L{2, c.n_ctx, c.n_head_kv, hd, c.type};
  const int kv_width = c.n_head_kv * hd, q_width = n_head * hd;
  const int ldk = kv_width + 1, ldv = kv_width + 2, ldq = q_width + 3, ldo = q_width + 5;
  Rng rng(0xa77e + uint64_t(c.pos0) * 131 + uint64_t(c.n_tok) * 7 + uint64_t(hd) + uint64_t(c.group) * 1000);
  auto value = [&](bool qk) {
    if (qk && c.integer_qk) return std::round((rng.uniform() * 2.0f - 1.0f) * 300.0f);
    return rng.normal();
  };
  // The context before the step (positions < pos0), then the step's rows.
  const int n_all = c.pos0 + c.n_tok;
  std::vector<float> k_all(size_t(n_all) * size_t(ldk), kSentinel), v_all(size_t(n_all) * size_t(ldv), kSentinel);
  for (int p = 0; p < n_all; ++p)
    for (int i = 0; i < kv_width; ++i) {
      k_all[size_t(p) * size_t(ldk) + size_t(i)] = value(true);
      v_all[size_t(p) * size_t(ldv) + size_t(i)] = value(false) * 2.0f;
    }
  std::vector<float> q(size_t(c.n_tok) * size_t(ldq), kSentinel);
  for (int t = 0; t < c.n_tok; ++t)
    for (int i = 0; i < q_width; ++i) q[size_t(t) * size_t(ldq) + size_t(i)] = value(true);

  std::vector<uint8_t> before = nan_cache(L);
  cpu_kv_store(before, L, kLayer, k_all.data(), ldk, v_all.data(), ldv, c.pos0, 0);
  std::vector<uint8_t> want_cache = before;
  const float* k_step = k_all.data() + size_t(c.pos0) * size_t(ldk);
  const float* v_step = v_all.data() + size_t(c.pos0) * size_t(ldv);
  cpu_kv_store(want_cache, L, kLayer, k_step, ldk, v_step, ldv, c.n_tok, c.pos0);

  // The reference over want_cache, in double.
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<double> ref(size_t(c.n_tok) * size_t(q_width)), bound(ref.size());
  for (int t = 0; t < c.n_tok; ++t) {
    const int n = c.pos0 + t + 1, nb = (n + 31) / 32;
    for (int h = 0; h < n_head; ++h) {
      const int g = h / c.group;
      const float* qh = &q[size_t(t) * size_t(ldq) + size_t(h) * size_t(hd)];
      std::vector<double> s(static_cast<size_t>(n));
      double max_abs_dot = 0, m = -1e300;
      for (int i = 0; i < n; ++i) {
        double dot = 0, abs_dot = 0;
        for (int d = 0; d < hd; ++d) {
          const double kv = cache_elem(want_cache, L, L.k_offset(kLayer, g), KvLayout::k_index(i, d, hd));
          dot += double(qh[d]) * kv;
          abs_dot += std::fabs(double(qh[d]) * kv);
        }
        s[size_t(i)] = dot * double(scale);
        max_abs_dot = std::max(max_abs_dot, abs_dot);
        m = std::max(m, s[size_t(i)]);
      }
      double l = 0;
      for (double& x : s) l += (x = std::exp(x - m));
      const double eps = 0x1p-24;
      // Integer q, k: every partial sum is an integer below 2^24, so the float dot products are
      // exact, and scale = 1/8 (head_dim 64) is too.
      if (c.integer_qk) REQUIRE((max_abs_dot < 0x1p24 && hd == 64));
      const double ds = c.integer_qk ? 0.0 : (hd + 1) * eps * double(scale) * max_abs_dot;
      const double D = std::expm1(ds) + (10.0 * nb + 24) * eps;
      REQUIRE(D < 0.01);  // else the bound says nothing
      for (int d = 0; d < hd; ++d) {
        double o = 0, vmax = 0;
        for (int i = 0; i < n; ++i) {
          const double v = cache_elem(want_cache, L, L.v_offset(kLayer, g), size_t(i) * size_t(hd) + size_t(d));
          o += s[size_t(i)] * v;
          vmax = std::max(vmax, std::fabs(v));
        }
        const size_t at = size_t(t) * size_t(q_width) + size_t(h) * size_t(hd) + size_t(d);
        ref[at] = o / l;
        bound[at] = vmax * (4 * D / (1 - D) + (n + nb + 100) * eps);
      }
    }
  }

  auto devs = test_devices();
  for (auto& td : devs) {
    Device& dev = *td.dev;
    INFO(td.label << ", " << describe(c));
    const BufferId cache = upload(dev, before).buf;
    const KvView kv = kv_view(L, cache);
    const BufView kb = upload(dev, k_step, size_t(c.n_tok) * size_t(ldk) * 4);
    const BufView vb = upload(dev, v_step, size_t(c.n_tok) * size_t(ldv) * 4);
    const BufView qb = upload(dev, q);
    const BufView ob = upload(dev, std::vector<float>(size_t(c.n_tok) * size_t(ldo), kSentinel));
    // Exactly what attention_scratch_bytes says (the emulator guards a buffer's end).
    const size_t scratch_bytes = attention_scratch_bytes(kv, n_head, c.n_tok);
    const BufView scratch = {dev.alloc(std::max<size_t>(scratch_bytes, 1)), 0};
    encode_kv_store(dev, kv, kb, ldk, vb, ldv, c.n_tok, c.pos0);
    if (c.path == Path::decode)
      encode_attention_decode(dev, kv, n_head, qb, ldq, ob, ldo, c.n_tok, c.pos0, scratch, c.n_splits);
    else if (c.path == Path::prefill)
      encode_attention_prefill(dev, kv, n_head, qb, ldq, ob, ldo, c.n_tok, c.pos0);
    else
      encode_attention(dev, kv, n_head, qb, ldq, ob, ldo, c.n_tok, c.pos0, scratch);
    dev.commit_and_wait();

    const auto got_cache = download<uint8_t>(dev, {cache, 0}, want_cache.size());
    size_t first_diff = want_cache.size();
    for (size_t i = 0; i < want_cache.size(); ++i)
      if (got_cache[i] != want_cache[i]) {
        first_diff = i;
        break;
      }
    INFO("first differing cache byte " << first_diff << " of " << want_cache.size());
    CHECK(first_diff == want_cache.size());

    const auto got = download<float>(dev, ob, size_t(c.n_tok) * size_t(ldo));
    double worst = 0, worst_vs_bound = 0;
    int bad = 0;
    for (int t = 0; t < c.n_tok; ++t) {
      for (int i = 0; i < q_width; ++i) {
        const float g = got[size_t(t) * size_t(ldo) + size_t(i)];
        const size_t at = size_t(t) * size_t(q_width) + size_t(i);
        const double err = std::fabs(double(g) - ref[at]);
        worst = std::max(worst, err);
        worst_vs_bound = std::max(worst_vs_bound, err / bound[at]);
        if (!(err <= bound[at]) && bad++ < 5)
          FAIL_CHECK("row " << t << " head " << i / hd << " dim " << i % hd << ": got " << g << ", want " << ref[at]
                            << " (bound " << bound[at] << ")");
      }
      for (int i = q_width; i < ldo; ++i)
        if (got[size_t(t) * size_t(ldo) + size_t(i)] != kSentinel && bad++ < 5)
          FAIL_CHECK("row " << t << ": padding float " << i << " was written");
    }
    INFO("worst error " << worst << ", worst error / bound " << worst_vs_bound);
    CHECK(bad == 0);
    if (&td == &devs.front())  // the measured error, once per case
      WARN(describe(c) << ": worst |out - ref| " << worst << " (" << worst_vs_bound << " of the bound)");
  }
}

}  // namespace

TEST_CASE("metal kv_store writes the CPU backend's cache bytes", "[metal][attention]") {
  // f16 specials: ties to even, the largest half and what rounds past it, subnormals, NaN.
  const float specials[] = {0.0f,      -0.0f,       1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, 65519.99f,
                            65520.0f,  -65520.0f,   1e6f,           -1e30f,              0x1p-24f, 0x1p-25f,
                            0x1.8p-25f, -0x1p-15f, 6.1e-5f,        std::nanf(""),       -std::nanf(""),
                            INFINITY,  -INFINITY,   1e-40f};
  for (KvType type : {KvType::F16, KvType::F32}) {
    const KvLayout L{2, 45, 3, 48, type};  // n_ctx not a multiple of 32
    const int n_tok = 7, pos0 = 29, width = L.n_head_kv * L.head_dim, ldk = width + 1, ldv = width;
    Rng rng(0xc0c0);
    std::vector<float> k(size_t(n_tok) * size_t(ldk)), v(size_t(n_tok) * size_t(ldv));
    for (float& x : k) x = rng.normal() * 100.0f;
    for (float& x : v) x = rng.normal();
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; ++i) {
      k[i * 3] = specials[i];
      v[i * 5] = specials[i];
    }
    std::vector<uint8_t> before = nan_cache(L), want = before;
    cpu_kv_store(want, L, kLayer, k.data(), ldk, v.data(), ldv, n_tok, pos0);
    for (auto& td : test_devices()) {
      Device& dev = *td.dev;
      INFO(td.label << (type == KvType::F16 ? ", f16" : ", f32"));
      const BufferId cache = upload(dev, before).buf;
      encode_kv_store(dev, kv_view(L, cache), upload(dev, k), ldk, upload(dev, v), ldv, n_tok, pos0);
      dev.commit_and_wait();
      const auto got = download<uint8_t>(dev, {cache, 0}, want.size());
      int bad = 0;
      for (size_t i = 0; i < want.size(); ++i)
        if (got[i] != want[i] && bad++ < 5) FAIL_CHECK("cache byte " << i << ": got " << int(got[i]) << ", want " << int(want[i]));
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("metal attention, decode (split-KV) against a double reference", "[metal][attention]") {
  const Case cases[] = {
      {1, 1, 64, 333, KvType::F16, 0, 1},                    // one position
      {2, 4, 64, 333, KvType::F16, 300, 1},                  // deep in the context, GQA 4
      {2, 8, 80, 333, KvType::F32, 300, 5},                  // GQA 8, head_dim not a multiple of 32
      {3, 1, 48, 333, KvType::F16, 17, 8},                   // rows in one block and the next
      {1, 4, 64, 100, KvType::F16, 3, 2, Path::decode, 32},  // 31 of 32 splits empty
      {1, 2, 64, 333, KvType::F16, 200, 8, Path::decode, 3}, // uneven splits, the last rows' reach
      {1, 1, 256, 64, KvType::F32, 40, 3},                   // the largest head_dim
  };
  for (const Case& c : cases) run_case(c);
  CHECK(attention_decode_splits(1) == 1);
  CHECK(attention_decode_splits(301) == 5);
  CHECK(attention_decode_splits(1 << 20) == 32);
}

TEST_CASE("metal attention, prefill against a double reference", "[metal][attention]") {
  const Case cases[] = {
      {2, 4, 64, 333, KvType::F16, 0, 9},                    // causal from position 0, GQA 4
      {1, 1, 80, 333, KvType::F16, 300, 33},                 // deep, fills the cache to n_ctx
      {1, 8, 64, 77, KvType::F32, 5, 33},                    // GQA 8: slots across rows
      {1, 2, 256, 70, KvType::F16, 3, 20},                   // 32 KiB of tiles
      {1, 2, 256, 70, KvType::F32, 30, 12},                  // f32, head_dim 256: 16-position tiles
      {2, 1, 48, 333, KvType::F16, 40, 1, Path::prefill},    // one row
      {1, 4, 64, 333, KvType::F32, 250, 8, Path::prefill},   // decode-sized steps work too
  };
  for (const Case& c : cases) run_case(c);
}

TEST_CASE("metal attention: q . k past half's range stays exact and finite", "[metal][attention]") {
  Case decode{1, 4, 64, 200, KvType::F16, 150, 2};
  decode.integer_qk = true;
  Case prefill{1, 4, 64, 200, KvType::F16, 20, 12};
  prefill.integer_qk = true;
  run_case(decode);
  run_case(prefill);
}

TEST_CASE("metal attention and kv_store refuse shapes they cannot run", "[metal][attention]") {
  auto devs = test_devices();
  Device& dev = *devs.front().dev;
  const BufView b = zeros<float>(dev, 1 << 16);
  KvView kv;
  kv.k0 = b;
  kv.v0 = b;
  kv.n_head_kv = 1;
  kv.head_dim = 320;
  kv.n_ctx = 32;
  kv.head_elems = 32 * 320;
  try {
    encode_attention(dev, kv, 1, b, 320, b, 320, 1, 0, b);
    FAIL("head_dim 320 was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Unsupported);
  }
  kv.head_dim = 64;
  kv.head_elems = 32 * 64;
  auto kind_of = [&](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return e.kind();
    }
    return Error::Kind::Cancelled;  // nothing thrown
  };
  kv.n_head_kv = 2;  // 3 query heads cannot share 2 KV heads
  CHECK(kind_of([&] { encode_attention(dev, kv, 3, b, 192, b, 192, 1, 0, b); }) == Error::Kind::InvalidArgument);
  kv.n_head_kv = 1;
  CHECK(kind_of([&] { encode_attention(dev, kv, 2, b, 128, b, 128, 2, 31, b); }) == Error::Kind::InvalidArgument);
  CHECK(kind_of([&] { encode_attention(dev, kv, 2, b, 100, b, 128, 1, 0, b); }) == Error::Kind::InvalidArgument);
  CHECK(kind_of([&] { encode_kv_store(dev, kv, b, 64, b, 64, 1, 32); }) == Error::Kind::InvalidArgument);
  kv.head_elems = 31 * 64;
  CHECK(kind_of([&] { encode_kv_store(dev, kv, b, 64, b, 64, 1, 0); }) == Error::Kind::InvalidArgument);
  kv.head_elems = 32 * 64;
  CHECK(kind_of([&] { encode_attention_decode(dev, kv, 2, b, 128, b, 128, 1, 0, b, 33); }) ==
        Error::Kind::InvalidArgument);
}
