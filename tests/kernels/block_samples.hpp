// Test inputs for the block formats, shared by the kernel tests: random blocks (random bytes with
// finite fp16 scale fields) and edge blocks (zero and extreme scales, saturated quants).
#pragma once

#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "edgellm/kernels/blocks.hpp"
#include "edgellm/kernels/quants.hpp"
#include "edgellm/rng.hpp"

namespace edgellm::test {

using namespace edgellm::kernels;

// A random finite fp16 (any sign, subnormals included, never Inf/NaN).
inline fp16_t random_finite_fp16(Rng& rng) {
  for (;;) {
    const fp16_t h = static_cast<fp16_t>(rng.next());
    if (((h >> 10) & 0x1F) != 0x1F) return h;
  }
}

// n blocks of random bytes; fix_fp16(block) makes the scale fields finite.
template <typename Block, typename Fix>
std::vector<Block> random_blocks(Rng& rng, size_t n, Fix fix_fp16) {
  std::vector<Block> v(n);
  auto* bytes = reinterpret_cast<uint8_t*>(v.data());
  for (size_t i = 0; i < n * sizeof(Block); ++i) bytes[i] = static_cast<uint8_t>(rng.next());
  for (Block& b : v) fix_fp16(b);
  return v;
}

inline std::vector<block_q4_K> random_q4_K(Rng& rng, size_t n) {
  return random_blocks<block_q4_K>(rng, n, [&](block_q4_K& b) {
    b.d = random_finite_fp16(rng);
    b.dmin = random_finite_fp16(rng);
  });
}
inline std::vector<block_q6_K> random_q6_K(Rng& rng, size_t n) {
  return random_blocks<block_q6_K>(rng, n, [&](block_q6_K& b) { b.d = random_finite_fp16(rng); });
}
inline std::vector<block_q8_0> random_q8_0(Rng& rng, size_t n) {
  return random_blocks<block_q8_0>(rng, n, [&](block_q8_0& b) { b.d = random_finite_fp16(rng); });
}
inline std::vector<block_q4_0> random_q4_0(Rng& rng, size_t n) {
  return random_blocks<block_q4_0>(rng, n, [&](block_q4_0& b) { b.d = random_finite_fp16(rng); });
}
inline std::vector<block_q5_0> random_q5_0(Rng& rng, size_t n) {
  return random_blocks<block_q5_0>(rng, n, [&](block_q5_0& b) { b.d = random_finite_fp16(rng); });
}
inline std::vector<block_q5_1> random_q5_1(Rng& rng, size_t n) {
  return random_blocks<block_q5_1>(rng, n, [&](block_q5_1& b) {
    b.d = random_finite_fp16(rng);
    b.m = random_finite_fp16(rng);
  });
}
inline std::vector<block_q4_1> random_q4_1(Rng& rng, size_t n) {
  return random_blocks<block_q4_1>(rng, n, [&](block_q4_1& b) {
    b.d = random_finite_fp16(rng);
    b.m = random_finite_fp16(rng);
  });
}
inline std::vector<block_iq4_nl> random_iq4_nl(Rng& rng, size_t n) {
  return random_blocks<block_iq4_nl>(rng, n, [&](block_iq4_nl& b) { b.d = random_finite_fp16(rng); });
}
inline std::vector<block_q5_K> random_q5_K(Rng& rng, size_t n) {
  return random_blocks<block_q5_K>(rng, n, [&](block_q5_K& b) {
    b.d = random_finite_fp16(rng);
    b.dmin = random_finite_fp16(rng);
  });
}
inline std::vector<block_q3_K> random_q3_K(Rng& rng, size_t n) {
  return random_blocks<block_q3_K>(rng, n, [&](block_q3_K& b) { b.d = random_finite_fp16(rng); });
}
inline std::vector<block_q2_K> random_q2_K(Rng& rng, size_t n) {
  return random_blocks<block_q2_K>(rng, n, [&](block_q2_K& b) {
    b.d = random_finite_fp16(rng);
    b.dmin = random_finite_fp16(rng);
  });
}
inline std::vector<block_iq4_xs> random_iq4_xs(Rng& rng, size_t n) {
  return random_blocks<block_iq4_xs>(rng, n, [&](block_iq4_xs& b) { b.d = random_finite_fp16(rng); });
}

// fp16 values the edge blocks use for d / dmin: zero, negative zero, smallest and largest
// subnormal, smallest normal, 1, -1, -2.5, the largest finite (65504) and its negative.
inline const std::vector<fp16_t>& edge_fp16() {
  static const std::vector<fp16_t> v = {0x0000, 0x8000, 0x0001, 0x03FF, 0x0400,
                                        0x3C00, 0xBC00, 0xC100, 0x7BFF, 0xFBFF};
  return v;
}

// Quant byte patterns of the edge blocks: all 0, all 0xFF (all quants at their maximum), 0x0F /
// 0xF0 (alternating extremes), 0x55 / 0xAA, 0x80 (int8 -128 where bytes are signed).
inline const std::vector<uint8_t>& edge_bytes() {
  static const std::vector<uint8_t> v = {0x00, 0xFF, 0x0F, 0xF0, 0x55, 0xAA, 0x80};
  return v;
}

// Q4_K edge blocks: every combination of edge d, edge dmin, a scales byte pattern (0, all scales
// and mins 63 = 0xFF, 0x3F = 6-bit fields 63 with zero top bits, alternating) and a quant pattern.
inline std::vector<block_q4_K> edge_q4_K() {
  std::vector<block_q4_K> v;
  for (fp16_t d : edge_fp16()) {
    for (fp16_t dmin : edge_fp16()) {
      for (uint8_t sc : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x3F}, uint8_t{0xA5}}) {
        for (uint8_t q : edge_bytes()) {
          block_q4_K b;
          b.d = d;
          b.dmin = dmin;
          std::memset(b.scales, sc, sizeof b.scales);
          std::memset(b.qs, q, sizeof b.qs);
          v.push_back(b);
        }
      }
    }
  }
  return v;
}

// Q6_K edge blocks: edge d x scales (0, 127, -128, -1, mixed) x quant patterns (ql and qh).
inline std::vector<block_q6_K> edge_q6_K() {
  std::vector<block_q6_K> v;
  for (fp16_t d : edge_fp16()) {
    for (int sc : {0, 127, -128, -1, 0x5A}) {
      for (uint8_t ql : edge_bytes()) {
        for (uint8_t qh : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x1B}}) {
          block_q6_K b;
          b.d = d;
          std::memset(b.scales, sc, sizeof b.scales);
          std::memset(b.ql, ql, sizeof b.ql);
          std::memset(b.qh, qh, sizeof b.qh);
          v.push_back(b);
        }
      }
    }
  }
  return v;
}

inline std::vector<block_q8_0> edge_q8_0() {
  std::vector<block_q8_0> v;
  for (fp16_t d : edge_fp16()) {
    for (uint8_t q : edge_bytes()) {
      block_q8_0 b;
      b.d = d;
      std::memset(b.qs, q, sizeof b.qs);
      v.push_back(b);
    }
  }
  return v;
}

inline std::vector<block_q4_0> edge_q4_0() {
  std::vector<block_q4_0> v;
  for (fp16_t d : edge_fp16()) {
    for (uint8_t q : edge_bytes()) {
      block_q4_0 b;
      b.d = d;
      std::memset(b.qs, q, sizeof b.qs);
      v.push_back(b);
    }
  }
  return v;
}

// 5th-bit words of the Q5 edge blocks: none set, all set, alternating, only the upper half's.
inline const std::vector<uint32_t>& edge_qh() {
  static const std::vector<uint32_t> v = {0x00000000u, 0xFFFFFFFFu, 0x55555555u, 0xFFFF0000u};
  return v;
}

// Q5_0 edge blocks: edge d x quant nibble patterns x 5th-bit patterns.
inline std::vector<block_q5_0> edge_q5_0() {
  std::vector<block_q5_0> v;
  for (fp16_t d : edge_fp16()) {
    for (uint8_t q : edge_bytes()) {
      for (uint32_t qh : edge_qh()) {
        block_q5_0 b;
        b.d = d;
        std::memcpy(b.qh, &qh, 4);  // little-endian: bit e is element e's
        std::memset(b.qs, q, sizeof b.qs);
        v.push_back(b);
      }
    }
  }
  return v;
}

// Q5_1 edge blocks: edge d x edge m x quant patterns x 5th-bit patterns.
inline std::vector<block_q5_1> edge_q5_1() {
  std::vector<block_q5_1> v;
  for (fp16_t d : edge_fp16()) {
    for (fp16_t m : edge_fp16()) {
      for (uint8_t q : edge_bytes()) {
        for (uint32_t qh : edge_qh()) {
          block_q5_1 b;
          b.d = d;
          b.m = m;
          std::memcpy(b.qh, &qh, 4);
          std::memset(b.qs, q, sizeof b.qs);
          v.push_back(b);
        }
      }
    }
  }
  return v;
}

// Q4_1 edge blocks: edge d x edge m x quant byte patterns.
inline std::vector<block_q4_1> edge_q4_1() {
  std::vector<block_q4_1> v;
  for (fp16_t d : edge_fp16()) {
    for (fp16_t m : edge_fp16()) {
      for (uint8_t q : edge_bytes()) {
        block_q4_1 b;
        b.d = d;
        b.m = m;
        std::memset(b.qs, q, sizeof b.qs);
        v.push_back(b);
      }
    }
  }
  return v;
}

// IQ4_NL edge blocks: edge d x quant byte patterns (0x0F / 0xF0: the table's two ends).
inline std::vector<block_iq4_nl> edge_iq4_nl() {
  std::vector<block_iq4_nl> v;
  for (fp16_t d : edge_fp16()) {
    for (uint8_t q : edge_bytes()) {
      block_iq4_nl b;
      b.d = d;
      std::memset(b.qs, q, sizeof b.qs);
      v.push_back(b);
    }
  }
  return v;
}

// Q5_K edge blocks: Q4_K's (edge d x edge dmin x scales patterns x quant patterns) x 5th-bit
// patterns (none, all, alternating).
inline std::vector<block_q5_K> edge_q5_K() {
  std::vector<block_q5_K> v;
  for (fp16_t d : edge_fp16()) {
    for (fp16_t dmin : edge_fp16()) {
      for (uint8_t sc : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x3F}, uint8_t{0xA5}}) {
        for (uint8_t q : edge_bytes()) {
          for (uint8_t qh : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x55}}) {
            block_q5_K b;
            b.d = d;
            b.dmin = dmin;
            std::memset(b.scales, sc, sizeof b.scales);
            std::memset(b.qs, q, sizeof b.qs);
            std::memset(b.qh, qh, sizeof b.qh);
            v.push_back(b);
          }
        }
      }
    }
  }
  return v;
}

// Q3_K edge blocks: edge d x scales patterns (0: every scale -32; 0xFF: 31; 0x20 / 0xA5 mixed)
// x 2-bit quant patterns x hmask patterns (none set: q - 4 down to -4; all set; alternating).
inline std::vector<block_q3_K> edge_q3_K() {
  std::vector<block_q3_K> v;
  for (fp16_t d : edge_fp16()) {
    for (uint8_t sc : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x20}, uint8_t{0xA5}}) {
      for (uint8_t q : edge_bytes()) {
        for (uint8_t hm : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x5A}}) {
          block_q3_K b;
          b.d = d;
          std::memset(b.scales, sc, sizeof b.scales);
          std::memset(b.qs, q, sizeof b.qs);
          std::memset(b.hmask, hm, sizeof b.hmask);
          v.push_back(b);
        }
      }
    }
  }
  return v;
}

// Q2_K edge blocks: edge d x edge dmin x scale bytes (0, all 15/15 = 0xFF, scale only 0x0F,
// min only 0xF0, mixed) x quant patterns.
inline std::vector<block_q2_K> edge_q2_K() {
  std::vector<block_q2_K> v;
  for (fp16_t d : edge_fp16()) {
    for (fp16_t dmin : edge_fp16()) {
      for (uint8_t sc : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{0x0F}, uint8_t{0xF0}, uint8_t{0x5A}}) {
        for (uint8_t q : edge_bytes()) {
          block_q2_K b;
          b.d = d;
          b.dmin = dmin;
          std::memset(b.scales, sc, sizeof b.scales);
          std::memset(b.qs, q, sizeof b.qs);
          v.push_back(b);
        }
      }
    }
  }
  return v;
}

// IQ4_XS edge blocks: edge d x scale fields (all 0: every scale -32; all 63: 31; 32: 0; mixed) x
// quant patterns.
inline std::vector<block_iq4_xs> edge_iq4_xs() {
  std::vector<block_iq4_xs> v;
  const std::pair<uint16_t, uint8_t> scale_fields[] = {{0x0000, 0x00}, {0xFFFF, 0xFF}, {0xAAAA, 0x00}, {0x1B4E, 0x96}};
  for (fp16_t d : edge_fp16()) {
    for (const auto& [h, l] : scale_fields) {
      for (uint8_t q : edge_bytes()) {
        block_iq4_xs b;
        b.d = d;
        b.scales_h = h;
        std::memset(b.scales_l, l, sizeof b.scales_l);
        std::memset(b.qs, q, sizeof b.qs);
        v.push_back(b);
      }
    }
  }
  return v;
}

// n floats ~ N(0, sigma^2).
inline std::vector<float> gaussian(Rng& rng, size_t n, float sigma = 1.0f) {
  std::vector<float> v(n);
  for (float& x : v) x = sigma * rng.normal();
  return v;
}

// Activation rows that stress quantizers: all zero, one spike, constant, tiny (subnormal) values,
// huge values, alternating signs, a negative maximum, each n floats (n a multiple of 256).
inline std::vector<std::vector<float>> edge_rows(size_t n) {
  std::vector<std::vector<float>> rows;
  rows.emplace_back(n, 0.0f);
  std::vector<float> spike(n, 0.0f);
  spike[n / 3] = 7.5f;
  rows.push_back(spike);
  rows.emplace_back(n, 1.25f);
  rows.emplace_back(n, -3.0f);
  rows.emplace_back(n, 1e-40f);
  rows.emplace_back(n, 3e38f);
  std::vector<float> alt(n), ramp(n), neg(n), half(n), grid(n);
  for (size_t i = 0; i < n; ++i) {
    alt[i] = (i & 1) ? -1.0f : 1.0f;
    ramp[i] = static_cast<float>(i % 256) - 127.5f;
    neg[i] = (i % 7 == 0) ? -100.0f : static_cast<float>(i % 5);
    half[i] = 0.5f * static_cast<float>(static_cast<int>(i % 33) - 16);  // ties under rounding
    // A Q4_0 row dequantized (a scale times -8..7): exact halves when requantized to Q8_0.
    grid[i] = 0.013f * static_cast<float>(static_cast<int>((i * 7) % 16) - 8);
  }
  rows.push_back(alt);
  rows.push_back(ramp);
  rows.push_back(neg);
  rows.push_back(half);
  rows.push_back(grid);
  return rows;
}

}  // namespace edgellm::test
