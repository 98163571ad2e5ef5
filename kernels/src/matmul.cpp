// Matrix products of quantized weights with activation rows (see matmul.hpp).
#include "edgellm/kernels/matmul.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "edgellm/kernels/blocks.hpp"
#include "edgellm/kernels/quants.hpp"

namespace edgellm::kernels {

namespace {

// Output rows are handed to threads in multiples of this (the ISA tiles take 16 rows at a time).
constexpr int64_t kRowGrain = 16;

std::string type_name(DType t) { return dtype_name(static_cast<uint32_t>(t)); }

}  // namespace

bool matmul_supports(const KernelSet& ks, DType type) { return ks.type(type) != nullptr; }

void Activations::reset(const float* x, int64_t n_rows, int64_t n_cols) {
  x_ = x;
  n_rows_ = n_rows;
  n_cols_ = n_cols;
  for (bool& h : have_) h = false;
}

size_t Activations::row_bytes(const KernelSet& ks, ActForm form) const {
  const ActKernels& f = ks.act(form);
  return static_cast<size_t>(n_cols_ / f.block) * f.block_bytes;
}

const void* Activations::rows_for(ActForm form, const KernelSet& ks, ThreadPool& pool) {
  const ActKernels& f = ks.act(form);
  if (!f.from_f32) return x_;
  if (n_cols_ % f.block != 0) {
    throw std::invalid_argument("matmul: activation rows of " + std::to_string(n_cols_) +
                                " values are not a whole number of " + std::to_string(f.block) +
                                "-element blocks");
  }
  const auto i = static_cast<size_t>(form);
  std::vector<uint8_t>& buf = buf_[i];
  if (have_[i]) return buf.data();
  const size_t row_bytes = this->row_bytes(ks, form);
  if (buf.size() < row_bytes * n_rows_) buf.resize(row_bytes * n_rows_);
  const float* x = x_;
  const int64_t n_cols = n_cols_, n_rows = n_rows_;
  uint8_t* out = buf.data();
  const auto convert_rows = [&](int ith, int nth) {
    int64_t begin, end;
    ThreadPool::split(n_rows, ith, nth, begin, end);
    for (int64_t r = begin; r < end; ++r) f.from_f32(x + r * n_cols, out + r * row_bytes, n_cols);
  };
  // A decode step's single row is quicker to quantize here than to hand to the pool.
  if (n_rows < 4 * pool.size()) convert_rows(0, 1);
  else pool.run(convert_rows);
  have_[i] = true;
  return buf.data();
}

void matmul(const KernelSet& ks, ThreadPool& pool, const WeightMatrix& w, Activations& x,
            float* y, int64_t ldy) {
  const MatmulOut one{&w, y, ldy};
  matmul(ks, pool, std::span<const MatmulOut>(&one, 1), x);
}

void matmul(const KernelSet& ks, ThreadPool& pool, std::span<const MatmulOut> outs, Activations& x) {
  struct Job {
    MatmulTile tile;
    const uint8_t* w;
    const void* a;
    size_t a_row_bytes;
    int64_t n_grains;
  };
  constexpr size_t kMaxOuts = 8;
  if (outs.size() > kMaxOuts) throw std::invalid_argument("matmul: more than 8 products in one call");
  Job jobs[kMaxOuts];
  int64_t total_bytes = 0;
  for (size_t j = 0; j < outs.size(); ++j) {
    const WeightMatrix& w = *outs[j].w;
    const int64_t ldy = outs[j].ldy;
    const TypeKernels* t = ks.type(w.type);
    if (!t) throw std::invalid_argument("matmul: unsupported weight type " + type_name(w.type));
    const MatmulTile tile = pick_tile(*t, x.n_rows());
    if (x.n_cols() != w.cols) {
      throw std::invalid_argument("matmul: activation rows have " + std::to_string(x.n_cols()) +
                                  " values, weight rows " + std::to_string(w.cols));
    }
    const auto row_bytes = dtype_row_bytes(w.type, static_cast<uint64_t>(w.cols));
    if (!row_bytes || *row_bytes != w.row_bytes || w.rows < 0 || ldy < w.rows) {
      throw std::invalid_argument("matmul: bad " + type_name(w.type) + " weight matrix shape (" +
                                  std::to_string(w.rows) + " x " + std::to_string(w.cols) +
                                  ", ldy " + std::to_string(ldy) + ")");
    }
    if (w.rows > 0 && x.n_rows() > 0 && (w.data == nullptr || x.f32() == nullptr || outs[j].y == nullptr)) {
      throw std::invalid_argument("matmul: null weight, activation or output pointer");
    }
    jobs[j] = {tile, static_cast<const uint8_t*>(w.data), nullptr, x.row_bytes(ks, t->act),
               x.n_rows() > 0 ? (w.rows + kRowGrain - 1) / kRowGrain : 0};
    total_bytes += jobs[j].n_grains * kRowGrain * static_cast<int64_t>(w.row_bytes);
  }
  if (total_bytes == 0) return;
  for (size_t j = 0; j < outs.size(); ++j)
    if (jobs[j].n_grains > 0) jobs[j].a = x.rows_for(ks.type(outs[j].w->type)->act, ks, pool);

  // Thread t takes the grains (16 rows of one matrix) whose weight bytes start in
  // [t * total / nth, (t + 1) * total / nth), in matrix order.
  pool.run([&](int ith, int nth) {
    const int64_t lo = total_bytes * ith / nth, hi = total_bytes * (ith + 1) / nth;
    int64_t at = 0;  // weight bytes before the current matrix
    for (size_t j = 0; j < outs.size(); ++j) {
      const WeightMatrix& w = *outs[j].w;
      const Job& job = jobs[j];
      const int64_t grain_bytes = kRowGrain * static_cast<int64_t>(w.row_bytes);
      const int64_t size = job.n_grains * grain_bytes;
      if (at + size > lo && at < hi) {
        // grains g with at + g * grain_bytes in [lo, hi)
        const int64_t g0 = lo <= at ? 0 : (lo - at + grain_bytes - 1) / grain_bytes;
        const int64_t g1 = std::min(job.n_grains, (hi - at + grain_bytes - 1) / grain_bytes);
        const int64_t r0 = g0 * kRowGrain, r1 = std::min(g1 * kRowGrain, w.rows);
        if (r0 < r1) {
          job.tile(w.cols, job.w + r0 * w.row_bytes, w.row_bytes, r1 - r0, job.a, job.a_row_bytes, x.n_rows(),
                   outs[j].y + r0, outs[j].ldy);
        }
      }
      at += size;
    }
  });
}

}  // namespace edgellm::kernels
