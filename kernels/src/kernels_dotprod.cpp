// The armv8.2-a+dotprod kernels (this file is compiled with that -march; see kernels/CMakeLists.txt):
// the integer dot products and the Q4_K / Q6_K prefill tiles. sdot multiplies 16 int8 pairs and
// adds each group of four into one int32 lane in a single instruction. The dot products
// themselves are in neon_dots.hpp, shared with the armv8.0 flavour.
//
// kernels_neon.cpp puts these in the "neon+dotprod" table only when the CPU has dotprod, so this
// file must hold nothing that runs on its own (no static initialisers) and must emit no inline or
// template code that another file also emits (the linker could keep this file's copy, built for
// armv8.2, for everyone): helpers live in anonymous namespaces, and only the functions declared
// in neon_kernels.hpp are visible outside.
#include "gemm_tile.hpp"  // only its layout constants are used here (no code of it instantiated)
#include "neon_dots.hpp"
#include "neon_kernels.hpp"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "kernels_dotprod.cpp must be compiled with -march=armv8.2-a+dotprod"
#endif

namespace edgellm::kernels {

namespace {

struct SdotDot {
  static int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
  static int32x4_t dot16_small(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
  static int32x4_t dot32_small(int32x4_t acc, int8x16_t a0, int8x16_t b0, int8x16_t a1, int8x16_t b1) {
    return vdotq_s32(vdotq_s32(acc, a0, b0), a1, b1);
  }
};

// ---- prefill: NA activation rows times one packed 8-row weight tile (gemm_tile.hpp) ----
// A group vector holds 4 quants of each of the 8 rows (two 16-byte halves: rows 0..3, 4..7), so
// sdot by lane (vdotq_laneq_s32) with 16 activation bytes serves 8 rows x 4 groups per load.
// Integer sums per sub-block are exact; each is scaled in float by d sc_j times the activation's d.

constexpr int kTileRows = dotprod::kTileRows;
using Tile = gemm::Tile<kTileRows>;
constexpr size_t kQ4KBlockBytes = Tile::block_bytes<block_q4_K>();
constexpr size_t kQ6KBlockBytes = Tile::block_bytes<block_q6_K>();

// The 8 weight vectors of groups g0..g0+3: per group, rows 0..3 then rows 4..7.
inline int8x16x4_t load_groups(const uint8_t* tb, int g0, int half) {
  return vld1q_s8_x4(reinterpret_cast<const int8_t*>(tb + g0 * Tile::group_bytes) + 64 * half);
}

// acc[h] (rows 4h..4h+3) += those 4 groups times the 16 activation bytes av (4 per group).
inline void dot_4_groups(int32x4_t acc[2], const int8x16x4_t& w01, const int8x16x4_t& w23, int8x16_t av) {
  acc[0] = vdotq_laneq_s32(acc[0], w01.val[0], av, 0);
  acc[1] = vdotq_laneq_s32(acc[1], w01.val[1], av, 0);
  acc[0] = vdotq_laneq_s32(acc[0], w01.val[2], av, 1);
  acc[1] = vdotq_laneq_s32(acc[1], w01.val[3], av, 1);
  acc[0] = vdotq_laneq_s32(acc[0], w23.val[0], av, 2);
  acc[1] = vdotq_laneq_s32(acc[1], w23.val[1], av, 2);
  acc[0] = vdotq_laneq_s32(acc[0], w23.val[2], av, 3);
  acc[1] = vdotq_laneq_s32(acc[1], w23.val[3], av, 3);
}

template <int NA>
void rows_q4_K(const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs, float* y) {
  float32x4_t out[NA][2];
  for (int i = 0; i < NA; ++i) out[i][0] = out[i][1] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + b * kQ4KBlockBytes;
    const auto* dsc = reinterpret_cast<const float*>(tb + Tile::quant_bytes);
    for (int j = 0; j < 8; ++j) {  // sub-block j: groups 8j..8j+7
      int32x4_t acc[NA][2];
      for (int i = 0; i < NA; ++i) acc[i][0] = acc[i][1] = vdupq_n_s32(0);
      for (int c = 0; c < 2; ++c) {  // each weight vector is loaded once for all NA rows
        const int g0 = 8 * j + 4 * c;
        const int8x16x4_t w01 = load_groups(tb, g0, 0), w23 = load_groups(tb, g0, 1);
        for (int i = 0; i < NA; ++i) dot_4_groups(acc[i], w01, w23, vld1q_s8(a[i][b].qs + 4 * g0));
      }
      const float32x4_t d0 = vld1q_f32(dsc + kTileRows * j), d1 = vld1q_f32(dsc + kTileRows * j + 4);
      for (int i = 0; i < NA; ++i) {
        out[i][0] = vfmaq_f32(out[i][0], vcvtq_f32_s32(acc[i][0]), vmulq_n_f32(d0, a[i][b].d));
        out[i][1] = vfmaq_f32(out[i][1], vcvtq_f32_s32(acc[i][1]), vmulq_n_f32(d1, a[i][b].d));
      }
    }
    // Mins: per row, sum over pairs p of (m_2p, m_2p+1) . (bs_2p, bs_2p+1); int16 pairs, rows
    // 0..3 in the first 8 int16 of each pair vector, rows 4..7 in the second.
    const auto* mins = reinterpret_cast<const int16_t*>(tb + Tile::quant_bytes + 8 * Tile::vec_bytes);
    const auto* dmin = reinterpret_cast<const float*>(tb + Tile::quant_bytes + 12 * Tile::vec_bytes);
    const float32x4_t dm0 = vld1q_f32(dmin), dm1 = vld1q_f32(dmin + 4);
    for (int i = 0; i < NA; ++i) {
      int32x4_t macc[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
      for (int p = 0; p < 4; ++p) {
        int32_t pair;
        std::memcpy(&pair, bs[i] + 8 * b + 2 * p, 4);
        const int16x8_t sums = vreinterpretq_s16_s32(vdupq_n_s32(pair));
        for (int h = 0; h < 2; ++h) {
          const int16x8_t m = vld1q_s16(mins + p * Tile::vec_bytes / 2 + 8 * h);
          macc[h] = vaddq_s32(macc[h], vpaddq_s32(vmull_s16(vget_low_s16(m), vget_low_s16(sums)),
                                                  vmull_high_s16(m, sums)));
        }
      }
      out[i][0] = vfmsq_f32(out[i][0], vcvtq_f32_s32(macc[0]), vmulq_n_f32(dm0, a[i][b].d));
      out[i][1] = vfmsq_f32(out[i][1], vcvtq_f32_s32(macc[1]), vmulq_n_f32(dm1, a[i][b].d));
    }
  }
  for (int i = 0; i < NA; ++i) vst1q_f32_x2(y + i * kTileRows, (float32x4x2_t{{out[i][0], out[i][1]}}));
}

// Q6_K quants are 0..63 here; the -32 offset enters each 16-element sub-block's sum as
// -32 * (its activation sum).
template <int NA>
void rows_q6_K(const uint8_t* tile, int64_t nb, const block_q8_K* const* a, float* y) {
  float32x4_t out[NA][2];
  for (int i = 0; i < NA; ++i) out[i][0] = out[i][1] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* tb = tile + b * kQ6KBlockBytes;
    const auto* dsc = reinterpret_cast<const float*>(tb + Tile::quant_bytes);
    for (int j = 0; j < 16; ++j) {  // sub-block j: groups 4j..4j+3
      const int8x16x4_t w01 = load_groups(tb, 4 * j, 0), w23 = load_groups(tb, 4 * j, 1);
      int32x4_t acc[NA][2];
      for (int i = 0; i < NA; ++i) {
        acc[i][0] = acc[i][1] = vdupq_n_s32(-32 * a[i][b].bsums[j]);
        dot_4_groups(acc[i], w01, w23, vld1q_s8(a[i][b].qs + 16 * j));
      }
      const float32x4_t d0 = vld1q_f32(dsc + kTileRows * j), d1 = vld1q_f32(dsc + kTileRows * j + 4);
      for (int i = 0; i < NA; ++i) {
        out[i][0] = vfmaq_f32(out[i][0], vcvtq_f32_s32(acc[i][0]), vmulq_n_f32(d0, a[i][b].d));
        out[i][1] = vfmaq_f32(out[i][1], vcvtq_f32_s32(acc[i][1]), vmulq_n_f32(d1, a[i][b].d));
      }
    }
  }
  for (int i = 0; i < NA; ++i) vst1q_f32_x2(y + i * kTileRows, (float32x4x2_t{{out[i][0], out[i][1]}}));
}

}  // namespace

namespace dotprod {

void tile_rows_q4_K(int na, const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const* bs,
                    float* y) {
  switch (na) {
    case 4: rows_q4_K<4>(tile, nb, a, bs, y); break;
    case 3: rows_q4_K<3>(tile, nb, a, bs, y); break;
    case 2: rows_q4_K<2>(tile, nb, a, bs, y); break;
    default: rows_q4_K<1>(tile, nb, a, bs, y); break;
  }
}

void tile_rows_q6_K(int na, const uint8_t* tile, int64_t nb, const block_q8_K* const* a, const int16_t* const*,
                    float* y) {
  switch (na) {
    case 4: rows_q6_K<4>(tile, nb, a, y); break;
    case 3: rows_q6_K<3>(tile, nb, a, y); break;
    case 2: rows_q6_K<2>(tile, nb, a, y); break;
    default: rows_q6_K<1>(tile, nb, a, y); break;
  }
}

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

float vec_dot_q5_K_q8_K(int64_t n, const block_q5_K* x, const block_q8_K* y) {
  return dot_q4_K_q8_K<SdotDot>(n, x, y);
}

float vec_dot_q3_K_q8_K(int64_t n, const block_q3_K* x, const block_q8_K* y) {
  return dot_q3_K_q8_K<SdotDot>(n, x, y);
}

float vec_dot_q2_K_q8_K(int64_t n, const block_q2_K* x, const block_q8_K* y) {
  return dot_q2_K_q8_K<SdotDot>(n, x, y);
}

float vec_dot_iq4_xs_q8_K(int64_t n, const block_iq4_xs* x, const block_q8_K* y) {
  return dot_iq4_xs_q8_K<SdotDot>(n, x, y);
}

float vec_dot_q5_0_q8_0(int64_t n, const block_q5_0* x, const block_q8_0* y) {
  return dot_32_q8_0<SdotDot>(n, x, y);
}

float vec_dot_iq4_nl_q8_0(int64_t n, const block_iq4_nl* x, const block_q8_0* y) {
  return dot_32_q8_0<SdotDot>(n, x, y);
}

float vec_dot_q4_1_q8_1(int64_t n, const block_q4_1* x, const block_q8_1* y) {
  return dot_32_q8_1<SdotDot>(n, x, y);
}

float vec_dot_q5_1_q8_1(int64_t n, const block_q5_1* x, const block_q8_1* y) {
  return dot_32_q8_1<SdotDot>(n, x, y);
}

}  // namespace dotprod

}  // namespace edgellm::kernels
