#!/usr/bin/env bash
# Checks the AWS deployment without an AWS account: cfn-lint on template.yaml and, after the SAM
# transform (what CloudFormation really receives), on its output (scripts/check_template.py: also
# no physical name shared by two stacks); `sam validate --lint`; then `sam build` (cargo-lambda,
# arm64) and the size of every function's bootstrap (as deployed with LAMBDA_SIZES=1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-aws-tools.sh

say "cfn-lint template.yaml"
cfn-lint template.yaml
say "the template as CloudFormation sees it: SAM transform, then cfn-lint, physical names, VPC policy"
"$aws_venv/bin/python" scripts/check_template.py
say "sam validate --lint"
sam validate --lint --region us-east-1
mkdir -p target
# The deployed binaries are built with the release profile's fat LTO, which takes minutes a binary
# and matters only where their size is measured (LAMBDA_SIZES=1, as scripts/bench-lambdas.sh runs
# this): otherwise the same build without link-time optimisation checks that SAM builds them.
if [ "${LAMBDA_SIZES:-0}" = 1 ]; then
  say "sam build (cargo lambda, arm64, the release profile as deployed)"
  sam build --beta-features --region us-east-1 >target/sam-build.log 2>&1 || { tail -40 target/sam-build.log; exit 1; }
else
  say "sam build (cargo lambda, arm64, release without LTO: the deployed sizes are scripts/bench-lambdas.sh's)"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    sam build --beta-features --region us-east-1 >target/sam-build.log 2>&1 || { tail -40 target/sam-build.log; exit 1; }
fi

say "bootstrap sizes"
LAMBDA_SIZES="${LAMBDA_SIZES:-0}" python3 - <<'PY'
import json, os
build = ".aws-sam/build"
sizes = {}
for function in sorted(os.listdir(build)):
    path = os.path.join(build, function, "bootstrap")
    if os.path.isfile(path):
        sizes[function] = os.path.getsize(path)
        print(f"  {function:<24} {sizes[function] / 1e6:6.2f} MB")
missing = {"TokenFunction", "HistoryFunction", "WsConnectFunction", "WsMessageFunction", "WsDisconnectFunction", "WorkerFunction"} - set(sizes)
if missing:
    raise SystemExit(f"no bootstrap for {sorted(missing)}")
if os.environ["LAMBDA_SIZES"] == "1":
    os.makedirs("target", exist_ok=True)
    json.dump(sizes, open("target/lambda-sizes.json", "w"), indent=2)
else:
    print("  (built without LTO; scripts/bench-lambdas.sh measures the sizes as deployed)")
PY
