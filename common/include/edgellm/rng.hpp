// A small seeded random generator whose output is defined here, not by the standard library, so a
// seed gives the same numbers on every platform and compiler: the sampler's random stream, the
// synthetic model writer, tests and benchmarks. Header-only and free of dependencies, in common/
// (CMake target edgellm_rng, cmake/common.cmake) so that the kernel tests of the aarch64 cross
// build, which has no engine, include the same file as the engine. (The namespace is still
// edgellm::kernels, where it began; renaming it touches every user.)
//
//   Rng rng(seed);   xoshiro256** seeded by splitmix64(seed)
//   rng.next()       64 random bits
//   rng.uniform()    float in [0, 1): the top 24 bits of next() times 2^-24
//   rng.normal()     float ~ N(0, 1): Box-Muller in double from two 53-bit uniforms, rounded to
//                    float (the second value of each pair is discarded, to keep it simple).
//                    next() and uniform() are exact everywhere; normal() also depends on libm's
//                    double log and cos, whose last-bit differences the rounding to float hides
//                    in all but extremely rare cases.
#pragma once

#include <cmath>
#include <cstdint>

namespace edgellm::kernels {

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) {  // splitmix64
      seed += 0x9E3779B97F4A7C15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      s = z ^ (z >> 31);
    }
  }

  uint64_t next() {  // xoshiro256**
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  float uniform() { return static_cast<float>(next() >> 40) * 0x1p-24f; }

  float normal() {
    const double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1p-53;  // (0, 1]
    const double u2 = static_cast<double>(next() >> 11) * 0x1p-53;          // [0, 1)
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace edgellm::kernels
