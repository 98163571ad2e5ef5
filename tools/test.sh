#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, then each build configuration once, and its
# tests. .ci/run calls exactly this.
#   native   Release, -Werror: every test (llama.cpp oracle tests included)
#   asan     ASan+UBSan, format and kernel layers: malformed-GGUF and kernel tests
#   arm64    aarch64 cross build run under qemu, twice: with dotprod (neoverse-n1) and without
#            (cortex-a72), so both NEON paths and the run-time feature check are exercised
#   fuzz     clang libFuzzer build of the GGUF parser, a bounded run from the seed corpus
# EDGELLM_TEST_STAGES="native asan" limits the stages; EDGELLM_FUZZ_SECONDS sets the fuzz time.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/tools/setup.sh" || exit 1

stages=${EDGELLM_TEST_STAGES:-"native asan arm64 fuzz"}
jobs=$(nproc)
passed=0 failed=0 status=0
log=$(mktemp)

# ctest ... ; adds its counts to the totals
run_ctest() {
  ctest "$@" --output-on-failure 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$log" | tail -1)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=$((failed + BASH_REMATCH[1]))
    passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
  fi
  if [ "$rc" -ne 0 ]; then status=1; fi
  if [ -z "$line" ]; then status=1; failed=$((failed + 1)); echo "[test] ctest printed no summary"; fi
}

build() {  # build DIR cmake-args...
  local dir=$1; shift
  echo "[test] configure + build $dir"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null || { status=1; failed=$((failed + 1)); return 1; }
  cmake --build "$dir" -j "$jobs" || { status=1; failed=$((failed + 1)); return 1; }
}

for stage in $stages; do
  case $stage in
    native)
      build build -DCMAKE_BUILD_TYPE=Release -DEDGELLM_WERROR=ON && run_ctest --test-dir build -j "$jobs"
      ;;
    asan)
      build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGELLM_WERROR=ON \
        -DEDGELLM_SANITIZE=address,undefined -DEDGELLM_BUILD_ENGINE=OFF &&
        ASAN_OPTIONS=detect_leaks=1 run_ctest --test-dir build-asan -j "$jobs"
      ;;
    arm64)
      if build build-arm64 -DCMAKE_BUILD_TYPE=Release -DEDGELLM_WERROR=ON \
          -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake; then
        for cpu in neoverse-n1 cortex-a72; do
          echo "[test] aarch64 under qemu -cpu $cpu"
          EDGELLM_QEMU_CPU=$cpu run_ctest --test-dir build-arm64 -j "$jobs"
        done
      fi
      ;;
    fuzz)
      if build build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
          -DCMAKE_CXX_COMPILER=clang++-14 -DEDGELLM_FUZZ=ON -DEDGELLM_BUILD_ENGINE=OFF \
          -DEDGELLM_BUILD_TESTS=OFF; then
        echo "[test] fuzzing the GGUF parser for ${EDGELLM_FUZZ_SECONDS:-60} s"
        if build-fuzz/bin/fuzz-gguf -max_total_time="${EDGELLM_FUZZ_SECONDS:-60}" -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ \
            -print_final_stats=1 build-fuzz/fuzz-corpus; then
          passed=$((passed + 1))
        else
          failed=$((failed + 1)); status=1
        fi
      fi
      ;;
    *) echo "[test] unknown stage $stage"; status=1 ;;
  esac
done
rm -f "$log"
echo
echo "$passed passed, $failed failed"
exit $status
