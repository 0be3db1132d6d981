#!/usr/bin/env bash
# Installs what the project needs on a Debian/Ubuntu machine, skipping what is already there.
# Idempotent; says what it does. Sourced by run.sh and test.sh.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }

# Phases of a long command, timed: `phase NAME` starts one (ending the previous), and
# `phase_report` prints each with its seconds, then the total. A script sourced later (the tool
# installers source this file again) keeps the phases already started.
[[ -v phase_names ]] || phase_names=()
[[ -v phase_starts ]] || phase_starts=()
phase() {
  phase_names+=("$1")
  phase_starts+=("$(date +%s)")
  say "$1"
}
phase_report() {
  local now i next total=0
  now="$(date +%s)"
  [ "${#phase_names[@]}" -gt 0 ] || return 0
  printf '\n==> time by phase\n'
  for i in "${!phase_names[@]}"; do
    next="${phase_starts[$((i + 1))]:-$now}"
    printf '  %-58s %5d s\n' "${phase_names[$i]}" "$((next - phase_starts[i]))"
  done
  total=$((now - phase_starts[0]))
  printf '  %-58s %5d s (%d min %d s)\n' "total" "$total" "$((total / 60))" "$((total % 60))"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Scripts call each other; check once per run.
if [ -n "${CHATBOT_SETUP_CHECKED:-}" ]; then
  return 0 2>/dev/null || exit 0
fi
export CHATBOT_SETUP_CHECKED=1

if ! command -v cargo >/dev/null 2>&1; then
  echo "Rust is required: install it from https://rustup.rs and run this again." >&2
  exit 1
fi
say "cargo: $(cargo --version)"

# The test command's gates use rustfmt and clippy (it sets CHATBOT_GATES=1); the run needs neither.
if [ "${CHATBOT_GATES:-0}" = 1 ]; then
  for component in rustfmt clippy; do
    if rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      say "$component: already installed"
    else
      say "rustup component add $component"
      rustup component add "$component"
    fi
  done
fi

# llama.cpp (the embedded model) is compiled from source: cmake, a C++ compiler, and libclang for
# its bindings.
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
# (libclang itself: libclang-cpp, which other packages bring, is a different library.)
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 \
  && ! ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so'; then
  missing+=(libclang-dev)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
else
  say "cmake, c++, libclang: already installed"
fi

# pip fetches the model and the AWS tools; venv keeps those tools out of the system Python.
python_missing=()
python3 -m pip --version >/dev/null 2>&1 || python_missing+=(python3-pip)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || python_missing+=(python3-venv)
if [ "${#python_missing[@]}" -gt 0 ]; then
  apt_install "${python_missing[@]}"
else
  say "python3 pip and venv: already installed"
fi

if command -v redis-server >/dev/null 2>&1; then
  say "redis-server: already installed ($(redis-server --version | awk '{print $3}'))"
else
  apt_install redis-server
  # The package starts a system service on 6379; the project starts its own servers and does
  # not need it, but leaves it as the package set it up.
fi
