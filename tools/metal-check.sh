#!/usr/bin/env bash
# metal-check.sh: the checks of the Metal backend that only a Mac can run.
#
#   tools/metal-check.sh [MODEL.gguf]      on a Mac with Apple silicon (M1 / A14 or later)
#
# What Linux CI (tools/test.sh) verifies, on the emulated device (EDGELLM_METAL_EMULATOR, see
# docs/METAL.md): all of the host side (backend_metal.cpp and each primitive's kernel choice,
# grid, threadgroup memory, offsets and arguments), the kernels' arithmetic (the .metal files
# compiled as C++ with a shim) against the CPU's scalar references, missing barriers and
# non-uniform SIMD-group calls (three thread schedules), the whole forward pass against the CPU
# backend, and the embedding of the kernel sources (cmake/metal_shaders.cmake).
#
# What Linux CI does NOT verify, and this script does:
#   - that engine/src/metal/device_apple.mm compiles (only Apple's SDK has the Metal API) and
#     drives Metal correctly (buffers wrapped without a copy, one serial encoder per step, errors);
#   - that the kernels compile as MSL with Apple's compiler at run time (the emulator accepts some
#     C++ that MSL rejects);
#   - their results on the real GPU: its exp / rsqrt / half conversions, simdgroup_matrix, the
#     real scheduling of threads and the real threadgroup limits;
#   - speed.
#
# Steps:
#   1. configure and build in build-metal/ (Release, -Werror, -DEDGELLM_METAL=ON): the library,
#      the tools and the Metal tests;
#   2. run the tests labelled `metal` (ctest -L metal) on the GPU: each kernel against the CPU's
#      scalar reference and the whole forward pass, C API and tools against the CPU backend (their
#      test_devices() is the real GPU in this build);
#   3. with a model: edgellm-bench pp512 / tg128 with --backend metal (JSON, llama-bench's fields),
#      and whether the first 64 greedy tokens of edgellm-cli match the CPU backend's (said, not
#      failed: a large quantized model's CPU path quantizes activations, so its greedy text may part
#      from the GPU's after a near tie).
#
# Needs: Xcode's command-line tools, and from Homebrew: cmake ninja spdlog fmt xsimd. The tests
# use Catch2 v2's single header (Homebrew has only v3): it is downloaded once (pinned, v2.13.10)
# into build-metal/_catch2 unless CATCH2_V2_DIR names a folder holding catch2/catch.hpp,
# Catch.cmake and CatchAddTests.cmake.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
model=${1:-}
build=${EDGELLM_METAL_BUILD:-build-metal}

say() { printf '[metal-check] %s\n' "$*"; }
die() { printf '[metal-check] error: %s\n' "$*" >&2; exit 1; }

[ "$(uname -s)" = Darwin ] || die "this script runs on macOS (the Metal backend needs Apple's Metal framework); on Linux run tools/test.sh"
[ -z "$model" ] || [ -f "$model" ] || die "no model file '$model'"
for tool in cmake ninja; do command -v "$tool" >/dev/null || die "$tool is missing (brew install cmake ninja spdlog fmt xsimd)"; done

prefix=$(brew --prefix 2>/dev/null || echo /usr/local)

# Catch2 v2 (the tests' framework), pinned.
catch=${CATCH2_V2_DIR:-$root/$build/_catch2}
if [ ! -f "$catch/catch2/catch.hpp" ]; then
  say "downloading Catch2 v2.13.10 (catch.hpp, Catch.cmake, CatchAddTests.cmake) into $catch"
  mkdir -p "$catch/catch2"
  base=https://raw.githubusercontent.com/catchorg/Catch2/v2.13.10
  curl -fsSL "$base/single_include/catch2/catch.hpp" -o "$catch/catch2/catch.hpp"
  curl -fsSL "$base/contrib/Catch.cmake" -o "$catch/Catch.cmake"
  curl -fsSL "$base/contrib/CatchAddTests.cmake" -o "$catch/CatchAddTests.cmake"
fi

say "1. configure and build ($build, -DEDGELLM_METAL=ON)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDGELLM_WERROR=ON -DEDGELLM_METAL=ON \
  -DEDGELLM_METAL_EMULATOR=OFF -DEDGELLM_BUILD_BENCH=OFF -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_MODULE_PATH="$catch" -DCMAKE_CXX_FLAGS="-isystem $catch" >/dev/null
targets=(edgellm edgellm-cli edgellm-bench)
for t in tests/metal/test_metal_*.cpp; do targets+=("$(basename "$t" .cpp)"); done
cmake --build "$build" --target "${targets[@]}"

say "2. the Metal tests on the GPU (ctest -L metal)"
ctest --test-dir "$build" -L metal --output-on-failure

if [ -z "$model" ]; then
  say "done (no model given: no benchmark)"
  exit 0
fi

say "3. edgellm-bench pp512 / tg128 on the GPU: $model"
"$build/bin/edgellm-bench" -m "$model" -p 512 -n 128 -r 3 --backend metal -o json

cpu_text=$("$build/bin/edgellm-cli" -m "$model" -p "Once upon a time" -n 64 --temp 0 --backend cpu 2>/dev/null)
gpu_text=$("$build/bin/edgellm-cli" -m "$model" -p "Once upon a time" -n 64 --temp 0 --backend metal 2>/dev/null)
if [ "$cpu_text" = "$gpu_text" ]; then
  say "greedy text (64 tokens): the GPU's equals the CPU's"
else
  say "greedy text (64 tokens) differs between the GPU and the CPU (see above: a near tie can do this):"
  printf 'cpu:   %s\nmetal: %s\n' "$cpu_text" "$gpu_text"
fi
say "done"
