#!/usr/bin/env bash
# The main job, from a fresh machine: set up, build, then show a model going through the library.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
# The default model: the real (tiny) stories model when ../shared/models has it, else a synthetic
# TinyLlama-shaped Q4_K_M file that edgellm-synth writes once into models/.
shared="$root/../shared/models"
model="$shared/stories260K.gguf"
if [ ! -f "$model" ]; then
  model="$root/models/tinyllama-q4_k_m.gguf"
  if [ ! -f "$model" ]; then
    mkdir -p "$root/models"
    vocab=()
    [ -f "$shared/ggml-vocab-llama-spm.gguf" ] && vocab=(--vocab "$shared/ggml-vocab-llama-spm.gguf")
    build/bin/edgellm-synth -o "$model.tmp" "${vocab[@]}" && mv "$model.tmp" "$model"
  fi
fi
# The generated text goes to stdout, the stage table (load, sampling, prefill, decode, peak memory)
# to stderr.
build/bin/edgellm-cli -m "$model" -p "Once upon a time" -n 64 --temp 0
