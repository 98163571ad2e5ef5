// Element-wise and row kernels of the forward pass, written once with xsimd for every ISA (the
// baseline vector ISA of the build: SSE2 on x86-64, NEON on aarch64), each with a plain scalar
// `_ref` that defines its numbers. n is the element count; any n >= 0 works (tails are scalar).
//
// How close the xsimd versions are to the refs (checked by tests/kernels/test_kernels_ref.cpp):
//   add, scale, rope_norm, rms_norm bit-identical
//   softmax, silu_mul               |y - y_ref| <= 4e-6 |y_ref| + 1e-30 (xsimd::exp vs libm expf)
// The attention softmax and the FFN's silu_mul also have AVX2 / AVX-512 versions in the KernelSet
// (KernelSet::softmax_scaled, silu_mul; bounds in dispatch.hpp).
#pragma once

#include <cstdint>

namespace edgellm::kernels {

// y = x / sqrt(mean(x^2) + eps) * weight. The ref sums the float squares in double and then
// y = (x * scale) * weight with scale = 1 / sqrtf(float(sum / n) + eps), as ggml's rms_norm
// followed by its multiplication by the norm weight does.
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps);
void rms_norm_ref(const float* x, const float* weight, float* y, int64_t n, float eps);

// x = softmax(x), numerically stable (max subtracted; the ref sums the exponentials in double).
// -Inf entries (masked positions) give 0; a row that is all -Inf gives NaN.
void softmax(float* x, int64_t n);
void softmax_ref(float* x, int64_t n);
// What a softmax divided by: the largest input and the sum of exp(input - max). Two softmaxes of
// the parts of a row combine into the row's (flash attention over chunks of the KV cache): part c
// weighs sum_c * exp(max_c - max).
struct SoftmaxStats {
  float max = 0.0f;
  float sum = 0.0f;
};
// x = softmax(s * x) (attention: the 1/sqrt(head_dim) scale folded in); returns the stats of s * x.
SoftmaxStats softmax_scaled(float* x, int64_t n, float s);

// y = silu(gate) * up, silu(g) = g / (1 + exp(-g))
void silu_mul(const float* gate, const float* up, float* y, int64_t n);
void silu_mul_ref(const float* gate, const float* up, float* y, int64_t n);

// y = gelu(gate) * up with GELU's tanh form, 0.5 g (1 + tanh(sqrt(2/pi) g (1 + 0.044715 g^2))),
// computed as ggml's CPU backend does (its GGML_GELU_FP16 table): g <= -10 gives 0, g >= 10 gives
// g; between, g is rounded to F16 and so is the GELU, so results match llama.cpp's CPU build.
void gelu_mul(const float* gate, const float* up, float* y, int64_t n);
float gelu_f16_rounded(float g);  // the GELU factor above, for one value

// y = a + b
void add(const float* a, const float* b, float* y, int64_t n);
void add_ref(const float* a, const float* b, float* y, int64_t n);

// x *= s
void scale(float* x, float s, int64_t n);
void scale_ref(float* x, float s, int64_t n);

// Rotary embedding, angles as ggml computes them for llama's NORM mode: for pair i (dims 2i, 2i+1),
// theta_i = freq_scale * (pos * r^i) with r = powf(freq_base, -2 / n_rot), where pos * r^i is the
// float recurrence t_0 = float(pos), t_{i+1} = t_i * r (not a fresh pow per pair). Fills
// cos_sin[2i] = cosf(theta_i), cos_sin[2i + 1] = sinf(theta_i) for i < n_rot / 2. A caller that
// applies RoPE at one position many times may compute this table once. freq_factors (optional,
// n_rot / 2 values: a model's rope_freqs tensor, Llama 3.1-style long-context scaling) divides
// each pair's angle as ggml does: theta_i = freq_scale * (pos * r^i / freq_factors[i]).
// attn_factor (LongRoPE's and YaRN's mscale) multiplies every cos and sin (1: exactly as above).
// NEOX mode uses the same table: pair i is then dims (i, i + n_rot / 2).
void rope_norm_cos_sin(int64_t pos, int64_t n_rot, float freq_base, float freq_scale,
                       float* cos_sin, const float* freq_factors = nullptr, float attn_factor = 1.0f);

// Rotates adjacent pairs (2i, 2i+1) of the first n_rot dims of each of n_heads heads of head_dim
// floats (heads contiguous) by the angles above:
//   x'[2i] = x[2i] cos - x[2i+1] sin,  x'[2i+1] = x[2i] sin + x[2i+1] cos.
// Dims >= n_rot are left as they are; n_rot is capped at head_dim and rounded down to even.
void rope_norm(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
               float freq_base, float freq_scale);
void rope_norm_ref(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                   float freq_base, float freq_scale);

// The same rotation with a table made by rope_norm_cos_sin (n_rot entries), for callers that
// rotate many rows at one position.
void rope_norm_with(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                    const float* cos_sin);

// NEOX pairing (Qwen, Gemma, Phi-3): pair i of the first n_rot dims is (i, i + n_rot / 2),
// rotated by the table's angle i, as ggml's rope mode 2:
//   x'[i] = x[i] cos - x[i + h] sin,  x'[i + h] = x[i] sin + x[i + h] cos   (h = n_rot / 2).
// Scalar (the definition; RoPE is a few hundred multiplies per head, not worth an ISA version).
void rope_neox_with(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                    const float* cos_sin);

}  // namespace edgellm::kernels
