#!/usr/bin/env bash
# Installs the AWS tooling the deploy checks use, into a virtualenv under ~/.cache/chatbot (outside
# the tree), skipping what is already there: cargo-lambda (with zig), AWS SAM CLI, cfn-lint, and
# the aarch64 Rust target Lambda's arm64 functions are built for. Source it: it puts them on PATH.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

aws_venv="${CHATBOT_VENV:-$HOME/.cache/chatbot/venv}"
aws_tools=(cargo-lambda==1.9.2 aws-sam-cli==1.170.0 cfn-lint==1.58.0)
if [ -x "$aws_venv/bin/cargo-lambda" ] && [ -x "$aws_venv/bin/sam" ] && [ -x "$aws_venv/bin/cfn-lint" ]; then
  say "cargo-lambda, sam, cfn-lint: already installed in $aws_venv"
else
  say "installing ${aws_tools[*]} into $aws_venv"
  python3 -m venv "$aws_venv"
  "$aws_venv/bin/pip" install --disable-pip-version-check -q "${aws_tools[@]}"
fi
export PATH="$aws_venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0

if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  say "aarch64-unknown-linux-gnu: already installed"
else
  say "rustup target add aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi
