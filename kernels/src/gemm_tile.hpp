// Internal: the weight tiles of the prefill GEMM kernels (kernels_avx2.cpp: 8 rows per tile,
// kernels_avx512.cpp: 16) and the loop that drives them. ISA-neutral; included by the ISA files,
// so it compiles with their instruction set.
//
// A tile holds TR weight rows over the whole K range, unpacked once and then used for every
// activation row. Per 256-element block:
//   64 group vectors: group g = elements 4g..4g+3 of the block, TR rows x 4 quant bytes (row r
//     at bytes 4r..4r+3), so one broadcast 32-bit activation word and one 8-bit dot-product
//     instruction serve TR rows at once;
//   then per-row float scale vectors (TR lanes each):
//     Q4_K, Q5_K: 8 x d*sc_j, 4 x int16 pairs (m_2p, m_2p+1) (the mins, for a 16-bit dot with
//           the activations' 32-element sums), 1 x dmin;
//     Q6_K: 16 x d*s_j;
//     Q3_K, Q2_K (integer scales, summed in 32 bits, one float product per block): 16 x int16
//           (s_j, s_j) (the scale twice, for a 16-bit dot with the 16-bit partial sums), 8 x
//           int16 pairs (Q3_K: s_2p, s_2p+1, for its offset; Q2_K: the mins m_2p, m_2p+1), both
//           against Q8_K's own 16-element bsums, 1 x d, and for Q2_K 1 x dmin
//           (Q3_K s_j = sc_j - 32, Q2_K s_j = sc_j).
// Quants are stored unsigned (Q6_K 0..63 for q - 32, Q3_K 0..7 for q - 4); the tile kernels take
// the offset back through the activations' bsums.
// Rows past the end of the matrix are zero.
//
// Everything here has internal linkage (anonymous namespace, no std containers): the ISA files
// are compiled with different instruction sets, and an inline function or template instance with
// external linkage would be merged by the linker into one copy, maybe the AVX-512 one, which an
// AVX2-only CPU cannot run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <cstdlib>
#include <type_traits>

#include "edgellm/kernels/blocks.hpp"
#include "edgellm/kernels/quants.hpp"

namespace edgellm::kernels::gemm {
namespace {

template <int TR>
struct Tile {
  static constexpr size_t group_bytes = 4 * TR;
  static constexpr size_t quant_bytes = 64 * group_bytes;
  static constexpr size_t vec_bytes = 4 * TR;  // TR floats or TR int16 pairs
  // Scale vectors per block, and where the mins and dmin vectors start (see the top).
  template <typename Block>
  static constexpr int scale_vecs() {
    if constexpr (std::is_same_v<Block, block_q4_K> || std::is_same_v<Block, block_q5_K>) return 8 + 4 + 1;
    else if constexpr (std::is_same_v<Block, block_q3_K>) return 16 + 8 + 1;
    else if constexpr (std::is_same_v<Block, block_q2_K>) return 16 + 8 + 2;
    else return 16;
  }
  template <typename Block>
  static constexpr int mins_vec() {
    return std::is_same_v<Block, block_q2_K> || std::is_same_v<Block, block_q3_K> ? 16 : 8;
  }
  template <typename Block>
  static constexpr size_t block_bytes() {
    return quant_bytes + scale_vecs<Block>() * vec_bytes;
  }
  // Scale vectors of a block start right after its quants.
  static uint8_t* vec(uint8_t* tb, int k) { return tb + quant_bytes + k * vec_bytes; }
  static float* dsc(uint8_t* tb, int j) { return reinterpret_cast<float*>(tb + quant_bytes + j * vec_bytes); }
  template <typename Block = block_q4_K>
  static int16_t* mins(uint8_t* tb, int p) {
    return reinterpret_cast<int16_t*>(tb + quant_bytes + (mins_vec<Block>() + p) * vec_bytes);
  }
  template <typename Block = block_q4_K>
  static float* dmin(uint8_t* tb) {
    return reinterpret_cast<float*>(tb + quant_bytes + (scale_vecs<Block>() - 1) * vec_bytes);
  }
};

// Puts TR rows' 256 quants each (q[r * 256 + k], element order) into the block's group vectors:
// group g, lane r = q[r * 256 + 4 g .. 4 g + 3]. This is a TR x 64 transpose of 32-bit words.
template <int TR>
inline void scatter_rows(const uint8_t* q, uint8_t* tb) {
  for (int r = 0; r < TR; ++r)
    for (int g = 0; g < 64; ++g) std::memcpy(tb + g * Tile<TR>::group_bytes + 4 * r, q + r * QK_K + 4 * g, 4);
}

// One row's scale vectors (lane r) of a block, per type (see the top).
template <int TR>
inline void pack_scales(const block_q4_K& x, uint8_t* tb, int r) {
  using T = Tile<TR>;
  const float d = fp16_to_fp32(x.d);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    q4_K_scale_min(x.scales, j, &sc, &m);
    T::dsc(tb, j)[r] = d * sc;
    T::mins(tb, j / 2)[2 * r + (j & 1)] = m;
  }
  T::dmin(tb)[r] = fp16_to_fp32(x.dmin);
}

template <int TR>
inline void pack_scales(const block_q5_K& x, uint8_t* tb, int r) {  // Q4_K's fields
  using T = Tile<TR>;
  const float d = fp16_to_fp32(x.d);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    q4_K_scale_min(x.scales, j, &sc, &m);
    T::dsc(tb, j)[r] = d * sc;
    T::template mins<block_q5_K>(tb, j / 2)[2 * r + (j & 1)] = m;
  }
  T::template dmin<block_q5_K>(tb)[r] = fp16_to_fp32(x.dmin);
}

template <int TR>
inline void pack_scales(const block_q6_K& x, uint8_t* tb, int r) {
  const float d = fp16_to_fp32(x.d);
  for (int j = 0; j < 16; ++j) Tile<TR>::dsc(tb, j)[r] = d * x.scales[j];
}

// Q3_K / Q2_K: the 16 integer scales s_j twice per lane, the pairs, d (and Q2_K's dmin).
template <int TR, typename Block>
inline void pack_int_scales(const int16_t (&s)[16], const int16_t (&pairs)[16], float d, uint8_t* tb, int r) {
  using T = Tile<TR>;
  for (int j = 0; j < 16; ++j) {
    auto* sc = reinterpret_cast<int16_t*>(T::vec(tb, j));
    sc[2 * r] = sc[2 * r + 1] = s[j];
    T::template mins<Block>(tb, j / 2)[2 * r + (j & 1)] = pairs[j];
  }
  reinterpret_cast<float*>(T::vec(tb, 24))[r] = d;
}

template <int TR>
inline void pack_scales(const block_q3_K& x, uint8_t* tb, int r) {
  int16_t s[16];
  for (int j = 0; j < 16; ++j) s[j] = static_cast<int16_t>(q3_K_scale(x.scales, j) - 32);
  pack_int_scales<TR, block_q3_K>(s, s, fp16_to_fp32(x.d), tb, r);
}

template <int TR>
inline void pack_scales(const block_q2_K& x, uint8_t* tb, int r) {
  int16_t s[16], m[16];
  for (int j = 0; j < 16; ++j) s[j] = static_cast<int16_t>(x.scales[j] & 0xF), m[j] = static_cast<int16_t>(x.scales[j] >> 4);
  pack_int_scales<TR, block_q2_K>(s, m, fp16_to_fp32(x.d), tb, r);
  Tile<TR>::template dmin<block_q2_K>(tb)[r] = fp16_to_fp32(x.dmin);
}

// U: the ISA's unpacker: U::q4_K / q5_K / q6_K / q3_K / q2_K(block, q) give a block's 256 quants
// in element order (unsigned, see the top), U::groups(q, tb) does scatter_rows<TR> (an ISA may
// transpose with shuffles); an ISA only needs the unpackers of the types it has tiles for.
// Packing goes block by block: every row's block b, then its transpose, then the rows' scales.
template <int TR, typename Block, typename U>
void pack(const uint8_t* w, size_t w_row_bytes, int rows, int64_t nb, uint8_t* tile) {
  using T = Tile<TR>;
  std::memset(tile, 0, nb * T::template block_bytes<Block>());
  alignas(64) uint8_t q[TR * QK_K] = {};
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* tb = tile + b * T::template block_bytes<Block>();
    for (int r = 0; r < rows; ++r) {
      const auto& x = reinterpret_cast<const Block*>(w + r * w_row_bytes)[b];
      if constexpr (std::is_same_v<Block, block_q4_K>) U::q4_K(x, q + r * QK_K);
      else if constexpr (std::is_same_v<Block, block_q5_K>) U::q5_K(x, q + r * QK_K);
      else if constexpr (std::is_same_v<Block, block_q6_K>) U::q6_K(x, q + r * QK_K);
      else if constexpr (std::is_same_v<Block, block_q3_K>) U::q3_K(x, q + r * QK_K);
      else U::q2_K(x, q + r * QK_K);
      pack_scales<TR>(x, tb, r);
    }
    U::groups(q, tb);  // rows past `rows` are zero (q starts zeroed and only rows < rows change)
  }
}

// Per-thread scratch (tile + activation sums), 64-byte aligned, kept between calls (pool threads
// are persistent) and freed at thread exit.
struct Scratch {
  uint8_t* data = nullptr;
  size_t size = 0;
  ~Scratch() { std::free(data); }
};

inline uint8_t* scratch(size_t bytes) {
  thread_local Scratch s;
  if (s.size < bytes) {
    const size_t size = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, size);
    if (!p) throw std::bad_alloc();
    std::free(s.data);
    s.data = static_cast<uint8_t*>(p);
    s.size = size;
  }
  return s.data;
}

// Rows<na>::run(args...) for the na (1..PASS, PASS 4 or 8) activation rows of one pass.
template <template <int> class Rows, int PASS, typename... Args>
void run_rows(int na, Args... args) {
  switch (na) {
    case 8: if constexpr (PASS >= 8) Rows<PASS >= 8 ? 8 : 1>::run(args...); break;
    case 7: if constexpr (PASS >= 8) Rows<PASS >= 8 ? 7 : 1>::run(args...); break;
    case 6: if constexpr (PASS >= 8) Rows<PASS >= 8 ? 6 : 1>::run(args...); break;
    case 5: if constexpr (PASS >= 8) Rows<PASS >= 8 ? 5 : 1>::run(args...); break;
    case 4: Rows<4>::run(args...); break;
    case 3: Rows<3>::run(args...); break;
    case 2: Rows<2>::run(args...); break;
    default: Rows<1>::run(args...); break;
  }
}

// The prefill matmul tile: for each TR-row weight tile, pack it (unpacker U), then run Rows<NA>::run over the
// activation rows, PASS (4 or 8) at a time. Rows<NA>::run(tile, nb, a[NA], bs[NA], out[NA * TR])
// computes the TR dot products of each of NA activation rows; bs[i] are row i's 32-element
// sub-block sums (8 int16 per block, for the Q4_K / Q5_K mins; other types leave them unused).
template <int TR, typename Block, template <int> class Rows, typename U, int PASS = 4>
void matmul_tiles(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* a,
                  size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  using T = Tile<TR>;
  const int64_t nb = n / QK_K;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  const size_t tile_bytes = nb * T::template block_bytes<Block>();
  uint8_t* tile = scratch(tile_bytes + n_act * nb * 8 * sizeof(int16_t));
  auto* bs_all = reinterpret_cast<int16_t*>(tile + tile_bytes);
  const auto act = [&](int64_t i) { return reinterpret_cast<const block_q8_K*>(ab + i * a_row_bytes); };
  if constexpr (std::is_same_v<Block, block_q4_K> || std::is_same_v<Block, block_q5_K>) {
    for (int64_t i = 0; i < n_act; ++i)
      for (int64_t b = 0; b < nb; ++b)
        for (int j = 0; j < 8; ++j)
          bs_all[(i * nb + b) * 8 + j] = static_cast<int16_t>(act(i)[b].bsums[2 * j] + act(i)[b].bsums[2 * j + 1]);
  }
  for (int64_t r0 = 0; r0 < n_rows; r0 += TR) {
    const int rows = static_cast<int>(n_rows - r0 < TR ? n_rows - r0 : TR);
    pack<TR, Block, U>(wb + r0 * w_row_bytes, w_row_bytes, rows, nb, tile);
    for (int64_t i = 0; i < n_act; i += PASS) {
      const int na = static_cast<int>(n_act - i < PASS ? n_act - i : PASS);
      const block_q8_K* ap[PASS];
      const int16_t* bp[PASS];
      alignas(64) float out[PASS * TR];
      for (int k = 0; k < na; ++k) ap[k] = act(i + k), bp[k] = bs_all + (i + k) * nb * 8;
      run_rows<Rows, PASS>(na, tile, nb, ap, bp, out);
      for (int k = 0; k < na; ++k) std::memcpy(y + (i + k) * ldy + r0, out + k * TR, rows * sizeof(float));
    }
  }
}


// ---- 32-element formats: Q8_0, Q4_0, Q5_0, IQ4_NL (Q8_0 activations), Q4_1, Q5_1 (Q8_1) ----
// Rows may be any whole number of 32-element blocks (1152, 896: the widths that make llama.cpp
// fall back from the K-quants), so a tile holds TR weight rows block by block:
//   G group vectors of TR lanes x 4 bytes, in one of two layouts:
//     Layout32::u8 (G = 8, for vpdpbusd): lane r = 4 consecutive quants of row r as unsigned bytes
//       q + Small<B>::offset (every type's integer level fits a byte that way);
//     Layout32::s16 (G = 16, for vpmaddwd): lane r = 2 consecutive levels as int16 (no offset: the
//       8-bit dot products without VNNI saturate on Q8_0's full range, 16-bit products are exact);
//   then 1 float vector d (lane r = row r's scale) and, for Q4_1 / Q5_1, 1 float vector m.
// The activation side is prepared once per call for every row and block (Act32): its d, Q8_1's s,
// and for the u8 layout -offset * sum(q), where the block's integer sum starts; for the s16 layout
// the activation quants widened to int16.

// The 4-bit quants of a 32-element block in element order (low nibbles, then high nibbles).
inline void raw_nibbles(const uint8_t* qs, uint8_t* u) {
  for (int i = 0; i < 16; ++i) u[i] = qs[i] & 0xF, u[i + 16] = qs[i] >> 4;
}
// Q5_0 / Q5_1: the nibbles plus each element's 5th bit.
inline void raw_q5(const uint8_t* qs, const uint8_t* qh, uint8_t* u) {
  const uint32_t h = q5_high_bits(qh);
  raw_nibbles(qs, u);
  for (int e = 0; e < 32; ++e) u[e] = static_cast<uint8_t>(u[e] | ((h >> e) & 1) << 4);
}

// Per-type facts: the activation form, the unsigned offset of the u8 layout and raw(x, u), the
// block's 32 bytes in that layout (element order); the integer levels are raw - offset. Q4_0 and
// Q4_1 have the same raw quants (raw_nibbles), as have Q5_0 and Q5_1 (raw_q5): the _0 types
// centre them with the offset (8, 16), the _1 types keep them (offset 0; their min m shifts
// them). Q8_0 and IQ4_NL are the exceptions: their levels are signed, raw is level + 128.
template <typename B>
struct Small;
template <>
struct Small<block_q8_0> {
  using Act = block_q8_0;
  static constexpr int offset = 128;
  static void raw(const block_q8_0& x, uint8_t* u) {
    for (int i = 0; i < 32; ++i) u[i] = static_cast<uint8_t>(x.qs[i] + offset);
  }
};
template <>
struct Small<block_q4_0> {
  using Act = block_q8_0;
  static constexpr int offset = 8;
  static void raw(const block_q4_0& x, uint8_t* u) { raw_nibbles(x.qs, u); }
};
template <>
struct Small<block_q4_1> {
  using Act = block_q8_1;
  static constexpr int offset = 0;
  static void raw(const block_q4_1& x, uint8_t* u) { raw_nibbles(x.qs, u); }
};
template <>
struct Small<block_q5_0> {
  using Act = block_q8_0;
  static constexpr int offset = 16;
  static void raw(const block_q5_0& x, uint8_t* u) { raw_q5(x.qs, x.qh, u); }
};
template <>
struct Small<block_q5_1> {
  using Act = block_q8_1;
  static constexpr int offset = 0;
  static void raw(const block_q5_1& x, uint8_t* u) { raw_q5(x.qs, x.qh, u); }
};
template <>
struct Small<block_iq4_nl> {
  using Act = block_q8_0;
  static constexpr int offset = 128;
  static void raw(const block_iq4_nl& x, uint8_t* u) {
    raw_nibbles(x.qs, u);
    for (int e = 0; e < 32; ++e) u[e] = static_cast<uint8_t>(kvalues_iq4nl[u[e]] + offset);
  }
};

template <typename B>
constexpr bool has_min = std::is_same_v<typename Small<B>::Act, block_q8_1>;

enum class Layout32 { u8, s16 };

template <int TR, typename B, Layout32 L>
struct Tile32 {
  static constexpr int groups = L == Layout32::u8 ? 8 : 16;
  static constexpr size_t group_bytes = 4 * TR;
  static constexpr size_t quant_bytes = groups * group_bytes;
  static constexpr size_t block_bytes = quant_bytes + (has_min<B> ? 2 : 1) * 4 * TR;
  static const float* d(const uint8_t* tb) { return reinterpret_cast<const float*>(tb + quant_bytes); }
  static const float* m(const uint8_t* tb) { return reinterpret_cast<const float*>(tb + quant_bytes + 4 * TR); }
};

// An activation block's scalars (see above).
struct Act32 {
  float d;
  float s;        // Q8_1: d * sum(q); else 0
  int32_t start;  // u8 layout: -offset * sum(q); else 0
};

// The portable unpacker: U::raw(block, u) gives the u8 layout's 32 bytes of a block, U::levels
// its 32 int16 levels, raw - offset (an ISA may do them with shuffles: x86_common.hpp).
struct Unpack32 {
  template <typename B>
  static void raw(const B& x, uint8_t* u) { Small<B>::raw(x, u); }
  template <typename B>
  static void levels(const B& x, int16_t* q) {
    uint8_t u[32];
    Small<B>::raw(x, u);
    for (int e = 0; e < 32; ++e) q[e] = static_cast<int16_t>(u[e] - Small<B>::offset);
  }
};

// Packs rows [0, rows) of a TR-row tile (unpacker U); lanes of rows past `rows` stay zero.
template <int TR, typename B, Layout32 L, typename U>
void pack32(const uint8_t* w, size_t w_row_bytes, int rows, int64_t nb, uint8_t* tile) {
  using T = Tile32<TR, B, L>;
  std::memset(tile, 0, nb * T::block_bytes);
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* tb = tile + b * T::block_bytes;
    auto* d = reinterpret_cast<float*>(tb + T::quant_bytes);
    for (int r = 0; r < rows; ++r) {
      const B& x = reinterpret_cast<const B*>(w + r * w_row_bytes)[b];
      if constexpr (L == Layout32::u8) {
        alignas(32) uint8_t u[32];
        U::raw(x, u);
        for (int g = 0; g < 8; ++g) std::memcpy(tb + g * T::group_bytes + 4 * r, u + 4 * g, 4);
      } else {
        alignas(32) int16_t q[32];
        U::levels(x, q);
        for (int g = 0; g < 16; ++g) std::memcpy(tb + g * T::group_bytes + 4 * r, q + 2 * g, 4);
      }
      d[r] = fp16_to_fp32(x.d);
      if constexpr (has_min<B>) d[TR + r] = fp16_to_fp32(x.m);
    }
  }
}

// The prefill matmul over 32-element blocks: for each TR-row weight tile, pack it, then run
// Rows<NA>::run(tile, nb, q[NA], act[NA], out[NA * TR]) over the activation rows, PASS at a time.
// q[i] is activation row i's quants: its first Small<B>::Act block (u8 layout; the kernel reads
// .qs of each) or its int16 copy (s16 layout); act[i] its nb Act32 entries.
template <int TR, typename B, Layout32 L, template <int> class Rows, int PASS, typename U = Unpack32>
void matmul_tiles32(int64_t n, const void* w, size_t w_row_bytes, int64_t n_rows, const void* a,
                    size_t a_row_bytes, int64_t n_act, float* y, int64_t ldy) {
  using T = Tile32<TR, B, L>;
  using A = typename Small<B>::Act;
  const int64_t nb = n / 32;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(a);
  const size_t tile_bytes = (nb * T::block_bytes + 63) / 64 * 64;
  const size_t meta_bytes = (n_act * nb * sizeof(Act32) + 63) / 64 * 64;
  const size_t q16_bytes = L == Layout32::s16 ? n_act * n * sizeof(int16_t) : 0;
  uint8_t* tile = scratch(tile_bytes + meta_bytes + q16_bytes);
  auto* meta = reinterpret_cast<Act32*>(tile + tile_bytes);
  auto* q16 = reinterpret_cast<int16_t*>(tile + tile_bytes + meta_bytes);
  for (int64_t i = 0; i < n_act; ++i) {
    const A* ai = reinterpret_cast<const A*>(ab + i * a_row_bytes);
    for (int64_t b = 0; b < nb; ++b) {
      int32_t sum = 0;
      for (int e = 0; e < 32; ++e) sum += ai[b].qs[e];
      Act32& m = meta[i * nb + b];
      m.d = fp16_to_fp32(ai[b].d);
      if constexpr (has_min<B>) m.s = fp16_to_fp32(ai[b].s);
      else m.s = 0.0f;
      m.start = L == Layout32::u8 ? -Small<B>::offset * sum : 0;
      if constexpr (L == Layout32::s16)
        for (int e = 0; e < 32; ++e) q16[(i * nb + b) * 32 + e] = ai[b].qs[e];
    }
  }
  for (int64_t r0 = 0; r0 < n_rows; r0 += TR) {
    const int rows = static_cast<int>(n_rows - r0 < TR ? n_rows - r0 : TR);
    pack32<TR, B, L, U>(wb + r0 * w_row_bytes, w_row_bytes, rows, nb, tile);
    for (int64_t i = 0; i < n_act; i += PASS) {
      const int na = static_cast<int>(n_act - i < PASS ? n_act - i : PASS);
      const void* qp[PASS];
      const Act32* mp[PASS];
      alignas(64) float out[PASS * TR];
      for (int k = 0; k < na; ++k) {
        if constexpr (L == Layout32::u8) qp[k] = ab + (i + k) * a_row_bytes;
        else qp[k] = q16 + (i + k) * n;
        mp[k] = meta + (i + k) * nb;
      }
      run_rows<Rows, PASS>(na, tile, nb, qp, mp, out);
      for (int k = 0; k < na; ++k) std::memcpy(y + (i + k) * ldy + r0, out + k * TR, rows * sizeof(float));
    }
  }
}

}  // namespace
}  // namespace edgellm::kernels::gemm
