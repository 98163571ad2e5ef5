// Host side of the row-wise kernels (shaders/rows.metal): embed, rms_norm, rope, silu_mul, add.
// Each function checks its shapes, picks the kernel and the grid, and records one dispatch (the
// element-wise ops one per 2^30 elements).
#include <algorithm>
#include <cstdint>
#include <cmath>
#include <string>

#include "edgellm/dtype.hpp"
#include "error.hpp"
#include "metal/encode.hpp"
#include "metal/shaders/args.h"

namespace edgellm::engine::metal {

namespace {

[[noreturn]] void invalid(const std::string& what) { throw Error(Error::Kind::InvalidArgument, what); }

uint32_t round_up(uint32_t n, uint32_t m) { return (n + m - 1) / m * m; }
uint32_t div_up(uint64_t n, uint64_t m) { return static_cast<uint32_t>((n + m - 1) / m); }

// Threads for a 1-D dispatch over n items: a multiple of the SIMD width, at most `most`.
uint32_t threads_for(uint64_t n, uint32_t most) {
  return static_cast<uint32_t>(std::min<uint64_t>(most, round_up(static_cast<uint32_t>(std::min<uint64_t>(n, most)), kSimdWidth)));
}

const char* embed_kernel(DType type) {
  switch (type) {
    case DType::Q4_K: return "kernel_embed_q4_K";
    case DType::Q6_K: return "kernel_embed_q6_K";
    case DType::Q8_0: return "kernel_embed_q8_0";
    case DType::Q4_0: return "kernel_embed_q4_0";
    case DType::F16: return "kernel_embed_f16";
    case DType::F32: return "kernel_embed_f32";
    default: return nullptr;
  }
}

constexpr uint32_t kPiece = 16;  // elements per thread of the embed kernels (dequant.h's piece)

}  // namespace

void encode_embed(Device& dev, const WeightView& table, BufView tokens, int n_tok, BufView y, int ldy) {
  const char* kernel = embed_kernel(table.type);
  if (!kernel)
    throw Error(Error::Kind::Unsupported, "metal embed: the token embedding's type " +
                                              dtype_name(static_cast<uint32_t>(table.type)) +
                                              " has no Metal kernel (q4_K, q6_K, q8_0, q4_0, f16, f32 do)");
  if (n_tok < 0) invalid("metal embed: negative token count " + std::to_string(n_tok));
  if (n_tok == 0) return;
  const auto info = dtype_info(table.type);
  const auto row_bytes = dtype_row_bytes(table.type, table.cols > 0 ? static_cast<uint64_t>(table.cols) : 0);
  if (table.cols <= 0 || table.cols > INT32_MAX || !info || !row_bytes)
    invalid("metal embed: a table row of " + std::to_string(table.cols) + " elements is not a whole number of " +
            dtype_name(static_cast<uint32_t>(table.type)) + " blocks");
  if (table.row_bytes < *row_bytes)
    invalid("metal embed: row_bytes " + std::to_string(table.row_bytes) + " is less than a row of " +
            std::to_string(table.cols) + " elements (" + std::to_string(*row_bytes) + " bytes)");
  if (ldy < table.cols) invalid("metal embed: output rows of " + std::to_string(ldy) + " floats are narrower than the table");
  // The kernels load halves (block scales, F16 elements) and, for F32, floats.
  const uint64_t align = table.type == DType::F32 ? 4 : 2;
  if (table.data.offset % align != 0 || table.row_bytes % align != 0)
    invalid("metal embed: the table (offset " + std::to_string(table.data.offset) + ", rows of " +
            std::to_string(table.row_bytes) + " bytes) is not " + std::to_string(align) + "-byte aligned");

  const uint64_t pieces = (static_cast<uint64_t>(table.cols) + kPiece - 1) / kPiece;
  EmbedArgs args{n_tok, static_cast<int32_t>(table.cols), table.row_bytes, ldy, 0};
  DispatchDesc d = dispatch_of(kernel, args, {table.data, tokens, y});
  d.tg = {threads_for(pieces, 256), 1, 1};
  d.grid = {div_up(pieces, d.tg.x), static_cast<uint32_t>(n_tok), 1};
  dev.encode(d);
}

void encode_rms_norm(Device& dev, BufView x, BufView weight, BufView y, int n_rows, int width, int ld, float eps) {
  if (n_rows < 0 || width <= 0 || ld < width)
    invalid("metal rms_norm: " + std::to_string(n_rows) + " rows of " + std::to_string(width) + " floats, " +
            std::to_string(ld) + " apart");
  if (n_rows == 0) return;
  // About 4 elements per thread: each thread's sequential sum stays short (the error bound of
  // rows.metal: width / threads + 62 roundings of the sum at most), up to 1024 threads.
  const uint32_t threads = std::clamp<uint32_t>(round_up(div_up(static_cast<uint64_t>(width), 4), kSimdWidth),
                                                kSimdWidth, kMaxThreadsPerThreadgroup);
  RmsNormArgs args{n_rows, width, ld, eps};
  DispatchDesc d = dispatch_of("kernel_rms_norm", args, {x, weight, y});
  d.tg_mem_bytes = round_up(threads / kSimdWidth * sizeof(float), 16);  // one float per SIMD-group
  d.tg = {threads, 1, 1};
  d.grid = {static_cast<uint32_t>(n_rows), 1, 1};
  dev.encode(d);
}

void encode_rope(Device& dev, BufView x, const RopeShape& shape, BufView freq_factors) {
  if (shape.n_tok < 0 || shape.n_heads <= 0 || shape.head_dim <= 0 || shape.pos0 < 0 ||
      int64_t{shape.n_heads} * shape.head_dim > shape.ld)
    invalid("metal rope: " + std::to_string(shape.n_tok) + " rows of " + std::to_string(shape.n_heads) + " heads of " +
            std::to_string(shape.head_dim) + " in rows of " + std::to_string(shape.ld) + " floats at position " +
            std::to_string(shape.pos0));
  // As kernels::rope_norm: n_rot capped at head_dim, rounded down to even.
  const int n_rot = std::max(0, std::min(shape.n_rot, shape.head_dim)) & ~1;
  if (shape.n_tok == 0 || n_rot == 0) return;
  RopeArgs args{};
  args.n_tok = shape.n_tok;
  args.ld = shape.ld;
  args.n_heads = shape.n_heads;
  args.head_dim = shape.head_dim;
  args.n_rot = n_rot;
  args.pos0 = shape.pos0;
  args.freq_base = shape.freq_base;
  args.freq_scale = shape.freq_scale;
  args.has_freq_factors = freq_factors.buf != 0 ? 1 : 0;
  args.theta_ratio = std::pow(shape.freq_base, -2.0f / static_cast<float>(n_rot));  // rope_norm_cos_sin's r
  const uint64_t pairs = uint64_t(shape.n_heads) * uint64_t(n_rot / 2);
  // (buffer 2 is unread without factors)
  DispatchDesc d = dispatch_of("kernel_rope", args, {x, freq_factors.buf != 0 ? freq_factors : x});
  d.tg = {threads_for(pairs, 256), 1, 1};
  d.grid = {div_up(pairs, d.tg.x), static_cast<uint32_t>(shape.n_tok), 1};
  dev.encode(d);
}

namespace {

void encode_elementwise(Device& dev, const char* kernel, const char* op, BufView a, BufView b, BufView y, int64_t n) {
  if (n < 0) invalid(std::string("metal ") + op + ": negative element count " + std::to_string(n));
  constexpr int64_t kChunk = int64_t{1} << 30;  // elements per dispatch (ElementwiseArgs::n is 32-bit)
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const uint64_t count = static_cast<uint64_t>(std::min(kChunk, n - i0));
    const uint64_t bytes = static_cast<uint64_t>(i0) * sizeof(float);
    ElementwiseArgs args{static_cast<uint32_t>(count), {0, 0, 0}};
    DispatchDesc d = dispatch_of(kernel, args, {a.at(bytes), b.at(bytes), y.at(bytes)});
    d.tg = {threads_for(count, 256), 1, 1};
    d.grid = {div_up(count, d.tg.x), 1, 1};
    dev.encode(d);
  }
}

}  // namespace

void encode_silu_mul(Device& dev, BufView gate, BufView up, BufView y, int64_t n) {
  encode_elementwise(dev, "kernel_silu_mul", "silu_mul", gate, up, y, n);
}

void encode_add(Device& dev, BufView a, BufView b, BufView y, int64_t n) {
  encode_elementwise(dev, "kernel_add", "add", a, b, y, n);
}

}  // namespace edgellm::engine::metal
