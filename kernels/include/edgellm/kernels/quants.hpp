// Scalar reference kernels: the definition of every block format's numbers. Each optimized kernel
// (AVX2, AVX-512, NEON, Metal) is tested against these. k (or n) is the element count and must be
// a multiple of the format's block size.
#pragma once

#include <cstdint>

#include "edgellm/kernels/blocks.hpp"

namespace edgellm::kernels {

// ---- scalar conversions (bit-exact with ggml's) ----
float fp16_to_fp32(fp16_t h);
fp16_t fp32_to_fp16(float f);  // round to nearest even
float bf16_to_fp32(bf16_t h);
bf16_t fp32_to_bf16(float f);  // round to nearest even, NaN kept quiet

// ---- quantize: f32 -> blocks ----
void quantize_row_q4_K_ref(const float* x, block_q4_K* y, int64_t k);
void quantize_row_q6_K_ref(const float* x, block_q6_K* y, int64_t k);
void quantize_row_q8_K_ref(const float* x, block_q8_K* y, int64_t k);
void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t k);
void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t k);
void quantize_row_f16_ref(const float* x, fp16_t* y, int64_t k);
void quantize_row_bf16_ref(const float* x, bf16_t* y, int64_t k);

// ---- dequantize: blocks -> f32 ----
void dequantize_row_q4_K_ref(const block_q4_K* x, float* y, int64_t k);
void dequantize_row_q6_K_ref(const block_q6_K* x, float* y, int64_t k);
void dequantize_row_q8_K_ref(const block_q8_K* x, float* y, int64_t k);
void dequantize_row_q8_0_ref(const block_q8_0* x, float* y, int64_t k);
void dequantize_row_q4_0_ref(const block_q4_0* x, float* y, int64_t k);
void dequantize_row_f16_ref(const fp16_t* x, float* y, int64_t k);
void dequantize_row_bf16_ref(const bf16_t* x, float* y, int64_t k);

// ---- dot products: weight row . activation row ----
float vec_dot_q4_K_q8_K_ref(int64_t n, const block_q4_K* x, const block_q8_K* y);
float vec_dot_q6_K_q8_K_ref(int64_t n, const block_q6_K* x, const block_q8_K* y);
float vec_dot_q8_0_q8_0_ref(int64_t n, const block_q8_0* x, const block_q8_0* y);
float vec_dot_q4_0_q8_0_ref(int64_t n, const block_q4_0* x, const block_q8_0* y);
float vec_dot_f16_f32_ref(int64_t n, const fp16_t* x, const float* y);
float vec_dot_bf16_f32_ref(int64_t n, const bf16_t* x, const float* y);
float vec_dot_f32_f32_ref(int64_t n, const float* x, const float* y);

}  // namespace edgellm::kernels
