#!/usr/bin/env bash
# Runs every test: unit tests; the integration tests that start real redis-servers on free ports,
# the local stack and a scripted OpenAI-compatible model (or the real embedded model) and chat over
# real WebSockets; the browser tests in headless Chromium; the deployment checks (cfn-lint,
# sam validate, sam build) and the Lambda binaries under cargo lambda with LocalStack's secrets.
# Ends with the time each phase took.
set -euo pipefail
cd "$(dirname "$0")/.."
test_started="$(date +%s)"
export CHATBOT_GATES=1
source scripts/setup.sh
phase_names=("set-up: system packages, rustfmt, clippy")
phase_starts=("$test_started")
trap 'status=$?; [ -x localstack/stop.sh ] && localstack/stop.sh >/dev/null 2>&1; phase_report; exit $status' EXIT

# Gates: the tree stays formatted (here) and clippy-clean (below, as the tests are compiled), both
# workspaces.
phase "cargo fmt --check (both workspaces)"
cargo fmt --all -- --check
(cd frontend && cargo fmt --all -- --check)

phase "tools: the model, Chromium, axe-core, the AWS tools, schemathesis, LocalStack"
scripts/fetch-model.sh
# The browser tests drive Debian's Chromium through chromedriver.
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  say "chromium and chromedriver: already installed"
else
  apt_install chromium chromium-driver
fi
# axe-core, which the browser tests inject into the page.
source scripts/install-node-tools.sh
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

phase "the web app (trunk build)"
scripts/build-frontend.sh

phase "the deployment: cfn-lint, the SAM transform, sam validate, sam build"
scripts/check-deploy.sh

# Clippy compiles the tests: clippy-driver is the compiler of both workspaces' own crates and
# takes `-D warnings`, exactly as `cargo clippy -- -D warnings` sets it up (RUSTC_WORKSPACE_WRAPPER,
# and CLIPPY_ARGS with clippy's own separator). Each crate is linted as it is built, once: a
# separate `cargo clippy` checked every dependency a second time (454 s of a 30-minute run). Not
# RUSTFLAGS: that would replace .cargo/config.toml's target features, which llama.cpp needs. The
# Lambda binaries the tests build themselves (cargo lambda watch, the worker's) inherit both, so
# they are linted too; they are built for their own packages' features, so they reuse only part
# of this build.
export RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

phase "the web app's unit tests (host), clippy -D warnings"
(cd frontend && cargo test --locked)

phase "building (clippy -D warnings) and running the workspace's tests"
cargo test --workspace --locked
