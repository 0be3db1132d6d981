"""Checks template.yaml as CloudFormation will see it, without an AWS account.

1. Transforms it with aws-sam-translator, as `sam deploy` does, after replacing every local
   CodeUri with an S3 URI (what `sam package` uploads and writes).
2. Lints the transformed template with cfn-lint; any error fails the check (warnings are shown).
3. Resolves the physical names the transformed template sets, for two stack names, and fails if
   any is the same in both: two stacks in one account and region must not collide.
4. Fails if a role gets the VPC execution policy other than under the `InVpc` condition.

Run by scripts/check-deploy.sh (inside the AWS tools' virtualenv). Writes
target/template.transformed.json for inspection.
"""

import copy
import json
import pathlib
import os
import subprocess
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = pathlib.Path(__file__).resolve().parent.parent


class NoManagedPolicies:
    """The template names no AWS managed policy for SAM to look up in IAM."""

    def load(self):
        return {}


def packaged(template):
    """The template as `sam package` leaves it: code in S3."""
    template = copy.deepcopy(template)
    template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://chatbot-artifacts/code.zip"
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {}).pop("CodeUri", None)
    return template


def transformed(template, stack_name):
    parameters = {"AWS::StackName": stack_name, "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
    return transform(packaged(template), parameters, NoManagedPolicies())


def lint(path):
    result = subprocess.run(["cfn-lint", "--format", "parseable", str(path)], capture_output=True, text=True)
    print(result.stdout, end="")
    print(result.stderr, end="", file=sys.stderr)
    # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational; any other bit
    # (1: it crashed, 32: a fatal error) means the template was not checked.
    return result.returncode & ~(4 | 8) == 0


def resolve(value, stack_name):
    """A name property's value for `stack_name`, or None when CloudFormation generates it."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        return text.replace("${AWS::StackName}", stack_name)
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        resolved = [resolve(part, stack_name) for part in parts]
        return None if None in resolved else separator.join(resolved)
    return None  # a Ref or GetAtt: named after another resource, itself checked


# Properties named `...Name` that name no resource of ours.
NOT_PHYSICAL_NAMES = {"StageName", "ServiceName", "MetricName"}


def physical_names(template, stack_name):
    names = {}
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        configs = [properties] + [v for v in properties.values() if isinstance(v, dict)]
        for config in configs:
            for key, value in config.items():
                if key.endswith("Name") and key not in NOT_PHYSICAL_NAMES:
                    name = resolve(value, stack_name)
                    if name is not None:
                        names[(resource["Type"], key, name)] = logical_id
    return names


def unconditional_vpc_policies(template):
    """Roles that get AWSLambdaVPCAccessExecutionRole whether or not the functions are in a VPC."""
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        for arn in resource["Properties"].get("ManagedPolicyArns", []):
            if "AWSLambdaVPCAccessExecutionRole" in json.dumps(arn) and not (
                isinstance(arn, dict) and arn.get("Fn::If", [None])[0] == "InVpc"
            ):
                found.append(logical_id)
    return found


def main():
    # The translator reads the region for ARNs it writes; no AWS call is made.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse((ROOT / "template.yaml").read_text())
    first = transformed(template, "chatbot-one")
    out = ROOT / "target" / "template.transformed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(first, indent=2))
    print(f"transformed: {len(first['Resources'])} resources -> {out.relative_to(ROOT)}")
    ok = lint(out)
    print("cfn-lint on the transformed template:", "no errors" if ok else "ERRORS")

    second = transformed(template, "chatbot-two")
    one, two = physical_names(first, "chatbot-one"), physical_names(second, "chatbot-two")
    shared = sorted(set(one) & set(two))
    for kind, key, name in shared:
        print(f"the same physical name in two stacks: {one[(kind, key, name)]} {kind}.{key} = {name!r}")
    print(f"physical names set by the template: {len(one)}; shared by two stacks: {len(shared)}")

    vpc_everywhere = unconditional_vpc_policies(first)
    for role in vpc_everywhere:
        print(f"{role} gets the VPC execution policy outside VPC mode")
    return 0 if ok and not shared and not vpc_everywhere else 1


if __name__ == "__main__":
    sys.exit(main())
