#!/usr/bin/env bash
# Cold start of each Lambda binary: process start to the runtime API's first `next` (init) and to
# the first event's response, against a local Lambda runtime API (scripts/lambda_runtime_bench.py)
# and a real redis-server; plus each arm64 bootstrap's size from `sam build` with the release
# profile as deployed (scripts/check-deploy.sh with LAMBDA_SIZES=1). Host (x86_64) release
# builds: AWS's arm64 cores are comparable.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
say "building the Lambda binaries (release, host)"
cargo build --release --locked -p chat-functions -p chat-worker --bins
say "the arm64 bootstraps as deployed (sam build, fat LTO)"
LAMBDA_SIZES=1 scripts/check-deploy.sh
python3 scripts/lambda_runtime_bench.py
