#!/usr/bin/env bash
# Runs every test: unit tests, and the integration tests that start real redis-servers on free
# ports, the local stack and a scripted OpenAI-compatible model, and chat over real WebSockets.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

scripts/fetch-model.sh
scripts/build-frontend.sh

# The browser tests drive Debian's Chromium through chromedriver.
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  say "chromium and chromedriver: already installed"
else
  apt_install chromium chromium-driver
fi

say "frontend unit tests (host)"
(cd frontend && cargo test --locked)

say "building and running the tests"
cargo test --workspace --locked
