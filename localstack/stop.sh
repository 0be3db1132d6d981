#!/usr/bin/env bash
# Stops the LocalStack that localstack/start.sh started.
set -euo pipefail
cd "$(dirname "$0")/.."
pidfile=.data/localstack/localstack.pid
if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
  echo "==> LocalStack stopped"
fi
rm -f "$pidfile"
