// The emulator's own test kernels (tests/metal/test_emu.cpp): each exercises one piece of the
// shim or the runtime, checked there against a host computation. Compiled into the emulator's
// object library like the engine's shaders (msl_prepass.py), registered under these names. Not
// subject to docs/METAL.md's lint (they use bfloat, and break rule 4 on purpose): the lines
// marked `// @NAME` are where the runtime must report an error, found by the test by the marker.
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

// y[(a << 32) | b] = 42 (a 64-bit element index), by thread 0.
kernel void emu_test_store_far(constant EmuTestArgs & args [[buffer(0)]], device float * y [[buffer(1)]],
                               uint i [[thread_position_in_grid]]) {
  if (i == 0) y[(uint64_t(args.a) << 32) | uint64_t(args.b)] = 42.0f;
}

// Scalar conversions, per element i < n of x (floats) and h (half / bfloat bits):
//   mode 0: out[i] = bits of half(x[i])         mode 1: fo[i] = float(half with bits h[i])
//   mode 2: out[i] = bits of bfloat(x[i])       mode 3: fo[i] = float(bfloat with bits h[i])
//   mode 4: out[i] = bits of (half(x[i]) + half(x[i + 1]))  (half arithmetic)
//   mode 5: out[i] = bits of (half(x[i]) * half(x[i + 1]))
kernel void emu_test_convert(constant EmuTestArgs & args [[buffer(0)]], device const float * x [[buffer(1)]],
                             device const ushort * h [[buffer(2)]], device ushort * out [[buffer(3)]],
                             device float * fo [[buffer(4)]], uint i [[thread_position_in_grid]]) {
  if (i >= args.n) return;
  switch (args.mode) {
    case 0: out[i] = as_type<ushort>(half(x[i])); break;
    case 1: fo[i] = float(as_type<half>(h[i])); break;
    case 2: out[i] = as_type<ushort>(bfloat(x[i])); break;
    case 3: fo[i] = float(as_type<bfloat>(h[i])); break;
    case 4: {
      const half s = half(x[i]) + half(x[i + 1]);
      out[i] = as_type<ushort>(s);
      break;
    }
    case 5: {
      const half p = half(x[i]) * half(x[i + 1]);
      out[i] = as_type<ushort>(p);
      break;
    }
  }
}

// Vector types, swizzles, conversions, as_type, matrices: one thread writes y[0 ..] (see the test
// for the expected values; x holds 1, 2, 3, ...).
kernel void emu_test_vectors(constant EmuTestArgs & args [[buffer(0)]], device const float * x [[buffer(1)]],
                             device float * y [[buffer(2)]], device uint * u [[buffer(3)]],
                             uint i [[thread_position_in_grid]]) {
  if (i != 0) return;
  const float4 a = float4(x[0], x[1], x[2], x[3]);  // 1 2 3 4
  const float4 b = float4(x[4], x[5], x[6], x[7]);  // 5 6 7 8
  int k = 0;
  // Swizzles and mixed constructors.
  const float4 c = float4(a.xy, b.zw);  // 1 2 7 8
  for (int j = 0; j < 4; ++j) y[k++] = c[j];
  const float4 r = a.wzyx;  // 4 3 2 1
  for (int j = 0; j < 4; ++j) y[k++] = r[j];
  const float3 d = float3(b.x, a.yz);  // 5 2 3
  for (int j = 0; j < 3; ++j) y[k++] = d[j];
  const thread float4 * pa = &b;
  const float2 e = pa->zx + a.yy;  // 9 7
  for (int j = 0; j < 2; ++j) y[k++] = e[j];
  float4 w = a;
  w.y = 10.0f;  // .x .y .z .w are writable
  w.w += 1.0f;
  for (int j = 0; j < 4; ++j) y[k++] = w[j];  // 1 10 3 5
  // Arithmetic with scalars on either side, comparisons, select.
  const float4 s = 2.0f * a + b / 2.0f - 1.0f;  // 3.5 6 8.5 11
  for (int j = 0; j < 4; ++j) y[k++] = s[j];
  const bool4 lt = a < float4(2.5f);
  const float4 sel = select(a, b, lt);  // 5 6 3 4
  for (int j = 0; j < 4; ++j) y[k++] = sel[j];
  // Value conversions: half4 <-> float4 keeps values, int -> float converts, float -> int truncates.
  const half4 hv = half4(a * 0.5f);
  const float4 back = float4(hv);  // 0.5 1 1.5 2
  for (int j = 0; j < 4; ++j) y[k++] = back[j];
  const int4 iv = int4(-3, 7, 100000, 0);
  const float4 fi = static_cast<float4>(iv);  // -3 7 100000 0
  for (int j = 0; j < 4; ++j) y[k++] = fi[j];
  const int4 tr = int4(float4(2.7f, -2.7f, 0.5f, 9.99f));  // 2 -2 0 9
  for (int j = 0; j < 4; ++j) y[k++] = float(tr[j]);
  // Math, component-wise.
  const float4 m = max(a, float4(2.5f)) + min(b, 6.0f) + clamp(a, 1.5f, 3.5f);  // 8 9.5 12.5 13.5
  for (int j = 0; j < 4; ++j) y[k++] = m[j];
  const float4 sq = sqrt(a * a);
  for (int j = 0; j < 4; ++j) y[k++] = sq[j];  // 1 2 3 4
  y[k++] = dot(a, b);                           // 70
  y[k++] = fma(a.x, b.x, 0.25f);                // 5.25
  y[k++] = mix(a.x, b.x, 0.25f);                // 2
  // Matrices: columns, matrix * vector.
  const float4x4 mm = float4x4(float4(1, 0, 0, 0), float4(0, 2, 0, 0), float4(0, 0, 3, 0), float4(1, 1, 1, 1));
  const float4 mv = mm * a;  // (1 + 4, 4 + 4, 9 + 4, 4)
  for (int j = 0; j < 4; ++j) y[k++] = mv[j];
  const half2x2 hm = half2x2(half2(1.0h, 2.0h), half2(3.0h, 4.0h));
  y[k++] = float(hm[1][0]);  // 3
  // as_type: bit casts.
  u[0] = as_type<uint>(a.y);                           // bits of 2.0f
  u[1] = as_type<uint>(half2(1.0h, -2.0h));            // 0xC0003C00
  const uint2 ub = as_type<uint2>(float2(1.0f, -0.0f));
  u[2] = ub.x;
  u[3] = ub.y;
  const packed_float3 pf = packed_float3(a.xyz);
  u[4] = uint(sizeof(pf)) + 100 * uint(sizeof(float3)) + 10000 * uint(sizeof(half4));  // 12 + 1600 + 80000
  u[5] = uint(popcount(0xF0F0u)) + 100 * uint(clz(1u)) + 10000 * uint(ctz(8u));        // 8 + 3100 + 30000
  y[k] = float(k);  // the count of values written before, as a check of the layout
}

// Per SIMD-group collectives on x; y[i] is lane i's result:
//   0 simd_sum  1 simd_max  2 simd_min  3 simd_shuffle(x, (lane * 7 + a) % width)
//   4 simd_shuffle_down(x, a)  5 simd_shuffle_up(x, a)  6 simd_shuffle_xor(x, a)
//   7 simd_broadcast(x, a)  8 simd_broadcast_first  9 simd_prefix_exclusive_sum
//   10 simd_prefix_inclusive_sum  11 simd_product  12 simd_all(x > a)  13 simd_any(x > a)
//   14 simd_and / 15 simd_or / 16 simd_xor of uint(int(x))  17 simd_sum of a float4 (x, 2x, -x, 1) summed
//   18 simd_shuffle of a half2  19 simd_max of an int  20 simd_ballot(x > a) low 16 bits
kernel void emu_test_simd(constant EmuTestArgs & args [[buffer(0)]], device const float * x [[buffer(1)]],
                          device float * y [[buffer(2)]], uint i [[thread_position_in_grid]],
                          ushort lane [[thread_index_in_simdgroup]], ushort width [[threads_per_simdgroup]]) {
  const float v = x[i];
  float r = 0.0f;
  switch (args.mode) {
    case 0: r = simd_sum(v); break;
    case 1: r = simd_max(v); break;
    case 2: r = simd_min(v); break;
    case 3: r = simd_shuffle(v, ushort((uint(lane) * 7 + args.a) % uint(width))); break;
    case 4: r = simd_shuffle_down(v, ushort(args.a)); break;
    case 5: r = simd_shuffle_up(v, ushort(args.a)); break;
    case 6: r = simd_shuffle_xor(v, ushort(args.a)); break;
    case 7: r = simd_broadcast(v, ushort(args.a)); break;
    case 8: r = simd_broadcast_first(v); break;
    case 9: r = simd_prefix_exclusive_sum(v); break;
    case 10: r = simd_prefix_inclusive_sum(v); break;
    case 11: r = simd_product(v); break;
    case 12: r = simd_all(v > float(args.a)) ? 1.0f : 0.0f; break;
    case 13: r = simd_any(v > float(args.a)) ? 1.0f : 0.0f; break;
    case 14: r = float(simd_and(uint(int(v)))); break;
    case 15: r = float(simd_or(uint(int(v)))); break;
    case 16: r = float(simd_xor(uint(int(v)))); break;
    case 17: {
      const float4 s = simd_sum(float4(v, 2.0f * v, -v, 1.0f));
      r = s.x + 10000.0f * s.y + 100.0f * s.z + 1000000.0f * s.w;
      break;
    }
    case 18: {
      const half2 h = simd_shuffle(half2(half(v), half(-v)), ushort((uint(lane) + 1) % uint(width)));
      r = float(h.x) - 1000.0f * float(h.y);
      break;
    }
    case 19: r = float(simd_max(int(v) - 50)); break;
    case 20: r = float(uint(uint64_t(simd_ballot(v > float(args.a)))) & 0xFFFFu); break;
  }
  y[i] = r;
}

// One SIMD-group: D = A B + C with 8x8 simdgroup matrices, stored to d.
//   A: loaded from device memory a_src with a.x = row stride, origin (b % 4, b / 4 % 4), transpose if mode & 1
//   B: copied to threadgroup memory (row stride 12) by the threads, loaded from there, transposed if mode & 2
//   C: loaded from device c_src (stride 8); mode & 4: C = make_filled(0.5)
//   mode & 8: A and B as half matrices (half x half -> float)
//   D stored to dst with row stride 10, transposed if mode & 16; mode & 32: D = A B only (simdgroup_multiply)
kernel void emu_test_matrix(constant EmuTestArgs & args [[buffer(0)]], device const float * a_src [[buffer(1)]],
                            device const float * b_src [[buffer(2)]], device const float * c_src [[buffer(3)]],
                            device float * dst [[buffer(4)]], device const half * ah_src [[buffer(5)]],
                            device const half * bh_src [[buffer(6)]], threadgroup float * tg [[threadgroup(0)]],
                            ushort tid [[thread_index_in_threadgroup]]) {
  threadgroup half * tgh = (threadgroup half *)(tg + 8 * 12);
  for (int e = int(tid); e < 8 * 12; e += 32) {
    tg[e] = b_src[e];
    tgh[e] = bh_src[e];
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const ulong2 origin = ulong2(args.b % 4, (args.b / 4) % 4);
  simdgroup_float8x8 c;
  if (args.mode & 4) {
    c = make_filled_simdgroup_matrix<float, 8, 8>(0.5f);
  } else {
    simdgroup_load(c, c_src);
  }
  simdgroup_float8x8 d;
  if (args.mode & 8) {
    simdgroup_half8x8 a, b;
    simdgroup_load(a, ah_src, args.a, origin, (args.mode & 1) != 0);
    simdgroup_load(b, tgh, 12, ulong2(0, 0), (args.mode & 2) != 0);
    if (args.mode & 32) {
      simdgroup_multiply(d, a, b);
    } else {
      simdgroup_multiply_accumulate(d, a, b, c);
    }
  } else {
    simdgroup_float8x8 a, b;
    simdgroup_load(a, a_src, args.a, origin, (args.mode & 1) != 0);
    simdgroup_load(b, tg, 12, ulong2(0, 0), (args.mode & 2) != 0);
    if (args.mode & 32) {
      simdgroup_multiply(d, a, b);
    } else {
      simdgroup_multiply_accumulate(d, a, b, c);
    }
  }
  simdgroup_store(d, dst, 10, ulong2(0, 0), (args.mode & 16) != 0);
}

// Reverses x within each threadgroup through threadgroup memory; mode 0 has the barrier, mode 1
// omits it (the bug the schedules must expose).
kernel void emu_test_tg_reverse(constant EmuTestArgs & args [[buffer(0)]], device const float * x [[buffer(1)]],
                                device float * y [[buffer(2)]], threadgroup float * tmp [[threadgroup(0)]],
                                uint tid [[thread_index_in_threadgroup]], uint n [[threads_per_threadgroup]],
                                uint3 tg [[threadgroup_position_in_grid]]) {
  const uint base = tg.x * n;
  tmp[tid] = x[base + tid];
  if (args.mode == 0) threadgroup_barrier(mem_flags::mem_threadgroup);
  y[base + tid] = tmp[n - 1 - tid];
}

// Every position attribute of every thread: 16 uints per thread at its linear index in the grid.
kernel void emu_test_positions(constant EmuTestArgs & args [[buffer(0)]], device uint * out [[buffer(1)]],
                               uint3 tpig [[thread_position_in_grid]], ushort3 tpitg [[thread_position_in_threadgroup]],
                               uint3 tgpig [[threadgroup_position_in_grid]], uint3 ntptg [[threads_per_threadgroup]],
                               uint3 ntgpg [[threadgroups_per_grid]], uint tiitg [[thread_index_in_threadgroup]],
                               ushort tiisg [[thread_index_in_simdgroup]], uint sgitg [[simdgroup_index_in_threadgroup]],
                               ushort ntpsg [[threads_per_simdgroup]], uint nsgptg [[simdgroups_per_threadgroup]],
                               uint2 tpig2 [[thread_position_in_grid]], uint gx [[thread_position_in_grid]]) {
  const uint3 grid_threads = ntptg * ntgpg;
  device uint * o = out + 16 * (tpig.x + grid_threads.x * (tpig.y + grid_threads.y * tpig.z));
  o[0] = tpig.x; o[1] = tpig.y; o[2] = tpig.z;
  o[3] = tpitg.x; o[4] = tpitg.y; o[5] = tpitg.z;
  o[6] = tgpig.x; o[7] = tgpig.y; o[8] = tgpig.z;
  o[9] = tiitg; o[10] = tiisg; o[11] = sgitg; o[12] = ntpsg; o[13] = nsgptg;
  o[14] = ntptg.x * 10000 + ntptg.y * 100 + ntptg.z + 1000000 * ntgpg.x;
  o[15] = (tpig2.y == tpig.y && gx == tpig.x) ? 1u : 0u;
}

// Wrong uses of collectives and barriers; each must be reported at the marked line.
//   0: lanes < 16 at one simd_sum, the others at another  1: lanes < 16 at a simd_sum, the others finish
//   2: a barrier inside `if (tid < 16)`                   3: thread 5 returns before a barrier
//   4: lanes < 16 at a barrier, the others at a simd_sum (a deadlock)
//   5: simd_broadcast from a lane that differs across lanes
//   6: simdgroup_load from a pointer that differs across lanes
//   7: SIMD-group 0 at one threadgroup barrier, SIMD-group 1 at another
kernel void emu_test_misuse(constant EmuTestArgs & args [[buffer(0)]], device float * y [[buffer(1)]],
                            uint tid [[thread_index_in_threadgroup]], ushort lane [[thread_index_in_simdgroup]]) {
  float r = 0.0f;
  if (args.mode == 0) {
    if (lane < 16) {
      r = simd_sum(1.0f);  // @misuse-sum-a
    } else {
      r = simd_sum(2.0f);  // @misuse-sum-b
    }
  } else if (args.mode == 1) {
    if (lane < 16) r = simd_sum(1.0f);  // @misuse-sum-half
  } else if (args.mode == 2) {
    if (tid < 16) threadgroup_barrier(mem_flags::mem_threadgroup);  // @misuse-barrier-if
  } else if (args.mode == 3) {
    if (tid == 5) return;
    threadgroup_barrier(mem_flags::mem_threadgroup);  // @misuse-barrier-return
  } else if (args.mode == 4) {
    if (lane < 16) {
      threadgroup_barrier(mem_flags::mem_threadgroup);  // @misuse-deadlock-barrier
    } else {
      r = simd_max(3.0f);  // @misuse-deadlock-simd
    }
  } else if (args.mode == 5) {
    r = simd_broadcast(1.0f, ushort(lane / 8));  // @misuse-broadcast
  } else if (args.mode == 6) {
    simdgroup_float8x8 m;
    simdgroup_load(m, y + 64 * (lane / 16));  // @misuse-matrix
  } else if (args.mode == 7) {
    if (tid < 32) {
      threadgroup_barrier(mem_flags::mem_threadgroup);  // @misuse-barrier-a
    } else {
      threadgroup_barrier(mem_flags::mem_device);  // @misuse-barrier-b
    }
  }
  y[tid] = r;
}

// Writes y[n] (one past the end of a buffer of n floats) when mode == 1, y[n - 1] otherwise.
kernel void emu_test_write_end(constant EmuTestArgs & args [[buffer(0)]], device float * y [[buffer(1)]],
                               uint i [[thread_position_in_grid]]) {
  if (i == 0) y[args.mode == 1 ? args.n : args.n - 1] = 7.0f;
}

// Thread 0 reports where its threadgroup memory is and what it holds before any write:
// out[0] = its address, out[1] = the bits of tg[0] as float, out[2] = the bits of its first half.
kernel void emu_test_tg_memory(constant EmuTestArgs & args [[buffer(0)]], device ulong * out [[buffer(1)]],
                               threadgroup float * tg [[threadgroup(0)]], uint tid [[thread_index_in_threadgroup]]) {
  if (tid != 0) return;
  out[0] = ulong(uintptr_t(tg));  // C++ only: the emulator's view of the threadgroup memory
  out[1] = as_type<uint>(tg[0]);
  out[2] = as_type<ushort>(((threadgroup half *)tg)[0]);
}
