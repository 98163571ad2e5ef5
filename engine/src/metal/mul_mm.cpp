// encode_mul_mm: the tiled matrix-matrix product (shaders/mul_mm.metal) for prefill batches.
#include <cstdint>
#include <string>

#include "error.hpp"
#include "metal/encode.hpp"
#include "metal/shaders/args.h"

namespace edgellm::engine::metal {

namespace {

// The tile of shaders/mul_mm.metal (its kMm* constants): a threadgroup of 128 threads computes
// 64 weight rows x 32 tokens, K in steps of 32 columns, the W tile (32 x 64) and the x tile
// (32 x 32) as float in threadgroup memory.
constexpr int kTileRows = 64;
constexpr int kTileToks = 32;
constexpr int kTileK = kMmTileK;
constexpr uint32_t kThreads = 128;
constexpr uint32_t kTgMemBytes = (kTileK * kTileRows + kTileToks * kTileK) * sizeof(float);
static_assert(kTgMemBytes <= kMaxThreadgroupMemory && kTgMemBytes % 16 == 0, "mul_mm: threadgroup memory");
static_assert(kTileToks * kTileRows * sizeof(float) <= kTgMemBytes, "mul_mm: the output tile is staged in it");
static_assert(kThreads % kSimdWidth == 0 && kThreads == 2 * kTileRows, "mul_mm: one 16-element piece per thread");

const char* mul_mm_kernel(DType type) {
  switch (type) {
    case DType::Q4_K: return "kernel_mul_mm_q4_K";
    case DType::Q6_K: return "kernel_mul_mm_q6_K";
    case DType::Q8_0: return "kernel_mul_mm_q8_0";
    case DType::Q4_0: return "kernel_mul_mm_q4_0";
    case DType::F16: return "kernel_mul_mm_f16";
    case DType::F32: return "kernel_mul_mm_f32";
    default: return nullptr;
  }
}

[[noreturn]] void invalid(const std::string& what) {
  throw Error(Error::Kind::InvalidArgument, "Metal matmul (mul_mm): " + what);
}

}  // namespace

void encode_mul_mm(Device& dev, const WeightView& w, BufView x, int ldx, BufView y, int ldy, int n_tok) {
  const char* kernel = mul_mm_kernel(w.type);
  if (!kernel) {
    throw Error(Error::Kind::Unsupported, "Metal matmul (mul_mm): weight type " + dtype_name(uint32_t(w.type)) +
                                              " is not supported (q4_K, q6_K, q8_0, q4_0, f16, f32 are)");
  }
  if (n_tok < 0) invalid("n_tok " + std::to_string(n_tok) + " is negative");
  if (w.rows < 0 || w.rows > INT32_MAX || w.cols <= 0 || w.cols > INT32_MAX)
    invalid("weight shape " + std::to_string(w.rows) + " x " + std::to_string(w.cols) + " is out of range");
  if (w.cols % kTileK != 0) {
    invalid(dtype_name(uint32_t(w.type)) + " weight with " + std::to_string(w.cols) +
            " columns: the tiled kernel needs a multiple of " + std::to_string(kTileK));
  }
  const auto row_bytes = dtype_row_bytes(w.type, uint64_t(w.cols));
  if (!row_bytes) {
    invalid(std::to_string(w.cols) + " columns are not whole " + dtype_name(uint32_t(w.type)) + " blocks");
  }
  if (w.row_bytes < *row_bytes) {
    invalid("row_bytes " + std::to_string(w.row_bytes) + " is less than a " + std::to_string(w.cols) + "-column " +
            dtype_name(uint32_t(w.type)) + " row (" + std::to_string(*row_bytes) + " bytes)");
  }
  // The kernel reads rows as blocks (2-byte fields) or floats.
  const uint64_t align = w.type == DType::F32 ? 4 : 2;
  if (w.data.offset % align != 0 || w.row_bytes % align != 0)
    invalid("weight offset or row_bytes is not a multiple of " + std::to_string(align) + " bytes");
  if (x.offset % 4 != 0 || y.offset % 4 != 0) invalid("x or y offset is not a multiple of 4 bytes");
  if (n_tok > 0 && (ldx < w.cols || ldy < w.rows)) {
    invalid("ldx " + std::to_string(ldx) + " / ldy " + std::to_string(ldy) + " shorter than the rows (" +
            std::to_string(w.cols) + " / " + std::to_string(w.rows) + " floats)");
  }
  if (n_tok == 0 || w.rows == 0) return;  // nothing to compute

  MatmulArgs args{};
  args.rows = static_cast<int32_t>(w.rows);
  args.cols = static_cast<int32_t>(w.cols);
  args.row_bytes = w.row_bytes;
  args.n_tok = n_tok;
  args.ldx = ldx;
  args.ldy = ldy;

  DispatchDesc d = dispatch_of(kernel, args, {w.data, x, y});
  d.tg_mem_bytes = kTgMemBytes;
  d.grid = {static_cast<uint32_t>((w.rows + kTileRows - 1) / kTileRows),
            static_cast<uint32_t>((n_tok + kTileToks - 1) / kTileToks), 1};
  d.tg = {kThreads, 1, 1};
  dev.encode(d);
}

}  // namespace edgellm::engine::metal
