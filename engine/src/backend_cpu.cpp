// The CPU backend's ops (see backend.hpp for what each computes). Row-wise ops run on the calling
// thread (they are a few percent of a step); matmuls and attention run on the pool.
#include "backend_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "edgellm/kernels/ops.hpp"
#include "edgellm/kernels/quants.hpp"
#include "error.hpp"
#include "log.hpp"

namespace edgellm::engine {

namespace {
size_t sz(int64_t n) { return static_cast<size_t>(n); }
}  // namespace

CpuBackend::CpuBackend(const BackendOptions& options)
    : ks_(options.kernels ? *options.kernels : kernels::active_kernels()),
      pool_(std::make_unique<kernels::ThreadPool>(options.n_threads)) {
  // The kernel layer writes nothing; an EDGELLM_ISA it could not honour is said here, through
  // the app's log callback.
  if (!options.kernels && !kernels::isa_fallback_note().empty()) log().warn("{}", kernels::isa_fallback_note());
}

void CpuBackend::alloc_activations(const ActShapes& shapes) {
  shapes_ = shapes;
  for (int b = 0; b < kActBufs; ++b) act_[b].assign(sz(shapes.rows) * sz(shapes.width[b]), 0.0f);
}

void CpuBackend::alloc_kv(const KvLayout& layout) {
  layout_ = layout;
  kv_.assign(layout.bytes(), 0);
}

void CpuBackend::begin(int n, int pos0) {
  if (n <= 0 || n > shapes_.rows || pos0 < 0 || pos0 + n > layout_.n_ctx)
    throw Error(Error::Kind::InvalidArgument, "backend: a step of " + std::to_string(n) + " tokens at position " +
                                                  std::to_string(pos0) + " does not fit its buffers");
  n_ = n;
  pos0_ = pos0;
  for (bool& ready : rope_ready_) ready = false;
}

void CpuBackend::set_rope(int set, const RopeParams& rope) {
  if (set < 0 || set >= kRopeSets) throw Error(Error::Kind::InvalidArgument, "backend: RoPE set out of range");
  rope_[set] = rope;
  rope_ready_[set] = false;
}

void CpuBackend::embed(const kernels::WeightMatrix& table, const int32_t* tokens, ActBuf out) {
  const kernels::TypeKernels* t = ks_.type(table.type);
  if (!t) throw Error(Error::Kind::Unsupported, "backend: token_embd type cannot be dequantized");
  const auto* base = static_cast<const uint8_t*>(table.data);
  for (int i = 0; i < n_; ++i)
    t->dequantize_row(base + sz(tokens[i]) * table.row_bytes, buf(out) + i * width(out), table.cols);
}

void CpuBackend::rms_norm(ActBuf in, int row0, int n_rows, const float* weight, float eps, ActBuf out) {
  const int64_t w = width(in);
  for (int i = 0; i < n_rows; ++i) ks_.rms_norm(buf(in) + (row0 + i) * w, weight, buf(out) + (row0 + i) * w, w, eps);
}

void CpuBackend::matmul(ActBuf in, int row0, int n_rows, std::span<const MatmulTo> products) {
  kernels::MatmulOut outs[8];
  if (products.size() > std::size(outs)) throw Error(Error::Kind::InvalidArgument, "backend: more than 8 products");
  for (size_t j = 0; j < products.size(); ++j) outs[j] = {products[j].w, buf(products[j].out), width(products[j].out)};
  multiply(in, row0, n_rows, std::span<const kernels::MatmulOut>(outs, products.size()));
  for (const MatmulTo& p : products) {
    if (!p.bias) continue;
    const int64_t w = width(p.out);
    for (int i = 0; i < n_rows; ++i) ks_.add(buf(p.out) + i * w, p.bias, buf(p.out) + i * w, p.w->rows);
  }
}

void CpuBackend::multiply(ActBuf in, int row0, int n_rows, std::span<const kernels::MatmulOut> outs) {
  act_q_.reset(buf(in) + row0 * width(in), n_rows, width(in));
  kernels::matmul(ks_, *pool_, outs, act_q_);
}

void CpuBackend::rope(ActBuf x, int n_heads, int set) {
  const RopeParams& r = rope_[set];
  std::vector<float>& cs = rope_cs_[set];
  const int n_rot = r.n_rot;
  if (!rope_ready_[set]) {  // the angles of each row's position, shared by every layer of the step
    if (cs.size() < sz(n_) * sz(n_rot)) cs.resize(sz(shapes_.rows) * sz(n_rot));
    for (int i = 0; i < n_; ++i)
      kernels::rope_norm_cos_sin(pos0_ + i, n_rot, r.freq_base, r.freq_scale, &cs[sz(i) * sz(n_rot)], r.freq_factors,
                                 r.attn_factor);
    rope_ready_[set] = true;
  }
  const int64_t w = width(x), head_dim = w / n_heads;
  for (int i = 0; i < n_; ++i) {
    float* row = buf(x) + i * w;
    if (r.mode == RopeMode::Neox) kernels::rope_neox_with(row, n_heads, head_dim, n_rot, &cs[sz(i) * sz(n_rot)]);
    else ks_.rope_norm_with(row, n_heads, head_dim, n_rot, &cs[sz(i) * sz(n_rot)]);
  }
}

void CpuBackend::head_norm(ActBuf x, int n_heads, const float* weight, float eps) {
  const int64_t w = width(x), head_dim = w / n_heads;
  for (int64_t j = 0; j < int64_t{n_} * n_heads; ++j) {
    float* head = buf(x) + j * head_dim;  // rows are n_heads whole heads, so heads are consecutive
    ks_.rms_norm(head, weight, head, head_dim, eps);
  }
}

void CpuBackend::scale(ActBuf x, float s) { kernels::scale(buf(x), s, n_ * width(x)); }

void CpuBackend::kv_store(int layer, ActBuf k, ActBuf v) {
  const int hd = layout_.head_dim;
  for (int i = 0; i < n_; ++i) {
    const int pos = pos0_ + i;
    for (int h = 0; h < layout_.n_head_kv; ++h) {
      const float* kh = buf(k) + i * width(k) + h * hd;
      const float* vh = buf(v) + i * width(v) + h * hd;
      uint8_t* vd = v_head(layer, h) + sz(pos) * layout_.row_bytes();
      if (layout_.type == KvType::Q8_0) {  // rows along head_dim, as llama.cpp quantizes them
        const kernels::QuantizeRow quantize = ks_.act(kernels::ActForm::q8_0).from_f32;
        quantize(kh, k_head(layer, h) + sz(pos) * layout_.row_bytes(), hd);
        quantize(vh, vd, hd);
        continue;
      }
      const size_t k0 = KvLayout::k_index(pos, 0, hd);
      if (layout_.type == KvType::F32) {
        auto* kd = reinterpret_cast<float*>(k_head(layer, h)) + k0;
        for (int d = 0; d < hd; ++d) kd[sz(d) * KvLayout::kKeyBlock] = kh[d];
        std::memcpy(vd, vh, sz(hd) * sizeof(float));
      } else {
        auto* kd = reinterpret_cast<kernels::fp16_t*>(k_head(layer, h)) + k0;
        for (int d = 0; d < hd; ++d) kd[sz(d) * KvLayout::kKeyBlock] = kernels::fp32_to_fp16(kh[d]);
        kernels::quantize_row_f16_ref(vh, reinterpret_cast<kernels::fp16_t*>(vd), hd);
      }
    }
  }
}

void CpuBackend::matmul_kn(int64_t n, const uint8_t* w, int64_t ldw, int64_t n_cols, const float* x, int64_t ldx,
                           int64_t n_x, float* y, int64_t ldy) const {
  if (layout_.type == KvType::F32)
    ks_.matmul_kn_f32_f32(n, reinterpret_cast<const float*>(w), ldw, n_cols, x, ldx, n_x, y, ldy);
  else
    ks_.matmul_kn_f16_f32(n, reinterpret_cast<const kernels::fp16_t*>(w), ldw, n_cols, x, ldx, n_x, y, ldy);
}

// att[i][h] = softmax(q[i][h] . K[0 .. pos0+i] / sqrt(head_dim)) . V[0 .. pos0+i]: row i sees the
// cache and the step's rows up to itself (the causal mask). The query heads sharing a KV head
// (GQA) are adjacent in q, so a unit of work (row, KV head, chunk of the visible positions)
// computes the whole group's scores and outputs as two small k-major products over the cache:
//   scores[group][chunk] = q[group][head_dim] . K^T[head_dim][chunk]   (32-position K^T blocks)
//   out[group][head_dim] = softmax(scores)[group][chunk] . V[chunk][head_dim]
// A row has one chunk unless there are too few items to keep the pool busy (decode: one row, a
// few KV heads, thousands of positions); then its positions are split into chunks whose
// softmaxes are combined at the end (flash-decoding): each chunk's outputs are normalized over
// the chunk, chunk c weighs sum_c * exp(max_c - max), and the thread that finishes a row's last
// chunk combines them. Each cache byte is read by one thread. Threads take units from a shared
// counter, the longest rows (the end of a prefill batch) first. Over a Q8_0 cache, a unit of whole
// rows takes kQ8RowBlock adjacent rows: the K rows are packed into a tile and the V rows dequantized
// once for all of them (a row's scores past its own last position are zeroed after its softmax).
void CpuBackend::attention(int layer, int n_head, ActBuf q_buf, ActBuf out_buf, const AttnParams& params) {
  const int n_head_kv = layout_.n_head_kv, hd = layout_.head_dim, n = n_, pos0 = pos0_;
  const int group = n_head / n_head_kv;
  const int64_t Q = width(q_buf), n_items = int64_t{n} * n_head_kv;
  const auto visible = [&](int i, int& t_first) {  // row i's positions [t_first, t_first + n_vis)
    const int n_pos = pos0 + i + 1;
    t_first = params.window > 0 ? std::max(0, n_pos - params.window) : 0;
    return n_pos - t_first;
  };
  int t_unused;
  const int max_vis = visible(n - 1, t_unused);
  // Rows are split only when there are few (row, KV head) items, into chunks of kChunk positions:
  // the split does not depend on the thread count, so neither do the logits.
  const int chunk_len = n_items < kSplitBelowItems ? kChunk : max_vis;
  const int chunks = (max_vis + chunk_len - 1) / chunk_len;
  const bool q8 = layout_.type == KvType::Q8_0;
  const int rows_per_unit = q8 && chunks == 1 ? kQ8RowBlock : 1;
  const int64_t n_row_blocks = (n + rows_per_unit - 1) / rows_per_unit;
  const int64_t n_units = n_row_blocks * n_head_kv * chunks;

  const size_t per_thread = sz(rows_per_unit) * sz(group) * sz(layout_.n_ctx);
  if (scores_.size() < sz(pool_->size()) * per_thread) scores_.resize(sz(pool_->size()) * per_thread);
  const size_t q8_per_thread = sz(rows_per_unit) * sz(group) * layout_.row_bytes();
  const size_t v_per_thread = (sz(kVChunk) + sz(rows_per_unit) * sz(group)) * sz(hd);
  if (q8) {
    if (q8_scratch_.size() < sz(pool_->size()) * q8_per_thread) q8_scratch_.resize(sz(pool_->size()) * q8_per_thread);
    if (v_rows_.size() < sz(pool_->size()) * v_per_thread) v_rows_.resize(sz(pool_->size()) * v_per_thread);
  }
  if (chunks > 1) {
    if (parts_.size() < sz(n_units) * sz(group) * sz(hd)) parts_.resize(sz(n_units) * sz(group) * sz(hd));
    if (part_stats_.size() < sz(n_units) * sz(group)) part_stats_.resize(sz(n_units) * sz(group));
    if (pending_size_ < sz(n_items)) {
      pending_ = std::make_unique<std::atomic<int>[]>(sz(n_items));
      pending_size_ = sz(n_items);
    }
    for (int64_t item = 0; item < n_items; ++item) {
      int t_first;
      const int n_vis = visible(static_cast<int>(item / n_head_kv), t_first);
      pending_[sz(item)].store((n_vis + chunk_len - 1) / chunk_len, std::memory_order_relaxed);
    }
  }
  const float* q = buf(q_buf);
  float* att = buf(out_buf);
  std::atomic<int64_t> next{0};
  pool_->run([&](int ith, int) {
    float* scores = &scores_[sz(ith) * per_thread];  // [rows_per_unit][group][n_ctx]
    uint8_t* q8_rows = q8 ? &q8_scratch_[sz(ith) * q8_per_thread] : nullptr;
    float* v_rows = q8 ? &v_rows_[sz(ith) * v_per_thread] : nullptr;
    for (int64_t u; (u = next.fetch_add(1, std::memory_order_relaxed)) < n_units;) {
      const int64_t unit = n_units - 1 - u, item = unit / chunks;  // the longest rows first
      const int c = static_cast<int>(unit % chunks);
      const int i = static_cast<int>(item / n_head_kv) * rows_per_unit, g = static_cast<int>(item % n_head_kv);
      const int64_t first = i * Q + int64_t{g} * group * hd;  // the group's first query head in row i
      if (rows_per_unit > 1) {  // whole rows i .. i + nr - 1 over a Q8_0 cache
        const int nr = std::min(rows_per_unit, n - i);
        int lo[kQ8RowBlock], hi[kQ8RowBlock];
        for (int k = 0; k < nr; ++k) {
          const int n_vis = visible(i + k, lo[k]);
          hi[k] = lo[k] + n_vis;
        }
        attend_q8_0(layer, g, nr, lo, hi, q + first, Q, group, scores, att + first, Q, nullptr, params, q8_rows,
                    v_rows);
        continue;
      }
      int t_first;
      const int n_vis = visible(i, t_first);
      const int t_lo = t_first + c * chunk_len, t_hi = std::min(t_first + n_vis, t_lo + chunk_len);
      if (t_lo >= t_hi) continue;  // this row has fewer chunks
      const bool whole = t_lo == t_first && t_hi == t_first + n_vis;
      float* out = whole ? att + first : &parts_[sz(unit) * sz(group) * sz(hd)];
      kernels::SoftmaxStats* stats = whole ? nullptr : &part_stats_[sz(unit) * sz(group)];
      if (q8)
        attend_q8_0(layer, g, 1, &t_lo, &t_hi, q + first, Q, group, scores, out, Q, stats, params, q8_rows, v_rows);
      else
        attend(layer, g, t_lo, t_hi, q + first, group, scores, out, stats, params);
      // The last chunk of a row to finish combines the row's chunks.
      if (!whole && pending_[sz(item)].fetch_sub(1, std::memory_order_acq_rel) == 1)
        combine_chunks(&parts_[sz(item) * sz(chunks) * sz(group) * sz(hd)], &part_stats_[sz(item) * sz(chunks) * sz(group)],
                       (n_vis + chunk_len - 1) / chunk_len, group, att + first);
    }
  });
}

// The softmax of one query head's scores over a chunk, with the Gemma 2 cap if set; its stats.
kernels::SoftmaxStats CpuBackend::softmax_scores(float* s, int n, const AttnParams& params) const {
  const float cap = params.softcap;
  if (cap <= 0) return ks_.softmax_scaled(s, n, params.scale);
  const float cap_scale = params.scale / cap;  // cap * tanh(scale * logit / cap), then a plain softmax
  for (int t = 0; t < n; ++t) s[t] = cap * std::tanh(s[t] * cap_scale);
  return ks_.softmax_scaled(s, n, 1.0f);
}

// out[h] = sum_c w_c part_c[h] / sum_c w_c with w_c = sum_c[h] * exp(max_c[h] - max[h]).
void CpuBackend::combine_chunks(const float* parts, const kernels::SoftmaxStats* stats, int n_chunks, int group,
                                float* out) const {
  const int hd = layout_.head_dim;
  for (int h = 0; h < group; ++h) {
    float max = -INFINITY;
    for (int c = 0; c < n_chunks; ++c) max = std::max(max, stats[c * group + h].max);
    float* o = out + h * hd;
    std::fill(o, o + hd, 0.0f);
    float total = 0.0f;
    for (int c = 0; c < n_chunks; ++c) {
      const kernels::SoftmaxStats& st = stats[c * group + h];
      const float w = st.sum * std::exp(st.max - max);
      const float* p = parts + (sz(c) * sz(group) + sz(h)) * sz(hd);
      for (int d = 0; d < hd; ++d) o[d] += w * p[d];
      total += w;
    }
    const float inv = 1.0f / total;
    for (int d = 0; d < hd; ++d) o[d] *= inv;
  }
}

// One unit over an F16 / F32 cache: positions [t_lo, t_hi) of KV head g for nq query heads.
// scores holds [nq][n_ctx] at the positions' own columns; out [nq][head_dim]; stats (nullptr when
// the chunk is the whole row) receives each head's softmax stats.
void CpuBackend::attend(int layer, int g, int t_lo, int t_hi, const float* q, int nq, float* scores, float* out,
                        kernels::SoftmaxStats* stats, const AttnParams& params) {
  const int hd = layout_.head_dim;
  const int64_t ld = layout_.n_ctx;
  const uint8_t* kh = k_head(layer, g);
  const size_t kblock = layout_.k_block_bytes();
  for (int t0 = t_lo / KvLayout::kKeyBlock * KvLayout::kKeyBlock; t0 < t_hi; t0 += KvLayout::kKeyBlock) {
    const int cols = std::min(t_hi - t0, KvLayout::kKeyBlock);
    matmul_kn(hd, kh + sz(t0 / KvLayout::kKeyBlock) * kblock, KvLayout::kKeyBlock, cols, q, hd, nq, scores + t0, ld);
  }
  for (int h = 0; h < nq; ++h) {
    const kernels::SoftmaxStats st = softmax_scores(scores + h * ld + t_lo, t_hi - t_lo, params);
    if (stats) stats[h] = st;
  }
  matmul_kn(t_hi - t_lo, v_head(layer, g) + sz(t_lo) * sz(hd) * layout_.elem_bytes(), hd, hd, scores + t_lo, ld, nq,
            out, hd);
}

// The same over a Q8_0 cache, as llama.cpp's CPU flash attention computes it: each query head
// quantized to Q8_0, scores[h][t] = Q8_0 . Q8_0 integer dot with K row t, the capped softmax,
// then out[h] = sum_t p[h][t] * V_t over V rows dequantized to floats. A unit is nr rows (row k
// sees positions [t_lo[k], t_hi[k]); its queries at q + k * ldq, its outputs at out + k * ldo),
// all over the union [lo, hi) of their positions: the scores are one Q8_0 matmul tile call (K
// rows as weight rows, the nr x nq heads as activation rows), the outputs a k-major product per
// kVChunk dequantized V rows, with each row's weights outside its own positions zero. scores
// holds [nr * nq][n_ctx] from column 0 (position lo); stats (nr == 1 only) as in attend().
void CpuBackend::attend_q8_0(int layer, int g, int nr, const int* t_lo, const int* t_hi, const float* q,
                             int64_t ldq, int nq, float* scores, float* out, int64_t ldo,
                             kernels::SoftmaxStats* stats, const AttnParams& params, uint8_t* q8, float* v_rows) {
  const int hd = layout_.head_dim, na = nr * nq;  // activation row k * nq + h: row k's head h
  const int lo = *std::min_element(t_lo, t_lo + nr), hi = *std::max_element(t_hi, t_hi + nr), n_span = hi - lo;
  const int64_t ld = layout_.n_ctx;
  const size_t row = layout_.row_bytes();
  const kernels::TypeKernels& q8_0 = *ks_.type(DType::Q8_0);
  const kernels::QuantizeRow quantize = ks_.act(kernels::ActForm::q8_0).from_f32;
  const uint8_t* kh = k_head(layer, g) + sz(lo) * row;
  const uint8_t* vh = v_head(layer, g) + sz(lo) * row;
  for (int k = 0; k < nr; ++k)
    for (int h = 0; h < nq; ++h) quantize(q + k * ldq + h * hd, q8 + sz(k * nq + h) * row, hd);
  // scores[na][n_span] = q8[na] . K[n_span], by the tile kernels::matmul would pick for na rows
  const kernels::MatmulTile tile = kernels::pick_tile(q8_0, na);
  tile(hd, kh, row, n_span, q8, row, na, scores, ld);
  for (int k = 0; k < nr; ++k) {
    const int a = t_lo[k] - lo, b = t_hi[k] - lo;
    for (int h = 0; h < nq; ++h) {
      float* s = scores + (k * nq + h) * ld;
      const kernels::SoftmaxStats st = softmax_scores(s + a, b - a, params);
      if (stats) stats[h] = st;
      std::fill(s, s + a, 0.0f);
      std::fill(s + b, s + n_span, 0.0f);
      std::fill(out + k * ldo + h * hd, out + k * ldo + (h + 1) * hd, 0.0f);
    }
  }
  float* part = v_rows + sz(kVChunk) * sz(hd);  // [na][hd]
  for (int t0 = 0; t0 < n_span; t0 += kVChunk) {
    const int rows = std::min(kVChunk, n_span - t0);
    for (int t = 0; t < rows; ++t) q8_0.dequantize_row(vh + sz(t0 + t) * row, v_rows + sz(t) * sz(hd), hd);
    // part[na][hd] = p[na][t0 .. t0 + rows) . V[rows][hd]
    ks_.matmul_kn_f32_f32(rows, v_rows, hd, hd, scores + t0, ld, na, part, hd);
    for (int k = 0; k < nr; ++k)
      for (int h = 0; h < nq; ++h) {
        float* o = out + k * ldo + h * hd;
        const float* p = part + sz(k * nq + h) * sz(hd);
        for (int d = 0; d < hd; ++d) o[d] += p[d];
      }
  }
}

void CpuBackend::silu_mul(ActBuf gate, ActBuf up, ActBuf out) {
  ks_.silu_mul(buf(gate), buf(up), buf(out), n_ * width(gate));
}

void CpuBackend::gelu_mul(ActBuf gate, ActBuf up, ActBuf out) {
  kernels::gelu_mul(buf(gate), buf(up), buf(out), n_ * width(gate));
}

void CpuBackend::add(ActBuf a, ActBuf b, ActBuf out) { ks_.add(buf(a), buf(b), buf(out), n_ * width(a)); }

void CpuBackend::lm_head(const kernels::WeightMatrix& w, ActBuf in, int row0, int n_rows, float* logits) {
  const kernels::MatmulOut out{&w, logits, w.rows};
  multiply(in, row0, n_rows, std::span<const kernels::MatmulOut>(&out, 1));
}

}  // namespace edgellm::engine
