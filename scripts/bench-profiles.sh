#!/usr/bin/env bash
# What the run command's build profile costs a person: the first-token overhead of `local` built
# with the `local` profile (scripts/run.sh) beside the same built with `fast` (thin LTO, opt-level 3),
# in alternating rounds of one run. Writes target/bench/profiles.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
say "building local with both profiles and the bench"
cargo build --profile fast --locked -p chat-local --bin local -p chat-bench --bin bench
cargo build --profile local --locked -p chat-local --bin local
target/fast/bench profiles
