// Scalar reference kernels for the 256-element super-block formats: Q2_K, Q3_K, Q4_K, Q5_K,
// Q6_K, IQ4_XS and the Q8_K activations their dot products take. See quants.hpp and
// docs/FORMATS.md.
//
// Dequantization and Q8_K quantization keep the exact order of float operations of ggml's
// reference code (bit-exact with llama.cpp). The weight quantizers search for the scales that
// minimise a weighted error; they follow llama.cpp's published searches (a grid of candidate
// scales, each refined by weighted least squares; for Q3_K single-quant moves) and are tested to
// be at least as good.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "edgellm/kernels/quants.hpp"
#include "quants_ref_util.hpp"

namespace edgellm::kernels {

using detail::nearest_clamped;
using detail::nearest_int;

// ---- Q8_K: w = d * q, q in -127..127 ----

// d = -max / 127 with max the element of largest magnitude (so that element maps to -127 or 127).
// An all-zero block gets d = 0, one too small for 127 / max to be finite (below ~3.7e-37) d = -+0,
// both with q = 0 (ggml gives the same). Non-finite input: NaN elements are left out of max and get q = 0;
// an Inf gives d = +-Inf and q = 0 for the whole block (its dot products are NaN).
void quantize_row_q8_K_ref(const float* x, block_q8_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK_K; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    const float iscale = -127.f / max;
    if (std::isinf(iscale)) {  // |max| < 127 / FLT_MAX: d rounds to -+0, so every q is 0
      std::memset(&y[i], 0, sizeof y[i]);
      y[i].d = 1 / iscale;
      continue;
    }
    for (int j = 0; j < QK_K; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::clamp(nearest_int(iscale * x[j]), -128, 127));
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * j + l];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

void dequantize_row_q8_K_ref(const block_q8_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < QK_K; ++j) y[i * QK_K + j] = x[i].d * x[i].qs[j];
  }
}

// ---- Q4_K: w = d * sc[j] * q - dmin * m[j] ----

void dequantize_row_q4_K_ref(const block_q4_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    uint8_t q[QK_K];
    detail::unpack_q4_K(x[i], q);
    for (int j = 0; j < QK_K / 32; ++j) {
      uint8_t sc, m;
      q4_K_scale_min(x[i].scales, j, &sc, &m);
      const float dj = d * sc;
      const float mj = dmin * m;
      for (int l = 0; l < 32; ++l) y[32 * j + l] = dj * q[32 * j + l] - mj;
    }
    y += QK_K;
  }
}

namespace {

// Fits x[i] ~ scale * L[i] - min_out (L in 0..nmax, scale >= 0, min_out >= 0) minimising
// sum w[i] * (error)^2, or with kAbsError sum w[i] * |error| (Q2_K; each candidate is still fitted
// by least squares). Tries the plain min/max mapping, then nstep+1 candidate inverse scales
// (nmax + rmin + rdelta * s) / (max - min), min being the offset of the best fit so far; for each
// it rounds the quants and solves the 2x2 weighted least-squares problem for scale and offset
// (offset capped at 0). Keeps the best.
//
// NL sub-blocks at once (lane l: x + l n, w + l n, L + l n, scale_out[l], min_out[l]; n <= 32):
// each lane does exactly the steps of one sub-block in their order, so the floats are those of a
// one-at-a-time search, but the lanes are independent, which keeps NL chains of dependent adds in
// flight instead of one (the search is 2/3 of quantizing a model).
template <int NL, bool kAbsError = false>
void fit_scale_min(int n, int nmax, const float* x_in, const float* w_in, uint8_t* L_out, float* scale_out,
                   float* min_out, float rmin, float rdelta, int nstep) {
  // Element-major copies (x[i][l]), so every lane loop below reads contiguous floats.
  float x[32][NL], w[32][NL];
  float L[32][NL], trial[32][NL];  // quants as floats: the loops stay in one type
  for (int l = 0; l < NL; ++l)
    for (int i = 0; i < n; ++i) x[i][l] = x_in[l * n + i], w[i][l] = w_in[l * n + i];
  float mn[NL], mx[NL], sum_w[NL], sum_x[NL], scale[NL], best_error[NL], iscale[NL];
  float sl[NL], sl2[NL], sxl[NL], err[NL], t_scale[NL], t_min[NL];
  bool ok[NL];
  const float fmax_q = static_cast<float>(nmax);
  for (int l = 0; l < NL; ++l) mn[l] = mx[l] = x[0][l], sum_w[l] = sum_x[l] = 0;
  for (int i = 0; i < n; ++i) {
    for (int l = 0; l < NL; ++l) {
      mn[l] = std::min(mn[l], x[i][l]);
      mx[l] = std::max(mx[l], x[i][l]);
      sum_w[l] += w[i][l];
      sum_x[l] += w[i][l] * x[i][l];
    }
  }
  // range: max - min, 1 for a constant lane (max == min), which ends as all zeros below; no
  // division here is by zero.
  float range[NL];
  bool flat[NL];
  for (int l = 0; l < NL; ++l) {
    if (mn[l] > 0) mn[l] = 0;
    flat[l] = mx[l] == mn[l];
    range[l] = flat[l] ? 1.0f : mx[l] - mn[l];
    iscale[l] = nmax / range[l];
    scale[l] = 1 / iscale[l];
    best_error[l] = 0;
  }
  for (int i = 0; i < n; ++i) {
    for (int l = 0; l < NL; ++l) {
      const float q = nearest_clamped(iscale[l] * (x[i][l] - mn[l]), 0.0f, fmax_q);
      L[i][l] = q;
      const float diff = scale[l] * q + mn[l] - x[i][l];
      best_error[l] += w[i][l] * (kAbsError ? std::fabs(diff) : diff * diff);
    }
  }
  for (int s = 0; s <= nstep; ++s) {
    for (int l = 0; l < NL; ++l) {
      iscale[l] = (rmin + rdelta * s + nmax) / (flat[l] ? 1.0f : mx[l] - mn[l]);
      sl[l] = sl2[l] = sxl[l] = err[l] = 0;
    }
    for (int i = 0; i < n; ++i) {
      for (int l = 0; l < NL; ++l) {
        const float q = nearest_clamped(iscale[l] * (x[i][l] - mn[l]), 0.0f, fmax_q);
        trial[i][l] = q;
        sl[l] += w[i][l] * q;
        sl2[l] += w[i][l] * q * q;
        sxl[l] += w[i][l] * q * x[i][l];
      }
    }
    for (int l = 0; l < NL; ++l) {
      const float det = sum_w[l] * sl2[l] - sl[l] * sl[l];
      ok[l] = det > 0;  // otherwise the trial is skipped (its numbers below are unused)
      const float d = ok[l] ? det : 1.0f;
      t_scale[l] = (sum_w[l] * sxl[l] - sum_x[l] * sl[l]) / d;
      t_min[l] = (sl2[l] * sum_x[l] - sl[l] * sxl[l]) / d;
      if (t_min[l] > 0) {  // the offset may only lower values: refit the scale alone
        t_min[l] = 0;
        t_scale[l] = sxl[l] / (sl2[l] > 0 ? sl2[l] : 1.0f);  // det > 0 implies sl2 > 0
      }
    }
    for (int i = 0; i < n; ++i) {
      for (int l = 0; l < NL; ++l) {
        const float diff = t_scale[l] * trial[i][l] + t_min[l] - x[i][l];
        err[l] += w[i][l] * (kAbsError ? std::fabs(diff) : diff * diff);
      }
    }
    bool take[NL];
    for (int l = 0; l < NL; ++l) {
      take[l] = ok[l] && err[l] < best_error[l];
      if (take[l]) {
        best_error[l] = err[l];
        scale[l] = t_scale[l];
        mn[l] = t_min[l];
      }
    }
    for (int i = 0; i < n; ++i)
      for (int l = 0; l < NL; ++l)
        L[i][l] = take[l] ? trial[i][l] : L[i][l];
  }
  // A constant lane: all quants 0 (x - min is 0), no trial with det > 0, scale 0.
  for (int l = 0; l < NL; ++l) {
    min_out[l] = -mn[l];
    scale_out[l] = flat[l] ? 0.0f : scale[l];
    for (int i = 0; i < n; ++i) L_out[l * n + i] = static_cast<uint8_t>(L[i][l]);
  }
}

// The scales and quants of a Q4_K / Q5_K super-block (quants 0..nmax). Per 32-element sub-block:
// fit (scale, min) with weights sqrt(mean x^2) + |x| (large values and loud sub-blocks matter
// more; the grid rmin + rdelta s, s = 0..nstep); quantize the 8 scales and 8 mins to 6 bits
// against the largest (d = max scale / 63, dmin = max min / 63) and pack them (q4_K_scale_min's
// layout); then requantize every value with the final rounded scales.
void quantize_super_block_k4(const float* x, int nmax, float rmin, float rdelta, int nstep, uint8_t packed[12],
                             fp16_t* d_out, fp16_t* dmin_out, uint8_t L[QK_K]) {
  float scales[QK_K / 32], mins[QK_K / 32];
  float max_scale = 0, max_min = 0;
  float w[QK_K];
  for (int j = 0; j < QK_K / 32; ++j) {
    const float* xj = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xj[l] * xj[l];
    const float rms = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[32 * j + l] = rms + std::fabs(xj[l]);
  }
  fit_scale_min<QK_K / 32>(32, nmax, x, w, L, scales, mins, rmin, rdelta, nstep);
  for (int j = 0; j < QK_K / 32; ++j) {
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }

  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::memset(packed, 0, 12);
  for (int j = 0; j < QK_K / 32; ++j) {
    const uint8_t ls = static_cast<uint8_t>(std::clamp(nearest_int(inv_scale * scales[j]), 0, 63));
    const uint8_t lm = static_cast<uint8_t>(std::clamp(nearest_int(inv_min * mins[j]), 0, 63));
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
      packed[j - 4] |= (ls >> 4) << 6;
      packed[j] |= (lm >> 4) << 6;
    }
  }
  *d_out = fp32_to_fp16(max_scale / 63.f);
  *dmin_out = fp32_to_fp16(max_min / 63.f);

  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t sc, m;
    q4_K_scale_min(packed, j, &sc, &m);
    const float d = fp16_to_fp32(*d_out) * sc;
    if (d == 0.0f) continue;  // the sub-block dequantizes to -dmin * m whatever its quants
    const float dm = fp16_to_fp32(*dmin_out) * m;
    for (int l = 0; l < 32; ++l) {
      L[32 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + l] + dm) / d), 0, nmax));
    }
  }
}

}  // namespace

// quantize_super_block_k4 with 16 levels and the grid -1 + 0.1 s, s = 0..20 (llama.cpp's
// parameters). Non-finite input does not crash; the block's numbers are then unspecified.
void quantize_row_q4_K_ref(const float* x, block_q4_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    uint8_t L[QK_K];
    quantize_super_block_k4(x, 15, -1.0f, 0.1f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
    for (int g = 0; g < 4; ++g) {
      for (int l = 0; l < 32; ++l) y[i].qs[32 * g + l] = L[64 * g + l] | (L[64 * g + 32 + l] << 4);
    }
  }
}

float vec_dot_q4_K_q8_K_ref(int64_t n, const block_q4_K* x, const block_q8_K* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    uint8_t q[QK_K];
    detail::unpack_q4_K(x[i], q);
    int32_t sum_q = 0;  // sum_j sc[j] * (q . y) over sub-block j
    int32_t sum_m = 0;  // sum_j m[j] * (sum of y over sub-block j)
    for (int j = 0; j < QK_K / 32; ++j) {
      uint8_t sc, m;
      q4_K_scale_min(x[i].scales, j, &sc, &m);
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) dot += q[32 * j + l] * y[i].qs[32 * j + l];
      sum_q += sc * dot;
      sum_m += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
    }
    const double dy = y[i].d;
    sum += dy * fp16_to_fp32(x[i].d) * sum_q - dy * fp16_to_fp32(x[i].dmin) * sum_m;
  }
  return static_cast<float>(sum);
}

// ---- Q6_K: w = d * scales[j] * (q - 32) ----

void dequantize_row_q6_K_ref(const block_q6_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    uint8_t q[QK_K];
    detail::unpack_q6_K(x[i], q);
    for (int e = 0; e < QK_K; ++e) y[e] = d * x[i].scales[e / 16] * (q[e] - 32);
    y += QK_K;
  }
}

namespace {

// Fits x[i] ~ scale * (L[i] - nmax), L in 0..2 nmax - 1, minimising sum x[i]^2 * (error)^2:
// starts from the mapping that sends the largest-magnitude value to -nmax, then tries inverse
// scales (nmax + 0.1 s) / |max| for s = -9..9, each with its least-squares scale; keeps the best.
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < 1e-15f) {  // all (nearly) zero
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  // Rounds x * iscale into -nmax..nmax-1 and returns the weighted sums for the best scale.
  auto round_all = [&](float iscale, int8_t* out, float* sum_lx, float* sum_l2) {
    *sum_lx = 0;
    *sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      if (out) out[i] = static_cast<int8_t>(l + nmax);
      const float w = x[i] * x[i];
      *sum_lx += w * x[i] * l;
      *sum_l2 += w * l * l;
    }
  };
  float sum_lx, sum_l2;
  round_all(-nmax / max, L, &sum_lx, &sum_l2);
  float scale = sum_l2 ? sum_lx / sum_l2 : 0.0f;
  float best = scale * sum_lx;  // = sum_lx^2 / sum_l2, the error reduction to maximise
  for (int s = -9; s <= 9; ++s) {
    if (s == 0) continue;
    const float iscale = -(nmax + 0.1f * s) / max;
    round_all(iscale, nullptr, &sum_lx, &sum_l2);
    if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
      round_all(iscale, L, &sum_lx, &sum_l2);
      scale = sum_lx / sum_l2;
      best = scale * sum_lx;
    }
  }
  return scale;
}

}  // namespace

// Per 16-element sub-block: fit a signed scale (weights x^2); quantize the 16 scales to int8
// against the one of largest magnitude (which maps to -128, d = -max / 128); requantize every
// value with the final rounded scales. An all-zero super-block is all zeros. Non-finite input does
// not crash; the block's numbers are then unspecified.
void quantize_row_q6_K_ref(const float* x, block_q6_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      scales[j] = fit_scale_symmetric(16, 32, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    std::memset(&y[i], 0, sizeof y[i]);
    if (max_abs_scale < 1e-15f) continue;  // all zero (d = +0)

    const float iscale = -128.f / max_scale;
    y[i].d = fp32_to_fp16(1 / iscale);
    for (int j = 0; j < QK_K / 16; ++j) {
      y[i].scales[j] = static_cast<int8_t>(std::clamp(nearest_int(iscale * scales[j]), -128, 127));
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = fp16_to_fp32(y[i].d) * y[i].scales[j];
      if (d == 0.0f) continue;  // the sub-block dequantizes to 0 whatever its quants
      for (int l = 0; l < 16; ++l) {
        L[16 * j + l] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + l] / d), -32, 31) + 32);
      }
    }

    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      const int8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = (Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4);
        ql[l + 32] = (Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4);
        qh[l] = (Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                ((Lh[l + 96] >> 4) << 6);
      }
    }
  }
}

float vec_dot_q6_K_q8_K_ref(int64_t n, const block_q6_K* x, const block_q8_K* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    uint8_t q[QK_K];
    detail::unpack_q6_K(x[i], q);
    int32_t sumi = 0;  // sum_j scales[j] * ((q - 32) . y) over sub-block j
    for (int j = 0; j < QK_K / 16; ++j) {
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += (q[16 * j + l] - 32) * y[i].qs[16 * j + l];
      sumi += x[i].scales[j] * dot;
    }
    sum += static_cast<double>(y[i].d) * fp16_to_fp32(x[i].d) * sumi;
  }
  return static_cast<float>(sum);
}

// ---- Q5_K: w = d * sc[j] * q - dmin * m[j], q in 0..31 ----

void dequantize_row_q5_K_ref(const block_q5_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    uint8_t q[QK_K];
    detail::unpack_q5_K(x[i], q);
    for (int j = 0; j < QK_K / 32; ++j) {
      uint8_t sc, m;
      q4_K_scale_min(x[i].scales, j, &sc, &m);
      const float dj = d * sc;
      const float mj = dmin * m;
      for (int l = 0; l < 32; ++l) y[32 * j + l] = dj * q[32 * j + l] - mj;
    }
    y += QK_K;
  }
}

// quantize_super_block_k4 with 32 levels and the grid -0.5 + 0.1 s, s = 0..15 (llama.cpp's
// parameters). Non-finite input does not crash; the block's numbers are then unspecified.
void quantize_row_q5_K_ref(const float* x, block_q5_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    uint8_t L[QK_K];
    quantize_super_block_k4(x, 31, -0.5f, 0.1f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int e = 0; e < QK_K; ++e) y[i].qh[e % 32] |= static_cast<uint8_t>((L[e] >> 4) << (e / 32));
    for (int g = 0; g < 4; ++g) {
      for (int l = 0; l < 32; ++l) {
        y[i].qs[32 * g + l] = static_cast<uint8_t>((L[64 * g + l] & 0xF) | (L[64 * g + 32 + l] & 0xF) << 4);
      }
    }
  }
}

float vec_dot_q5_K_q8_K_ref(int64_t n, const block_q5_K* x, const block_q8_K* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    uint8_t q[QK_K];
    detail::unpack_q5_K(x[i], q);
    int32_t sum_q = 0;  // sum_j sc[j] * (q . y) over sub-block j
    int32_t sum_m = 0;  // sum_j m[j] * (sum of y over sub-block j)
    for (int j = 0; j < QK_K / 32; ++j) {
      uint8_t sc, m;
      q4_K_scale_min(x[i].scales, j, &sc, &m);
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) dot += q[32 * j + l] * y[i].qs[32 * j + l];
      sum_q += sc * dot;
      sum_m += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
    }
    const double dy = y[i].d;
    sum += dy * fp16_to_fp32(x[i].d) * sum_q - dy * fp16_to_fp32(x[i].dmin) * sum_m;
  }
  return static_cast<float>(sum);
}

// ---- Q3_K: w = d * (sc[j] - 32) * (q - 4), q in 0..7 ----

void dequantize_row_q3_K_ref(const block_q3_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    int8_t q[QK_K];
    detail::unpack_q3_K(x[i], q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dj = d * (q3_K_scale(x[i].scales, j) - 32);
      for (int l = 0; l < 16; ++l) y[16 * j + l] = dj * q[16 * j + l];
    }
    y += QK_K;
  }
}

namespace {

// Fits x[i] ~ scale * L[i], L in -4..3, minimising sum x[i]^2 * (error)^2: starts from the
// mapping that sends the largest-magnitude value to -4, then up to 5 passes that move single
// quants to where the current least-squares scale puts them, keeping each move that lowers the
// error. Returns the scale and L + 4 (0..7); an (almost) all-zero x gives scale 0 and L = 0.
float fit_scale_q3(const float* x, int8_t L[16]) {
  constexpr int n = 16, nmax = 4;
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  const float iscale = -nmax / max;
  float sum_lx = 0, sum_l2 = 0;  // sum w x l and sum w l^2 with w = x^2
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sum_lx += w * x[i] * l;
    sum_l2 += w * l * l;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float lx = sum_lx - w * x[i] * L[i];  // the sums without element i
      if (!(lx > 0)) continue;
      float l2 = sum_l2 - w * L[i] * L[i];
      const int l = std::clamp(nearest_int(x[i] * l2 / lx), -nmax, nmax - 1);
      if (l == L[i]) continue;
      lx += w * x[i] * l;
      l2 += w * l * l;
      // The error reduction is sum_lx^2 / sum_l2: take the move if it grows.
      if (l2 > 0 && lx * lx * sum_l2 > sum_lx * sum_lx * l2) {
        L[i] = static_cast<int8_t>(l);
        sum_lx = lx;
        sum_l2 = l2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return sum_l2 > 0.0f ? sum_lx / sum_l2 : 0.0f;
}

}  // namespace

// Per 16-element sub-block: fit a signed scale (fit_scale_q3); quantize the 16 scales to 6 bits
// against the one of largest magnitude (which maps to -32, d = -max / 32); requantize every value
// with the final rounded scales. An all-zero super-block has d = 0. Non-finite input does not
// crash; the block's numbers are then unspecified.
void quantize_row_q3_K_ref(const float* x, block_q3_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      scales[j] = fit_scale_q3(x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    std::memset(y[i].scales, 0, sizeof y[i].scales);
    if (max_scale != 0) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) {
        const int l = std::clamp(nearest_int(iscale * scales[j]), -32, 31) + 32;
        if (j < 8) y[i].scales[j] = static_cast<uint8_t>(l & 0xF);
        else y[i].scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        y[i].scales[8 + j % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
      }
      y[i].d = fp32_to_fp16(1 / iscale);
    } else {
      y[i].d = fp32_to_fp16(0.0f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = fp16_to_fp32(y[i].d) * (q3_K_scale(y[i].scales, j) - 32);
      if (d == 0.0f) continue;  // the sub-block dequantizes to 0 whatever its quants
      for (int l = 0; l < 16; ++l) {
        L[16 * j + l] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
      }
    }
    std::memset(y[i].hmask, 0, sizeof y[i].hmask);
    std::memset(y[i].qs, 0, sizeof y[i].qs);
    for (int e = 0; e < QK_K; ++e) {
      y[i].hmask[e % 32] |= static_cast<uint8_t>((L[e] >> 2) << (e / 32));
      y[i].qs[32 * (e / 128) + e % 32] |= static_cast<uint8_t>((L[e] & 3) << (2 * ((e % 128) / 32)));
    }
  }
}

float vec_dot_q3_K_q8_K_ref(int64_t n, const block_q3_K* x, const block_q8_K* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int8_t q[QK_K];
    detail::unpack_q3_K(x[i], q);
    int32_t sumi = 0;  // sum_j (sc[j] - 32) * ((q - 4) . y) over sub-block j
    for (int j = 0; j < QK_K / 16; ++j) {
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += q[16 * j + l] * y[i].qs[16 * j + l];
      sumi += (q3_K_scale(x[i].scales, j) - 32) * dot;
    }
    sum += static_cast<double>(y[i].d) * fp16_to_fp32(x[i].d) * sumi;
  }
  return static_cast<float>(sum);
}

// ---- Q2_K: w = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4), q in 0..3 ----

void dequantize_row_q2_K_ref(const block_q2_K* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const float dmin = fp16_to_fp32(x[i].dmin);
    uint8_t q[QK_K];
    detail::unpack_2bit_K(x[i].qs, q);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float dj = d * (x[i].scales[j] & 0xF);
      const float mj = dmin * (x[i].scales[j] >> 4);
      for (int l = 0; l < 16; ++l) y[16 * j + l] = dj * q[16 * j + l] - mj;
    }
    y += QK_K;
  }
}

// Per 16-element sub-block: fit (scale, min) with weights |x| and the absolute error (the grid
// -0.5 + 0.1 s, s = 0..15: llama.cpp's parameters); quantize the 16 scales and 16 mins to 4 bits
// against the largest (d = max scale / 15, dmin = max min / 15); requantize every value with the
// final rounded scales. Non-finite input does not crash; the block's numbers are then unspecified.
void quantize_row_q2_K_ref(const float* x, block_q2_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    uint8_t L[QK_K];
    float w[QK_K];
    float scales[QK_K / 16], mins[QK_K / 16];
    for (int e = 0; e < QK_K; ++e) w[e] = std::fabs(x[e]);
    fit_scale_min<QK_K / 16, true>(16, 3, x, w, L, scales, mins, -0.5f, 0.1f, 15);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    std::memset(y[i].scales, 0, sizeof y[i].scales);
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) {
        y[i].scales[j] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * scales[j]), 0, 15));
      }
      y[i].d = fp32_to_fp16(max_scale / 15.f);
    } else {
      y[i].d = fp32_to_fp16(0.0f);
    }
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < QK_K / 16; ++j) {
        y[i].scales[j] |= static_cast<uint8_t>(std::clamp(nearest_int(iscale * mins[j]), 0, 15) << 4);
      }
      y[i].dmin = fp32_to_fp16(max_min / 15.f);
    } else {
      y[i].dmin = fp32_to_fp16(0.0f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = fp16_to_fp32(y[i].d) * (y[i].scales[j] & 0xF);
      if (d == 0.0f) continue;  // the sub-block dequantizes to -dmin * m whatever its quants
      const float dm = fp16_to_fp32(y[i].dmin) * (y[i].scales[j] >> 4);
      for (int l = 0; l < 16; ++l) {
        L[16 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[16 * j + l] + dm) / d), 0, 3));
      }
    }
    std::memset(y[i].qs, 0, sizeof y[i].qs);
    for (int e = 0; e < QK_K; ++e) {
      y[i].qs[32 * (e / 128) + e % 32] |= static_cast<uint8_t>(L[e] << (2 * ((e % 128) / 32)));
    }
  }
}

float vec_dot_q2_K_q8_K_ref(int64_t n, const block_q2_K* x, const block_q8_K* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    uint8_t q[QK_K];
    detail::unpack_2bit_K(x[i].qs, q);
    int32_t sum_q = 0;  // sum_j sc[j] * (q . y) over sub-block j
    int32_t sum_m = 0;  // sum_j m[j] * (sum of y over sub-block j)
    for (int j = 0; j < QK_K / 16; ++j) {
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += q[16 * j + l] * y[i].qs[16 * j + l];
      sum_q += (x[i].scales[j] & 0xF) * dot;
      sum_m += (x[i].scales[j] >> 4) * y[i].bsums[j];
    }
    const double dy = y[i].d;
    sum += dy * fp16_to_fp32(x[i].d) * sum_q - dy * fp16_to_fp32(x[i].dmin) * sum_m;
  }
  return static_cast<float>(sum);
}

// ---- IQ4_XS: w = d * (ls[j] - 32) * kvalues_iq4nl[q] ----

void dequantize_row_iq4_xs_ref(const block_iq4_xs* x, float* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < QK_K / 32; ++j) {
      const float dj = d * (iq4_xs_scale(x[i], j) - 32);
      const uint8_t* qs = x[i].qs + 16 * j;
      for (int l = 0; l < 16; ++l) {
        y[32 * j + l] = dj * kvalues_iq4nl[qs[l] & 0xF];
        y[32 * j + 16 + l] = dj * kvalues_iq4nl[qs[l] >> 4];
      }
    }
    y += QK_K;
  }
}

// llama.cpp's quantize_row_iq4_xs_ref (no importance weights): per 32-element sub-block the scale
// of detail::iq4_fit_scale; the 8 scales to 6 bits against the one of largest magnitude (which
// maps to -32, d = -max / 32); every element to its nearest level at x / (d l) with the unrounded d. An
// all-zero super-block has d = -0 and every element on level 1 (the one nearest 0). Non-finite
// input does not crash; the block's numbers are then unspecified.
void quantize_row_iq4_xs_ref(const float* x, block_iq4_xs* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    float scales[QK_K / 32];
    float max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
      scales[j] = detail::iq4_fit_scale(x + 32 * j);
      if (std::fabs(scales[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    const float d = -max_scale / 32;
    y[i].d = fp32_to_fp16(d);
    y[i].scales_h = 0;
    std::memset(y[i].scales_l, 0, sizeof y[i].scales_l);
    const float id = d != 0 ? 1 / d : 0.0f;
    for (int j = 0; j < QK_K / 32; ++j) {
      const int l = std::clamp(nearest_int(id * scales[j]), -32, 31);
      const float dl = d * l;
      const float idl = dl != 0 ? 1 / dl : 0.0f;
      uint8_t L[32];
      for (int e = 0; e < 32; ++e) L[e] = static_cast<uint8_t>(detail::iq4_nl_index(idl * x[32 * j + e]));
      for (int e = 0; e < 16; ++e) y[i].qs[16 * j + e] = static_cast<uint8_t>(L[e] | L[e + 16] << 4);
      const int ls = l + 32;
      y[i].scales_l[j / 2] |= static_cast<uint8_t>((ls & 0xF) << (4 * (j % 2)));
      y[i].scales_h |= static_cast<uint16_t>((ls >> 4) << (2 * j));
    }
  }
}

float vec_dot_iq4_xs_q8_K_ref(int64_t n, const block_iq4_xs* x, const block_q8_K* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n / QK_K; ++i) {
    int32_t sumi = 0;  // sum_j (ls[j] - 32) * (levels . y) over sub-block j
    for (int j = 0; j < QK_K / 32; ++j) {
      const uint8_t* qs = x[i].qs + 16 * j;
      const int8_t* a = y[i].qs + 32 * j;
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += kvalues_iq4nl[qs[l] & 0xF] * a[l] + kvalues_iq4nl[qs[l] >> 4] * a[l + 16];
      sumi += (iq4_xs_scale(x[i], j) - 32) * dot;
    }
    sum += static_cast<double>(y[i].d) * fp16_to_fp32(x[i].d) * sumi;
  }
  return static_cast<float>(sum);
}

}  // namespace edgellm::kernels
