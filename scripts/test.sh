#!/usr/bin/env bash
# Runs every test: unit tests, and the integration tests that start real redis-servers on free
# ports, the local stack and a scripted OpenAI-compatible model, and chat over real WebSockets.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

scripts/fetch-model.sh

say "building and running the tests"
cargo test --workspace --locked
