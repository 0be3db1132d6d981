#!/usr/bin/env bash
# Installs the npm tools the browser checks use, into ~/.cache/chatbot/node (never globally):
# axe-core (injected into the page by the browser tests) and, with `lighthouse` as an argument,
# Lighthouse (scripts/bench-frontend.sh). Needs Node.js and npm (apt-get install nodejs npm).
# Idempotent; sourced by test.sh, run by bench-frontend.sh. Exports AXE_CORE_JS and LIGHTHOUSE.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

node_dir="$HOME/.cache/chatbot/node"
axe_version="4.14.1"
lighthouse_version="12.8.2"

if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi

installed() { # package version
  [ -f "$node_dir/node_modules/$1/package.json" ] &&
    grep -q "\"version\": \"$2\"" "$node_dir/node_modules/$1/package.json"
}

wanted=()
installed axe-core "$axe_version" || wanted+=("axe-core@$axe_version")
if [ "${1:-}" = "lighthouse" ]; then
  installed lighthouse "$lighthouse_version" || wanted+=("lighthouse@$lighthouse_version")
fi
if [ "${#wanted[@]}" -gt 0 ]; then
  say "npm install ${wanted[*]} into $node_dir"
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error "${wanted[@]}" >/dev/null
else
  say "axe-core $axe_version${1:+ and $1}: already installed in $node_dir"
fi
export AXE_CORE_JS="$node_dir/node_modules/axe-core/axe.min.js"
export LIGHTHOUSE="$node_dir/node_modules/.bin/lighthouse"
