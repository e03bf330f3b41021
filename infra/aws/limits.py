"""AWS's deploy-time limits, checked over every template of a synthesized cloud assembly.

``cdk synth`` (cdk-nag) and cfn-lint check each resource against its schema;
neither adds up what several resources do together once deployed: the
statements a stack's ``AWS::Lambda::Permission``\\ s add to one function's
policy, a name once the prefix, account and Region are filled in, a queue's
visibility timeout against the function it feeds, whether an alarm's topic
lets CloudWatch publish. A real deployment fails on these, or deploys and
then silently does not work. Each check here is a pure function of the
assembly directory (``manifest.json`` and the ``*.template.json`` it names)
and returns its violations; :func:`check_all` runs them all.

Tokens resolved at deploy time are filled in with the longest values real
deployments get (:data:`ENV`): a 12-digit account, the longest Region name and
its partition, a 10-character REST API id, the stage name the template gives.

``python -m infra.aws.limits build/cdk.out`` prints one line per violation and
exits 1, or prints the figures and exits 0. Each limit below is quoted as the
AWS page that publishes it words it, with that page's address.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class Limit:
    value: int
    #: How AWS's documentation words it.
    wording: str

    def __str__(self) -> str:
        return f"{self.value:,} ({self.wording})"


# --- The limits, as published -----------------------------------------------------------------------

# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (and GetPolicy/GetResourcePolicy:
# "Policy ... Maximum length of 20480"; the error is "The final policy size is bigger than the limit")
LAMBDA_RESOURCE_POLICY = Limit(20_480, "Lambda quotas: Function resource-based policy: 20 KB")
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html ; the Invoke error names the bytes:
# "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
LAMBDA_SYNC_REQUEST = Limit(
    6_291_456,
    "Lambda quotas: Invocation payload (request and response): 6 MB each for request and response (synchronous)",
)
LAMBDA_SYNC_RESPONSE = LAMBDA_SYNC_REQUEST
# https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html
APIGW_REST_PAYLOAD = Limit(10 * 1024 * 1024, "API Gateway REST API quotas: Payload size: 10 MB")
APIGW_REST_HEADERS = Limit(
    10_240,
    "API Gateway REST API quotas: Total combined size of all header values, including header names, values, "
    "any line terminators, and whitespaces: 10240 Bytes",
)
APIGW_PRIVATE_HEADERS = Limit(
    8_000, "API Gateway REST API quotas: Total combined size of all header values for a private API: 8000 Bytes"
)
APIGW_EDGE_URL = Limit(
    8_192, "API Gateway REST API quotas: Length, in characters, of the URL for an edge-optimized API: 8192"
)
APIGW_REGIONAL_URL = Limit(
    10_240, "API Gateway REST API quotas: Length, in characters, of the URL for a regional API: 10240"
)
APIGW_RESOURCES_PER_API = Limit(300, "API Gateway REST API quotas: Resources per API: 300")
#: What a Lambda proxy event carries besides the body and the (doubled) headers and URL: requestContext
#: (ids, identity, stage, times), resource, httpMethod, isBase64Encoded. Our allowance, not an AWS figure.
PROXY_EVENT_CONTEXT_ALLOWANCE = 4_096

# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
CFN_RESOURCES = Limit(
    500,
    "CloudFormation quotas: Resources: The maximum number of resources that you can declare "
    "in your CloudFormation template: 500 resources",
)
CFN_OUTPUTS = Limit(200, "CloudFormation quotas: Outputs: 200 outputs")
CFN_PARAMETERS = Limit(200, "CloudFormation quotas: Parameters: 200 parameters")
CFN_MAPPINGS = Limit(200, "CloudFormation quotas: Mappings: 200 mappings")
CFN_DYNAMIC_REFERENCES = Limit(
    60, "CloudFormation quotas: Dynamic references per template: 60 dynamic references in a stack template"
)
CFN_DESCRIPTION = Limit(1_024, "CloudFormation quotas: Template description: 1,024 bytes")
CFN_STACK_NAME = Limit(128, "CloudFormation quotas: Stack name: 128 characters")
#: "1 MB", read as 1,000,000 bytes (the smaller reading; CreateStack refuses a larger template URL body).
CFN_TEMPLATE_IN_S3 = Limit(1_000_000, "CloudFormation quotas: Template body size in an Amazon S3 object: 1 MB")
CFN_TEMPLATE_IN_REQUEST = Limit(51_200, "CloudFormation quotas: Template body size in a request: 51,200 bytes")

# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
SQS_VISIBILITY_FACTOR = Limit(
    6,
    "Lambda: set the source queue's visibility timeout to at least six times the configuration timeout on your "
    "function",
)
#: CloudFormation's and Lambda's defaults when a template leaves them out (AWS::SQS::Queue, AWS::Lambda::Function).
SQS_DEFAULT_VISIBILITY_S, LAMBDA_DEFAULT_TIMEOUT_S = 30, 3

# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html
RETAIN_EXCEPT_ON_CREATE = (
    "CloudFormation: RetainExceptOnCreate behaves like Retain for stack operations, except for the stack operation "
    "that initially created the resource"
)

# https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html ; a topic policy replaces the default
# one ("__default_statement_ID", which lets the account publish), so it must allow CloudWatch itself.
CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"

# --- The deploy-time values tokens are filled in with -----------------------------------------------------------


@dataclass(frozen=True)
class Env:
    """The longest values a real deployment gives a template's tokens."""

    #: Every account id has 12 digits.
    account: str = "123456789012"
    #: The longest Region name in any partition (botocore's partitions.json, cfn-lint's Region list): the longest
    #: commercial ones have 14 characters (ap-southeast-7, ap-northeast-1); us-isof-south-1 has 15.
    region: str = "us-isof-south-1"
    partition: str = "aws-iso-f"
    url_suffix: str = "csp.hci.ic.gov"
    #: API Gateway's ids (RestApiId) have 10 characters.
    api_id: str = "abcdefghij"


ENV = Env()


@dataclass(frozen=True)
class Violation:
    check: str
    stack: str
    logical_id: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.stack}/{self.logical_id}: {self.message}"


@dataclass(frozen=True)
class Stack:
    name: str
    template: dict[str, Any]
    template_file: Path
    template_bytes: int
    #: cdk uploads the template to the bootstrap bucket and passes its URL (``stackTemplateAssetObjectUrl``).
    uploaded_via_s3: bool
    tags: dict[str, str]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})

    def of_type(self, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if resource.get("Type") in types:
                yield logical_id, resource

    def props(self, logical_id: str) -> dict[str, Any]:
        return self.resources.get(logical_id, {}).get("Properties", {})


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    stacks: tuple[Stack, ...]
    #: The app's name prefix (``-c prefix=``), from the stacks' ``project`` tag unless given.
    prefix: str | None


def load(outdir: Path | str, prefix: str | None = None) -> Assembly:
    """Every CloudFormation stack of the cloud assembly in ``outdir``, with its template as written."""
    outdir = Path(outdir)
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = []
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        properties = artifact.get("properties", {})
        template_file = outdir / properties["templateFile"]
        raw = template_file.read_bytes()
        stacks.append(
            Stack(
                name=properties.get("stackName") or artifact_id,
                template=json.loads(raw),
                template_file=template_file,
                template_bytes=len(raw),
                uploaded_via_s3=bool(properties.get("stackTemplateAssetObjectUrl")),
                tags=dict(properties.get("tags") or {}),
            )
        )
    if prefix is None:
        projects = {stack.tags.get("project") for stack in stacks}
        prefix = projects.pop() if len(projects) == 1 else None
    return Assembly(outdir=outdir, stacks=tuple(stacks), prefix=prefix)


# --- Resolving a template's values as CloudFormation would, with ENV's figures -----------------------------------

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class _Unresolved(Exception):
    pass


#: The resource types whose ``Ref`` is their name.
_REF_IS_NAME = {
    "AWS::Lambda::Function",
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
    "AWS::Events::EventBus",
    "AWS::CloudWatch::Alarm",
    "AWS::SSM::Parameter",
    "AWS::ECR::Repository",
}


class Resolver:
    """A template's value as the string CloudFormation makes of it, tokens filled in from an :class:`Env`."""

    def __init__(self, stack: Stack, env: Env = ENV) -> None:
        self.stack, self.env = stack, env

    def __call__(self, value: Any) -> str | None:
        try:
            return self._resolve(value)
        except _Unresolved:
            return None

    def _resolve(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, dict) and len(value) == 1:
            [(function, argument)] = value.items()
            if function == "Ref":
                return self._ref(argument)
            if function == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._get_att(logical_id, attribute)
            if function == "Fn::Join":
                separator, parts = argument
                if not isinstance(parts, list):
                    raise _Unresolved
                return separator.join(self._resolve(part) for part in parts)
            if function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return self._sub(text, variables)
        raise _Unresolved

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return self._resolve(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self._get_att(logical_id, attribute)
            return self._ref(name)

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def _ref(self, name: str) -> str:
        env = self.env
        pseudo = {
            "AWS::AccountId": env.account,
            "AWS::Region": env.region,
            "AWS::Partition": env.partition,
            "AWS::URLSuffix": env.url_suffix,
            "AWS::StackName": self.stack.name,
        }
        if name in pseudo:
            return pseudo[name]
        resource = self.stack.resources.get(name)
        if resource is None:
            raise _Unresolved
        kind, props = resource.get("Type"), resource.get("Properties", {})
        if kind == "AWS::ApiGateway::RestApi":
            return env.api_id
        if kind == "AWS::ApiGateway::Stage":
            return self._resolve(props["StageName"])
        if kind == "AWS::SNS::Topic":
            return self._arn("sns", self._name(name))
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{env.region}.{env.url_suffix}/{env.account}/{self._name(name)}"
        if kind == "AWS::SecretsManager::Secret":
            return self._arn("secretsmanager", f"secret:{self._name(name)}-AbCdEf")
        if kind in _REF_IS_NAME:
            return self._name(name)
        raise _Unresolved

    def _get_att(self, logical_id: str, attribute: str) -> str:
        kind = self.stack.resources.get(logical_id, {}).get("Type")
        arns = {
            ("AWS::Lambda::Function", "Arn"): lambda: self._arn("lambda", f"function:{self._name(logical_id)}"),
            ("AWS::SQS::Queue", "Arn"): lambda: self._arn("sqs", self._name(logical_id)),
            ("AWS::SQS::Queue", "QueueName"): lambda: self._name(logical_id),
            ("AWS::SNS::Topic", "TopicArn"): lambda: self._arn("sns", self._name(logical_id)),
            ("AWS::SNS::Topic", "TopicName"): lambda: self._name(logical_id),
            ("AWS::Logs::LogGroup", "Arn"): lambda: self._arn("logs", f"log-group:{self._name(logical_id)}:*"),
            ("AWS::DynamoDB::Table", "Arn"): lambda: self._arn("dynamodb", f"table/{self._name(logical_id)}"),
        }
        if (kind, attribute) in arns:
            return arns[(kind, attribute)]()
        raise _Unresolved

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:{self.env.partition}:{service}:{self.env.region}:{self.env.account}:{resource}"

    def _name(self, logical_id: str) -> str:
        """The resource's physical name: its name property, else the longest one CloudFormation generates."""
        resource = self.stack.resources[logical_id]
        rule = NAME_RULES_BY_TYPE.get(resource.get("Type"))
        if rule is None:
            raise _Unresolved
        value = resource.get("Properties", {}).get(rule.prop)
        if value is not None:
            return self._resolve(value)
        generated = f"{self.stack.name}-{logical_id}-ABCDEFGHIJKL"
        return generated[: rule.limit.value]


# --- 1. Lambda resource-based policies --------------------------------------------------------------------------

#: StatementId: "Length Constraints: Minimum length of 1. Maximum length of 100."
#: (https://docs.aws.amazon.com/lambda/latest/api/API_AddPermission.html). CloudFormation names a permission
#: ``<stack>-<logical id>-<random>``, cut to fit.
_STATEMENT_ID_MAX = 100


def permission_statement(stack: Stack, logical_id: str, props: dict[str, Any], env: Env = ENV) -> dict[str, Any]:
    """The statement Lambda adds to the function's policy for one ``AWS::Lambda::Permission``, as GetPolicy shows."""
    resolve = Resolver(stack, env)
    sid = f"{stack.name}-{logical_id}"[: _STATEMENT_ID_MAX - 13] + "-ABCDEFGHIJKL"
    principal = resolve(props.get("Principal")) or "*"
    if "." in principal and not principal.startswith("arn:"):
        rendered_principal: Any = {"Service": principal}
    elif re.fullmatch(r"\d{12}", principal):
        rendered_principal = {"AWS": f"arn:{env.partition}:iam::{principal}:root"}
    else:
        rendered_principal = {"AWS": principal} if principal != "*" else "*"
    function = props.get("FunctionName")
    resource = resolve(function) or ""
    if not resource.startswith("arn:"):
        resource = f"arn:{env.partition}:lambda:{env.region}:{env.account}:function:{resource or 'x' * 64}"
    condition: dict[str, dict[str, str]] = {}
    equals = {
        "SourceAccount": "AWS:SourceAccount",
        "PrincipalOrgID": "aws:PrincipalOrgID",
        "EventSourceToken": "lambda:EventSourceToken",
        "FunctionUrlAuthType": "lambda:FunctionUrlAuthType",
    }
    for prop, key in equals.items():
        if prop in props:
            condition.setdefault("StringEquals", {})[key] = resolve(props[prop]) or "x" * 64
    if "SourceArn" in props:
        source_arn = resolve(props["SourceArn"])
        if source_arn is None:
            source_arn = "x" * 1024  # AWS::Lambda::Permission SourceArn: maxLength 1024
        condition["ArnLike"] = {"AWS:SourceArn": source_arn}
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": rendered_principal,
        "Action": resolve(props.get("Action")) or "lambda:InvokeFunction",
        "Resource": resource,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def policy_bytes(statements: list[dict[str, Any]]) -> int:
    policy = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
    return len(json.dumps(policy, separators=(",", ":")).encode())


def lambda_policies(assembly: Assembly, env: Env = ENV) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(stack, function logical id) -> the statements every permission of the assembly adds to that function.

    A function another stack's permission names by name or ARN is found by its name; one in no template of the
    assembly is keyed ``("(not in the assembly)", name)``.
    """
    functions = {}
    for stack in assembly.stacks:
        resolve = Resolver(stack, env)
        for logical_id, _ in stack.of_type("AWS::Lambda::Function"):
            functions[resolve({"Ref": logical_id})] = (stack.name, logical_id)
    policies: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for stack in assembly.stacks:
        for logical_id, resource in stack.of_type("AWS::Lambda::Permission"):
            props = resource.get("Properties", {})
            target = _referenced_id(props.get("FunctionName"), stack)
            if target is not None:
                key = (stack.name, target)
            else:
                name = (Resolver(stack, env)(props.get("FunctionName")) or "?").split(":function:")[-1].split(":")[0]
                key = functions.get(name, ("(not in the assembly)", name))
            policies.setdefault(key, []).append(permission_statement(stack, logical_id, props, env))
    return policies


def check_lambda_policies(assembly: Assembly, env: Env = ENV, notes: list[str] | None = None) -> list[Violation]:
    violations, largest = [], None
    for (stack, function), statements in sorted(lambda_policies(assembly, env).items()):
        size = policy_bytes(statements)
        if largest is None or size > largest[0]:
            largest = (size, stack, function, len(statements))
        if size > LAMBDA_RESOURCE_POLICY.value:
            violations.append(
                Violation(
                    "lambda-policy",
                    stack,
                    function,
                    f"resource-based policy of {len(statements)} AWS::Lambda::Permission statements is {size:,} "
                    f"bytes > {LAMBDA_RESOURCE_POLICY}",
                )
            )
    if notes is not None and largest:
        size, stack, function, count = largest
        notes.append(
            f"Lambda resource policy: largest {stack}/{function}, {count} statement(s), {size:,} of "
            f"{LAMBDA_RESOURCE_POLICY.value:,} bytes"
        )
    return violations


# --- 2. Names ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NameRule:
    resource_type: str
    prop: str
    limit: Limit
    #: The characters the name may have (re.fullmatch), as documented.
    pattern: str | None = None
    reserved_prefixes: tuple[str, ...] = ()
    reserved_suffixes: tuple[str, ...] = ()
    #: A name unique in the account and Region (or wider): a resource left behind blocks creating it again.
    unique: bool = True
    #: What counts toward the limit besides the name (SSM counts the ARN before it).
    counted: Callable[[str, Env], str] = field(default=lambda name, env: name)


def _ssm_counted(name: str, env: Env) -> str:
    base = f"arn:{env.partition}:ssm:{env.region}:{env.account}:parameter"
    return base + (name if name.startswith("/") else "/" + name)


NAME_RULES: tuple[NameRule, ...] = (
    # https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html
    NameRule(
        "AWS::Lambda::Function",
        "FunctionName",
        Limit(
            64, "Lambda CreateFunction: If you specify only the function name, it is limited to 64 characters in length"
        ),
        r"[a-zA-Z0-9_-]+",
    ),
    # https://docs.aws.amazon.com/lambda/latest/api/API_PublishLayerVersion.html
    NameRule(
        "AWS::Lambda::LayerVersion",
        "LayerName",
        Limit(140, "Lambda PublishLayerVersion: LayerName: Maximum length of 140"),
        r"[a-zA-Z0-9_-]+",
        unique=False,
    ),
    # https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html
    NameRule(
        "AWS::IAM::Role",
        "RoleName",
        Limit(64, "IAM CreateRole: RoleName: Maximum length of 64; names are not distinguished by case"),
        r"[\w+=,.@-]+",
    ),
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
    NameRule(
        "AWS::SQS::Queue",
        "QueueName",
        Limit(
            80,
            "SQS CreateQueue: A queue name can have up to 80 characters. Valid values: alphanumeric "
            "characters, hyphens (-), and underscores (_)",
        ),
        r"[A-Za-z0-9_-]+(\.fifo)?",
    ),
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html
    NameRule(
        "AWS::DynamoDB::Table",
        "TableName",
        Limit(255, "DynamoDB naming rules: Table names must be between 3 and 255 characters long"),
        r"[a-zA-Z0-9_.-]{3,}",
    ),
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
    NameRule(
        "AWS::S3::Bucket",
        "BucketName",
        Limit(63, "S3 bucket naming rules: Bucket names must be between 3 (min) and 63 (max) characters long"),
        r"[a-z0-9][a-z0-9.-]*[a-z0-9]",
        reserved_prefixes=("xn--", "sthree-", "amzn-s3-demo-"),
        reserved_suffixes=("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"),
    ),
    # https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html
    NameRule(
        "AWS::Events::Rule", "Name", Limit(64, "EventBridge PutRule: Name: Maximum length of 64"), r"[\.\-_A-Za-z0-9]+"
    ),
    # https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_CreateEventBus.html
    NameRule(
        "AWS::Events::EventBus",
        "Name",
        Limit(256, "EventBridge CreateEventBus: Name: Maximum length of 256"),
        r"[/\.\-_A-Za-z0-9]+",
    ),
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
    NameRule(
        "AWS::CloudWatch::Alarm", "AlarmName", Limit(255, "CloudWatch PutMetricAlarm: AlarmName: Maximum length of 255")
    ),
    # https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html
    NameRule(
        "AWS::Logs::LogGroup",
        "LogGroupName",
        Limit(512, "CloudWatch Logs CreateLogGroup: logGroupName: Maximum length of 512"),
        r"[\.\-_/#A-Za-z0-9]+",
    ),
    # https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html
    NameRule(
        "AWS::SecretsManager::Secret",
        "Name",
        Limit(512, "Secrets Manager CreateSecret: Name: Maximum length of 512"),
        r"[A-Za-z0-9/_+=.@-]+",
    ),
    # https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html
    NameRule(
        "AWS::SNS::Topic",
        "TopicName",
        Limit(
            256,
            "SNS CreateTopic: Topic names must be made up of only uppercase and lowercase ASCII letters, "
            "numbers, underscores, and hyphens, and must be between 1 and 256 characters long",
        ),
        r"[A-Za-z0-9_-]+(\.fifo)?",
    ),
    # https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html
    NameRule(
        "AWS::ECR::Repository",
        "RepositoryName",
        Limit(
            256, "ECR CreateRepository: repositoryName: Length Constraints: Minimum length of 2. Maximum length of 256"
        ),
        r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*",
    ),
    # https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-su-create.html
    NameRule(
        "AWS::SSM::Parameter",
        "Name",
        Limit(
            1_011,
            "SSM: The maximum length for a parameter name, including the full length of the parameter "
            "ARN, is 1011 characters",
        ),
        r"[a-zA-Z0-9_.\-/]+",
        reserved_prefixes=("aws", "ssm", "/aws", "/ssm"),
        counted=_ssm_counted,
    ),
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-usage-plans.html
    # (A usage plan's name has no published limit: not checked.)
    NameRule(
        "AWS::ApiGateway::ApiKey",
        "Name",
        Limit(1_024, "API Gateway: An API key has a name and a value ... The name cannot exceed 1024 characters"),
        unique=False,
    ),
)
NAME_RULES_BY_TYPE = {rule.resource_type: rule for rule in NAME_RULES}
#: https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-su-create.html
SSM_HIERARCHY_DEPTH = Limit(15, "SSM: Parameter hierarchies are limited to a maximum depth of fifteen levels")
#: https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html
STACK_NAME_PATTERN = r"[a-zA-Z][-a-zA-Z0-9]*"


@dataclass(frozen=True)
class Name:
    stack: str
    logical_id: str
    rule: NameRule
    value: str


def named_resources(assembly: Assembly, env: Env = ENV) -> tuple[list[Name], list[tuple[str, str]]]:
    """Every fixed name the templates give a resource, resolved; and (stack, logical id) of those not resolvable."""
    names, unresolved = [], []
    for stack in assembly.stacks:
        resolve = Resolver(stack, env)
        for logical_id, resource in stack.resources.items():
            rule = NAME_RULES_BY_TYPE.get(resource.get("Type"))
            if rule is None or rule.prop not in resource.get("Properties", {}):
                continue
            value = resolve(resource["Properties"][rule.prop])
            if value is None:
                unresolved.append((stack.name, logical_id))
            else:
                names.append(Name(stack.name, logical_id, rule, value))
    return names, unresolved


def check_names(assembly: Assembly, env: Env = ENV, notes: list[str] | None = None) -> list[Violation]:
    names, unresolved = named_resources(assembly, env)
    violations = []
    # (room for the prefix, what binds it) for the longest-prefix figure.
    headroom: list[tuple[int, str]] = []
    prefix = assembly.prefix

    def room(value: str, counted_length: int, limit: int, what: str) -> None:
        if prefix:
            occurrences = value.count(prefix)
            if occurrences:
                headroom.append((len(prefix) + (limit - counted_length) // occurrences, what))

    for stack in assembly.stacks:
        if len(stack.name) > CFN_STACK_NAME.value or not re.fullmatch(STACK_NAME_PATTERN, stack.name):
            violations.append(
                Violation(
                    "name",
                    stack.name,
                    "-",
                    f"stack name {stack.name!r} ({len(stack.name)}) must match "
                    f"{STACK_NAME_PATTERN} and be <= {CFN_STACK_NAME}",
                )
            )
        room(stack.name, len(stack.name), CFN_STACK_NAME.value, f"stack name {stack.name}")
    iam_roles: dict[str, Name] = {}
    for name in names:
        rule, value = name.rule, name.value
        counted = rule.counted(value, env)
        what = f"{rule.resource_type}.{rule.prop} {value!r}"
        if len(counted) > rule.limit.value:
            violations.append(
                Violation("name", name.stack, name.logical_id, f"{what} has {len(counted)} characters > {rule.limit}")
            )
        room(value, len(counted), rule.limit.value, f"{what} ({len(counted)}/{rule.limit.value})")
        if rule.pattern and not re.fullmatch(rule.pattern, value):
            violations.append(
                Violation("name", name.stack, name.logical_id, f"{what} has characters outside {rule.pattern}")
            )
        bare = value.lower()
        for reserved in rule.reserved_prefixes:
            if bare.startswith(reserved):
                violations.append(
                    Violation(
                        "name", name.stack, name.logical_id, f"{what} starts with the reserved prefix {reserved!r}"
                    )
                )
        for reserved in rule.reserved_suffixes:
            if bare.endswith(reserved):
                violations.append(
                    Violation("name", name.stack, name.logical_id, f"{what} ends with the reserved suffix {reserved!r}")
                )
        if rule.resource_type == "AWS::SSM::Parameter":
            depth = len([part for part in value.split("/") if part])
            if depth > SSM_HIERARCHY_DEPTH.value:
                violations.append(
                    Violation(
                        "name", name.stack, name.logical_id, f"{what} is {depth} levels deep > {SSM_HIERARCHY_DEPTH}"
                    )
                )
        if rule.resource_type == "AWS::IAM::Role":
            other = iam_roles.setdefault(value.lower(), name)
            if other is not name:
                violations.append(
                    Violation(
                        "name",
                        name.stack,
                        name.logical_id,
                        f"{what} is the name of {other.stack}/{other.logical_id} too (IAM names ignore case)",
                    )
                )
            role_stack = _stack(assembly, name.stack)
            path = Resolver(role_stack, env)(role_stack.props(name.logical_id).get("Path", "/"))
            if path and (len(path) > 512 or not re.fullmatch(r"/|/[\x21-\x7E]+/", path)):
                violations.append(
                    Violation(
                        "name",
                        name.stack,
                        name.logical_id,
                        f"role path {path!r} must be / or /.../ and at most 512 characters",
                    )
                )
    if notes is not None:
        tightest = max(names, key=lambda n: len(n.rule.counted(n.value, env)) / n.rule.limit.value, default=None)
        if tightest:
            length = len(tightest.rule.counted(tightest.value, env))
            notes.append(
                f"Names: {len(names)} fixed names, tightest {tightest.rule.resource_type} {tightest.value!r} "
                f"{length}/{tightest.rule.limit.value} (Region {env.region}, account {env.account})"
            )
        if prefix and headroom:
            longest, binding = min(headroom)
            notes.append(
                f"Prefix: {prefix!r} ({len(prefix)} characters); the longest that fits every name has "
                f"{longest} characters, bound by {binding}"
            )
        if unresolved:
            notes.append(f"Names not resolvable at synth, not checked: {', '.join('/'.join(u) for u in unresolved)}")
        roles = sorted(iam_roles)
        if roles:
            notes.append(
                f"IAM role names are global to the account (a second Region with the same prefix collides): "
                f"{', '.join(roles)}"
            )
    return violations


# --- 3. Stack quotas ------------------------------------------------------------------------------------------


def check_stack_quotas(assembly: Assembly, env: Env = ENV, notes: list[str] | None = None) -> list[Violation]:
    violations = []
    for stack in assembly.stacks:
        template = stack.template
        counts = [
            ("resources", len(template.get("Resources", {})), CFN_RESOURCES),
            ("outputs", len(template.get("Outputs", {})), CFN_OUTPUTS),
            ("parameters", len(template.get("Parameters", {})), CFN_PARAMETERS),
            ("mappings", len(template.get("Mappings", {})), CFN_MAPPINGS),
            ("dynamic references", json.dumps(template).count("{{resolve:"), CFN_DYNAMIC_REFERENCES),
            ("description bytes", len(str(template.get("Description", "")).encode()), CFN_DESCRIPTION),
            ("template bytes", stack.template_bytes, CFN_TEMPLATE_IN_S3),
        ]
        if not stack.uploaded_via_s3:
            counts.append(
                ("template bytes (sent in the request, not via S3)", stack.template_bytes, CFN_TEMPLATE_IN_REQUEST)
            )
        for what, count, limit in counts:
            if count > limit.value:
                violations.append(Violation("stack", stack.name, "-", f"{count:,} {what} > {limit}"))
        for logical_id, _ in stack.of_type("AWS::ApiGateway::RestApi"):
            resources = sum(
                1
                for _, r in stack.of_type("AWS::ApiGateway::Resource")
                if _referenced_id(r.get("Properties", {}).get("RestApiId"), stack) == logical_id
            )
            if resources > APIGW_RESOURCES_PER_API.value:
                violations.append(
                    Violation("stack", stack.name, logical_id, f"{resources} API resources > {APIGW_RESOURCES_PER_API}")
                )
        if notes is not None:
            over = (
                f", over {CFN_TEMPLATE_IN_REQUEST.value:,} so S3 only"
                if (stack.template_bytes > CFN_TEMPLATE_IN_REQUEST.value)
                else ""
            )
            notes.append(
                f"Stack {stack.name}: {counts[0][1]}/{CFN_RESOURCES.value} resources, {counts[1][1]}/"
                f"{CFN_OUTPUTS.value} outputs, {counts[2][1]}/{CFN_PARAMETERS.value} parameters, "
                f"{stack.template_bytes:,}/{CFN_TEMPLATE_IN_S3.value:,} template bytes{over}"
            )
    return violations


# --- 4. Payloads through the REST API -------------------------------------------------------------------------


def _proxy_targets(stack: Stack) -> dict[str, list[str]]:
    """Lambda function logical id -> the AWS_PROXY methods (logical ids) that invoke it."""
    targets: dict[str, list[str]] = {}
    for logical_id, resource in stack.of_type("AWS::ApiGateway::Method"):
        integration = resource.get("Properties", {}).get("Integration", {})
        if integration.get("Type") != "AWS_PROXY":
            continue
        for function in _get_att_ids(integration.get("Uri"), stack, "AWS::Lambda::Function"):
            targets.setdefault(function, []).append(logical_id)
    return targets


def proxy_event_envelope(stack: Stack) -> int:
    """Bytes a Lambda proxy event carries besides the body, at most, for the stack's REST API.

    Headers (capped by API Gateway) appear twice (``headers`` and ``multiValueHeaders``); the URL's path and query
    twice as well (``path``/``requestContext.path``, ``queryStringParameters``/``multiValueQueryStringParameters``).
    """
    private = regional = False
    for _, api in stack.of_type("AWS::ApiGateway::RestApi"):
        types = api.get("Properties", {}).get("EndpointConfiguration", {}).get("Types", ["EDGE"])
        private |= "PRIVATE" in types
        regional |= "REGIONAL" in types or "PRIVATE" in types
    headers = APIGW_PRIVATE_HEADERS if private else APIGW_REST_HEADERS
    url = APIGW_REGIONAL_URL if regional else APIGW_EDGE_URL
    return 2 * headers.value + 2 * url.value + PROXY_EVENT_CONTEXT_ALLOWANCE


def check_payloads(
    assembly: Assembly, env: Env = ENV, notes: list[str] | None = None, edge_limits: Any = None
) -> list[Violation]:
    """The edge's body and response limits against what API Gateway and Lambda pass (``api_gateway.limits``)."""
    violations = []
    for stack in assembly.stacks:
        targets = _proxy_targets(stack)
        if not targets:
            continue
        limits = edge_limits
        if limits is None:
            try:
                limits = importlib.import_module("api_gateway.limits")
            except ImportError as error:
                violations.append(Violation("payload", stack.name, "-", f"cannot import api_gateway.limits: {error}"))
                continue
        binary = any(
            api.get("Properties", {}).get("BinaryMediaTypes") for _, api in stack.of_type("AWS::ApiGateway::RestApi")
        )
        envelope = proxy_event_envelope(stack)
        for function, methods in sorted(targets.items()):
            where = f"{function} ({len(methods)} AWS_PROXY methods)"
            body = getattr(limits, "MAX_BODY_BYTES", None)
            if not isinstance(body, int):
                violations.append(Violation("payload", stack.name, where, "api_gateway.limits has no MAX_BODY_BYTES"))
            else:
                # A binary media type reaches Lambda base64-encoded: 4 bytes for every 3.
                in_event = -(-body // 3) * 4 if binary else body
                fits = LAMBDA_SYNC_REQUEST.value - envelope
                if in_event + envelope > LAMBDA_SYNC_REQUEST.value:
                    violations.append(
                        Violation(
                            "payload",
                            stack.name,
                            where,
                            f"MAX_BODY_BYTES {body:,}{' (base64: ' + format(in_event, ',') + ')' if binary else ''} + "
                            f"proxy event envelope {envelope:,} = {in_event + envelope:,} > {LAMBDA_SYNC_REQUEST}; "
                            f"at most {fits * 3 // 4 if binary else fits:,} fits",
                        )
                    )
                if body > APIGW_REST_PAYLOAD.value:
                    violations.append(
                        Violation("payload", stack.name, where, f"MAX_BODY_BYTES {body:,} > {APIGW_REST_PAYLOAD}")
                    )
                if notes is not None:
                    notes.append(
                        f"Payload: {stack.name}/{function} body limit {body:,} + envelope {envelope:,} = "
                        f"{in_event + envelope:,} of {LAMBDA_SYNC_REQUEST.value:,} bytes"
                    )
            response = getattr(limits, "MAX_RESPONSE_BYTES", None)
            if not isinstance(response, int):
                violations.append(
                    Violation(
                        "payload",
                        stack.name,
                        where,
                        f"api_gateway.limits has no MAX_RESPONSE_BYTES (a response over {LAMBDA_SYNC_RESPONSE.value:,} "
                        f"bytes fails in Lambda, and the client gets a 502)",
                    )
                )
            elif response > LAMBDA_SYNC_RESPONSE.value:
                violations.append(
                    Violation("payload", stack.name, where, f"MAX_RESPONSE_BYTES {response:,} > {LAMBDA_SYNC_RESPONSE}")
                )
            elif notes is not None:
                notes.append(
                    f"Payload: {stack.name}/{function} response limit {response:,} of "
                    f"{LAMBDA_SYNC_RESPONSE.value:,} bytes"
                )
    return violations


# --- 5. SQS visibility timeout vs function timeout ------------------------------------------------------------


def _find_queue(assembly: Assembly, stack: Stack, source: Any, env: Env) -> tuple[Stack, str] | None:
    queue_id = _referenced_id(source, stack)
    if queue_id and stack.resources.get(queue_id, {}).get("Type") == "AWS::SQS::Queue":
        return stack, queue_id
    arn = Resolver(stack, env)(source)
    if not arn or ":sqs:" not in arn:
        return None
    queue_name = arn.rsplit(":", 1)[-1]
    for other in assembly.stacks:
        resolve = Resolver(other, env)
        for logical_id, queue in other.of_type("AWS::SQS::Queue"):
            if resolve(queue.get("Properties", {}).get("QueueName")) == queue_name:
                return other, logical_id
    return None


def check_queue_visibility(assembly: Assembly, env: Env = ENV, notes: list[str] | None = None) -> list[Violation]:
    violations, ratios = [], []
    for stack in assembly.stacks:
        for logical_id, mapping in stack.of_type("AWS::Lambda::EventSourceMapping"):
            props = mapping.get("Properties", {})
            source = props.get("EventSourceArn")
            rendered = Resolver(stack, env)(source) or ""
            is_queue = ":sqs:" in rendered or (
                stack.resources.get(_referenced_id(source, stack) or "", {}).get("Type") == "AWS::SQS::Queue"
            )
            if not is_queue:
                continue
            found = _find_queue(assembly, stack, source, env)
            function_id = _referenced_id(props.get("FunctionName"), stack)
            if found is None or function_id not in stack.resources:
                violations.append(
                    Violation(
                        "sqs-visibility",
                        stack.name,
                        logical_id,
                        "its queue or function is in no template of the assembly; not checkable",
                    )
                )
                continue
            queue_stack, queue_id = found
            visibility = int(queue_stack.props(queue_id).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY_S))
            timeout = int(stack.props(function_id).get("Timeout", LAMBDA_DEFAULT_TIMEOUT_S))
            ratios.append((visibility / timeout, stack.name, queue_id, visibility, timeout))
            if visibility < SQS_VISIBILITY_FACTOR.value * timeout:
                violations.append(
                    Violation(
                        "sqs-visibility",
                        stack.name,
                        logical_id,
                        f"queue {queue_stack.name}/{queue_id} visibility timeout {visibility} s < "
                        f"{SQS_VISIBILITY_FACTOR.value} x function {function_id} timeout {timeout} s = "
                        f"{SQS_VISIBILITY_FACTOR.value * timeout} s ({SQS_VISIBILITY_FACTOR.wording})",
                    )
                )
    if notes is not None and ratios:
        ratio, stack_name, queue_id, visibility, timeout = min(ratios)
        notes.append(
            f"SQS: {len(ratios)} queue event sources; tightest {stack_name}/{queue_id} visibility "
            f"{visibility} s = {ratio:g} x function timeout {timeout} s (at least "
            f"{SQS_VISIBILITY_FACTOR.value} x)"
        )
    return violations


# --- 6. Removal policies of named resources ---------------------------------------------------------------------


def check_removal_policies(assembly: Assembly, env: Env = ENV, notes: list[str] | None = None) -> list[Violation]:
    violations, retained = [], 0
    for stack in assembly.stacks:
        for logical_id, resource in stack.resources.items():
            rule = NAME_RULES_BY_TYPE.get(resource.get("Type"))
            if rule is None or not rule.unique or rule.prop not in resource.get("Properties", {}):
                continue
            policy = resource.get("DeletionPolicy", "Delete")
            name = Resolver(stack, env)(resource["Properties"][rule.prop]) or "(unresolved)"
            what = f"{resource['Type']} {name!r}"
            if policy == "Retain":
                violations.append(
                    Violation(
                        "removal",
                        stack.name,
                        logical_id,
                        f"{what} has a fixed name and DeletionPolicy Retain: a failed first create leaves it "
                        f"behind and every retry fails on the name; use RetainExceptOnCreate "
                        f"({RETAIN_EXCEPT_ON_CREATE})",
                    )
                )
            elif policy == "RetainExceptOnCreate":
                retained += 1
            elif resource["Type"] == "AWS::SecretsManager::Secret":
                violations.append(
                    Violation(
                        "removal",
                        stack.name,
                        logical_id,
                        f"{what} has a fixed name and DeletionPolicy {policy}: deleting the stack destroys the "
                        f"secret's value, and a redeploy can find the name still taken ('a secret with this name is "
                        f"already scheduled for deletion'); use RetainExceptOnCreate",
                    )
                )
    if notes is not None:
        notes.append(f"Removal: {retained} named resources kept on stack deletion, all RetainExceptOnCreate")
    return violations


# --- 7. Alarm actions reach their topics ------------------------------------------------------------------------


def _topics_by_name(assembly: Assembly, env: Env) -> dict[str, tuple[Stack, str]]:
    topics = {}
    for stack in assembly.stacks:
        resolve = Resolver(stack, env)
        for logical_id, _ in stack.of_type("AWS::SNS::Topic"):
            name = resolve({"Fn::GetAtt": [logical_id, "TopicName"]})
            if name:
                topics[name] = (stack, logical_id)
    return topics


def _statements(document: Any) -> list[dict[str, Any]]:
    statements = (document or {}).get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _covers_publish(statement: dict[str, Any]) -> bool:
    actions = [a for a in _as_list(statement.get("Action", [])) if isinstance(a, str)]
    return any(fnmatch.fnmatch("sns:publish", action.lower()) for action in actions)


def _names_cloudwatch(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if "*" in _as_list(principal.get("AWS", [])):
        return True
    return CLOUDWATCH_PRINCIPAL in _as_list(principal.get("Service", []))


def _tls_only_deny(statement: dict[str, Any]) -> bool:
    """The enforce-SSL deny: it never applies to CloudWatch, which publishes over TLS."""
    condition = statement.get("Condition", {})
    return condition == {"Bool": {"aws:SecureTransport": "false"}} or condition == {
        "Bool": {"aws:SecureTransport": False}
    }


def topic_publish_problem(stack: Stack, topic_id: str, env: Env = ENV) -> str | None:
    """Why CloudWatch cannot publish to the topic, or None if it can."""
    key = stack.props(topic_id).get("KmsMasterKeyId")
    if isinstance(key, str) and key.lower() in ("alias/aws/sns",):
        return "the topic is encrypted with the AWS managed key alias/aws/sns, whose key policy CloudWatch cannot use"
    resolve = Resolver(stack, env)
    arn = resolve({"Ref": topic_id})
    policies = [
        (logical_id, resource.get("Properties", {}))
        for logical_id, resource in stack.of_type("AWS::SNS::TopicPolicy")
        if any(
            _referenced_id(t, stack) == topic_id or (arn is not None and resolve(t) == arn)
            for t in _as_list(resource.get("Properties", {}).get("Topics", []))
        )
    ]
    if not policies:
        return None  # SNS's default policy lets the account's services publish
    statements = [s for _, props in policies for s in _statements(props.get("PolicyDocument"))]
    ids = ", ".join(logical_id for logical_id, _ in policies)
    for statement in statements:
        denies = statement.get("Effect") == "Deny" and _covers_publish(statement) and _names_cloudwatch(statement)
        if denies and not _tls_only_deny(statement):
            return f"its topic policy {ids} denies sns:Publish to {CLOUDWATCH_PRINCIPAL}"
    allowed = any(
        statement.get("Effect") == "Allow" and _covers_publish(statement) and _names_cloudwatch(statement)
        for statement in statements
    )
    if not allowed:
        return (
            f"its topic policy {ids} replaces SNS's default policy and allows no sns:Publish by {CLOUDWATCH_PRINCIPAL}"
        )
    return None


def check_alarm_topics(
    assembly: Assembly, env: Env = ENV, notes: list[str] | None = None, partial: bool = False
) -> list[Violation]:
    """Every alarm action's SNS topic is in some template, and its policy lets CloudWatch publish."""
    violations = []
    by_name = _topics_by_name(assembly, env)
    senders: dict[tuple[str, str], list[str]] = {}
    alarms = 0
    for stack in assembly.stacks:
        resolve = Resolver(stack, env)
        for logical_id, alarm in stack.of_type("AWS::CloudWatch::Alarm"):
            alarms += 1
            props = alarm.get("Properties", {})
            for action in [
                *props.get("AlarmActions", []),
                *props.get("OKActions", []),
                *props.get("InsufficientDataActions", []),
            ]:
                topic_id = _referenced_id(action, stack)
                if topic_id and stack.resources.get(topic_id, {}).get("Type") == "AWS::SNS::Topic":
                    found: tuple[Stack, str] | None = (stack, topic_id)
                else:
                    arn = resolve(action)
                    if arn is None or ":sns:" not in arn:
                        if arn is None:
                            violations.append(
                                Violation(
                                    "alarm-topic",
                                    stack.name,
                                    logical_id,
                                    f"alarm action {json.dumps(action)} is not resolvable",
                                )
                            )
                        continue
                    found = by_name.get(arn.rsplit(":", 1)[-1])
                    if found is None:
                        if not partial:
                            violations.append(
                                Violation(
                                    "alarm-topic",
                                    stack.name,
                                    logical_id,
                                    f"alarm action {arn} names a topic no template of the assembly creates "
                                    f"(an assembly of some stacks only, cdk synth -c only=...: pass --partial)",
                                )
                            )
                        continue
                topic_stack, topic = found
                senders.setdefault((topic_stack.name, topic), []).append(f"{stack.name}/{logical_id}")
    for (stack_name, topic_id), alarm_ids in sorted(senders.items()):
        problem = topic_publish_problem(_stack(assembly, stack_name), topic_id, env)
        if problem:
            stacks = len({a.split("/")[0] for a in alarm_ids})
            violations.append(
                Violation(
                    "alarm-topic",
                    stack_name,
                    topic_id,
                    f"CloudWatch cannot publish to this topic: {problem}; {len(alarm_ids)} alarms in {stacks} stacks "
                    f"send to it",
                )
            )
    if notes is not None:
        notes.append(f"Alarms: {alarms} alarms send to {len(senders)} topics; CloudWatch may publish to each")
    return violations


# --- 8. Log groups keep their logs for a while ------------------------------------------------------------------

#: SageMaker's log groups, by the API that makes a job or endpoint write to them
#: (https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html). A trailing "/" is a family.
SAGEMAKER_LOG_GROUPS = {
    "sagemaker:CreateEndpoint": "/aws/sagemaker/Endpoints/",
    "sagemaker:CreateTrainingJob": "/aws/sagemaker/TrainingJobs",
    "sagemaker:CreateProcessingJob": "/aws/sagemaker/ProcessingJobs",
    "sagemaker:CreateTransformJob": "/aws/sagemaker/TransformJobs",
}
#: https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
APIGW_EXECUTION_LOG_GROUP = "API-Gateway-Execution-Logs_{api_id}/{stage}"


def _retention_setters(assembly: Assembly, env: Env) -> tuple[list[str], list[str]]:
    """(log group names declared with a retention, log-group ARN patterns some role may put a retention on)."""
    declared, grants = [], []
    for stack in assembly.stacks:
        resolve = Resolver(stack, env)
        for resource in stack.resources.values():
            props = resource.get("Properties", {})
            if "LogGroupName" in props and "RetentionInDays" in props:
                name = resolve(props["LogGroupName"])
                if name:
                    declared.append(name)
            if resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"):
                documents = [props.get("PolicyDocument")] + [p.get("PolicyDocument") for p in props.get("Policies", [])]
                for statement in (s for d in documents for s in _statements(d)):
                    actions = [a.lower() for a in _as_list(statement.get("Action", [])) if isinstance(a, str)]
                    if statement.get("Effect") != "Allow" or not any(
                        fnmatch.fnmatch("logs:putretentionpolicy", a) for a in actions
                    ):
                        continue
                    for arn in _as_list(statement.get("Resource", [])):
                        rendered = resolve(arn)
                        if rendered == "*":
                            grants.append("*")
                        elif rendered and ":log-group:" in rendered:
                            grants.append(rendered.split(":log-group:", 1)[1].removesuffix(":*"))
    return declared, grants


def _retained(group: str, declared: list[str], grants: list[str]) -> bool:
    if group.endswith("/"):
        example = group + "example"
        return any(name.startswith(group) for name in declared) or any(fnmatch.fnmatch(example, g) for g in grants)
    return group in declared or any(fnmatch.fnmatch(group, g) for g in grants)


def check_log_retention(assembly: Assembly, env: Env = ENV, notes: list[str] | None = None) -> list[Violation]:
    violations = []
    log_groups = 0
    for stack in assembly.stacks:
        for logical_id, group in stack.of_type("AWS::Logs::LogGroup"):
            log_groups += 1
            if "RetentionInDays" not in group.get("Properties", {}):
                violations.append(
                    Violation(
                        "log-retention",
                        stack.name,
                        logical_id,
                        "AWS::Logs::LogGroup has no RetentionInDays (its logs are kept forever)",
                    )
                )
    declared, grants = _retention_setters(assembly, env)
    implied: list[tuple[str, str, str]] = []  # (stack, logical id, log group) that AWS creates on the app's behalf
    for stack in assembly.stacks:
        resolve = Resolver(stack, env)
        for logical_id, stage in stack.of_type("AWS::ApiGateway::Stage"):
            props = stage.get("Properties", {})
            logging = any(
                str(s.get("LoggingLevel", "OFF")).upper() in ("ERROR", "INFO") or s.get("DataTraceEnabled") is True
                for s in props.get("MethodSettings", [])
            )
            if logging:
                group = APIGW_EXECUTION_LOG_GROUP.format(
                    api_id=resolve(props.get("RestApiId")) or env.api_id, stage=resolve(props.get("StageName")) or "?"
                )
                implied.append((stack.name, logical_id, group))
        for logical_id, resource in stack.of_type("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role"):
            props = resource.get("Properties", {})
            documents = [props.get("PolicyDocument")] + [p.get("PolicyDocument") for p in props.get("Policies", [])]
            granted = {
                a.lower()
                for d in documents
                for s in _statements(d)
                if s.get("Effect") == "Allow"
                for a in _as_list(s.get("Action", []))
                if isinstance(a, str) and a.lower().startswith("sagemaker:")
            }
            for action, group in SAGEMAKER_LOG_GROUPS.items():
                uses = any(fnmatch.fnmatch(action.lower(), pattern) for pattern in granted)
                if uses and all(group != g for _, _, g in implied):
                    implied.append((stack.name, logical_id, group))
    for stack_name, logical_id, group in implied:
        if not _retained(group, declared, grants):
            shown = group + "*" if group.endswith("/") else group
            violations.append(
                Violation(
                    "log-retention",
                    stack_name,
                    logical_id,
                    f"AWS creates log group {shown} for it with no retention (kept forever), and no template declares "
                    f"it with RetentionInDays or grants logs:PutRetentionPolicy on it",
                )
            )
    if notes is not None:
        notes.append(
            f"Logs: {log_groups} declared log groups, all with a retention; "
            f"{len(implied)} groups AWS creates, each declared or given a retention"
        )
    return violations


# --- All of them --------------------------------------------------------------------------------------------

CHECKS = (
    check_lambda_policies,
    check_names,
    check_stack_quotas,
    check_payloads,
    check_queue_visibility,
    check_removal_policies,
    check_alarm_topics,
    check_log_retention,
)


def check_all(
    outdir: Path | str | Assembly,
    *,
    prefix: str | None = None,
    env: Env = ENV,
    notes: list[str] | None = None,
    edge_limits: ModuleType | Any = None,
    partial: bool = False,
) -> list[Violation]:
    """Every check over the assembly.

    ``partial``: the assembly has some of the app's stacks only (``-c only=``), so an alarm's topic may be elsewhere.
    """
    assembly = outdir if isinstance(outdir, Assembly) else load(outdir, prefix)
    violations: list[Violation] = []
    for check in CHECKS:
        if check is check_payloads:
            violations += check_payloads(assembly, env, notes, edge_limits=edge_limits)
        elif check is check_alarm_topics:
            violations += check_alarm_topics(assembly, env, notes, partial=partial)
        else:
            violations += check(assembly, env, notes)
    return violations


# --- Helpers ------------------------------------------------------------------------------------------------


def _stack(assembly: Assembly, name: str) -> Stack:
    return next(stack for stack in assembly.stacks if stack.name == name)


def _referenced_id(value: Any, stack: Stack) -> str | None:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` names, if it is a resource of the stack."""
    if isinstance(value, dict) and len(value) == 1:
        [(function, argument)] = value.items()
        if function == "Ref" and argument in stack.resources:
            return argument
        if function == "Fn::GetAtt":
            logical_id = argument[0] if isinstance(argument, list) else str(argument).split(".", 1)[0]
            return logical_id if logical_id in stack.resources else None
    return None


def _get_att_ids(value: Any, stack: Stack, resource_type: str) -> Iterable[str]:
    """Every resource of a type that a value refers to, however deep."""
    if isinstance(value, dict):
        referenced = _referenced_id(value, stack)
        if referenced and stack.resources[referenced].get("Type") == resource_type:
            yield referenced
            return
        for item in value.values():
            yield from _get_att_ids(item, stack, resource_type)
    elif isinstance(value, list):
        for item in value:
            yield from _get_att_ids(item, stack, resource_type)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.aws.limits", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="the cloud assembly (cdk.out) to check")
    parser.add_argument("--prefix", help="the app's name prefix (default: the stacks' project tag)")
    parser.add_argument(
        "--partial",
        action="store_true",
        help="the assembly is some stacks only (-c only=...): an alarm topic may be elsewhere",
    )
    args = parser.parse_args(argv)
    if not (args.outdir / "manifest.json").is_file():
        print(f"{args.outdir}: no manifest.json (run cdk synth first)", file=sys.stderr)
        return 2
    notes: list[str] = []
    violations = check_all(args.outdir, prefix=args.prefix, notes=notes, partial=args.partial)
    if violations:
        for violation in violations:
            print(violation)
        print(f"{len(violations)} AWS deploy-time limit violation(s) in {args.outdir}", file=sys.stderr)
        return 1
    print(f"AWS deploy-time limits: all pass in {args.outdir}")
    for note in notes:
        print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
