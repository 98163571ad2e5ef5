// encode_matmul: the one place that picks between the mat-vec kernels (decode and small batches)
// and the tiled matrix-matrix kernels (prefill).
#include <algorithm>

#include "metal/encode.hpp"

namespace edgellm::engine::metal {

void encode_matmul(Device& dev, const WeightView& w, BufView x, int ldx, BufView y, int ldy, int n_tok) {
  // Up to kMaxMvTokens rows the mat-vec kernels (one pass over W serving every row) are faster;
  // past that the tiled kernel, which reuses each dequantized W tile for 32 tokens, wins.
  if (n_tok <= kMaxMvTokens) {
    encode_mul_mv(dev, w, x, ldx, y, ldy, n_tok);
  } else if (w.cols % kMmTileK == 0) {
    encode_mul_mm(dev, w, x, ldx, y, ldy, n_tok);
  } else {
    // The tiled kernels need whole K steps; F32 / F16 weights of small models need not have them
    // (stories260K's FFN is 172 wide): those go through the mat-vec kernels, kMaxMvTokens rows a
    // dispatch.
    for (int i = 0; i < n_tok; i += kMaxMvTokens)
      encode_mul_mv(dev, w, x.at(uint64_t(i) * uint64_t(ldx) * sizeof(float)), ldx,
                    y.at(uint64_t(i) * uint64_t(ldy) * sizeof(float)), ldy, std::min(kMaxMvTokens, n_tok - i));
  }
}

}  // namespace edgellm::engine::metal
