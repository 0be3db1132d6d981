#!/usr/bin/env bash
# The bench command: what the pipeline adds to the model's own speed, side by side in one run.
# Builds the stack with the fast profile; measures the Lambda binaries (release profile,
# scripts/bench-lambdas.sh) and the web app (scripts/bench-frontend.sh, headless Chromium), then
# starts a redis-server, the scripted stub model and the local stack and measures floors,
# first-token overhead, token delivery, the AWS cost of a reply, 1/10/100/1,000 simultaneous
# conversations and history reads. Prints one table and writes
# target/bench/bench.json. BENCH_SKIP_LAMBDAS=1 / BENCH_SKIP_FRONTEND=1 skip those parts.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# A thousand conversations hold a few thousand sockets in the bench and in the stack.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ "${BENCH_SKIP_LAMBDAS:-}" != 1 ]; then
  scripts/bench-lambdas.sh
else
  rm -f target/bench-lambdas.json
fi
if [ "${BENCH_SKIP_FRONTEND:-}" != 1 ]; then
  scripts/bench-frontend.sh
else
  rm -f target/bench-frontend.json
fi
say "building the local stack and the bench (profile fast: optimised for speed)"
cargo build --profile fast --locked -p chat-local --bin local -p chat-bench --bin bench
say "measuring the pipeline (about two minutes)"
target/fast/bench pipeline
