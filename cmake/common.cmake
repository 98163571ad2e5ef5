# Header-only code shared by layers that do not depend on each other (common/include): the
# engine's sampler, the synthetic model writer, and the tests and benchmarks of every layer,
# including the aarch64 cross build's kernel tests, which have no engine. Included from
# engine/CMakeLists.txt and tests/CMakeLists.txt; whichever comes first defines the target.
include_guard(GLOBAL)
add_library(edgellm_rng INTERFACE)  # edgellm/rng.hpp
target_include_directories(edgellm_rng INTERFACE $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/common/include>)
