// The one dispatch point: a table of kernels per instruction set, chosen once for the running CPU
// (cpuid on x86, HWCAP on ARM) or forced with EDGELLM_ISA=scalar|avx2|avx512|neon.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "edgellm/dtype.hpp"
#include "edgellm/kernels/blocks.hpp"
#include "edgellm/kernels/ops.hpp"  // SoftmaxStats

namespace edgellm::kernels {

enum class Isa { scalar, avx2, avx512, neon };
std::string_view isa_name(Isa isa);

// The form of activation rows a weight type's dot product takes (ggml's vec_dot_type): the floats
// themselves, floats rounded to fp16 / bf16 precision (what llama.cpp multiplies F16 / BF16
// weights with), or Q8_0 / Q8_1 / Q8_K blocks (Q8_1: Q8_0 plus each block's d * sum(q), for the
// types with a min, Q5_1).
enum class ActForm : uint8_t { f32, f16, bf16, q8_0, q8_K, q8_1 };
inline constexpr int kActForms = 6;

// Kernel signatures over rows of one type's blocks (blocks.hpp: the layouts are the file format).
// k and n are element counts, whole blocks.
using DequantizeRow = void (*)(const void* x, float* y, int64_t k);  // blocks -> f32
using QuantizeRow = void (*)(const float* x, void* y, int64_t k);    // f32 -> blocks
using VecDot = float (*)(int64_t n, const void* w, const void* a);   // weight row . activation row
// A matrix tile, the inner kernel of matmul(): many weight rows times many activation rows,
//   y[i * ldy + r] = dot(weight row r, activation row i)   for r < n_rows, i < n_act.
// w: n_rows rows, w_row_bytes apart; a: n_act activation rows in the type's ActForm, a_row_bytes
// apart; n elements per row.
using MatmulTile = void (*)(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows,
                            const void* a, size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy);

// What one ISA computes with one weight type: one row of the type table (ggml's type_traits and
// type_traits_cpu in one). The format-level facts (name, block geometry) are DTypeInfo's.
struct TypeKernels {
  ActForm act = ActForm::f32;              // the activation form vec_dot and the tiles take
  DequantizeRow dequantize_row = nullptr;  // bit-exact with the type's _ref
  QuantizeRow quantize_row_ref = nullptr;  // weights, the reference quantizer (model writers)
  VecDot vec_dot = nullptr;                // nullptr: this engine cannot compute with the type
  MatmulTile gemv = nullptr;               // one vec_dot per (row, activation row): decode
  MatmulTile gemm = nullptr;               // optional prefill tile (unpacks a weight tile once
                                           // for many activation rows; it owns its pack policy)
  int64_t gemm_min_rows = 0;               // activation rows from which gemm beats gemv
                                           // (measured per ISA; pick_tile() reads it)
};

// The one GEMV/GEMM switch (matmul() and every other caller of a type's tiles): the prefill tile
// for n_act activation rows from the type's measured gemm_min_rows on, else the gemv tile.
inline MatmulTile pick_tile(const TypeKernels& t, int64_t n_act) {
  return t.gemm && n_act >= t.gemm_min_rows ? t.gemm : t.gemv;
}

// How activation rows are brought into one ActForm.
struct ActKernels {
  int64_t block = 1;            // elements per block
  size_t block_bytes = 4;       // bytes per block
  QuantizeRow from_f32 = nullptr;  // nullptr for f32: the rows are used as they are
};

// One ISA's kernels. Every entry is set; an ISA without its own version of a kernel uses the one
// of the ISA below it (AVX-512 -> AVX2, NEON dotprod -> armv8.0), down to the scalar reference
// (or ops.hpp's portable version).
struct KernelSet {
  static constexpr size_t kTypeSlots = 48;  // DType ids are below this
  Isa isa;
  std::string_view name;  // e.g. "avx512" or "neon+dotprod"

  TypeKernels types[kTypeSlots] = {};  // by DType id
  ActKernels acts[kActForms] = {};     // by ActForm

  // The row of a weight type this set computes with, nullptr if it has none.
  const TypeKernels* type(DType t) const {
    const auto i = static_cast<size_t>(t);
    return i < kTypeSlots && types[i].vec_dot ? &types[i] : nullptr;
  }
  TypeKernels& row(DType t) { return types[static_cast<size_t>(t)]; }  // for building tables
  const ActKernels& act(ActForm f) const { return acts[static_cast<size_t>(f)]; }
  ActKernels& act(ActForm f) { return acts[static_cast<size_t>(f)]; }

  // Products with a k-major matrix, the attention over the KV cache (see matmul_kn_f16_f32_ref):
  // no horizontal sums, each converted cache element serves every query.
  void (*matmul_kn_f16_f32)(int64_t n, const fp16_t* w, int64_t ldw, int64_t n_cols, const float* x,
                            int64_t ldx, int64_t n_x, float* y, int64_t ldy);
  void (*matmul_kn_f32_f32)(int64_t n, const float* w, int64_t ldw, int64_t n_cols, const float* x,
                            int64_t ldx, int64_t n_x, float* y, int64_t ldy);

  // Row and element-wise ops of the forward pass (ops.hpp's semantics):
  //   rms_norm, add, rope_norm_with   bit-identical with ops.hpp's _ref on every ISA
  //   softmax_scaled, silu_mul        within |y - y_ref| <= 2^-20 |y_ref| + 1e-30 of softmax_ref
  //                                   (after x *= s) and silu_mul_ref (a ~2-ulp exp, float sums)
  void (*rms_norm)(const float* x, const float* weight, float* y, int64_t n, float eps);
  void (*add)(const float* a, const float* b, float* y, int64_t n);
  void (*rope_norm_with)(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_sin);
  SoftmaxStats (*softmax_scaled)(float* x, int64_t n, float s);  // returns the stats of s * x
  void (*silu_mul)(const float* gate, const float* up, float* y, int64_t n);
};

// The set for this process: EDGELLM_ISA if set (falls back to the best if that ISA is not
// available: isa_fallback_note() says so), else the best the CPU supports. Chosen once,
// thread-safe. Writes nothing anywhere (the engine logs the note through its log callback).
const KernelSet& active_kernels();

// Why active_kernels() did not take EDGELLM_ISA ("EDGELLM_ISA=avx512 is not available on this
// CPU/build; using avx2"), empty when it did or the variable is unset.
std::string_view isa_fallback_note();

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
