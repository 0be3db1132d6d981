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
  say "sam build (cargo lambda, arm64, release unoptimised: the deployed sizes are scripts/bench-lambdas.sh's)"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
    sam build --beta-features --region us-east-1 >target/sam-build.log 2>&1 || { tail -40 target/sam-build.log; exit 1; }
fi

say "bootstrap sizes"
# Functions built from the same binary share one build folder (SAM names it `<first>-Shared`), so
# every function's bootstrap is found where the built template's CodeUri points.
LAMBDA_SIZES="${LAMBDA_SIZES:-0}" "$aws_venv/bin/python" - <<'PY'
import json, os
import yaml

class Template(yaml.SafeLoader):
    pass

# CloudFormation's short forms (!Ref, !GetAtt, !Sub...) are not needed to find the code.
Template.add_multi_constructor("!", lambda loader, suffix, node: None)
build = ".aws-sam/build"
with open(os.path.join(build, "template.yaml")) as built:
    resources = yaml.load(built, Loader=Template)["Resources"]
sizes, missing = {}, []
for name, resource in sorted(resources.items()):
    if resource.get("Type") != "AWS::Serverless::Function":
        continue
    path = os.path.join(build, resource["Properties"]["CodeUri"], "bootstrap")
    if not os.path.isfile(path):
        missing.append(name)
        continue
    sizes[name] = os.path.getsize(path)
    print(f"  {name:<24} {sizes[name] / 1e6:6.2f} MB  ({resource['Properties']['CodeUri']})")
expected = {"TokenFunction", "HistoryFunction", "WsConnectFunction", "WsMessageFunction", "WsDisconnectFunction", "WorkerFunction"}
missing += sorted(expected - set(sizes) - set(missing))
if missing:
    raise SystemExit(f"no bootstrap for {missing}")
if os.environ["LAMBDA_SIZES"] == "1":
    os.makedirs("target", exist_ok=True)
    json.dump(sizes, open("target/lambda-sizes.json", "w"), indent=2)
else:
    print("  (built unoptimised; scripts/bench-lambdas.sh measures the sizes as deployed)")
PY
