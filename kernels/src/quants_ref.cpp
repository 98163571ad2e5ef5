// Scalar reference kernels: see quants.hpp.
#include "edgellm/kernels/quants.hpp"
