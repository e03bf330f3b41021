"""Deploy a synthesized cloud assembly into the emulator, as ``cdk deploy`` does it; and ``cdk destroy``.

    python -m infra.aws.emulator.deploy <cdk.out> --endpoint http://127.0.0.1:PORT [--stack NAME ...] [--destroy]

Per stack, as the CDK command line does:

1. **bootstrap** (once): what ``cdk bootstrap`` makes that a deploy reads. It
   makes the ``CDKToolkit`` stack: the file assets bucket
   ``cdk-<qualifier>-assets-<account>-<region>``, the SSM parameter
   ``/cdk-bootstrap/<qualifier>/version`` (the templates' ``BootstrapVersion``
   parameter and ``CheckBootstrapVersion`` rule read it), an ECR repository for
   image assets, a KMS key for the bucket, and the deploy, file-publishing,
   image-publishing, lookup and CloudFormation execution roles. Here: the
   bucket and the parameter only. Skipped: the roles (nothing assumes them,
   and the emulator evaluates no IAM), the image repository (the app is
   synthesized with an image URI, ``runtime_image``, so it has no image
   asset: one would be refused here), the KMS key;
2. **publish file assets** (``<stack>.assets.json``): each directory zipped,
   each file as is, to its destination bucket and key; an object already there
   is not uploaded again, as ``cdk-assets`` does;
3. **create the stack from the template URL** (the template is itself a file
   asset, uploaded in 2) through a change set of type CREATE, with the
   manifest's tags and the IAM capabilities, and ``ImportExistingResources``
   as ``make deploy`` passes it (``cdk deploy --import-existing-resources``:
   named resources a teardown kept are adopted, not created again); execute
   it and wait for the stack;
4. **verify**: every logical resource of the template (whose condition
   holds) is in ``DescribeStackResources`` with its type and a physical id,
   and every output has a value; otherwise ``DeployError`` names what is
   missing. (``gaps`` already makes an unmodelled type fail the stack; this
   checks the result independently of that.)

``destroy`` deletes a stack and answers what its template retained
(``DeletionPolicy`` Retain or RetainExceptOnCreate), which outlives it as on
AWS (the next deploy imports what has a fixed name); ``purge`` deletes those,
as an operator deleting the kept data for good would.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

QUALIFIER = "hnb659fds"
#: The version ``cdk bootstrap`` (CLI 2.1000+) writes; templates require at least 6.
BOOTSTRAP_VERSION = "27"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
RETAINING = ("Retain", "RetainExceptOnCreate")
TERMINAL = {
    "CREATE_COMPLETE",
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_COMPLETE",
    "DELETE_FAILED",
}


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True)
class StackArtifact:
    name: str
    template: dict[str, Any]
    template_url: str
    assets_file: Path | None
    tags: dict[str, str]
    #: Other stacks that deploy first.
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class DeployedStack:
    name: str
    status: str
    #: Logical id -> (type, physical id).
    resources: dict[str, tuple[str, str]]
    outputs: dict[str, str]
    #: Logical ids of the resources the deploy imported (adopted) instead of creating.
    imported: frozenset[str] = frozenset()

    def physical_ids(self, resource_type: str) -> dict[str, str]:
        return {logical: physical for logical, (kind, physical) in self.resources.items() if kind == resource_type}


@dataclass(frozen=True)
class Retained:
    stack: str
    logical_id: str
    resource_type: str
    physical_id: str


@dataclass
class Assembly:
    """A cloud assembly (``cdk.out``): its stacks in deploy order."""

    directory: Path
    stacks: dict[str, StackArtifact] = field(default_factory=dict)

    @classmethod
    def read(cls, directory: Path) -> Assembly:
        directory = Path(directory)
        artifacts = json.loads((directory / "manifest.json").read_text())["artifacts"]
        assembly = cls(directory)
        stack_ids = {a_id for a_id, a in artifacts.items() if a["type"] == "aws:cloudformation:stack"}
        for artifact_id, artifact in artifacts.items():
            if artifact["type"] != "aws:cloudformation:stack":
                continue
            properties = artifact["properties"]
            dependencies = artifact.get("dependencies", [])
            assets = [artifacts[d]["properties"]["file"] for d in dependencies if d not in stack_ids
                      and artifacts.get(d, {}).get("type") == "cdk:asset-manifest"]
            name = properties.get("stackName", artifact_id)
            assembly.stacks[name] = StackArtifact(
                name=name,
                template=json.loads((directory / properties["templateFile"]).read_text()),
                template_url=properties["stackTemplateAssetObjectUrl"],
                assets_file=directory / assets[0] if assets else None,
                tags=properties.get("tags", {}),
                depends_on=tuple(d for d in dependencies if d in stack_ids),
            )
        return assembly

    def order(self, names: Iterable[str] | None = None) -> list[str]:
        """The stacks (all, or those named and what they depend on) dependencies first."""
        wanted = list(names or self.stacks)
        ordered: list[str] = []

        def visit(name: str) -> None:
            if name in ordered:
                return
            if name not in self.stacks:
                raise DeployError(f"no stack {name} in {self.directory}; it has {', '.join(self.stacks)}")
            for dependency in self.stacks[name].depends_on:
                visit(dependency)
            ordered.append(name)

        for name in wanted:
            visit(name)
        return ordered


class Deployer:
    def __init__(self, assembly: Assembly | Path, endpoint: str, region: str = "us-east-1") -> None:
        self.assembly = assembly if isinstance(assembly, Assembly) else Assembly.read(assembly)
        self.endpoint = endpoint
        self.region = region
        self.session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        )
        self._clients: dict[str, Any] = {}
        self.account = self.client("sts").get_caller_identity()["Account"]
        self._zipped: dict[Path, bytes] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.endpoint, config=Config(retries={"max_attempts": 2})
            )
        return self._clients[service]

    def substitute(self, text: str) -> str:
        return (
            text.replace("${AWS::AccountId}", self.account)
            .replace("${AWS::Region}", self.region)
            .replace("${AWS::Partition}", "aws")
            .replace("${AWS::URLSuffix}", "amazonaws.com")
        )

    # ------------------------------------------------------------------ bootstrap

    @property
    def assets_bucket(self) -> str:
        return f"cdk-{QUALIFIER}-assets-{self.account}-{self.region}"

    def bootstrap(self) -> None:
        """The assets bucket and the version parameter of ``cdk bootstrap`` (see the module's docstring)."""
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=self.assets_bucket)
        except ClientError:
            s3.create_bucket(Bucket=self.assets_bucket)
        self.client("ssm").put_parameter(
            Name=f"/cdk-bootstrap/{QUALIFIER}/version", Value=BOOTSTRAP_VERSION, Type="String", Overwrite=True
        )

    # ------------------------------------------------------------------ assets

    def publish_assets(self, stack: StackArtifact) -> list[str]:
        """Upload the stack's file assets (its template among them); answers the keys uploaded."""
        if stack.assets_file is None:
            return []
        manifest = json.loads(stack.assets_file.read_text())
        if manifest.get("dockerImages"):
            raise DeployError(
                f"{stack.name} has image assets {sorted(manifest['dockerImages'])}: the emulator builds no "
                "image (synthesize with an image URI, the runtime_image context)"
            )
        s3 = self.client("s3")
        uploaded = []
        for asset_id, asset in manifest.get("files", {}).items():
            source = stack.assets_file.parent / asset["source"]["path"]
            for destination in asset["destinations"].values():
                bucket = self.substitute(destination["bucketName"])
                key = self.substitute(destination["objectKey"])
                if self._exists(bucket, key):
                    continue
                body = self._package(source, asset["source"].get("packaging", "file"), asset_id)
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                uploaded.append(key)
        return uploaded

    def _exists(self, bucket: str, key: str) -> bool:
        try:
            self.client("s3").head_object(Bucket=bucket, Key=key)
            return True
        except ClientError:
            return False

    def _package(self, source: Path, packaging: str, asset_id: str) -> bytes:
        if packaging == "file":
            return source.read_bytes()
        if packaging != "zip":
            raise DeployError(f"asset {asset_id}: packaging {packaging!r} is not supported")
        if source not in self._zipped:
            self._zipped[source] = zip_directory(source)
        return self._zipped[source]

    # ------------------------------------------------------------------ deploy

    def deploy(
        self,
        name: str,
        parameters: dict[str, str] | None = None,
        import_existing: bool = True,
        timeout_s: float = 300,
    ) -> DeployedStack:
        """Create the stack through a change set, as ``cdk deploy`` does; ``import_existing`` as
        ``--import-existing-resources`` (``make deploy`` passes it): resources a teardown kept are adopted."""
        stack = self.assembly.stacks[name]
        existing = self.status(name)
        if existing in ("ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"):
            self.destroy(name)  # as cdk deploy does: a stack whose creation failed is replaced
        elif existing is not None:
            deployed = self.client("cloudformation").get_template(StackName=name)["TemplateBody"]
            if (json.loads(deployed) if isinstance(deployed, str) else deployed) != stack.template:
                raise DeployError(
                    f"{name} exists ({existing}) with another template: this deployer creates stacks, it does "
                    "not update them; destroy it first"
                )
            return self.verify(name)  # no changes, as cdk deploy says
        self.publish_assets(stack)
        url = self.substitute(stack.template_url)
        bucket, _, key = url.removeprefix("s3://").partition("/")
        cloudformation = self.client("cloudformation")
        try:
            change_set = cloudformation.create_change_set(
                StackName=name,
                ChangeSetName="cdk-deploy-change-set",
                ChangeSetType="CREATE",
                TemplateURL=f"https://s3.{self.region}.amazonaws.com/{bucket}/{key}",
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
                Capabilities=CAPABILITIES,
                Tags=[{"Key": k, "Value": v} for k, v in stack.tags.items()],
                ImportExistingResources=import_existing,
            )["Id"]
            deadline = time.monotonic() + timeout_s
            described = cloudformation.describe_change_set(ChangeSetName=change_set)
            while described["Status"] in ("CREATE_PENDING", "CREATE_IN_PROGRESS") and time.monotonic() < deadline:
                time.sleep(0.5)
                described = cloudformation.describe_change_set(ChangeSetName=change_set)
            if described["Status"] != "CREATE_COMPLETE":
                raise DeployError(f"{name}: change set {described['Status']}: {described.get('StatusReason')}")
            cloudformation.execute_change_set(ChangeSetName=change_set)
        except DeployError:
            raise
        except Exception as exc:  # ClientError, or a response botocore could not parse (an emulator error)
            raise DeployError(f"{name}: refused: {exc}") from exc
        status = self.wait(name, timeout_s)
        if status != "CREATE_COMPLETE":
            raise DeployError(f"{name}: {status}; {self.failures(name)}")
        return self.verify(name)

    def status(self, name: str) -> str | None:
        """The stack's status; None when there is none (or only deleted ones) of that name."""
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc) or exc.response["Error"]["Code"] == "ValidationError":
                return None
            raise
        return stacks[0]["StackStatus"] if stacks else None

    def wait(self, name: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
            if status in TERMINAL or time.monotonic() > deadline:
                return status
            time.sleep(0.5)

    def failures(self, name: str) -> str:
        events = self.client("cloudformation").describe_stack_events(StackName=name)["StackEvents"]
        failed = [
            f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}"
            for e in events
            if e["ResourceStatus"].endswith("FAILED")
        ]
        return "; ".join(failed) or "no failure event recorded"

    def verify(self, name: str) -> DeployedStack:
        """Every logical resource of the template created, with a physical id; every output with a value."""
        stack = self.assembly.stacks[name]
        cloudformation = self.client("cloudformation")
        described = cloudformation.describe_stack_resources(StackName=name)["StackResources"]
        found = {
            r["LogicalResourceId"]: (r.get("ResourceType"), r.get("PhysicalResourceId"))
            for r in described
            if r.get("LogicalResourceId")
        }
        conditions = Conditions(stack.template, self.region, self.account, name)
        problems = []
        for logical_id, resource in stack.template.get("Resources", {}).items():
            if "Condition" in resource and not conditions.holds(resource["Condition"]):
                continue
            resource_type, physical_id = found.get(logical_id, (None, None))
            if resource_type is None:
                problems.append(f"{logical_id} ({resource['Type']}) was not created")
            elif resource_type != resource["Type"]:
                problems.append(f"{logical_id} is a {resource_type}, the template says {resource['Type']}")
            elif not physical_id:
                problems.append(f"{logical_id} ({resource['Type']}) has no physical id")
        unnamed = [r for r in described if not r.get("LogicalResourceId")]
        if unnamed:
            problems.append(f"{len(unnamed)} resource(s) of the stack have no logical id (moto skipped them)")
        described_stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        outputs = {o["OutputKey"]: o.get("OutputValue") for o in described_stack.get("Outputs", [])}
        for key, output in (stack.template.get("Outputs") or {}).items():
            if "Condition" in output and not conditions.holds(output["Condition"]):
                continue
            if not isinstance(outputs.get(key), str) or not outputs[key]:
                problems.append(f"output {key} has no value ({outputs.get(key)!r})")
        if problems:
            raise DeployError(f"{name} is {described_stack['StackStatus']} but: " + "; ".join(problems))
        events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
        return DeployedStack(
            name=name,
            status=described_stack["StackStatus"],
            resources={logical_id: found[logical_id] for logical_id in found},  # type: ignore[misc]
            outputs=outputs,  # type: ignore[arg-type]
            imported=frozenset(e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "IMPORT_COMPLETE"),
        )

    def deploy_all(self, names: Iterable[str] | None = None, import_existing: bool = True) -> dict[str, DeployedStack]:
        self.bootstrap()
        return {name: self.deploy(name, import_existing=import_existing) for name in self.assembly.order(names)}

    # ------------------------------------------------------------------ destroy

    def destroy(self, name: str, timeout_s: float = 300) -> list[Retained]:
        """Delete the stack; answers the resources its template retains, which outlive it."""
        stack = self.assembly.stacks[name]
        cloudformation = self.client("cloudformation")
        described = cloudformation.describe_stack_resources(StackName=name)["StackResources"]
        retained = [
            Retained(name, r["LogicalResourceId"], r["ResourceType"], r["PhysicalResourceId"])
            for r in described
            if stack.template["Resources"].get(r["LogicalResourceId"], {}).get("DeletionPolicy") in RETAINING
        ]
        stack_id = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackId"]
        try:
            cloudformation.delete_stack(StackName=name)
        except Exception as exc:  # ClientError, or a response botocore could not parse (an emulator error)
            raise DeployError(f"{name}: DeleteStack refused: {exc}") from exc
        deadline = time.monotonic() + timeout_s
        while True:
            status = cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
            if status in TERMINAL or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if status != "DELETE_COMPLETE":
            raise DeployError(f"{name}: {status} after DeleteStack; {self.failures(stack_id)}")
        return retained

    def destroy_all(self, names: Iterable[str] | None = None) -> list[Retained]:
        retained: list[Retained] = []
        for name in reversed(self.assembly.order(names)):
            retained.extend(self.destroy(name))
        return retained

    def exists(self, resource: Retained) -> bool:
        """Whether a retained resource is still there."""
        check = EXISTS.get(resource.resource_type)
        if check is None:
            raise DeployError(f"no existence check for {resource.resource_type}: add one to EXISTS")
        try:
            check(self, resource.physical_id)
        except ClientError:
            return False
        return True

    def purge(self, retained: Iterable[Retained]) -> None:
        """Delete what stacks retained (their data), as an operator starting over does by hand."""
        for resource in retained:
            purge = PURGES.get(resource.resource_type)
            if purge is None:
                raise DeployError(
                    f"no purge for retained {resource.resource_type} ({resource.stack}/{resource.logical_id}): add "
                    "one to infra.aws.emulator.deploy.PURGES"
                )
            purge(self, resource.physical_id)


def zip_directory(directory: Path) -> bytes:
    """The directory's files at the archive's root, in a stable order, as ``cdk-assets`` zips them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for filename in sorted(files):
                path = Path(root) / filename
                info = zipfile.ZipInfo(path.relative_to(directory).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes(), compresslevel=1)
    return buffer.getvalue()


def _purge_bucket(deployer: Deployer, bucket: str) -> None:
    s3 = deployer.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                   for o in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if objects:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    s3.delete_bucket(Bucket=bucket)


def _purge_role(deployer: Deployer, role: str) -> None:
    iam = deployer.client("iam")
    for policy in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=role, PolicyArn=policy["PolicyArn"])
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role, PolicyName=policy)
    iam.delete_role(RoleName=role)


#: How a retained resource of each type is deleted by hand (``Deployer.purge``).
PURGES: dict[str, Callable[[Deployer, str], None]] = {
    "AWS::DynamoDB::Table": lambda d, table: d.client("dynamodb").delete_table(TableName=table),
    "AWS::S3::Bucket": _purge_bucket,
    "AWS::ECR::Repository": lambda d, repo: d.client("ecr").delete_repository(repositoryName=repo, force=True),
    "AWS::SecretsManager::Secret": lambda d, arn: d.client("secretsmanager").delete_secret(
        SecretId=arn, ForceDeleteWithoutRecovery=True
    ),
    "AWS::Logs::LogGroup": lambda d, group: d.client("logs").delete_log_group(logGroupName=group),
    "AWS::SQS::Queue": lambda d, url: d.client("sqs").delete_queue(QueueUrl=url),
    "AWS::SNS::Topic": lambda d, arn: d.client("sns").delete_topic(TopicArn=arn),
    "AWS::SSM::Parameter": lambda d, name: d.client("ssm").delete_parameter(Name=name),
    "AWS::IAM::Role": _purge_role,
    # An account setting, nothing to delete (README: other APIs of the account may log with its role).
    "AWS::ApiGateway::Account": lambda d, _: None,
}


#: How a retained resource of each type is found (raises ClientError when it is gone).
EXISTS: dict[str, Callable[[Deployer, str], Any]] = {
    "AWS::DynamoDB::Table": lambda d, table: d.client("dynamodb").describe_table(TableName=table),
    "AWS::S3::Bucket": lambda d, bucket: d.client("s3").head_bucket(Bucket=bucket),
    "AWS::ECR::Repository": lambda d, repo: d.client("ecr").describe_repositories(repositoryNames=[repo]),
    "AWS::SecretsManager::Secret": lambda d, arn: d.client("secretsmanager").describe_secret(SecretId=arn),
    "AWS::SQS::Queue": lambda d, url: d.client("sqs").get_queue_attributes(QueueUrl=url),
    "AWS::SNS::Topic": lambda d, arn: d.client("sns").get_topic_attributes(TopicArn=arn),
    "AWS::SSM::Parameter": lambda d, name: d.client("ssm").get_parameter(Name=name),
    "AWS::IAM::Role": lambda d, role: d.client("iam").get_role(RoleName=role),
    # An account setting: always there.
    "AWS::ApiGateway::Account": lambda d, _: d.client("apigateway").get_account(),
}


class Conditions:
    """A template's Conditions, evaluated over its parameters' defaults and the pseudo parameters."""

    def __init__(self, template: dict[str, Any], region: str, account: str, stack_name: str) -> None:
        self.template = template
        self.values: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        for name, parameter in (template.get("Parameters") or {}).items():
            self.values[name] = parameter.get("Default")

    def holds(self, name: str) -> bool:
        return bool(self._value(self.template["Conditions"][name]))

    def _value(self, expression: Any) -> Any:
        if isinstance(expression, list):
            return [self._value(item) for item in expression]
        if not isinstance(expression, dict):
            return expression
        [(function, argument)] = expression.items()
        if function == "Ref":
            return self.values[argument]
        if function == "Condition":
            return self.holds(argument)
        values = self._value(argument)
        if function == "Fn::Equals":
            return values[0] == values[1]
        if function == "Fn::Not":
            return not values[0]
        if function == "Fn::And":
            return all(values)
        if function == "Fn::Or":
            return any(values)
        raise DeployError(f"cannot evaluate {function} in a condition")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assembly", type=Path, help="the cloud assembly directory (cdk.out)")
    parser.add_argument("--endpoint", required=True, help="the emulator's URL (infra.aws.emulator.server)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stack", action="append", help="a stack to deploy (with what it depends on); default all")
    parser.add_argument("--destroy", action="store_true", help="delete the stacks instead, dependents first")
    parser.add_argument(
        "--no-import-existing-resources",
        dest="import_existing",
        action="store_false",
        help="create every resource, as plain cdk deploy does (make deploy imports what a teardown kept)",
    )
    args = parser.parse_args(argv)
    deployer = Deployer(args.assembly, args.endpoint, args.region)
    try:
        if args.destroy:
            for item in deployer.destroy_all(args.stack):
                print(f"retained {item.stack}/{item.logical_id} ({item.resource_type}): {item.physical_id}")
            return 0
        for name, stack in deployer.deploy_all(args.stack, args.import_existing).items():
            imported = f" ({len(stack.imported)} imported)" if stack.imported else ""
            print(f"{name}: {stack.status}, {len(stack.resources)} resources{imported}")
            for key, value in stack.outputs.items():
                print(f"  {key} = {value}")
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
