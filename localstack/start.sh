#!/usr/bin/env bash
# Starts LocalStack's community runtime on this host, without Docker, on 127.0.0.1:4566, with its
# data under .data/localstack. Installs it first (pinned, in ~/.cache/chatbot/localstack-venv,
# with Python >= 3.13) when missing; does nothing when it already answers. It serves what this
# project uses it for: Secrets Manager, SSM, S3 (and more); not API Gateway v2 nor Lambda
# execution (see docs/deploy-aws.md, "LocalStack").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

endpoint="http://127.0.0.1:4566"
if curl -sf "$endpoint/_localstack/health" >/dev/null 2>&1; then
  say "LocalStack: already running at $endpoint"
  exit 0
fi

venv="$HOME/.cache/chatbot/localstack-venv"
packages=("localstack-core[runtime]==2026.3.0" "cbor2<6" "pyopenssl>=25,<26" "cryptography>=45.0.1,<46" "service_identity<26" "awscli==1.44.*")
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import localstack, rolo, awscli" 2>/dev/null; then
  say "LocalStack 2026.3.0: already installed in $venv"
else
  python=""
  for candidate in python3.14 python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3.13 "$HOME"/.pyenv/versions/3.14*/bin/python3.14; do
    # Run it, not just find it: a pyenv shim exists for versions that are installed but not active.
    if "$candidate" -c 'import sys; assert sys.version_info >= (3, 13)' >/dev/null 2>&1; then
      python="$candidate"
      case "$python" in */*) ;; *) python="$(command -v "$candidate")" ;; esac
      break
    fi
  done
  if [ -z "$python" ]; then
    # No Python 3.13 here: uv (from PyPI) fetches a standalone build of it.
    say "no Python >= 3.13 found: installing one with uv"
    uv_venv="$HOME/.cache/chatbot/uv"
    [ -x "$uv_venv/bin/uv" ] || { python3 -m venv "$uv_venv" && "$uv_venv/bin/pip" install -q --disable-pip-version-check uv; }
    "$uv_venv/bin/uv" python install 3.13
    python="$("$uv_venv/bin/uv" python find 3.13)"
  fi
  say "installing LocalStack 2026.3.0 with $python into $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check -q "${packages[@]}"
fi

data="$PWD/.data/localstack"
mkdir -p "$data"
say "starting LocalStack (host mode) at $endpoint, data in $data"
OVERRIDE_IN_DOCKER=0 GATEWAY_LISTEN=127.0.0.1:4566 FILESYSTEM_ROOT="$data" \
  SERVICES=s3,secretsmanager,ssm,sts,iam,logs,cloudformation \
  nohup "$venv/bin/python" -m localstack.runtime.main >"$data/localstack.log" 2>&1 &
echo $! >"$data/localstack.pid"
for _ in $(seq 1 120); do
  if curl -sf "$endpoint/_localstack/health" >/dev/null 2>&1; then
    say "LocalStack: ready"
    exit 0
  fi
  sleep 0.5
done
echo "LocalStack did not start; see $data/localstack.log" >&2
exit 1
