#!/usr/bin/env bash
# Builds the web app (frontend/) into frontend/dist with trunk, installing what the build needs
# when it is missing: the wasm32 target, trunk 0.21.14, the wasm-bindgen CLI matching
# frontend/Cargo.lock, and wasm-opt (Debian's binaryen).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "wasm32-unknown-unknown: already installed"
else
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# Tools, not the product: built for a short compile, not for speed. Unoptimised (opt-level 0, no
# LTO) they compile in half the time (trunk 155 s instead of 291 s, wasm-bindgen 62 s instead of
# 122 s on 2 cores) and build the web app as fast: the wasm compile and wasm-opt are the build
# (trunk build 3.6 s either way once the wasm is compiled). trunk without its update check: it
# never downloads here, the build is --offline.
tool_profile=(env CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=0)
if [ "$(trunk --version 2>/dev/null)" = "trunk 0.21.14" ]; then
  say "trunk 0.21.14: already installed"
else
  say "cargo install trunk 0.21.14 (a few minutes, once)"
  "${tool_profile[@]}" cargo install trunk --version 0.21.14 --locked --no-default-features --features rustls
fi

bindgen="$(grep -A1 '^name = "wasm-bindgen"$' frontend/Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')"
if [ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $bindgen" ]; then
  say "wasm-bindgen $bindgen: already installed"
else
  say "cargo install wasm-bindgen-cli $bindgen (matches frontend/Cargo.lock)"
  # (Not --locked: its published lock names a webpki-roots release the index no longer offers.)
  "${tool_profile[@]}" cargo install wasm-bindgen-cli --version "$bindgen"
fi

if command -v wasm-opt >/dev/null 2>&1; then
  say "wasm-opt: already installed"
else
  apt_install binaryen
fi

say "trunk build --release (frontend/dist)"
(cd frontend && trunk build --release --offline)

# trunk writes its wasm loader as an inline <script>; move it into a file so the page runs under
# a Content-Security-Policy without 'unsafe-inline' or a per-build hash (CloudFront's is static).
python3 - frontend/dist <<'PY'
import hashlib, pathlib, re, sys
dist = pathlib.Path(sys.argv[1])
index = dist / "index.html"
html = index.read_text()
def extract(match):
    body = match.group(2)
    name = f"loader-{hashlib.sha256(body.encode()).hexdigest()[:16]}.js"
    (dist / name).write_text(body)
    return f'<script type="module" src="/{name}"></script>'
html = re.sub(r'<script type="module"(\s*)>(.*?)</script>', extract, html, flags=re.S)
index.write_text(html)
PY

# A brotli and a gzip copy of each asset beside it, which the local site serves to browsers that
# accept them: a phone on a slow network downloads a third of the wasm (Lighthouse's mobile
# performance 79 without, 97 with; PERFORMANCE.md). CloudFront compresses on its own:
# scripts/deploy-site.sh uploads neither.
command -v brotli >/dev/null 2>&1 || apt_install brotli
for asset in frontend/dist/*.wasm frontend/dist/*.js frontend/dist/*.css; do
  gzip -9 -k -f "$asset"
  brotli -q 11 -k -f "$asset"
done
