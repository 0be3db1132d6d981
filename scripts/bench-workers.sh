#!/usr/bin/env bash
# What a worker's number of slots costs the first token when more conversations than slots ask at
# once: 200 simultaneous conversations (stub: 50 ms to first token, 50 tokens/s) against one
# worker process with WORKER_CONCURRENCY 64, 256 and 1,024, side by side in one run. Writes
# target/bench/workers.json. BENCH_WORKER_CONVERSATIONS changes the number of conversations.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ulimit -n 65536 2>/dev/null || true
say "building the local stack and the bench (profile fast: optimised for speed)"
cargo build --profile fast --locked -p chat-local --bin local -p chat-bench --bin bench
target/fast/bench workers
