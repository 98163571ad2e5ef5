// The armv8.2-a+dotprod integer dot products (this file is compiled with that -march; see
// kernels/CMakeLists.txt). sdot multiplies 16 int8 pairs and adds each group of four into one
// int32 lane in a single instruction. The kernels themselves are in neon_dots.hpp, shared with the
// armv8.0 flavour; kernels_neon.cpp puts these in the "neon+dotprod" table only when the CPU has
// dotprod, so this file must hold nothing that runs on its own (no static initialisers).
#include "neon_dots.hpp"
#include "neon_kernels.hpp"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "kernels_dotprod.cpp must be compiled with -march=armv8.2-a+dotprod"
#endif

namespace edgellm::kernels {

namespace {

struct SdotDot {
  static int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
};

}  // namespace

namespace dotprod {

float vec_dot_q4_K_q8_K(int64_t n, const block_q4_K* x, const block_q8_K* y) {
  return dot_q4_K_q8_K<SdotDot>(n, x, y);
}

float vec_dot_q6_K_q8_K(int64_t n, const block_q6_K* x, const block_q8_K* y) {
  return dot_q6_K_q8_K<SdotDot>(n, x, y);
}

float vec_dot_q8_0_q8_0(int64_t n, const block_q8_0* x, const block_q8_0* y) {
  return dot_32_q8_0<SdotDot>(n, x, y);
}

float vec_dot_q4_0_q8_0(int64_t n, const block_q4_0* x, const block_q8_0* y) {
  return dot_32_q8_0<SdotDot>(n, x, y);
}

}  // namespace dotprod

}  // namespace edgellm::kernels
