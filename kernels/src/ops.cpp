// Element-wise kernels: see ops.hpp. The xsimd versions use the default architecture of this
// (portable) file's flags; the scalar tails and the _ref versions define the numbers.
#include "edgellm/kernels/ops.hpp"

#include "edgellm/kernels/quants.hpp"  // fp16 rounding (gelu_mul)

#include <algorithm>
#include <cmath>
#include <vector>

#include <xsimd/xsimd.hpp>

namespace edgellm::kernels {

namespace {

using batch = xsimd::batch<float>;
constexpr int64_t W = static_cast<int64_t>(batch::size);

// Swaps neighbours: (a0, a1, a2, a3, ...) -> (a1, a0, a3, a2, ...), for the rotation of pairs.
struct SwapPairs {
  static constexpr uint32_t get(uint32_t i, uint32_t) { return i ^ 1u; }
};

float silu(float g) { return g / (1.0f + std::exp(-g)); }

}  // namespace

// ---- gelu_mul ----

namespace {

float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f, kCoefA = 0.044715f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
}

// GELU of every F16 value, rounded to F16 (as ggml's table): one lookup per element instead of
// a tanh, which at prefill (n_ff values per token per layer) would cost as much as a matmul.
const fp16_t* gelu_table() {
  static const std::vector<fp16_t> table = [] {
    std::vector<fp16_t> t(65536);
    for (uint32_t i = 0; i < t.size(); ++i) t[i] = fp32_to_fp16(gelu_tanh(fp16_to_fp32(static_cast<fp16_t>(i))));
    return t;
  }();
  return table.data();
}

}  // namespace

float gelu_f16_rounded(float g) {
  if (g <= -10.0f) return 0.0f;
  if (g >= 10.0f) return g;
  return fp16_to_fp32(fp32_to_fp16(gelu_tanh(fp16_to_fp32(fp32_to_fp16(g)))));
}

void gelu_mul(const float* gate, const float* up, float* y, int64_t n) {
  const fp16_t* table = gelu_table();
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float act = g <= -10.0f ? 0.0f : g >= 10.0f ? g : fp16_to_fp32(table[fp32_to_fp16(g)]);
    y[i] = act * up[i];
  }
}

// ---- rms_norm ----

void rms_norm_ref(const float* x, const float* weight, float* y, int64_t n, float eps) {
  double sum = 0.0;  // of the float squares, as ggml sums them
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = n > 0 ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
  const float s = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * s) * weight[i];
}

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  // The sum of squares in ggml's order (one double, element by element): a partial-sum order
  // moves the scale by an ulp now and then, which moves exact halves in the next Q8_0
  // quantization (common after a Q4_0/Q8_0 embedding row) and so the logits by ~1e-2.
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = n > 0 ? static_cast<float>(sum / static_cast<double>(n)) : 0.0f;
  const float s = 1.0f / std::sqrt(mean + eps);
  const batch sb(s);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    ((batch::load_unaligned(x + i) * sb) * batch::load_unaligned(weight + i)).store_unaligned(y + i);
  }
  for (; i < n; ++i) y[i] = (x[i] * s) * weight[i];
}

// ---- softmax ----

void softmax_ref(float* x, int64_t n) {
  if (n <= 0) return;
  const float max = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

namespace {
SoftmaxStats softmax_with_stats(float* x, int64_t n) {
  if (n <= 0) return {};
  int64_t i = 0;
  batch vmax(-INFINITY);
  for (; i + W <= n; i += W) vmax = xsimd::max(vmax, batch::load_unaligned(x + i));
  alignas(64) float lanes[W];
  vmax.store_aligned(lanes);
  float max = *std::max_element(lanes, lanes + W);
  for (; i < n; ++i) max = std::max(max, x[i]);
  const batch mb(max);
  batch acc(0.0f);
  for (i = 0; i + W <= n; i += W) {
    const batch e = xsimd::exp(batch::load_unaligned(x + i) - mb);
    e.store_unaligned(x + i);
    acc += e;
  }
  double sum = xsimd::hadd(acc);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  scale(x, static_cast<float>(1.0 / sum), n);
  return {max, static_cast<float>(sum)};
}
}  // namespace

void softmax(float* x, int64_t n) { softmax_with_stats(x, n); }

SoftmaxStats softmax_scaled(float* x, int64_t n, float s) {
  scale(x, s, n);
  return softmax_with_stats(x, n);
}

// ---- silu_mul ----

void silu_mul_ref(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = silu(gate[i]) * up[i];
}

void silu_mul(const float* gate, const float* up, float* y, int64_t n) {
  const batch one(1.0f);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    const batch g = batch::load_unaligned(gate + i);
    ((g / (one + xsimd::exp(-g))) * batch::load_unaligned(up + i)).store_unaligned(y + i);
  }
  for (; i < n; ++i) y[i] = silu(gate[i]) * up[i];
}

// ---- add, scale ----

void add_ref(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void add(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    (batch::load_unaligned(a + i) + batch::load_unaligned(b + i)).store_unaligned(y + i);
  }
  for (; i < n; ++i) y[i] = a[i] + b[i];
}

void scale_ref(float* x, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void scale(float* x, float s, int64_t n) {
  const batch sb(s);
  int64_t i = 0;
  for (; i + W <= n; i += W) (batch::load_unaligned(x + i) * sb).store_unaligned(x + i);
  for (; i < n; ++i) x[i] *= s;
}

// ---- rope (NORM mode) ----

void rope_norm_cos_sin(int64_t pos, int64_t n_rot, float freq_base, float freq_scale,
                       float* cos_sin, const float* freq_factors, float attn_factor) {
  const float r = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
  float t = static_cast<float>(pos);
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    const float theta = freq_scale * (freq_factors ? t / freq_factors[i] : t);
    cos_sin[2 * i] = std::cos(theta) * attn_factor;
    cos_sin[2 * i + 1] = std::sin(theta) * attn_factor;
    t *= r;
  }
}

void rope_neox_with(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                    const float* cos_sin) {
  const int64_t n = std::max<int64_t>(0, std::min(n_rot, head_dim)) & ~int64_t{1};
  const int64_t half = n / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      const float x0 = xh[i], x1 = xh[i + half];
      xh[i] = x0 * c - x1 * s;
      xh[i + half] = x0 * s + x1 * c;
    }
  }
}

namespace {

int64_t rotated_dims(int64_t head_dim, int64_t n_rot) {
  return std::max<int64_t>(0, std::min(n_rot, head_dim)) & ~int64_t{1};
}

// Rotates one head's first n dims (n even) by the table; scalar, the definition.
void rotate_pairs_ref(float* x, int64_t n, const float* cos_sin) {
  for (int64_t i = 0; i < n; i += 2) {
    const float c = cos_sin[i], s = cos_sin[i + 1];
    const float x0 = x[i], x1 = x[i + 1];
    x[i] = x0 * c - x1 * s;
    x[i + 1] = x0 * s + x1 * c;
  }
}

// Per-thread scratch for the angle table, so rope_norm allocates only when a head grows.
std::vector<float>& rope_scratch(int64_t n) {
  thread_local std::vector<float> table;
  if (static_cast<int64_t>(table.size()) < n) table.resize(static_cast<size_t>(n));
  return table;
}

}  // namespace

void rope_norm_ref(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                   float freq_base, float freq_scale) {
  const int64_t n = rotated_dims(head_dim, n_rot);
  if (n == 0) return;
  std::vector<float> cos_sin(static_cast<size_t>(n));
  rope_norm_cos_sin(pos, n, freq_base, freq_scale, cos_sin.data());
  for (int64_t h = 0; h < n_heads; ++h) rotate_pairs_ref(x + h * head_dim, n, cos_sin.data());
}

void rope_norm_with(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                    const float* cos_sin) {
  const int64_t n = rotated_dims(head_dim, n_rot);
  // x' = x * (c0, c0, c1, c1, ...) + swap_pairs(x) * (-s0, s0, -s1, s1, ...): the same two
  // products and one sum per element as the scalar form (negation is exact).
  const auto swap = xsimd::make_batch_constant<xsimd::batch<uint32_t>, SwapPairs>();
  const batch sign = [] {
    alignas(64) float v[W];
    for (int64_t j = 0; j < W; ++j) v[j] = (j & 1) ? 1.0f : -1.0f;
    return batch::load_aligned(v);
  }();
  const auto odd = sign > batch(0.0f);
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    int64_t i = 0;
    for (; i + W <= n; i += W) {
      const batch cs = batch::load_unaligned(cos_sin + i);  // (c0, s0, c1, s1, ...)
      const batch swapped = xsimd::swizzle(cs, swap);        // (s0, c0, s1, c1, ...)
      const batch c = xsimd::select(odd, swapped, cs);
      const batch s = xsimd::select(odd, cs, swapped) * sign;
      const batch v = batch::load_unaligned(xh + i);
      (v * c + xsimd::swizzle(v, swap) * s).store_unaligned(xh + i);
    }
    rotate_pairs_ref(xh + i, n - i, cos_sin + i);
  }
}

void rope_norm(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
               float freq_base, float freq_scale) {
  const int64_t n = rotated_dims(head_dim, n_rot);
  if (n == 0) return;
  std::vector<float>& cos_sin = rope_scratch(n);
  rope_norm_cos_sin(pos, n, freq_base, freq_scale, cos_sin.data());
  rope_norm_with(x, n_heads, head_dim, n, cos_sin.data());
}

}  // namespace edgellm::kernels
