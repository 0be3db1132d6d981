#!/usr/bin/env bash
# Where the request stream saturates: questions per second through XADD + XREADGROUP + XACK on one
# key (one shard of a real six-node Redis Cluster, and a standalone redis-server, side by side),
# against the 1,000 questions/s target. Writes target/bench/stream.json. BENCH_STREAM_MESSAGES
# changes the number of questions (100,000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
say "building the bench (profile fast: optimised for speed)"
cargo build --profile fast --locked -p chat-bench --bin bench
target/fast/bench stream
