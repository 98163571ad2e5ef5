// The one place that maps a backend name to a backend (see backend.hpp). A new backend adds its
// name here, behind its build option.
#include "backend.hpp"

#include <string>

#include "arch.hpp"  // printable()
#include "backend_cpu.hpp"
#include "error.hpp"
#if defined(EDGELLM_HAVE_METAL)
#include "metal/backend_metal.hpp"
#endif

namespace edgellm::engine {

std::unique_ptr<Backend> make_backend(std::string_view name, const BackendOptions& options) {
  if (name == "cpu") return std::make_unique<CpuBackend>(options);
  if (name == "auto") {
#if defined(EDGELLM_HAVE_METAL) && defined(EDGELLM_METAL) && defined(__APPLE__)
    // The GPU when this Mac has one the kernels run on; otherwise (no Metal device, or one that
    // is refused) the CPU. A test build's emulated device is far slower than the CPU: never "auto".
    try {
      return std::make_unique<MetalBackend>(options);
    } catch (const Error& e) {
      if (e.kind() != Error::Kind::Unsupported) throw;
    }
#endif
    return std::make_unique<CpuBackend>(options);
  }
  if (name == "metal") {
#if defined(EDGELLM_HAVE_METAL)
    return std::make_unique<MetalBackend>(options);
#else
    throw Error(Error::Kind::Unsupported, "context: backend 'metal': this build has no Metal backend (configure with "
                                          "-DEDGELLM_METAL=ON on Apple; this build has: " +
                                              backend_names() + ")");
#endif
  }
  throw Error(Error::Kind::InvalidArgument,
              "context: unknown backend '" + printable(name) + "' (this build has: " + backend_names() + ")");
}

std::string_view feature_name(Feature f) {
  switch (f) {
    case Feature::matmul_bias: return "Q/K/V biases";
    case Feature::rope_neox: return "NEOX RoPE";
    case Feature::rope_sets: return "per-layer RoPE (sliding-window base, attn_factor, layers without RoPE)";
    case Feature::head_norm: return "per-head Q/K norms";
    case Feature::scale: return "a scaled embedding";
    case Feature::gelu_mul: return "a GELU FFN";
    case Feature::attn_softcap: return "attention logit soft-capping";
    case Feature::sliding_window: return "sliding-window attention";
    case Feature::kv_q8_0: return "a Q8_0 KV cache";
    case Feature::kCount: break;
  }
  return "?";
}

std::string backend_names() {
#if defined(EDGELLM_HAVE_METAL)
  return "auto, cpu, metal";
#else
  return "auto, cpu";
#endif
}

}  // namespace edgellm::engine
