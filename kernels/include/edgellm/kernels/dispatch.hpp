// The one dispatch point: a table of kernels per instruction set, chosen once for the running CPU
// (cpuid on x86, HWCAP on ARM) or forced with EDGELLM_ISA=scalar|avx2|avx512|neon.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "edgellm/kernels/blocks.hpp"

namespace edgellm::kernels {

enum class Isa { scalar, avx2, avx512, neon };
std::string_view isa_name(Isa isa);

// Every entry is set; an ISA without its own version of a kernel uses the scalar reference.
struct KernelSet {
  Isa isa;
  std::string_view name;  // e.g. "avx512" or "neon+dotprod"

  void (*dequantize_row_q4_K)(const block_q4_K* x, float* y, int64_t k);
  void (*dequantize_row_q6_K)(const block_q6_K* x, float* y, int64_t k);
  void (*dequantize_row_q8_0)(const block_q8_0* x, float* y, int64_t k);
  void (*dequantize_row_q4_0)(const block_q4_0* x, float* y, int64_t k);
  void (*dequantize_row_f16)(const fp16_t* x, float* y, int64_t k);
  void (*dequantize_row_bf16)(const bf16_t* x, float* y, int64_t k);

  void (*quantize_row_q8_K)(const float* x, block_q8_K* y, int64_t k);
  void (*quantize_row_q8_0)(const float* x, block_q8_0* y, int64_t k);  // activations: _act_ref

  float (*vec_dot_q4_K_q8_K)(int64_t n, const block_q4_K* x, const block_q8_K* y);
  float (*vec_dot_q6_K_q8_K)(int64_t n, const block_q6_K* x, const block_q8_K* y);
  float (*vec_dot_q8_0_q8_0)(int64_t n, const block_q8_0* x, const block_q8_0* y);
  float (*vec_dot_q4_0_q8_0)(int64_t n, const block_q4_0* x, const block_q8_0* y);
  float (*vec_dot_f16_f32)(int64_t n, const fp16_t* x, const float* y);
  float (*vec_dot_bf16_f32)(int64_t n, const bf16_t* x, const float* y);
  float (*vec_dot_f32_f32)(int64_t n, const float* x, const float* y);

  // Matrix tiles, the inner kernels of matmul(): many weight rows times many activation rows,
  //   y[i * ldy + r] = dot(weight row r, activation row i)   for r < n_rows, i < n_act.
  // w: n_rows rows, w_row_bytes apart; a: n_act activation rows (Q8_K for Q4_K/Q6_K, Q8_0 for
  // Q8_0/Q4_0, f32 for F16/BF16/F32), a_row_bytes apart; n elements per row. An ISA without its
  // own tile kernel uses one built from its vec_dot.
  using MatmulTile = void (*)(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows,
                              const void* a, size_t a_row_bytes, int64_t n_act, float* y,
                              int64_t ldy);
  MatmulTile matmul_q4_K_q8_K;
  MatmulTile matmul_q6_K_q8_K;
  MatmulTile matmul_q8_0_q8_0;
  MatmulTile matmul_q4_0_q8_0;
  MatmulTile matmul_f16_f32;
  MatmulTile matmul_bf16_f32;
  MatmulTile matmul_f32_f32;

  // Products with a k-major matrix, the attention scores over the transposed key cache (see
  // matmul_kn_f16_f32_ref): no horizontal sums, each converted key element serves every query.
  void (*matmul_kn_f16_f32)(int64_t n, const fp16_t* w, int64_t ldw, int64_t n_cols, const float* x,
                            int64_t ldx, int64_t n_x, float* y, int64_t ldy);
  void (*matmul_kn_f32_f32)(int64_t n, const float* w, int64_t ldw, int64_t n_cols, const float* x,
                            int64_t ldx, int64_t n_x, float* y, int64_t ldy);

  // The two element-wise steps whose cost grows with the work (the attention softmax with the
  // context, silu_mul with the batch): x = softmax(s * x) and y = silu(gate) * up, as ops.hpp's,
  // within |y - y_ref| <= 2^-20 |y_ref| + 1e-30 of softmax_ref (after x *= s) and silu_mul_ref
  // (a ~2-ulp exp and float sums). The scalar set uses ops.hpp's portable versions.
  void (*softmax_scaled)(float* x, int64_t n, float s);
  void (*silu_mul)(const float* gate, const float* up, float* y, int64_t n);
};

// The set for this process: EDGELLM_ISA if set (falls back to the best, with a note on stderr, if
// that ISA is not available), else the best the CPU supports. Chosen once, thread-safe.
const KernelSet& active_kernels();

// The set for one ISA, or nullptr if it was not compiled in or this CPU cannot run it.
const KernelSet* kernels_for(Isa isa);

// Every ISA compiled in and runnable here, scalar first (for tests that run all paths).
std::span<const Isa> available_isas();

// The ISA an EDGELLM_ISA value names ("scalar", "avx2", "avx512", "neon"), nullopt for others.
std::optional<Isa> parse_isa(std::string_view name);

// What active_kernels() picks for an EDGELLM_ISA value (nullptr: unset): the named ISA if it is
// available, else the best available one (with *fell_back set).
Isa choose_isa(const char* env_value, bool* fell_back = nullptr);

}  // namespace edgellm::kernels
