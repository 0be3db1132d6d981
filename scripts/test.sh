#!/usr/bin/env bash
# Runs every test: unit tests; the integration tests that start real redis-servers on free ports,
# the local stack and a scripted OpenAI-compatible model (or the real embedded model) and chat over
# real WebSockets; the browser tests in headless Chromium; the deployment checks (cfn-lint,
# sam validate, sam build) and the Lambda binaries under cargo lambda with LocalStack's secrets.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# Gates: the tree stays formatted and clippy-clean, both workspaces.
say "cargo fmt --check (both workspaces)"
cargo fmt --all -- --check
(cd frontend && cargo fmt --all -- --check)
say "cargo clippy -D warnings (both workspaces)"
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd frontend && cargo clippy --all-targets --locked -- -D warnings)

scripts/fetch-model.sh
scripts/build-frontend.sh

# The browser tests drive Debian's Chromium through chromedriver.
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  say "chromium and chromedriver: already installed"
else
  apt_install chromium chromium-driver
fi

# The AWS side: cargo-lambda, SAM CLI and cfn-lint; LocalStack for Secrets Manager and S3.
source scripts/install-aws-tools.sh
# schemathesis checks the OpenAPI document against the running stack (openapi_contract.rs).
schemathesis_venv="$HOME/.cache/chatbot/schemathesis"
if "$schemathesis_venv/bin/schemathesis" --version 2>/dev/null | grep -q "4.32.5"; then
  say "schemathesis 4.32.5: already installed in $schemathesis_venv"
else
  say "installing schemathesis==4.32.5 into $schemathesis_venv"
  python3 -m venv "$schemathesis_venv"
  "$schemathesis_venv/bin/pip" install --disable-pip-version-check -q schemathesis==4.32.5
fi
export SCHEMATHESIS="$schemathesis_venv/bin/schemathesis"

localstack/start.sh
trap localstack/stop.sh EXIT
scripts/check-deploy.sh

say "frontend unit tests (host)"
(cd frontend && cargo test --locked)

say "building and running the tests"
cargo test --workspace --locked
