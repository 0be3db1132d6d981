#!/usr/bin/env bash
# The load command: 1,000 concurrent sessions on the local stack against the scripted stub model
# (50 ms to first token, 50 tokens/s), each sending 5 messages one after another; then 100 rounds
# of SIGKILLing a worker process mid-reply while a new one takes over. Prints messages sent,
# replies completed, lost, duplicated, first-token overhead and each process's CPU and memory;
# writes target/bench/load.json. LOAD_SESSIONS, LOAD_MESSAGES and LOAD_KILLS change the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
say "building the local stack and the bench (profile fast: optimised for speed)"
cargo build --profile fast --locked -p chat-local --bin local -p chat-bench --bin bench
target/fast/bench load
