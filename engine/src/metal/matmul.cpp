// encode_matmul: the one place that picks between the mat-vec kernels (decode and small batches)
// and the tiled matrix-matrix kernels (prefill).
#include "metal/encode.hpp"

namespace edgellm::engine::metal {

void encode_matmul(Device& dev, const WeightView& w, BufView x, int ldx, BufView y, int ldy, int n_tok) {
  // Up to kMaxMvTokens rows the mat-vec kernels (one pass over W serving every row) are faster;
  // past that the tiled kernel, which reuses each dequantized W tile for 32 tokens, wins.
  if (n_tok <= kMaxMvTokens) {
    encode_mul_mv(dev, w, x, ldx, y, ldy, n_tok);
  } else {
    encode_mul_mm(dev, w, x, ldx, y, ldy, n_tok);
  }
}

}  // namespace edgellm::engine::metal
