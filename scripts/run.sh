#!/usr/bin/env bash
# Runs the whole chatbot on this machine: API Gateway emulator on :3500 over the real Lambda
# handlers, the worker, and a local redis-server (unless REDIS_URL is set).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if [ -z "${OPENAI_API_KEY:-}" ] && [ -z "${OPENAI_BASE_URL:-}" ]; then
  echo "No model configured. Set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (any OpenAI-compatible" >&2
  echo "server, e.g. OPENAI_BASE_URL=http://127.0.0.1:8080/v1 for llama.cpp's llama-server), then run again." >&2
  exit 1
fi

export APP_ENV="${APP_ENV:-development}"
say "building the local runner (release)"
cargo build --release --locked -p chat-local --bin local
say "starting"
exec target/release/local
