// Matrix products of a quantized weight matrix with activation rows, the work of every linear layer.
//
//   y[m][r] = sum_c W[r][c] * x[m][c]     (W: rows x cols, as stored in the file; x: n_x x cols)
//
// One activation row is the decode path (GEMV); many rows are the prefill path (GEMM, tiled so a
// weight block is unpacked once and used for many activation rows). Output rows are split over
// the thread pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "edgellm/dtype.hpp"
#include "edgellm/kernels/dispatch.hpp"
#include "edgellm/kernels/thread_pool.hpp"

namespace edgellm::kernels {

// A weight matrix in place (usually inside the model's memory map).
struct WeightMatrix {
  DType type = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;       // output features (ggml ne[1])
  int64_t cols = 0;       // input features (ggml ne[0]), a multiple of the type's block size
  size_t row_bytes = 0;   // bytes per row
};

// True if matmul() with `ks` supports this weight type (ks.type(type) has a row).
bool matmul_supports(const KernelSet& ks, DType type);

// Activation rows plus their quantized forms, made once and shared by every matmul that reads the
// same input (Q, K and V; gate and up).
class Activations {
 public:
  // x: n_rows rows of n_cols floats, row stride n_cols. The pointer must stay valid until reset.
  void reset(const float* x, int64_t n_rows, int64_t n_cols);
  int64_t n_rows() const { return n_rows_; }
  int64_t n_cols() const { return n_cols_; }
  const float* f32() const { return x_; }
  // The rows in one activation form (the one a weight type's TypeKernels::act names: Q8_K for
  // the K-quants, Q8_0 for Q8_0 / Q4_0, floats rounded to fp16 / bf16 for F16 / BF16 weights, the
  // rows themselves for F32), made with ks.act(form).from_f32 on first use, on the pool.
  const void* rows_for(ActForm form, const KernelSet& ks, ThreadPool& pool);
  // Bytes of one row in that form.
  size_t row_bytes(const KernelSet& ks, ActForm form) const;

 private:
  const float* x_ = nullptr;
  int64_t n_rows_ = 0, n_cols_ = 0;
  std::vector<uint8_t> buf_[kActForms];
  bool have_[kActForms] = {};
};

// y: x.n_rows() rows of w.rows floats, row stride ldy (>= w.rows).
void matmul(const KernelSet& ks, ThreadPool& pool, const WeightMatrix& w, Activations& x,
            float* y, int64_t ldy);

// Several products of the same activations (Q, K and V; gate and up) as one pool job: the
// threads split all their rows by weight bytes, so a decode step waits for its threads once
// instead of once per matrix, and a small matrix (attn_k, attn_v) is not split alone.
struct MatmulOut {
  const WeightMatrix* w;
  float* y;
  int64_t ldy;
};
void matmul(const KernelSet& ks, ThreadPool& pool, std::span<const MatmulOut> outs, Activations& x);

}  // namespace edgellm::kernels
