// Element-wise and row kernels of the forward pass, written once with xsimd for every ISA.
#pragma once

#include <cstdint>

namespace edgellm::kernels {

// y = x / sqrt(mean(x^2) + eps) * weight
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps);
// x = softmax(x), numerically stable (max subtracted)
void softmax(float* x, int64_t n);
// y = silu(gate) * up, silu(g) = g / (1 + exp(-g))
void silu_mul(const float* gate, const float* up, float* y, int64_t n);
// y = a + b
void add(const float* a, const float* b, float* y, int64_t n);
// x *= s
void scale(float* x, float s, int64_t n);
// Rotary embedding in llama's "normal" mode (rotates adjacent pairs (2i, 2i+1)) of the first n_rot
// dims of each of n_heads heads of head_dim floats, at position pos.
// theta_i = pos * freq_scale * freq_base^(-2i / n_rot).
void rope_norm(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
               float freq_base, float freq_scale);

}  // namespace edgellm::kernels
