// Internal: where each instruction set's kernel table comes from. dispatch.cpp owns the choice;
// each ISA's *_avx2.cpp / *_avx512.cpp / *_neon.cpp file defines its table function, starting
// from the table of the ISA below it (scalar_kernel_set() for AVX2 and armv8.0 NEON, the AVX2
// table for AVX-512 when it is compiled in, the armv8.0 table for dotprod) and replacing the
// entries it has its own kernels for:
//
//   KernelSet k = scalar_kernel_set();
//   set_vec_dot<vec_dot_q4_K_q8_K_avx2>(k.row(DType::Q4_K));     // vec_dot + its gemv tile
//   set_gemm(k.row(DType::Q4_K), matmul_q4_K_avx2, kGemmMinRows); // optional prefill tile
//   set_gemm32<Tiles32>(k);  // the 32-element formats' tiles, Tiles32<B>::tile and ::min_rows
//
// The helpers below have internal linkage (anonymous namespace): each ISA file gets its own
// copies, compiled with its own instruction set, so the linker can never hand one ISA's code to
// another (tests/kernels/check_isa_symbols.sh enforces this).
#pragma once

#include <cstddef>
#include <cstdint>

#include "edgellm/kernels/dispatch.hpp"

namespace edgellm::kernels {

// Every entry set to the scalar reference (or ops.hpp's portable version); no gemm tiles.
KernelSet scalar_kernel_set();

#if defined(EDGELLM_HAVE_AVX2)
const KernelSet* avx2_kernels();    // kernels_avx2.cpp
#endif
#if defined(EDGELLM_HAVE_AVX512)
const KernelSet* avx512_kernels();  // kernels_avx512.cpp
#endif
#if defined(EDGELLM_HAVE_NEON)
// kernels_neon.cpp: the NEON table (plug NEON kernels in there; dispatch.cpp needs no change).
const KernelSet* neon_kernels();
#endif

namespace {

// The block types of a typed kernel, to erase them into the table's void* signatures.
template <typename F>
struct Sig;
template <typename W, typename A>
struct Sig<float (*)(int64_t, const W*, const A*)> {  // dot product
  using Weight = W;
  using Act = A;
};
template <typename B>
struct Sig<void (*)(const B*, float*, int64_t)> {  // dequantize
  using Block = B;
};
template <typename B>
struct Sig<void (*)(const float*, B*, int64_t)> {  // quantize
  using Block = B;
};

template <auto Dot>
float erased_vec_dot(int64_t n, const void* w, const void* a) {
  using S = Sig<decltype(Dot)>;
  return Dot(n, static_cast<const typename S::Weight*>(w), static_cast<const typename S::Act*>(a));
}

template <auto Dequantize>
void erased_dequantize(const void* x, float* y, int64_t k) {
  Dequantize(static_cast<const typename Sig<decltype(Dequantize)>::Block*>(x), y, k);
}

template <auto Quantize>
void erased_quantize(const float* x, void* y, int64_t k) {
  Quantize(x, static_cast<typename Sig<decltype(Quantize)>::Block*>(y), k);
}

// The decode-shaped tile: one Dot per (weight row, activation row) pair. Weight rows are taken
// four at a time so they stay in L1 while a chunk of activation rows passes over them.
template <auto Dot>
void tile_from_vec_dot(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* a,
                       size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  using S = Sig<decltype(Dot)>;
  const auto* wb = static_cast<const unsigned char*>(w);
  const auto* ab = static_cast<const unsigned char*>(a);
  // Activation rows 32 at a time (a 2048-wide Q8_0 row is 2 KiB: the chunk stays in L2), so a
  // prefill batch of a type without a prefill tile re-reads weight rows per chunk instead of
  // streaming every activation row past every 4 weight rows.
  constexpr int64_t kActChunk = 32;
  for (int64_t i0 = 0; i0 < n_act; i0 += kActChunk) {
    const int64_t i1 = i0 + kActChunk < n_act ? i0 + kActChunk : n_act;
    for (int64_t r0 = 0; r0 < n_rows; r0 += 4) {
      const int64_t r1 = r0 + 4 < n_rows ? r0 + 4 : n_rows;
      for (int64_t i = i0; i < i1; ++i) {
        const auto* ai = reinterpret_cast<const typename S::Act*>(ab + i * a_row_bytes);
        for (int64_t r = r0; r < r1; ++r)
          y[i * ldy + r] = Dot(n, reinterpret_cast<const typename S::Weight*>(wb + r * w_row_bytes), ai);
      }
    }
  }
}

// A type's dot product and the gemv tile made of it.
template <auto Dot>
void set_vec_dot(TypeKernels& t) {
  t.vec_dot = erased_vec_dot<Dot>;
  t.gemv = tile_from_vec_dot<Dot>;
}

template <auto Dequantize>
void set_dequantize(TypeKernels& t) {
  t.dequantize_row = erased_dequantize<Dequantize>;
}

// A prefill tile, used by matmul() from min_rows activation rows on.
inline void set_gemm(TypeKernels& t, MatmulTile gemm, int64_t min_rows) {
  t.gemm = gemm;
  t.gemm_min_rows = min_rows;
}

// Every 32-element format's prefill tile: Tiles<B>::tile for block type B, used from
// Tiles<B>::min_rows activation rows on (the ISA's measured switch).
template <template <typename> class Tiles>
void set_gemm32(KernelSet& k) {
  set_gemm(k.row(DType::Q8_0), Tiles<block_q8_0>::tile, Tiles<block_q8_0>::min_rows);
  set_gemm(k.row(DType::Q4_0), Tiles<block_q4_0>::tile, Tiles<block_q4_0>::min_rows);
  set_gemm(k.row(DType::Q5_0), Tiles<block_q5_0>::tile, Tiles<block_q5_0>::min_rows);
  set_gemm(k.row(DType::Q4_1), Tiles<block_q4_1>::tile, Tiles<block_q4_1>::min_rows);
  set_gemm(k.row(DType::Q5_1), Tiles<block_q5_1>::tile, Tiles<block_q5_1>::min_rows);
  set_gemm(k.row(DType::IQ4_NL), Tiles<block_iq4_nl>::tile, Tiles<block_iq4_nl>::min_rows);
}

}  // namespace
}  // namespace edgellm::kernels
