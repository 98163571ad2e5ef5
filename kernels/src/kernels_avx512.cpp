// The avx512 kernel table: the scalar set with this ISA's own kernels in place.
#include "kernel_sets.hpp"

namespace edgellm::kernels {

const KernelSet* avx512_kernels() {
  static const KernelSet ks = [] {
    KernelSet k = scalar_kernel_set();
    k.isa = Isa::avx512;
    k.name = "avx512";
    return k;
  }();
  return &ks;
}

}  // namespace edgellm::kernels
