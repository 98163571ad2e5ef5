// encode_mul_mv: the mat-vec kernels (shaders/mul_mv.metal) for decode and small batches, and
// supports(), the weight types the Metal kernels read.
#include <cstdint>
#include <string>

#include "error.hpp"
#include "metal/encode.hpp"
#include "metal/shaders/args.h"

namespace edgellm::engine::metal {

namespace {

// shaders/mul_mv.metal's kMvRowsPerSimdgroup and kMvSimdgroups: a threadgroup of 2 SIMD-groups
// computes 8 consecutive rows for all n_tok tokens.
constexpr uint32_t kRowsPerSimdgroup = 4;
constexpr uint32_t kSimdgroups = 2;
constexpr uint32_t kRowsPerThreadgroup = kRowsPerSimdgroup * kSimdgroups;

struct MvKernel {
  const char* name;
  uint64_t align;  // bytes: the widest load the kernel makes from W
};

const MvKernel* mv_kernel(DType type) {
  static const MvKernel q4_K{"kernel_mul_mv_q4_K", 4};  // 32-bit quant loads (144-byte blocks)
  static const MvKernel q6_K{"kernel_mul_mv_q6_K", 2};  // 16-bit loads: 210-byte blocks
  static const MvKernel q8_0{"kernel_mul_mv_q8_0", 2};  // 34-byte blocks
  static const MvKernel q4_0{"kernel_mul_mv_q4_0", 2};  // 18-byte blocks
  static const MvKernel f16{"kernel_mul_mv_f16", 2};
  static const MvKernel f32{"kernel_mul_mv_f32", 4};
  switch (type) {
    case DType::Q4_K: return &q4_K;
    case DType::Q6_K: return &q6_K;
    case DType::Q8_0: return &q8_0;
    case DType::Q4_0: return &q4_0;
    case DType::F16: return &f16;
    case DType::F32: return &f32;
    default: return nullptr;
  }
}

[[noreturn]] void invalid(const std::string& what) {
  throw Error(Error::Kind::InvalidArgument, "metal: mat-vec (mul_mv): " + what);
}

}  // namespace

bool supports(DType type) { return mv_kernel(type) != nullptr; }

void encode_mul_mv(Device& dev, const WeightView& w, BufView x, int ldx, BufView y, int ldy, int n_tok) {
  const MvKernel* kernel = mv_kernel(w.type);
  if (!kernel) {
    throw Error(Error::Kind::Unsupported,
                "metal: no mat-vec kernel for weight type " + dtype_name(static_cast<uint32_t>(w.type)) +
                    " (q4_K, q6_K, q8_0, q4_0, f16, f32 have one)");
  }
  const std::string type = dtype_name(static_cast<uint32_t>(w.type));
  if (n_tok < 1 || n_tok > kMaxMvTokens) {
    invalid("n_tok " + std::to_string(n_tok) + " is outside 1.." + std::to_string(kMaxMvTokens) +
            " (larger batches take the tiled kernel, encode_mul_mm)");
  }
  if (w.rows < 0 || w.rows > INT32_MAX || w.cols < 1 || w.cols > INT32_MAX)
    invalid("weight shape " + std::to_string(w.rows) + " x " + std::to_string(w.cols) + " is out of range");
  const auto row_bytes = dtype_row_bytes(w.type, static_cast<uint64_t>(w.cols));
  if (!row_bytes) invalid(std::to_string(w.cols) + " columns are not whole " + type + " blocks");
  if (w.row_bytes < *row_bytes) {
    invalid("row_bytes " + std::to_string(w.row_bytes) + " is less than a " + std::to_string(w.cols) + "-column " +
            type + " row (" + std::to_string(*row_bytes) + " bytes)");
  }
  if (w.data.offset % kernel->align != 0 || w.row_bytes % kernel->align != 0) {
    invalid(type + " weight offset " + std::to_string(w.data.offset) + " or row_bytes " +
            std::to_string(w.row_bytes) + " is not a multiple of " + std::to_string(kernel->align) + " bytes");
  }
  if (x.offset % sizeof(float) != 0 || y.offset % sizeof(float) != 0)
    invalid("x offset " + std::to_string(x.offset) + " or y offset " + std::to_string(y.offset) + " is not a multiple of 4 bytes");
  // One row needs no stride; more must not overlap, and the kernel's int offsets
  // t * ld + column must not overflow.
  if (n_tok > 1) {
    if (ldx < w.cols || ldy < w.rows) {
      invalid("ldx " + std::to_string(ldx) + " / ldy " + std::to_string(ldy) + " is shorter than an x / y row (" +
              std::to_string(w.cols) + " / " + std::to_string(w.rows) + " floats)");
    }
    if (int64_t(n_tok - 1) * ldx + w.cols > INT32_MAX || int64_t(n_tok - 1) * ldy + w.rows > INT32_MAX)
      invalid("x or y spans more than 2^31 floats (ldx " + std::to_string(ldx) + ", ldy " + std::to_string(ldy) + ")");
  }
  if (w.rows == 0) return;  // nothing to compute

  MatmulArgs args{};
  args.rows = static_cast<int32_t>(w.rows);
  args.cols = static_cast<int32_t>(w.cols);
  args.row_bytes = w.row_bytes;
  args.n_tok = n_tok;
  args.ldx = n_tok > 1 ? ldx : static_cast<int32_t>(w.cols);
  args.ldy = n_tok > 1 ? ldy : static_cast<int32_t>(w.rows);

  DispatchDesc d = dispatch_of(kernel->name, args, {w.data, x, y});
  d.tg_mem_bytes = 0;
  d.grid = {static_cast<uint32_t>((w.rows + kRowsPerThreadgroup - 1) / kRowsPerThreadgroup), 1, 1};
  d.tg = {kSimdgroups * kSimdWidth, 1, 1};
  dev.encode(d);
}

}  // namespace edgellm::engine::metal
