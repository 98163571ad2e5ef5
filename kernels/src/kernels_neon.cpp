// The NEON kernel table. Every aarch64 CPU has NEON (armv8.0), so the table is always runnable.
// NEON kernels plug in here by replacing entries of the scalar set; dispatch.cpp needs no change.
#include "kernel_sets.hpp"

namespace edgellm::kernels {

const KernelSet* neon_kernels() {
  static const KernelSet ks = [] {
    KernelSet k = scalar_kernel_set();
    k.isa = Isa::neon;
    k.name = "neon";
    return k;
  }();
  return &ks;
}

}  // namespace edgellm::kernels
