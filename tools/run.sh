#!/usr/bin/env bash
# The main job, from a fresh machine: set up, build, then show a model going through the library.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
model="$root/../shared/models/stories260K.gguf"
build/bin/edgellm-gguf "$model"
