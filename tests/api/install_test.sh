#!/usr/bin/env bash
# Installs libedgellm into a scratch prefix, then builds the consumer programs (consumer/) against
# the INSTALLED package, outside the source tree: with find_package(edgellm) (shared C, shared C++,
# static C++) and with pkg-config + cc. Each runs greedy generation on the model; all must print the
# same ids and text, the ids must be the model's known greedy ids, and the text must be what
# edgellm-cli (built in the tree, same library) prints for the same request.
#   install_test.sh BUILD_DIR SOURCE_DIR WORK_DIR MODEL.gguf GREEDY_IDS_FILE [SANITIZERS]
# SANITIZERS: the build's EDGELLM_SANITIZE (e.g. address,undefined). A sanitized libedgellm needs a
# consumer built with the same -fsanitize flags (the static library calls the sanitizer runtime; a
# shared one needs that runtime loaded first), as any application linking such a build would.
set -euo pipefail
build=$1 src=$2 work=$3 model=$4 ids_file=$5 sanitize=${6:-}
san_flags=()
if [ -n "$sanitize" ]; then san_flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer); fi
die() { echo "install_test: $*" >&2; exit 1; }
for f in "$model" "$ids_file"; do [ -f "$f" ] || die "missing $f"; done

rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" || die "cmake --install failed: $(tail -3 "$work/install.log")"

# The shared library exports the C API and nothing else.
lib=$(find "$work/prefix" -name 'libedgellm.so' -print -quit)
[ -n "$lib" ] || die "no libedgellm.so installed"
[ -f "$(dirname "$lib")/libedgellm.a" ] || die "no libedgellm.a installed"
extra=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^edgellm_' || true)
[ -z "$extra" ] || die "libedgellm.so exports more than edgellm_*: $(echo "$extra" | head -5 | tr '\n' ' ')"
# The headers an app can use, and no others (the C++ layers' symbols are not exported).
for h in edgellm/edgellm.h edgellm/edgellm.hpp; do
  [ -f "$work/prefix/include/$h" ] || die "header $h not installed"
done
others=$(cd "$work/prefix/include" && find . -type f ! -path ./edgellm/edgellm.h ! -path ./edgellm/edgellm.hpp)
[ -z "$others" ] || die "headers an app cannot use are installed: $(echo "$others" | head -5 | tr '\n' ' ')"

# find_package(edgellm)
cmake -S "$src/tests/api/consumer" -B "$work/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_C_FLAGS="${san_flags[*]}" -DCMAKE_CXX_FLAGS="${san_flags[*]}" \
  -DCMAKE_EXE_LINKER_FLAGS="${san_flags[*]}" >"$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; die "configure with find_package failed"; }
cmake --build "$work/consumer" >>"$work/consumer.log" 2>&1 || { cat "$work/consumer.log"; die "consumer build failed"; }
# (ldd's output captured first: with pipefail, grep -q closing the pipe early can fail ldd with SIGPIPE)
deps=$(ldd "$work/consumer/consumer_c")
grep -q "$work/prefix" <<<"$deps" || die "consumer_c does not use the installed libedgellm.so"

# pkg-config + cc
pc=$(find "$work/prefix" -name edgellm.pc -print -quit)
[ -n "$pc" ] || die "no edgellm.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir edgellm)
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -pedantic ${san_flags[@]+"${san_flags[@]}"} "$src/tests/api/consumer/consumer.c" -o "$work/consumer_pc" \
  $(pkg-config --cflags --libs edgellm) -Wl,-rpath,"$libdir" || die "cc with pkg-config failed"

# The reference: edgellm-cli in the build tree, greedy, empty prompt (BOS only), 8 tokens.
cli_text=$("$build/bin/edgellm-cli" -m "$model" -p "" -n 8 --temp 0 -t 1 -c 64 2>/dev/null) || die "edgellm-cli failed"
want_ids=$(tr -s ' \n' ' ' <"$ids_file" | awk '{for (i = 1; i <= 8; ++i) printf " %s", $i}')

for prog in consumer/consumer_c consumer/consumer_cpp consumer/consumer_cpp_static consumer_pc; do
  out=$("$work/$prog" "$model") || die "$prog failed"
  ids=$(echo "$out" | sed -n 's/^ids://p')
  text=$(echo "$out" | sed -n 's/^text: //p')
  [ "$ids" = "$want_ids" ] || die "$prog: greedy ids '$ids', expected '$want_ids' ($ids_file)"
  [ "$text" = "$cli_text" ] || die "$prog: text '$text', edgellm-cli printed '$cli_text'"
  [ -n "$text" ] || die "$prog: empty text"
  echo "$prog: ids$ids | text: $text"
done
echo "install_test: OK"
