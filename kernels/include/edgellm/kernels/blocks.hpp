// Quantized block formats: the structs (block_formats.h, shared with the Metal kernels) and the
// C++ helpers that read their packed fields.
#pragma once

#include <cstdint>

#include "edgellm/kernels/block_formats.h"

namespace edgellm::kernels {

// The 6-bit scale and min of Q4_K / Q5_K sub-block j (0..7). Bytes 0..3 hold scales 0..3 in their
// low 6 bits, bytes 4..7 mins 0..3; bytes 8..11 hold the low 4 bits of scale (low nibble) and min
// (high nibble) 4..7, whose top 2 bits sit in the top 2 bits of bytes 0..3 (scales) and 4..7 (mins).
inline void q4_K_scale_min(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// The IQ4_NL levels (ggml-common.h's kvalues_iq4nl). Not `inline`: internal linkage, a copy per
// object, so an ISA object that takes its address defines no weak symbol the linker could pick
// (tests/kernels/check_isa_symbols.sh).
constexpr int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                             1,    13,   25,  38,  53,  69,  89,  113};

// The 5th bits of a Q5_0 / Q5_1 block's 32 quants, bit e for element e.
inline uint32_t q5_high_bits(const uint8_t* qh) {
  return static_cast<uint32_t>(qh[0]) | static_cast<uint32_t>(qh[1]) << 8 |
         static_cast<uint32_t>(qh[2]) << 16 | static_cast<uint32_t>(qh[3]) << 24;
}

// The 6-bit scale field (0..63; the scale is this minus 32) of Q3_K sub-block j (0..15).
inline int q3_K_scale(const uint8_t* scales, int j) {
  const int low = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
  const int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | high << 4;
}

// The 6-bit scale field (0..63; the scale is this minus 32) of IQ4_XS sub-block j (0..7).
inline int iq4_xs_scale(const block_iq4_xs& b, int j) {
  return ((b.scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | ((b.scales_h >> (2 * j)) & 3) << 4;
}

}  // namespace edgellm::kernels
