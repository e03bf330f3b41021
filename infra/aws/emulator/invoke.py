"""Run a deployed Lambda function once, as Lambda would, against the emulator.

The emulator has no Lambda runtime (see ``gaps``). This runs the function's
handler in a subprocess with what was deployed, read back from the emulator:

- **code**: the object the stack's template points the function at (the
  assets bucket, ``Code.S3Bucket``/``S3Key``), fetched from the emulator's S3,
  checked against the function's ``CodeSha256`` and unpacked; it is the
  working directory and first on the path, as ``/var/task`` is;
- **environment**: the function's deployed variables, Lambda's own
  (``AWS_LAMBDA_FUNCTION_NAME``, ``_HANDLER``, ...), ``AWS_ENDPOINT_URL`` =
  the emulator, dummy credentials, the region; nothing of this process's;
- **third-party packages**: from the local virtual environment's
  site-packages. The deployed layer holds Linux arm64 wheels for
  python3.12, which cannot be imported here: that is a gap (listed in
  ``gaps.GAPS``). The interpreter runs with ``-S`` so the venv's editable
  installs of the project's own packages (``.pth`` finders) are not on the
  path: only the deployed code is;
- **tracing**: X-Ray off (``POWERTOOLS_TRACE_DISABLED``; no daemon).

Events are built as the AWS services would deliver them: an SQS event from a
message received from the function's mapped queue (``deliver``), and a REST
API proxy event for a resource and method of the deployed REST API, after
API Gateway's own API key check (``ApiFront``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.config import Config

#: Added to the function's timeout for the subprocess: a cold start imports everything.
START_ALLOWANCE_S = 60

#: Runs in the subprocess: ``python -S -c RUNNER <handler> <event file> <result file> <timeout s>``.
RUNNER = r"""
import importlib, json, sys, time, traceback, uuid, os
handler_spec, event_path, result_path, timeout_s = sys.argv[1:5]
deadline = time.monotonic() + float(timeout_s)

class LambdaContext:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
    invoked_function_arn = os.environ["SDMW_EMULATOR_FUNCTION_ARN"]
    memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
    aws_request_id = str(uuid.uuid4())
    log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
    log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
    identity = None
    client_context = None

    def get_remaining_time_in_millis(self):
        return max(0, int((deadline - time.monotonic()) * 1000))

try:
    module_name, _, attribute = handler_spec.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    with open(event_path) as event_file:
        event = json.load(event_file)
    outcome = {"result": handler(event, LambdaContext())}
except BaseException as exc:
    outcome = {"error": {"errorType": type(exc).__name__, "errorMessage": str(exc),
                         "stackTrace": traceback.format_exc()}}
with open(result_path, "w") as result_file:
    json.dump(outcome, result_file, default=str)
"""


class InvocationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Invocation:
    function: str
    #: The handler's answer (None when it raised).
    result: Any
    #: ``{"errorType", "errorMessage", "stackTrace"}`` when the handler raised.
    error: dict[str, str] | None
    #: What the function wrote (its logs).
    output: str
    duration_s: float

    def raise_for_error(self) -> Invocation:
        if self.error is not None:
            raise InvocationError(
                f"{self.function} raised {self.error['errorType']}: {self.error['errorMessage']}\n"
                f"{self.error['stackTrace']}\n--- its output ---\n{self.output[-6000:]}"
            )
        return self


@dataclass
class FunctionRunner:
    endpoint: str
    region: str = "us-east-1"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sdmw-lambda-")))

    def __post_init__(self) -> None:
        self.session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
        )
        self._clients: dict[str, Any] = {}
        self._code: dict[str, Path] = {}
        #: Every invocation made, in order.
        self.invocations: list[Invocation] = []

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.endpoint, config=Config(retries={"max_attempts": 2})
            )
        return self._clients[service]

    # ------------------------------------------------------------------ what was deployed

    def configuration(self, function: str) -> dict[str, Any]:
        return self.client("lambda").get_function_configuration(FunctionName=function)

    def code_object(self, function: str) -> tuple[str, str]:
        """The bucket and key the template that deployed the function points its code at."""
        cloudformation = self.client("cloudformation")
        for stack in cloudformation.describe_stacks()["Stacks"]:
            resources = cloudformation.describe_stack_resources(StackName=stack["StackName"])["StackResources"]
            for resource in resources:
                if resource.get("ResourceType") == "AWS::Lambda::Function" and resource.get(
                    "PhysicalResourceId"
                ) == function:
                    template = cloudformation.get_template(StackName=stack["StackName"])["TemplateBody"]
                    template = json.loads(template) if isinstance(template, str) else template
                    code = template["Resources"][resource["LogicalResourceId"]]["Properties"]["Code"]
                    return self._text(code["S3Bucket"]), self._text(code["S3Key"])
        raise InvocationError(f"no deployed stack has a function {function}")

    def _text(self, value: Any) -> str:
        """A template value naming an asset: a string, or a Fn::Sub over the pseudo parameters."""
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
            account = self.client("sts").get_caller_identity()["Account"]
            return (
                value["Fn::Sub"]
                .replace("${AWS::AccountId}", account)
                .replace("${AWS::Region}", self.region)
                .replace("${AWS::Partition}", "aws")
                .replace("${AWS::URLSuffix}", "amazonaws.com")
            )
        raise InvocationError(f"cannot read an asset location from {value!r}")

    def code(self, function: str) -> Path:
        """The function's deployed code, unpacked; checked to be the code Lambda holds."""
        deployed = self.configuration(function)["CodeSha256"]
        cached = self._code.get(f"{function}@{deployed}")
        if cached is not None:
            return cached
        bucket, key = self.code_object(function)
        archive = self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        digest = base64.b64encode(hashlib.sha256(archive).digest()).decode()
        if digest != deployed:
            raise InvocationError(
                f"s3://{bucket}/{key} (sha256 {digest}) is not the code {function} was deployed with ({deployed})"
            )
        target = self.workdir / "code" / hashlib.sha256(archive).hexdigest()[:16]
        if not target.exists():
            target.mkdir(parents=True)
            with zipfile.ZipFile(io.BytesIO(archive)) as unpacked:
                unpacked.extractall(target)
        self._code[f"{function}@{deployed}"] = target
        return target

    def environment(self, function: str) -> dict[str, str]:
        config = self.configuration(function)
        variables = (config.get("Environment") or {}).get("Variables") or {}
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        return {
            **variables,
            # What Lambda's runtime sets (LAMBDA_TASK_ROOT left out: it would turn X-Ray tracing on).
            "AWS_LAMBDA_FUNCTION_NAME": config["FunctionName"],
            "AWS_LAMBDA_FUNCTION_VERSION": config.get("Version", "$LATEST"),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config['FunctionName']}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.get('Runtime', 'python')}",
            "_HANDLER": config["Handler"],
            "TZ": "UTC",
            "LANG": "en_US.UTF-8",
            "SDMW_EMULATOR_FUNCTION_ARN": config["FunctionArn"],
            # The emulator, with dummy credentials; no profile or config file of this machine.
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "HOME": str(home),
            "PATH": "/usr/bin:/bin",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    # ------------------------------------------------------------------ invoke

    def invoke(self, function: str, event: Any) -> Invocation:
        config = self.configuration(function)
        code = self.code(function)
        site_packages = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
        env = {**self.environment(function), "PYTHONPATH": ":".join([str(code), *site_packages])}
        run = self.workdir / f"run-{uuid.uuid4().hex}"
        run.mkdir()
        (run / "event.json").write_text(json.dumps(event))
        timeout_s = float(config.get("Timeout", 3))
        started = time.monotonic()
        try:
            completed = subprocess.run(
                [sys.executable, "-S", "-c", RUNNER, config["Handler"], str(run / "event.json"),
                 str(run / "result.json"), str(timeout_s)],
                cwd=code,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s + START_ALLOWANCE_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise InvocationError(f"{function} ran past {timeout_s} s (+{START_ALLOWANCE_S} s to start)") from exc
        duration = time.monotonic() - started
        output = completed.stdout + completed.stderr
        if not (run / "result.json").exists():
            raise InvocationError(f"{function} exited with {completed.returncode} and no answer:\n{output[-6000:]}")
        outcome = json.loads((run / "result.json").read_text())
        invocation = Invocation(function, outcome.get("result"), outcome.get("error"), output, duration)
        self.invocations.append(invocation)
        return invocation

    # ------------------------------------------------------------------ SQS event source

    def mapping(self, function: str) -> dict[str, Any]:
        mappings = self.client("lambda").list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
        queues = [m for m in mappings if m["EventSourceArn"].startswith("arn:aws:sqs:")]
        if len(queues) != 1:
            raise InvocationError(f"{function} has {len(queues)} SQS event source mappings, not one")
        return queues[0]

    def deliver(
        self, function: str, matches: Callable[[dict[str, Any]], bool], timeout_s: float = 10
    ) -> tuple[Invocation, dict[str, Any]]:
        """Receive the message ``matches`` picks (its body, parsed) from the function's mapped queue and
        deliver it as Lambda's poller does: one SQS event, deleted from the queue when the function
        reports no failure for it. Answers the invocation and the record."""
        mapping = self.mapping(function)
        if mapping.get("State") not in ("Enabled", "Creating", "Updating"):
            raise InvocationError(f"{function}'s event source mapping is {mapping.get('State')}")
        queue_arn = mapping["EventSourceArn"]
        queue_url = self.client("sqs").get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        message = receive_matching(self.client("sqs"), queue_url, matches, timeout_s)
        record = sqs_record(message, queue_arn, self.region)
        invocation = self.invoke(function, {"Records": [record]}).raise_for_error()
        failures = (invocation.result or {}).get("batchItemFailures")
        reports_failures = "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
        if failures is None and reports_failures:
            raise InvocationError(f"{function} answered {invocation.result!r}, not a batch response")
        if not failures:
            self.client("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return invocation, record


def receive_matching(
    sqs: Any, queue_url: str, matches: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    """The first message whose JSON body ``matches``. The others received meanwhile stay hidden while the
    search goes on (so that it gets past them), then are made visible again at once."""
    deadline = time.monotonic() + timeout_s
    held: list[dict[str, Any]] = []
    chosen = None
    try:
        while chosen is None and time.monotonic() < deadline:
            messages = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=max(30, int(timeout_s) + 10),
                WaitTimeSeconds=1,
            ).get("Messages", [])
            for message in messages:
                if chosen is None and matches(json.loads(message["Body"])):
                    chosen = message
                else:
                    held.append(message)
    finally:
        for message in held:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    if chosen is None:
        raise InvocationError(f"no matching message reached {queue_url} in {timeout_s} s ({len(held)} others)")
    return chosen


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A received message as Lambda's SQS event source puts it in an event's ``Records``."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            key: attributes[key]
            for key in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
                "AWSTraceHeader",
                "SequenceNumber",
                "MessageGroupId",
                "MessageDeduplicationId",
            )
            if key in attributes
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


# ---------------------------------------------------------------------- API Gateway (REST API)


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: str
    #: The function API Gateway handed the request to; None when API Gateway answered itself.
    invocation: Invocation | None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ApiFront:
    """What API Gateway does with a request to a deployed REST API's stage, up to and after the
    integration: find the resource and method, check the API key as the method requires (the key must
    be enabled and in a usage plan of this stage), build the proxy event and invoke the function the
    method's AWS_PROXY integration names. The integration is run with ``FunctionRunner.invoke``."""

    runner: FunctionRunner
    rest_api_id: str
    stage: str

    def __post_init__(self) -> None:
        apigateway = self.runner.client("apigateway")
        self.resources = apigateway.get_resources(restApiId=self.rest_api_id, limit=500)["items"]
        apigateway.get_stage(restApiId=self.rest_api_id, stageName=self.stage)  # it must exist

    def route(self, method: str, path: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """The deployed resource and method serving ``path``, and the path parameters."""
        candidates = []
        for resource in self.resources:
            parameters = _match(resource["path"], path)
            if parameters is not None:
                candidates.append((sum(part.startswith("{") for part in resource["path"].split("/")),
                                   resource, parameters))
        if not candidates:
            raise InvocationError(f"the deployed REST API has no resource for {path}")
        _, resource, parameters = min(candidates, key=lambda c: c[0])  # literal parts win, as API Gateway routes
        methods = resource.get("resourceMethods") or {}
        if method not in methods and "ANY" not in methods:
            raise InvocationError(f"{resource['path']} has no {method} method (it has {sorted(methods)})")
        described = self.runner.client("apigateway").get_method(
            restApiId=self.rest_api_id, resourceId=resource["id"], httpMethod=method if method in methods else "ANY"
        )
        return resource, described, parameters

    def valid_key(self, value: str | None) -> dict[str, Any] | None:
        apigateway = self.runner.client("apigateway")
        if not value:
            return None
        for key in apigateway.get_api_keys(includeValues=True)["items"]:
            if key.get("value") != value or not key.get("enabled"):
                continue
            for plan in apigateway.get_usage_plans(keyId=key["id"])["items"]:
                if any(s["apiId"] == self.rest_api_id and s["stage"] == self.stage for s in plan.get("apiStages", [])):
                    return key
        return None

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        body: str | None = None,
    ) -> ApiResponse:
        headers = dict(headers or {})
        resource, described, parameters = self.route(method, path)
        key = None
        if described.get("apiKeyRequired"):
            supplied = next((v for k, v in headers.items() if k.lower() == "x-api-key"), None)
            key = self.valid_key(supplied)
            if key is None:
                return ApiResponse(403, {"content-type": "application/json"}, '{"message":"Forbidden"}', None)
        integration = described.get("methodIntegration") or {}
        if integration.get("type") != "AWS_PROXY":
            raise InvocationError(f"{method} {resource['path']} has a {integration.get('type')} integration")
        function = integration["uri"].split(":function:", 1)[1].split("/", 1)[0]
        event = self.proxy_event(method, path, resource, parameters, headers, query, body, key)
        invocation = self.runner.invoke(function, event).raise_for_error()
        answer = invocation.result or {}
        headers_out = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            headers_out[name.lower()] = ",".join(values)
        text = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            text = base64.b64decode(text).decode("utf-8", "replace")
        return ApiResponse(int(answer.get("statusCode", 502)), headers_out, text, invocation)

    def proxy_event(
        self,
        method: str,
        path: str,
        resource: dict[str, Any],
        parameters: dict[str, str],
        headers: dict[str, str],
        query: dict[str, str] | None,
        body: str | None,
        key: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The event API Gateway's Lambda proxy integration sends (REST API, payload format 1.0)."""
        now = datetime.now(UTC)
        account = self.runner.client("sts").get_caller_identity()["Account"]
        domain = f"{self.rest_api_id}.execute-api.{self.runner.region}.amazonaws.com"
        headers = {"Host": domain, "User-Agent": "sdmw-emulator", "X-Forwarded-Proto": "https", **headers}
        return {
            "resource": resource["path"],
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": dict(query) if query else None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
            "pathParameters": parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": resource["id"],
                "resourcePath": resource["path"],
                "httpMethod": method,
                "extendedRequestId": uuid.uuid4().hex[:16],
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": f"/{self.stage}{path}",
                "accountId": account,
                "protocol": "HTTP/1.1",
                "stage": self.stage,
                "domainPrefix": self.rest_api_id,
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "requestId": str(uuid.uuid4()),
                "identity": {
                    "sourceIp": "127.0.0.1",
                    "userAgent": headers.get("User-Agent"),
                    "apiKey": key["value"] if key else None,
                    "apiKeyId": key["id"] if key else None,
                },
                "domainName": domain,
                "apiId": self.rest_api_id,
            },
            "body": body,
            "isBase64Encoded": False,
        }


def _match(template: str, path: str) -> dict[str, str] | None:
    """Path parameters when the resource path ``template`` (``/webhooks/{webhook_id}``) serves ``path``."""
    wanted = [part for part in template.split("/") if part]
    actual = [part for part in path.split("/") if part]
    parameters: dict[str, str] = {}
    for index, part in enumerate(wanted):
        if part.startswith("{") and part.endswith("+}"):
            parameters[part[1:-2]] = "/".join(actual[index:])
            return parameters if len(actual) > index else None
        if index >= len(actual):
            return None
        if part.startswith("{") and part.endswith("}"):
            parameters[part[1:-1]] = unquote(actual[index])
        elif part != actual[index]:
            return None
    return parameters if len(wanted) == len(actual) else None
