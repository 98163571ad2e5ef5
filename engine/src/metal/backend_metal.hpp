// The Metal backend (docs/METAL.md): every op of a step is recorded on a metal::Device as one or
// more kernel dispatches (encode.hpp chooses the kernels), and finish() runs the step's command
// buffer and waits for it. The weights are the model's mapping wrapped as one device buffer (no
// copy); the activations, the KV cache, the attention scratch and the logits are device buffers
// in shared memory, allocated once. The same code runs on the real GPU (device_apple.mm) and on
// the emulated device of a test build (tests/metal/emu).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "backend.hpp"
#include "metal/device.hpp"
#include "metal/encode.hpp"

namespace edgellm::engine {

class MetalBackend final : public Backend {
 public:
  // On the device of this build (metal::make_device(); throws Error(Unsupported) when there is
  // none).
  explicit MetalBackend(const BackendOptions& options);
  // On the given device (tests inject emulated devices with other properties). Throws
  // Error(Unsupported) for a device the kernels cannot run on (a SIMD width other than 32).
  MetalBackend(const BackendOptions& options, std::unique_ptr<metal::Device> device);

  std::string_view name() const override { return "metal"; }
  int n_threads() const override { return n_threads_; }
  bool supports(DType type) const override { return metal::supports(type); }
  // The Llama block only, for now: no kernels yet for the other architectures' ops.
  bool supports(Feature) const override { return false; }
  metal::Device& device() { return *dev_; }

  void map_weights(const void* data, size_t bytes) override;
  void alloc_activations(const ActShapes& shapes) override;
  void alloc_kv(const KvLayout& layout) override;
  void set_rope(int set, const RopeParams& rope) override;

  void begin(int n, int pos0) override;
  void embed(const kernels::WeightMatrix& table, const int32_t* tokens, ActBuf out) override;
  void rms_norm(ActBuf in, int row0, int n_rows, const float* weight, float eps, ActBuf out) override;
  void matmul(ActBuf in, int row0, int n_rows, std::span<const MatmulTo> products) override;
  void rope(ActBuf x, int n_heads, int set) override;
  void head_norm(ActBuf, int, const float*, float) override { no_kernel("head_norm"); }
  void scale(ActBuf, float) override { no_kernel("scale"); }
  void kv_store(int layer, ActBuf k, ActBuf v) override;
  void attention(int layer, int n_head, ActBuf q, ActBuf out, const AttnParams& params) override;
  void silu_mul(ActBuf gate, ActBuf up, ActBuf out) override;
  void gelu_mul(ActBuf, ActBuf, ActBuf) override { no_kernel("gelu_mul"); }
  void add(ActBuf a, ActBuf b, ActBuf out) override;
  void lm_head(const kernels::WeightMatrix& w, ActBuf in, int row0, int n_rows, float* logits) override;
  void finish() override;

 private:
  int64_t width(ActBuf b) const { return shapes_.width[static_cast<size_t>(b)]; }
  // Row `row` of an activation buffer.
  metal::BufView act(ActBuf b, int64_t row = 0) const;
  // A host address inside the model's mapping (bytes long) as a view of the weights buffer;
  // Error(InvalidArgument) naming `what` when it is not inside.
  metal::BufView weights_at(const void* p, uint64_t bytes, const char* what) const;
  metal::WeightView weight(const kernels::WeightMatrix& w, const char* what) const;
  metal::KvView kv_view(int layer) const;
  void check_step(const char* op) const;
  // An op of the other architectures' graphs: Context never calls it (supports(Feature) is false).
  [[noreturn]] static void no_kernel(const char* op);

  std::unique_ptr<metal::Device> dev_;
  int n_threads_ = 1;

  const uint8_t* weights_base_ = nullptr;  // the mapping map_weights() was given
  size_t weights_bytes_ = 0;
  metal::BufferId weights_ = 0;

  ActShapes shapes_;
  metal::BufferId act_[kActBufs] = {};
  metal::BufferId tokens_ = 0;  // the step's token ids (shapes_.rows int32)

  KvLayout layout_;
  metal::BufferId kv_ = 0;
  metal::BufferId scratch_ = 0;  // encode_attention's split-KV partial results
  size_t scratch_bytes_ = 0;

  RopeParams rope_;
  metal::BufView freq_factors_;  // buf 0: none

  metal::BufferId logits_ = 0;  // lm_head's output on the device, logits_rows_ x logits_cols_ floats
  int64_t logits_rows_ = 0, logits_cols_ = 0;
  float* logits_to_ = nullptr;  // where finish() copies the step's logits (nullptr: none)
  size_t logits_floats_ = 0;

  int n_ = 0, pos0_ = 0;  // the step begin() opened
  bool open_ = false;     // a step was begun and not finished: dispatches may be recorded
};

}  // namespace edgellm::engine
