// The Metal kernels' source text, one self-contained entry per engine/src/metal/shaders/*.metal
// file (its local headers inlined), generated at build time by cmake/metal_shaders.cmake. The
// Apple device compiles each entry into a library at run time (device_apple.mm).
#pragma once

namespace edgellm::engine::metal {

struct ShaderSource {
  const char* file;  // "mul_mv.metal"
  const char* text;  // MSL
};

extern const ShaderSource kShaderSources[];
extern const int kShaderSourceCount;

}  // namespace edgellm::engine::metal
