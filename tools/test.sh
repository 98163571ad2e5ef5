#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, then each build configuration once, and its
# tests. .ci/run calls exactly this.
#   native   Release, -Werror: every test (llama.cpp oracle tests included); with the Metal
#            backend on the emulated device (EDGELLM_METAL_EMULATOR: tests/metal, docs/METAL.md)
#   asan     ASan+UBSan (+LSan), the whole engine, API, tools and tests (the Metal emulator too):
#            the whole suite but the benchmarks (not tests). The llama.cpp oracle tests run too:
#            bin/llama-oracle itself is left uninstrumented (tests/oracle/CMakeLists.txt), our side
#            of each comparison is not.
#   tsan     TSan, only the test binaries whose sources hold [tsan]-tagged tests (thread pool, two
#            contexts on one model, cancel, log callback, busy context), run directly with the
#            Catch tag filter "[tsan]" (ctest's labels are per binary, not per tag); fails if no
#            test ran
#   arm64    aarch64 cross build run under qemu, twice: with dotprod (neoverse-n1) and without
#            (cortex-a72), so both NEON paths and the run-time feature check are exercised
#   fuzz     clang libFuzzer builds of the GGUF parser and of what a parsed file reaches next
#            (model binding, tokenizer, chat template), a bounded run of each from the seed corpus
# EDGELLM_TEST_STAGES="native asan" limits the stages; EDGELLM_FUZZ_SECONDS sets the fuzz time.
# Each configuration is built once. The end prints one line per stage: its time (configure + build
# + tests) and its passed/failed counts.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/tools/setup.sh" || exit 1

stages=${EDGELLM_TEST_STAGES:-"native asan tsan arm64 fuzz"}
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

# build DIR cmake-args... : configures and builds DIR (only $build_targets when set); adds the
# seconds it took to stage_build.
build() {
  local dir=$1 t0=$SECONDS rc=0; shift
  echo "[test] configure + build $dir${build_targets:+ ($build_targets)}"
  # shellcheck disable=SC2086
  if ! cmake -S . -B "$dir" -G Ninja "$@" >/dev/null; then rc=1
  elif ! cmake --build "$dir" -j "$jobs" ${build_targets:+--target $build_targets}; then rc=1
  fi
  stage_build=$((stage_build + SECONDS - t0))
  if [ $rc -ne 0 ]; then status=1; failed=$((failed + 1)); fi
  return $rc
}

# Runs the Catch tests tagged [tsan] in each named test binary of build-tsan; adds its counts.
run_tsan_tests() {
  local total=0 bin n out
  for bin in "$@"; do
    n=$("build-tsan/tests/$bin" --list-test-names-only "[tsan]" 2>/dev/null | grep -c . || true)
    echo "[test] $bin: $n [tsan] test cases"
    [ "$n" -gt 0 ] || continue
    total=$((total + n))
    # halt_on_error: the first race fails the binary (exit 66), with both stacks in the log.
    if out=$(TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
               "build-tsan/tests/$bin" "[tsan]" 2>&1); then
      passed=$((passed + n))
      echo "$out" | tail -2
    else
      echo "$out"
      failed=$((failed + 1)); status=1
      echo "[test] $bin [tsan]: FAILED"
    fi
  done
  if [ "$total" -eq 0 ]; then
    echo "[test] tsan: no test tagged [tsan] ran"; failed=$((failed + 1)); status=1
  fi
}

summary=()
for stage in $stages; do
  stage_start=$SECONDS stage_build=0 stage_passed0=$passed stage_failed0=$failed
  case $stage in
    native)
      build build -DCMAKE_BUILD_TYPE=Release -DEDGELLM_WERROR=ON -DEDGELLM_METAL_EMULATOR=ON && run_ctest --test-dir build -j "$jobs"
      ;;
    asan)
      build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGELLM_WERROR=ON -DEDGELLM_METAL_EMULATOR=ON \
        -DEDGELLM_SANITIZE=address,undefined -DEDGELLM_BUILD_BENCH=OFF &&
        ASAN_OPTIONS="detect_leaks=1 ${ASAN_OPTIONS:-}" UBSAN_OPTIONS="print_stacktrace=1 ${UBSAN_OPTIONS:-}" \
        run_ctest --test-dir build-asan -j "$jobs"
      ;;
    tsan)
      # The binaries are found from the sources: each tests/<area>/<name>.cpp with a [tsan] tag is
      # the test target <name> (edgellm_test(<name> SOURCES <name>.cpp ...)).
      tsan_bins=$(grep -rl --include='*.cpp' --exclude-dir=llama.cpp --exclude-dir=node_modules '\[tsan\]' tests | xargs -r -n1 basename | sed 's/\.cpp$//' | sort -u)
      tsan_bins=$(echo $tsan_bins)
      echo "[test] tsan targets: ${tsan_bins:-none}"
      if [ -z "$tsan_bins" ]; then
        echo "[test] tsan: no test source has a [tsan] tag"; failed=$((failed + 1)); status=1
      elif build_targets=$tsan_bins build build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGELLM_WERROR=ON \
          -DEDGELLM_SANITIZE=thread -DEDGELLM_BUILD_BENCH=OFF; then
        # shellcheck disable=SC2086
        run_tsan_tests $tsan_bins
      fi
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
        # What a parsed hostile file reaches next: model binding, tokenizer, chat template. New
        # inputs go to the first folder; the parser's corpus is read as seeds.
        echo "[test] fuzzing model binding, tokenizer and chat template for ${EDGELLM_FUZZ_SECONDS:-60} s"
        mkdir -p build-fuzz/fuzz-corpus-model
        if build-fuzz/bin/fuzz-model -max_total_time="${EDGELLM_FUZZ_SECONDS:-60}" -rss_limit_mb=2048 \
            -artifact_prefix=build-fuzz/model- -print_final_stats=1 build-fuzz/fuzz-corpus-model build-fuzz/fuzz-corpus; then
          passed=$((passed + 1))
        else
          failed=$((failed + 1)); status=1
        fi
      fi
      ;;
    *) echo "[test] unknown stage $stage"; status=1; failed=$((failed + 1)) ;;
  esac
  summary+=("$(printf '[test] stage %-7s %6d s (build %5d s, tests %5d s)  %5d passed  %3d failed' "$stage" \
    $((SECONDS - stage_start)) "$stage_build" $((SECONDS - stage_start - stage_build)) \
    $((passed - stage_passed0)) $((failed - stage_failed0)))")
done
rm -f "$log"
echo
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed in $SECONDS s"
exit $status
