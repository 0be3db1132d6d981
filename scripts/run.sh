#!/usr/bin/env bash
# Runs the whole chatbot on this machine: API Gateway emulator on :3500 over the real Lambda
# handlers, the worker, a local redis-server (unless REDIS_URL is set) and, unless OPENAI_API_KEY
# or OPENAI_BASE_URL is set, the embedded model (llama.cpp) on :3501. Says when the page chats,
# and how long each step took to get there.
set -euo pipefail
cd "$(dirname "$0")/.."
run_started="$(date +%s)"
source scripts/setup.sh
phase_names=("set-up: system packages")
phase_starts=("$run_started")

if [ -z "${OPENAI_API_KEY:-}" ] && [ -z "${OPENAI_BASE_URL:-}" ]; then
  phase "the embedded model (no OPENAI_API_KEY or OPENAI_BASE_URL: offline)"
  scripts/fetch-model.sh
else
  say "model provider: ${OPENAI_BASE_URL:-https://api.openai.com/v1}"
fi

# The web app (its tools once, then trunk build) and the local runner build side by side, so that
# one fills the stretches where the other keeps a single core busy (llama.cpp's CMake steps,
# links). The web app's output goes to target/web-app.log, shown if it fails.
mkdir -p target
phase "the web app (in the background: target/web-app.log) beside the local runner"
(
  started="$(date +%s)"
  scripts/build-frontend.sh
  echo "$(($(date +%s) - started))" >target/web-app.seconds
) >target/web-app.log 2>&1 &
web_app_pid=$!

# The `local` profile: optimised, without the link-time optimisation the benches' `fast` profile
# spends minutes on (llama.cpp itself is always built with full optimisation), and without the
# AWS SDK (chat-core's `aws` feature: the local runner signs its own Management API posts and
# reads no secrets). PERFORMANCE.md compares the profiles.
export APP_ENV="${APP_ENV:-development}"
profile="${LOCAL_PROFILE:-local}"
say "building the local runner (cargo profile $profile)"
cargo build --profile "$profile" --locked -p chat-local --bin local
if ! wait "$web_app_pid"; then
  tail -40 target/web-app.log
  say "the web app did not build (the whole log: target/web-app.log)"
  exit 1
fi
say "the web app: built in $(cat target/web-app.seconds) s, in the background"

phase "starting, until the page chats"
"target/$profile/local" &
local_pid=$!
trap 'kill -TERM "$local_pid" 2>/dev/null || true; wait "$local_pid" 2>/dev/null || true' INT TERM
api="http://${LOCAL_BIND:-127.0.0.1}:${LOCAL_HTTP_PORT:-3500}"
site="http://${LOCAL_BIND:-127.0.0.1}:${LOCAL_SITE_PORT:-3000}"
# Ready: Redis answers, the model is loaded (or a provider is configured), the page is served.
until python3 - "$api" "$site" <<'PY' 2>/dev/null
import json, sys, urllib.request
health = json.load(urllib.request.urlopen(sys.argv[1] + "/health", timeout=2))
page = urllib.request.urlopen(sys.argv[2] + "/", timeout=2).read()
sys.exit(0 if health.get("status") == "ok" and b"<html" in page else 1)
PY
do
  if ! kill -0 "$local_pid" 2>/dev/null; then
    wait "$local_pid"
    exit $?
  fi
  sleep 1
done
phase_report
total=$(( $(date +%s) - phase_starts[0] ))
say "ready in $((total / 60)) min $((total % 60)) s: open $site"
wait "$local_pid"
