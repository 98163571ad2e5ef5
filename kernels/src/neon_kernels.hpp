// Internal: the two NEON flavours behind Isa::neon.
//   kernels_neon.cpp     armv8.0 NEON: every kernel; the integer dot products widen with
//                        vmull_s8 and add pairs with vpadal. Runs on every aarch64 CPU.
//   kernels_dotprod.cpp  armv8.2-a+dotprod: the integer dot products with sdot (vdotq_s32)
//                        and the Q4_K / Q6_K prefill tiles (sdot by lane on packed 8-row tiles;
//                        Q5_K's tile is Q4_K's with 5-bit quants, packed in kernels_neon.cpp).
//                        Nothing in it may run unless cpu_has_dotprod() (SIGILL otherwise).
// neon_kernels() (kernel_sets.hpp) hands dispatch the dotprod table when the CPU has it, else the
// armv8.0 one. Tests reach both tables through this header.
#pragma once

#include <cstdint>

#include "edgellm/kernels/dispatch.hpp"

namespace edgellm::kernels {

// Whether this CPU executes the armv8.2 dot-product instructions (Linux: HWCAP_ASIMDDP).
bool cpu_has_dotprod();

// The armv8.0 table, named "neon".
const KernelSet* neon_v8_kernels();

// The armv8.0 table with the sdot kernels in place, named "neon+dotprod"; nullptr if this CPU has
// no dotprod.
const KernelSet* neon_dotprod_kernels();

// kernels_dotprod.cpp. Call only when cpu_has_dotprod().
namespace dotprod {
float vec_dot_q4_K_q8_K(int64_t n, const block_q4_K* x, const block_q8_K* y);
float vec_dot_q6_K_q8_K(int64_t n, const block_q6_K* x, const block_q8_K* y);
float vec_dot_q8_0_q8_0(int64_t n, const block_q8_0* x, const block_q8_0* y);
float vec_dot_q4_0_q8_0(int64_t n, const block_q4_0* x, const block_q8_0* y);
float vec_dot_q5_K_q8_K(int64_t n, const block_q5_K* x, const block_q8_K* y);
float vec_dot_q3_K_q8_K(int64_t n, const block_q3_K* x, const block_q8_K* y);
float vec_dot_q2_K_q8_K(int64_t n, const block_q2_K* x, const block_q8_K* y);
float vec_dot_iq4_xs_q8_K(int64_t n, const block_iq4_xs* x, const block_q8_K* y);
float vec_dot_q5_0_q8_0(int64_t n, const block_q5_0* x, const block_q8_0* y);
float vec_dot_iq4_nl_q8_0(int64_t n, const block_iq4_nl* x, const block_q8_0* y);
float vec_dot_q4_1_q8_1(int64_t n, const block_q4_1* x, const block_q8_1* y);
float vec_dot_q5_1_q8_1(int64_t n, const block_q5_1* x, const block_q8_1* y);
// Prefill: na (1..4) activation rows times one 8-row tile packed by gemm_tile.hpp (the
// Rows<NA>::run contract of gemm::matmul_tiles, with NA as an argument).
constexpr int kTileRows = 8;
void tile_rows_q4_K(int na, const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs,
                    float* y);
void tile_rows_q6_K(int na, const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs,
                    float* y);
}  // namespace dotprod

}  // namespace edgellm::kernels
