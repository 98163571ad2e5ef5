// Scalar reference kernels: the definition of every block format's numbers. Each optimized kernel
// (AVX2, AVX-512, NEON, Metal) is tested against these. k (or n) is the element count and must be
// a multiple of the format's block size (a partial last block is ignored). Layouts and formulas:
// docs/FORMATS.md.
//
// Agreement with llama.cpp (tests/kernels/test_kernels_llamacpp.cpp runs its libraries live):
// - fp16/bf16 conversions, every dequantize_row_*_ref and quantize_row_q8_K_ref / q8_0_ref /
//   q4_0_ref / q4_1_ref / q5_0_ref / q5_1_ref /
//   iq4_nl_ref / iq4_nl_file_ref (against quantize_iq4_nl), and the activation quantizers q8_0_act / q8_1_act (against
//   llama.cpp's x86 CPU backend): bit-identical.
// - quantize_row_q4_K_ref / q6_K_ref / q5_K_ref / q3_K_ref / q2_K_ref / iq4_xs_ref: the same
//   weighted scale searches as llama.cpp's quantize_row_*_ref; asserted RMSE <= 1.01 x llama.cpp's
//   (measured: identical bytes on Gaussian data and on stories260K's weights; for Q5_K / Q3_K /
//   Q2_K / IQ4_XS also dequantized values bit-identical on the edge rows).
// - vec_dot_*_ref: integer block sums exact, scaling and accumulation in double, rounded once, so
//   |dot - exact dot of the dequantized rows| <= 2^-24 |exact| + 4 * 2^-24 * M with
//   M = sum_i |w_i a_i| (for Q4_K / Q5_K / Q2_K: sum_i (|w_i| + |dmin m_i|) |a_i|; for Q4_1 / Q5_1:
//   sum_i (|d q_i| + |m|) |a_i|). The Q5_1 . Q8_1 product is sum over blocks of
//   d_w d_a sum(q_w q_a) + m_w s_a: the activation block's stored s (llama.cpp's definition), not
//   d_a sum(q_a), which would differ from it by fp16 rounding.
// Non-finite input never crashes or hits undefined behaviour: Q8_K / Q8_0 / Q8_1 give NaN elements q = 0
// and a block holding an Inf d = Inf with q = 0; for the other quantizers the numbers of such a
// block are unspecified.
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
void quantize_row_q5_K_ref(const float* x, block_q5_K* y, int64_t k);
void quantize_row_q3_K_ref(const float* x, block_q3_K* y, int64_t k);
void quantize_row_q2_K_ref(const float* x, block_q2_K* y, int64_t k);
// IQ4_XS: llama.cpp's quantize_row_iq4_xs_ref (no importance weights).
void quantize_row_iq4_xs_ref(const float* x, block_iq4_xs* y, int64_t k);
void quantize_row_q8_K_ref(const float* x, block_q8_K* y, int64_t k);
void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t k);
// Q8_0 for activations (what matmul's Q8_0/Q4_0 products take): llama.cpp's CPU backend on x86
// quantizes activations this way, not with the weight quantizer above (see quants_ref.cpp).
void quantize_row_q8_0_act_ref(const float* x, block_q8_0* y, int64_t k);
void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t k);
void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t k);
// IQ4_NL: llama.cpp's quantize_row_iq4_nl_ref (no importance weights, no extra scale tries).
void quantize_row_iq4_nl_ref(const float* x, block_iq4_nl* y, int64_t k);
// IQ4_NL as llama-quantize writes it (llama.cpp's quantize_iq4_nl without importance weights: 15
// more scales tried per block, as IQ4_XS does; lower error than the _ref above). The type table's
// quantize_row_ref for IQ4_NL, so that written files equal llama.cpp's.
void quantize_row_iq4_nl_file_ref(const float* x, block_iq4_nl* y, int64_t k);
void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t k);
void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t k);
// Q8_1 for activations (what Q5_1 products take): as quantize_row_q8_0_act_ref, plus
// s = fp16(d * sum(q)) with d the unrounded amax / 127, as llama.cpp's x86 CPU backend does.
void quantize_row_q8_1_act_ref(const float* x, block_q8_1* y, int64_t k);
void quantize_row_f16_ref(const float* x, fp16_t* y, int64_t k);
void quantize_row_bf16_ref(const float* x, bf16_t* y, int64_t k);

// ---- dequantize: blocks -> f32 ----
void dequantize_row_q4_K_ref(const block_q4_K* x, float* y, int64_t k);
void dequantize_row_q6_K_ref(const block_q6_K* x, float* y, int64_t k);
void dequantize_row_q5_K_ref(const block_q5_K* x, float* y, int64_t k);
void dequantize_row_q3_K_ref(const block_q3_K* x, float* y, int64_t k);
void dequantize_row_q2_K_ref(const block_q2_K* x, float* y, int64_t k);
void dequantize_row_iq4_xs_ref(const block_iq4_xs* x, float* y, int64_t k);
void dequantize_row_q8_K_ref(const block_q8_K* x, float* y, int64_t k);
void dequantize_row_q8_0_ref(const block_q8_0* x, float* y, int64_t k);
void dequantize_row_q4_0_ref(const block_q4_0* x, float* y, int64_t k);
void dequantize_row_q4_1_ref(const block_q4_1* x, float* y, int64_t k);
void dequantize_row_iq4_nl_ref(const block_iq4_nl* x, float* y, int64_t k);
void dequantize_row_q5_0_ref(const block_q5_0* x, float* y, int64_t k);
void dequantize_row_q5_1_ref(const block_q5_1* x, float* y, int64_t k);
void dequantize_row_q8_1_ref(const block_q8_1* x, float* y, int64_t k);  // d * q (s unused)
void dequantize_row_f16_ref(const fp16_t* x, float* y, int64_t k);
void dequantize_row_bf16_ref(const bf16_t* x, float* y, int64_t k);

// ---- dot products: weight row . activation row ----
float vec_dot_q4_K_q8_K_ref(int64_t n, const block_q4_K* x, const block_q8_K* y);
float vec_dot_q6_K_q8_K_ref(int64_t n, const block_q6_K* x, const block_q8_K* y);
float vec_dot_q5_K_q8_K_ref(int64_t n, const block_q5_K* x, const block_q8_K* y);
float vec_dot_q3_K_q8_K_ref(int64_t n, const block_q3_K* x, const block_q8_K* y);
float vec_dot_q2_K_q8_K_ref(int64_t n, const block_q2_K* x, const block_q8_K* y);
float vec_dot_iq4_xs_q8_K_ref(int64_t n, const block_iq4_xs* x, const block_q8_K* y);
float vec_dot_q8_0_q8_0_ref(int64_t n, const block_q8_0* x, const block_q8_0* y);
float vec_dot_q4_0_q8_0_ref(int64_t n, const block_q4_0* x, const block_q8_0* y);
float vec_dot_q4_1_q8_1_ref(int64_t n, const block_q4_1* x, const block_q8_1* y);
float vec_dot_iq4_nl_q8_0_ref(int64_t n, const block_iq4_nl* x, const block_q8_0* y);
float vec_dot_q5_0_q8_0_ref(int64_t n, const block_q5_0* x, const block_q8_0* y);
float vec_dot_q5_1_q8_1_ref(int64_t n, const block_q5_1* x, const block_q8_1* y);
float vec_dot_f16_f32_ref(int64_t n, const fp16_t* x, const float* y);
float vec_dot_bf16_f32_ref(int64_t n, const bf16_t* x, const float* y);
float vec_dot_f32_f32_ref(int64_t n, const float* x, const float* y);

// ---- products with a k-major matrix (attention scores over the transposed key cache) ----
//   y[i * ldy + j] = sum_{k < n} x[i * ldx + k] * w[k * ldw + j]   for j < n_cols, i < n_x
// (w: n rows of at least n_cols elements, ldw elements apart).
void matmul_kn_f16_f32_ref(int64_t n, const fp16_t* w, int64_t ldw, int64_t n_cols, const float* x,
                           int64_t ldx, int64_t n_x, float* y, int64_t ldy);
void matmul_kn_f32_f32_ref(int64_t n, const float* w, int64_t ldw, int64_t n_cols, const float* x,
                           int64_t ldx, int64_t n_x, float* y, int64_t ldy);

}  // namespace edgellm::kernels
