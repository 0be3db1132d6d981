#!/usr/bin/env bash
# The embedded model's speed, three ways in one run (engine, OpenAI-compatible server, whole chat
# path), then llama.cpp's own llama-bench on the same GGUF and thread count, built from the
# llama.cpp sources that llama-cpp-sys-2 vendors.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
scripts/fetch-model.sh

say "building bench-model (profile fast: optimised for speed)"
cargo build --profile fast --locked -p chat-bench --bin bench-model
say "measuring (the machine should be otherwise idle)"
target/fast/bench-model

model="${MODEL_PATH:-${MODEL_CACHE_DIR:-$HOME/.cache/chatbot/models}/SmolLM2-135M-Instruct.Q4_1.gguf}"
threads="${EMBEDDED_THREADS:-$(nproc)}"
[ "$threads" -gt 4 ] && threads=4
manifest="$(cargo metadata --format-version 1 --locked | python3 -c \
  'import json,sys; print([p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="llama-cpp-sys-2"][0])')"
src="$(dirname "$manifest")/llama.cpp"
if [ ! -f "$src/tools/llama-bench/llama-bench.cpp" ]; then
  say "llama-bench: cannot be built here: the llama.cpp that llama-cpp-sys-2 vendors ($src) ships"
  say "tools/llama-bench without its source (only README.md); compare with llama.cpp's published figures instead"
  exit 0
fi
bench=target/llama-bench/bin/llama-bench
if [ ! -x "$bench" ]; then
  say "building llama-bench from $src"
  cmake -S "$src" -B target/llama-bench -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON \
    -DGGML_F16C=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_TOOLS=ON >/dev/null
  cmake --build target/llama-bench --target llama-bench -j "$(nproc)" >/dev/null
fi
say "llama-bench: 100-token prompt, 96 generated tokens, $threads threads"
"$bench" -m "$model" -t "$threads" -p 100 -n 96 -r 3
