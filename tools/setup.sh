#!/usr/bin/env bash
# One-shot, idempotent setup for a fresh Debian 12 machine: Debian packages, then the pinned
# llama.cpp reference (npm) and its headers. Fast when everything is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '[setup] %s\n' "$*"; }

packages=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev libxsimd-dev catch2 libbenchmark-dev libspdlog-dev libfmt-dev
  clang-14 libclang-rt-14-dev            # libFuzzer for the GGUF fuzz target
  g++-aarch64-linux-gnu qemu-user        # NEON kernels, cross-built and run under qemu
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: all ${#packages[@]} present"
fi

command -v npm >/dev/null || { echo '[setup] error: Node.js 20 with npm is required (the llama.cpp oracle comes from npm)' >&2; exit 1; }

# llama.cpp reference: prebuilt libraries from the pinned npm packages (tests/oracle/package.json).
oracle="$root/tests/oracle"
want=$(sed -n 's/.*"node-llama-cpp": "\(.*\)".*/\1/p' "$oracle/package.json")
have=$(sed -n 's/^  "version": "\(.*\)".*/\1/p' "$oracle/node_modules/@node-llama-cpp/linux-x64/package.json" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  say "installing node-llama-cpp@$want and @node-llama-cpp/linux-x64@$want (npm)"
  (cd "$oracle" && npm install --no-audit --no-fund --omit=optional --ignore-scripts --loglevel=error >/dev/null)
else
  say "llama.cpp reference: node-llama-cpp@$have present"
fi

# Headers matching the prebuilt libraries' ABI, from the source bundle the npm package ships.
src="$oracle/llama.cpp"
if [ ! -f "$src/include/llama.h" ]; then
  say "extracting llama.cpp headers from node-llama-cpp's gitRelease.bundle"
  rm -rf "$src"
  # Only the headers and the tokenizer test vectors are needed: check out just those paths.
  git -c advice.detachedHead=false clone -q --no-checkout \
    "$oracle/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$src"
  git -C "$src" checkout -q HEAD -- include ggml/include models
else
  say "llama.cpp headers present"
fi
say "done"
