#!/usr/bin/env bash
# Runs the whole chatbot on this machine: API Gateway emulator on :3500 over the real Lambda
# handlers, the worker, a local redis-server (unless REDIS_URL is set) and, unless OPENAI_API_KEY
# or OPENAI_BASE_URL is set, the embedded model (llama.cpp) on :3501.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if [ -z "${OPENAI_API_KEY:-}" ] && [ -z "${OPENAI_BASE_URL:-}" ]; then
  say "no OPENAI_API_KEY or OPENAI_BASE_URL: chatting with the embedded model (offline)"
  scripts/fetch-model.sh
else
  say "model provider: ${OPENAI_BASE_URL:-https://api.openai.com/v1}"
fi

scripts/build-frontend.sh

export APP_ENV="${APP_ENV:-development}"
say "building the local runner (profile fast: optimised for speed)"
cargo build --profile fast --locked -p chat-local --bin local
say "starting"
exec target/fast/local
