// The KV cache and attention kernels (host side: attention.cpp).
//
// Cache layout (engine/src/kv_cache.hpp), per KV head: K as [n_ctx / 32][head_dim][32] (blocks of
// 32 positions, transposed: lane l of a SIMD-group reads position 32 b + l of dim d, so a block's
// 32 scores are one coalesced read per dim), V as [n_ctx][head_dim]. Elements f16 or f32 (the
// kernel's name says which); every product and sum is float (docs/METAL.md rule 9: q . k of
// |q|, |k| ~ 300 is ~6e6, far past half's 65504).
//
// Attention: out[t][h] = softmax(q[t][h] . K[0 .. pos0 + t] * scale) . V[0 .. pos0 + t], query
// head h reading KV head h / (n_head / n_head_kv). Two paths (attention.cpp picks by n_tok):
//   decode  (n_tok <= 8)  split-KV: kernel_attn_decode_* runs one SIMD-group per (query head,
//           row, split), a split being a run of whole K blocks, and writes (m, l, o[head_dim]):
//           its running max, sum of exp(s - m) and sum of exp(s - m) v; kernel_attn_reduce
//           rescales the splits by exp(m_i - M) and divides.
//   prefill (larger)      kernel_attn_prefill_*: a threadgroup of 8 SIMD-groups per (KV head, 8
//           consecutive (row, query head of the group) pairs); K and V tiles of 32 positions (16
//           for an f32 cache with head_dim > 128) staged in threadgroup memory, shared by the 8
//           rows; online softmax per row, causal (row t sees positions <= pos0 + t).
// Both: scores s = (q . k) * scale in float, q held in registers (lane l: dims l, l + 32, ...)
// and broadcast by simd_shuffle; running maxima start at -FLT_MAX / 2 (an empty split, a masked
// lane: exp(-huge) = 0, never NaN); masked positions are selected away, never multiplied by 0
// (cache rows past the filled positions may hold anything, NaN included). head_dim <= 256.
#include <metal_stdlib>
using namespace metal;

#include "args.h"

constant constexpr int kKeyBlock = 32;                      // positions per K block (kv_cache.hpp)
constant constexpr int kMaxHeadDim = 256;
constant constexpr int kDimsPerLane = kMaxHeadDim / 32;     // q / output dims a lane holds
constant constexpr int kPrefillRows = 8;                    // SIMD-groups (rows) per prefill threadgroup
constant constexpr float kNegLarge = -FLT_MAX / 2;

// ---- kv_store ------------------------------------------------------------------------------------

// float -> f16 as kernels::fp32_to_fp16: round to nearest even (the conversion's mode), >= 65520
// to Inf, NaN to the quiet NaN 0x7E00 with its sign (the bit test survives fast math).
inline void kv_put(device half * p, float x) {
  const uint bits = as_type<uint>(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
    *p = as_type<half>(ushort(((bits >> 16) & 0x8000u) | 0x7E00u));
  } else {
    *p = half(x);
  }
}

inline void kv_put(device float * p, float x) { *p = x; }

// One thread per element of a row's KV heads: grid (n_head_kv * head_dim / threads, n_tok).
template <typename T>
inline void kv_store(constant KvStoreArgs & args, device const float * k, device const float * v, device T * k0,
                     device T * v0, uint3 gid) {
  const int hd = args.head_dim;
  if (gid.x >= uint(args.n_head_kv * hd) || gid.y >= uint(args.n_tok)) return;
  const int e = int(gid.x), t = int(gid.y);
  const int kv_head = e / hd, d = e % hd;
  const int pos = args.pos0 + t;
  device T * kh = k0 + uint64_t(kv_head) * args.head_elems;
  device T * vh = v0 + uint64_t(kv_head) * args.head_elems;
  kv_put(kh + uint64_t(pos / kKeyBlock) * uint64_t(hd) * kKeyBlock + uint64_t(d) * kKeyBlock + uint64_t(pos % kKeyBlock),
         k[uint64_t(t) * uint64_t(args.ldk) + uint64_t(e)]);
  kv_put(vh + uint64_t(pos) * uint64_t(hd) + uint64_t(d), v[uint64_t(t) * uint64_t(args.ldv) + uint64_t(e)]);
}

kernel void kernel_kv_store_f16(constant KvStoreArgs & args [[buffer(0)]], device const float * k [[buffer(1)]],
                                device const float * v [[buffer(2)]], device half * k0 [[buffer(3)]],
                                device half * v0 [[buffer(4)]], uint3 gid [[thread_position_in_grid]]) {
  kv_store(args, k, v, k0, v0, gid);
}

kernel void kernel_kv_store_f32(constant KvStoreArgs & args [[buffer(0)]], device const float * k [[buffer(1)]],
                                device const float * v [[buffer(2)]], device float * k0 [[buffer(3)]],
                                device float * v0 [[buffer(4)]], uint3 gid [[thread_position_in_grid]]) {
  kv_store(args, k, v, k0, v0, gid);
}

// ---- shared pieces -------------------------------------------------------------------------------

// Lane l's dims of query row t, head h: q[32 j + l] for j < kDimsPerLane (0 past head_dim).
inline void load_query(constant AttentionArgs & args, device const float * q, int t, int h, bool active, ushort lane,
                       thread float * qr) {
  device const float * qh = q + uint64_t(t) * uint64_t(args.ldq) + uint64_t(h) * uint64_t(args.head_dim);
  for (int j = 0; j < kDimsPerLane; ++j) {
    const int d = 32 * j + int(lane);
    qr[j] = active && d < args.head_dim ? qh[d] : 0.0f;
  }
}

// The online-softmax state of one row in one SIMD-group: running max m, sum l of exp(s - m), and
// lane l's dims of sum exp(s - m) v.
struct SoftmaxState {
  float m;
  float l;
  float o[kDimsPerLane];
};

inline void state_init(thread SoftmaxState & st) {
  st.m = kNegLarge;
  st.l = 0.0f;
  for (int j = 0; j < kDimsPerLane; ++j) st.o[j] = 0.0f;
}

// Lane c's score against the key in column c of a K tile (`kt`: head_dim rows, `ld` elements
// apart): sum over d of q[d] k[d], q broadcast from the lanes holding it. Every lane calls it.
template <typename K>
inline float tile_score(thread const float * qr, K kt, int ld, int c, int hd) {
  float s = 0.0f;
  for (int j = 0; j < kDimsPerLane; ++j) {
    if (32 * j >= hd) break;  // uniform: hd is the same in every lane
    const int n = min(32, hd - 32 * j);
    for (int i = 0; i < n; ++i) s += simd_shuffle(qr[j], ushort(i)) * float(kt[(32 * j + i) * ld + c]);
  }
  return s;
}

// Folds one tile's scores into the state: s (this lane's score, already scaled), valid (this lane's
// position is visible), then the value rows 0 .. n_valid - 1 of the tile (`vt`: rows ld apart).
// Uniform: every lane of the SIMD-group calls it with the same n_valid.
template <typename V>
inline void state_update(thread SoftmaxState & st, float s, bool valid, V vt, int ld, int n_valid, int hd,
                         ushort lane) {
  s = valid ? s : kNegLarge;
  const float m_new = max(st.m, simd_max(s));
  const float alpha = precise::exp(st.m - m_new);  // 0 on the first tile (st.m = -FLT_MAX / 2)
  const float w = valid ? precise::exp(s - m_new) : 0.0f;
  st.l = st.l * alpha + simd_sum(w);
  for (int j = 0; j < kDimsPerLane; ++j) st.o[j] *= alpha;
  for (int i = 0; i < n_valid; ++i) {
    const float wi = simd_shuffle(w, ushort(i));
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int d = 32 * j + int(lane);
      if (d < hd) st.o[j] += wi * float(vt[i * ld + d]);
    }
  }
  st.m = m_new;
}

// ---- decode: split-KV ----------------------------------------------------------------------------

// One SIMD-group per (query head, row, split): grid (n_head, n_tok, n_splits). Split `split` takes
// K blocks [split * per_split, (split + 1) * per_split) of the step's ceil((pos0 + n_tok) / 32),
// clipped to the row's positions; its (m, l, o) go to scratch entry (row, head, split) of
// head_dim + 2 floats.
template <typename T>
inline void attn_decode(constant AttentionArgs & args, device const float * q, device const T * k0,
                        device const T * v0, device float * scratch, uint3 tg_pos, ushort lane) {
  const int h = int(tg_pos.x), t = int(tg_pos.y), split = int(tg_pos.z);
  const int hd = args.head_dim;
  const int kv_head = h / (args.n_head / args.n_head_kv);
  const int n_pos = args.pos0 + t + 1;
  const int n_blocks = (args.pos0 + args.n_tok + kKeyBlock - 1) / kKeyBlock;
  const int per_split = (n_blocks + args.n_splits - 1) / args.n_splits;
  const int b_begin = split * per_split;
  const int b_end = min(b_begin + per_split, (n_pos + kKeyBlock - 1) / kKeyBlock);

  float qr[kDimsPerLane];
  load_query(args, q, t, h, true, lane, qr);
  SoftmaxState st;
  state_init(st);
  device const T * kh = k0 + uint64_t(kv_head) * args.head_elems;
  device const T * vh = v0 + uint64_t(kv_head) * args.head_elems;
  for (int b = b_begin; b < b_end; ++b) {  // uniform: the same bounds in every lane
    device const T * kb = kh + uint64_t(b) * uint64_t(hd) * kKeyBlock;
    const float s = tile_score(qr, kb, kKeyBlock, int(lane), hd) * args.scale;
    const int p = b * kKeyBlock + int(lane);
    state_update(st, s, p < n_pos, vh + uint64_t(b) * kKeyBlock * uint64_t(hd), hd,
                 min(kKeyBlock, n_pos - b * kKeyBlock), hd, lane);
  }
  device float * part =
      scratch + ((uint64_t(t) * uint64_t(args.n_head) + uint64_t(h)) * uint64_t(args.n_splits) + uint64_t(split)) *
                    uint64_t(hd + 2);
  if (lane == 0) {
    part[0] = st.m;
    part[1] = st.l;
  }
  for (int j = 0; j < kDimsPerLane; ++j) {
    const int d = 32 * j + int(lane);
    if (d < hd) part[2 + d] = st.o[j];
  }
}

kernel void kernel_attn_decode_f16(constant AttentionArgs & args [[buffer(0)]], device const float * q [[buffer(1)]],
                                   device const half * k0 [[buffer(2)]], device const half * v0 [[buffer(3)]],
                                   device float * scratch [[buffer(5)]], uint3 tg_pos [[threadgroup_position_in_grid]],
                                   ushort lane [[thread_index_in_simdgroup]]) {
  attn_decode(args, q, k0, v0, scratch, tg_pos, lane);
}

kernel void kernel_attn_decode_f32(constant AttentionArgs & args [[buffer(0)]], device const float * q [[buffer(1)]],
                                   device const float * k0 [[buffer(2)]], device const float * v0 [[buffer(3)]],
                                   device float * scratch [[buffer(5)]], uint3 tg_pos [[threadgroup_position_in_grid]],
                                   ushort lane [[thread_index_in_simdgroup]]) {
  attn_decode(args, q, k0, v0, scratch, tg_pos, lane);
}

// One SIMD-group per (query head, row): grid (n_head, n_tok). Lane i holds split i (n_splits <=
// 32): M = max m_i, w_i = exp(m_i - M), out = sum w_i o_i / sum w_i l_i. Empty splits (l = 0,
// m = -FLT_MAX / 2) get w_i = 0.
kernel void kernel_attn_reduce(constant AttentionArgs & args [[buffer(0)]], device float * out [[buffer(4)]],
                               device const float * scratch [[buffer(5)]],
                               uint3 tg_pos [[threadgroup_position_in_grid]],
                               ushort lane [[thread_index_in_simdgroup]]) {
  const int h = int(tg_pos.x), t = int(tg_pos.y);
  const int hd = args.head_dim, stride = hd + 2;
  device const float * parts =
      scratch + (uint64_t(t) * uint64_t(args.n_head) + uint64_t(h)) * uint64_t(args.n_splits) * uint64_t(stride);
  const bool mine = int(lane) < args.n_splits;
  const float m = mine ? parts[int(lane) * stride] : kNegLarge;
  const float l = mine ? parts[int(lane) * stride + 1] : 0.0f;
  const float m_all = simd_max(m);
  const float w = mine ? precise::exp(m - m_all) : 0.0f;
  const float l_all = simd_sum(w * l);
  float o[kDimsPerLane];
  for (int j = 0; j < kDimsPerLane; ++j) o[j] = 0.0f;
  for (int i = 0; i < args.n_splits; ++i) {
    const float wi = simd_shuffle(w, ushort(i));
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int d = 32 * j + int(lane);
      if (d < hd) o[j] += wi * parts[i * stride + 2 + d];
    }
  }
  const float inv = l_all > 0.0f ? precise::divide(1.0f, l_all) : 0.0f;
  device float * oh = out + uint64_t(t) * uint64_t(args.ldo) + uint64_t(h) * uint64_t(hd);
  for (int j = 0; j < kDimsPerLane; ++j) {
    const int d = 32 * j + int(lane);
    if (d < hd) oh[d] = o[j] * inv;
  }
}

// ---- prefill -------------------------------------------------------------------------------------

// Positions per staged tile: 32 (one K block) unless K and V tiles of 32 would pass 32 KiB (an
// f32 cache with head_dim > 128). attention.cpp sizes threadgroup memory by the same rule.
inline int prefill_tile(int hd, int elem_bytes) { return 2 * hd * kKeyBlock * elem_bytes <= 32768 ? kKeyBlock : 16; }

// Threadgroup (tg_pos.x, kv_head = tg_pos.y): SIMD-group sg takes pair slot = 8 tg_pos.x + sg of
// the step's (row t, query head j of the group) pairs, slot = t * group + j; slots past the last
// pair only help load tiles. Threadgroup memory: the K tile [head_dim][tp], then the V tile
// [tp][head_dim], elements as the cache's.
template <typename T>
inline void attn_prefill(constant AttentionArgs & args, device const float * q, device const T * k0,
                         device const T * v0, device float * out, threadgroup T * tile, uint3 tg_pos, uint tid,
                         ushort sg, ushort lane) {
  const int hd = args.head_dim;
  const int group = args.n_head / args.n_head_kv;
  const int kv_head = int(tg_pos.y);
  const int n_slots = args.n_tok * group;
  const int slot0 = int(tg_pos.x) * kPrefillRows;
  const int slot = slot0 + int(sg);
  const bool active = slot < n_slots;  // uniform per SIMD-group
  const int t = active ? slot / group : 0;
  const int h = kv_head * group + (active ? slot % group : 0);
  const int n_pos = args.pos0 + t + 1;
  const int n_pos_tg = args.pos0 + (min(slot0 + kPrefillRows, n_slots) - 1) / group + 1;  // the last row's
  const int tp = prefill_tile(hd, int(sizeof(T)));
  threadgroup T * kt = tile;            // [hd][tp]
  threadgroup T * vt = tile + hd * tp;  // [tp][hd]
  const int n_threads = kPrefillRows * 32;

  float qr[kDimsPerLane];
  load_query(args, q, t, h, active, lane, qr);
  SoftmaxState st;
  state_init(st);
  device const T * kh = k0 + uint64_t(kv_head) * args.head_elems;
  device const T * vh = v0 + uint64_t(kv_head) * args.head_elems;
  for (int p0 = 0; p0 < n_pos_tg; p0 += tp) {  // uniform in the threadgroup
    threadgroup_barrier(mem_flags::mem_threadgroup);  // every SIMD-group is done with the last tile
    device const T * kb = kh + uint64_t(p0 / kKeyBlock) * uint64_t(hd) * kKeyBlock + uint64_t(p0 % kKeyBlock);
    for (int e = int(tid); e < hd * tp; e += n_threads) kt[e] = kb[(e / tp) * kKeyBlock + e % tp];
    device const T * vb = vh + uint64_t(p0) * uint64_t(hd);
    for (int e = int(tid); e < tp * hd; e += n_threads) vt[e] = vb[e];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (active && p0 < n_pos) {  // uniform per SIMD-group
      const float s = tile_score(qr, kt, tp, int(lane) % tp, hd) * args.scale;
      state_update(st, s, int(lane) < tp && p0 + int(lane) < n_pos, vt, hd, min(tp, n_pos - p0), hd, lane);
    }
  }
  if (active) {
    const float inv = st.l > 0.0f ? precise::divide(1.0f, st.l) : 0.0f;
    device float * oh = out + uint64_t(t) * uint64_t(args.ldo) + uint64_t(h) * uint64_t(hd);
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int d = 32 * j + int(lane);
      if (d < hd) oh[d] = st.o[j] * inv;
    }
  }
}

kernel void kernel_attn_prefill_f16(constant AttentionArgs & args [[buffer(0)]], device const float * q [[buffer(1)]],
                                    device const half * k0 [[buffer(2)]], device const half * v0 [[buffer(3)]],
                                    device float * out [[buffer(4)]], threadgroup half * tile [[threadgroup(0)]],
                                    uint3 tg_pos [[threadgroup_position_in_grid]],
                                    uint tid [[thread_index_in_threadgroup]],
                                    ushort sg [[simdgroup_index_in_threadgroup]],
                                    ushort lane [[thread_index_in_simdgroup]]) {
  attn_prefill(args, q, k0, v0, out, tile, tg_pos, tid, sg, lane);
}

kernel void kernel_attn_prefill_f32(constant AttentionArgs & args [[buffer(0)]], device const float * q [[buffer(1)]],
                                    device const float * k0 [[buffer(2)]], device const float * v0 [[buffer(3)]],
                                    device float * out [[buffer(4)]], threadgroup float * tile [[threadgroup(0)]],
                                    uint3 tg_pos [[threadgroup_position_in_grid]],
                                    uint tid [[thread_index_in_threadgroup]],
                                    ushort sg [[simdgroup_index_in_threadgroup]],
                                    ushort lane [[thread_index_in_simdgroup]]) {
  attn_prefill(args, q, k0, v0, out, tile, tg_pos, tid, sg, lane);
}
