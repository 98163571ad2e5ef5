// The emulator's own test kernels (tests/metal/test_emu.cpp): each exercises one piece of the
// shim or the runtime against a host computation. Compiled into the emulator's object library
// like the engine's shaders (msl_prepass.py), registered under these names.
#include <metal_stdlib>
using namespace metal;

struct EmuTestArgs {
  uint32_t n;
  uint32_t mode;
  uint32_t a;
  uint32_t b;
};

// y[i] = x[i] + 1 for i < n.
kernel void emu_test_add_one(constant EmuTestArgs & args [[buffer(0)]], device const float * x [[buffer(1)]],
                             device float * y [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  if (i >= args.n) return;
  y[i] = x[i] + 1.0f;
}

// Per SIMD-group: y[i] = simd_sum(x[i]) (mode 0), simd_max (1), simd_shuffle(x, lane ^ 1) (2).
kernel void emu_test_simd(constant EmuTestArgs & args [[buffer(0)]], device const float * x [[buffer(1)]],
                          device float * y [[buffer(2)]], uint i [[thread_position_in_grid]],
                          ushort lane [[thread_index_in_simdgroup]]) {
  const float v = x[i];
  float r = 0.0f;
  if (args.mode == 0) r = simd_sum(v);
  if (args.mode == 1) r = simd_max(v);
  if (args.mode == 2) r = simd_shuffle(v, ushort(lane ^ 1));
  y[i] = r;
}

// Reverses x within the threadgroup through threadgroup memory; mode 0 has the barrier, mode 1
// omits it (a bug the schedules must expose).
kernel void emu_test_tg_reverse(constant EmuTestArgs & args [[buffer(0)]], device const float * x [[buffer(1)]],
                                device float * y [[buffer(2)]], threadgroup float * tmp [[threadgroup(0)]],
                                uint tid [[thread_index_in_threadgroup]], uint n [[threads_per_threadgroup]],
                                uint3 tg [[threadgroup_position_in_grid]]) {
  const uint base = tg.x * n;
  tmp[tid] = x[base + tid];
  if (args.mode == 0) threadgroup_barrier(mem_flags::mem_threadgroup);
  y[base + tid] = tmp[n - 1 - tid];
}
