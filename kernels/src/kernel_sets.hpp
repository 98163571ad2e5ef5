// Internal: where each instruction set's kernel table comes from. dispatch.cpp owns the choice;
// each ISA's *_avx2.cpp / *_avx512.cpp / *_neon.cpp file defines its table function, starting
// from scalar_kernel_set() and replacing the entries it has its own kernels for.
#pragma once

#include <cstddef>
#include <cstdint>

#include "edgellm/kernels/dispatch.hpp"

namespace edgellm::kernels {

// Every entry set to the scalar reference (tiles built from the _ref dot products).
KernelSet scalar_kernel_set();

#if defined(EDGELLM_HAVE_AVX2)
const KernelSet* avx2_kernels();    // kernels_avx2.cpp
#endif
#if defined(EDGELLM_HAVE_AVX512)
const KernelSet* avx512_kernels();  // kernels_avx512.cpp
#endif
#if defined(EDGELLM_HAVE_NEON)
// kernels_neon.cpp: the NEON table (plug NEON kernels in there; dispatch.cpp needs no change).
// Return nullptr if this CPU cannot run it.
const KernelSet* neon_kernels();
#endif

// A matmul tile made of one dot product per (weight row, activation row) pair. Weight rows are
// taken four at a time so they stay in L1 while every activation row passes over them.
template <typename WBlock, typename ABlock, float (*VecDot)(int64_t, const WBlock*, const ABlock*)>
void tile_from_vec_dot(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows,
                       const void* a, size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  const auto* wb = static_cast<const unsigned char*>(w);
  const auto* ab = static_cast<const unsigned char*>(a);
  for (int64_t r0 = 0; r0 < n_rows; r0 += 4) {
    const int64_t r1 = r0 + 4 < n_rows ? r0 + 4 : n_rows;
    for (int64_t i = 0; i < n_act; ++i) {
      const auto* ai = reinterpret_cast<const ABlock*>(ab + i * a_row_bytes);
      for (int64_t r = r0; r < r1; ++r) {
        y[i * ldy + r] = VecDot(n, reinterpret_cast<const WBlock*>(wb + r * w_row_bytes), ai);
      }
    }
  }
}

}  // namespace edgellm::kernels
