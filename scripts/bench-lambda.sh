#!/usr/bin/env bash
# What a Lambda invocation's linger (WORKER_LINGER_MS) buys and costs: 1, 8 and 50 people asking
# one question after another against the worker's real binary on the emulated Lambda, for each
# linger, on a quiet machine and with both cores busy, side by side with linger 0 (no linger) in
# one run. Writes target/bench/lambda.json. BENCH_LAMBDA_SECONDS, BENCH_LAMBDA_PAUSE_MS,
# BENCH_LAMBDA_LINGERS_MS and BENCH_LAMBDA_PEOPLE change the run (bench/src/lambda.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
say "building the worker and the bench (profile fast: optimised for speed)"
cargo build --profile fast --locked -p chat-worker --bin worker -p chat-bench --bin bench
target/fast/bench lambda
