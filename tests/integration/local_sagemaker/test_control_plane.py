"""The local SageMaker through an unmodified boto3 ``sagemaker`` client.

moto (in server mode, in-process) stands in for EventBridge and SQS; a rule on
the default bus copies every ``aws.sagemaker`` event into a queue the tests read.
Instances are real ``python -m sd_runtime serve`` processes.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.local.sagemaker.common import Settings
from infra.local.sagemaker.server import create_app
from infra.local.sagemaker.state import LocalSageMaker
from tests.integration.local_sagemaker.servers import ThreadedServer, emulated_aws

REPO_ROOT = Path(__file__).resolve().parents[3]
SD_RUNTIME_SRC = REPO_ROOT / "services" / "sd-runtime"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
SERVE = f"{shlex.quote(sys.executable)} -m sd_runtime serve"


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    with emulated_aws(REGION) as (_, patch):
        # Instances inherit the environment: sd_runtime importable, kept off the network.
        patch.setenv("PYTHONPATH", str(SD_RUNTIME_SRC), prepend=":")
        patch.setenv("SD_RUNTIME_HOST", "127.0.0.1")
        yield


class StateChanges:
    """Every "SageMaker Endpoint State Change" event the default bus delivered to a queue."""

    def __init__(self) -> None:
        sqs = boto3.client("sqs")
        self._sqs = sqs
        self._queue_url = sqs.create_queue(QueueName="sagemaker-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])
        events = boto3.client("events")
        events.put_rule(Name="sagemaker-events", EventPattern=json.dumps({"source": ["aws.sagemaker"]}))
        events.put_targets(
            Rule="sagemaker-events", Targets=[{"Id": "queue", "Arn": queue_arn["Attributes"]["QueueArn"]}]
        )
        self.received: list[dict] = []

    def _drain(self) -> None:
        messages = self._sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for message in messages:
            self.received.append(json.loads(message["Body"]))
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

    def of(self, endpoint_name: str) -> list[dict]:
        return [e for e in self.received if e["detail"]["EndpointName"] == endpoint_name]

    def wait_for(self, endpoint_name: str, status: str, timeout_s: float = 10) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.of(endpoint_name):
                if event["detail"]["EndpointStatus"] == status:
                    return event
            self._drain()
        raise AssertionError(f"no {status} event for {endpoint_name}; got {self.of(endpoint_name)}")


@pytest.fixture(scope="module")
def state_changes(aws_env: None) -> StateChanges:
    return StateChanges()


class LocalSageMakerServer:
    """The local SageMaker served by uvicorn in a thread, with settings of the test's choosing."""

    def __init__(self, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self._workdir = workdir
        self._monkeypatch = monkeypatch
        self._server: ThreadedServer | None = None

    def start(
        self, runtime_command: str = SERVE, max_instances: int = 8, startup_timeout_s: float = 30
    ) -> LocalSageMaker:
        settings = Settings(
            account="123456789012",
            region=REGION,
            runtime_command=tuple(shlex.split(runtime_command)),
            workdir=self._workdir,
            startup_timeout_s=startup_timeout_s,
            max_instances=max_instances,
        )
        app = create_app(settings)
        self._server = ThreadedServer(app)
        self._monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", self._server.url)
        return app.state.sagemaker

    def stop(self) -> None:
        """Stop the server as uvicorn does on SIGTERM; its shutdown stops every instance."""
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture
def server(aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSageMakerServer]:
    local = LocalSageMakerServer(tmp_path / "sagemaker", monkeypatch)
    yield local
    local.stop()


def _sagemaker():
    return boto3.client("sagemaker")


def _create_model(sm, name: str, environment: dict[str, str] | None = None) -> None:
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "sd-runtime:local", "Environment": environment or {"MODEL_NAME": name}},
    )


def _create_async_config(sm, name: str, model: str, count: int, instance_type: str = "ml.g5.xlarge") -> None:
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InstanceType": instance_type,
                "InitialInstanceCount": count,
                "InitialVariantWeight": 1.0,
            }
        ],
        AsyncInferenceConfig={
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1},
            "OutputConfig": {
                "S3OutputPath": "s3://bucket/async/out/",
                "S3FailurePath": "s3://bucket/async/failed/",
                "NotificationConfig": {
                    "SuccessTopic": "arn:aws:sns:us-east-1:123456789012:async-success",
                    "ErrorTopic": "arn:aws:sns:us-east-1:123456789012:async-error",
                },
            },
        },
    )


def _wait_for_status(sm, name: str, wanted: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        described = sm.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] == wanted or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def _wait_until_gone(sm, name: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            sm.describe_endpoint(EndpointName=name)
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ValidationException"
            return
        time.sleep(0.2)
    raise AssertionError(f"endpoint {name} still exists")


def test_async_endpoint_goes_in_service_and_is_deleted(
    server: LocalSageMakerServer, state_changes: StateChanges
) -> None:
    local = server.start()
    sm = _sagemaker()
    _create_model(sm, "sd-model")
    _create_async_config(sm, "sd-config", "sd-model", count=2)

    config = sm.describe_endpoint_config(EndpointConfigName="sd-config")
    assert config["AsyncInferenceConfig"]["OutputConfig"]["NotificationConfig"]["ErrorTopic"].endswith(":async-error")
    assert config["AsyncInferenceConfig"]["ClientConfig"]["MaxConcurrentInvocationsPerInstance"] == 1

    arn = sm.create_endpoint(
        EndpointName="sd-Endpoint", EndpointConfigName="sd-config", Tags=[{"Key": "team", "Value": "sd"}]
    )["EndpointArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/sd-endpoint"
    assert sm.describe_endpoint(EndpointName="sd-Endpoint")["EndpointStatus"] == "Creating"

    described = _wait_for_status(sm, "sd-Endpoint", "InService", timeout_s=30)
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    variant = described["ProductionVariants"][0]
    assert (variant["VariantName"], variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (
        "AllTraffic",
        2,
        2,
    )
    assert described["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == "s3://bucket/async/out/"
    assert [e["EndpointName"] for e in sm.list_endpoints(StatusEquals="InService")["Endpoints"]] == ["sd-Endpoint"]

    creating = state_changes.wait_for("sd-Endpoint", "CREATING")
    in_service = state_changes.wait_for("sd-Endpoint", "IN_SERVICE")
    assert creating["source"] == "aws.sagemaker"
    assert creating["detail-type"] == "SageMaker Endpoint State Change"
    assert in_service["resources"] == [arn]
    detail = in_service["detail"]
    assert detail["EndpointArn"] == arn
    assert detail["EndpointConfigName"] == "sd-config"
    assert detail["ProductionVariants"] == [
        {"VariantName": "AllTraffic", "DesiredWeight": 1.0, "DesiredInstanceCount": 2.0}
    ]
    assert detail["Tags"] == {"team": "sd"}
    assert detail["CreationTime"] == creating["detail"]["CreationTime"]
    assert detail["LastModifiedTime"] >= detail["CreationTime"] > 1e12  # epoch millis
    assert "FailureReason" not in detail

    processes = [instance.process for instance in local.endpoint("sd-Endpoint").instances]
    sm.delete_endpoint(EndpointName="sd-Endpoint")
    _wait_until_gone(sm, "sd-Endpoint")
    state_changes.wait_for("sd-Endpoint", "DELETING")
    assert all(process.poll() is not None for process in processes)
    # SageMaker lets a config and a model go while endpoints were built from them.
    sm.delete_endpoint_config(EndpointConfigName="sd-config")
    sm.delete_model(ModelName="sd-model")


def test_instance_that_exits_fails_the_endpoint(
    server: LocalSageMakerServer, state_changes: StateChanges, tmp_path: Path
) -> None:
    server.start(runtime_command=shlex.join([sys.executable, "-c", "print('cannot load the model'); exit(3)"]))
    sm = _sagemaker()
    _create_model(sm, "crashing-model")
    _create_async_config(sm, "crashing-config", "crashing-model", count=1)
    sm.create_endpoint(EndpointName="crashing", EndpointConfigName="crashing-config")

    described = _wait_for_status(sm, "crashing", "Failed", timeout_s=15)
    assert described["EndpointStatus"] == "Failed"
    assert described["FailureReason"] == (
        "The primary container for instance 1 of production variant AllTraffic exited with code 3 "
        "before it answered /ping. Last lines of its log:\ncannot load the model"
    )
    assert str(tmp_path) not in described["FailureReason"]
    failed = state_changes.wait_for("crashing", "FAILED")
    assert "exited with code 3" in failed["detail"]["FailureReason"]

    sm.delete_endpoint(EndpointName="crashing")  # the only thing SageMaker allows on a failed endpoint
    _wait_until_gone(sm, "crashing")


def test_instance_dying_in_service_is_replaced_and_the_endpoint_stays_in_service(
    server: LocalSageMakerServer, state_changes: StateChanges
) -> None:
    local = server.start()
    sm = _sagemaker()
    _create_model(sm, "dying-model")
    _create_async_config(sm, "dying-config", "dying-model", count=2)
    sm.create_endpoint(EndpointName="dying", EndpointConfigName="dying-config")
    assert _wait_for_status(sm, "dying", "InService", timeout_s=30)["EndpointStatus"] == "InService"
    first, second = local.endpoint("dying").instances

    first.process.kill()  # from outside, as a crash would
    deadline = time.monotonic() + 30
    while _serving_instances(sm, "dying") < 2 or any(i is first for i in local.endpoint("dying").instances):
        assert time.monotonic() < deadline, "the dead instance was not replaced"
        time.sleep(0.2)

    instances = local.endpoint("dying").instances
    assert len(instances) == 2 and second in instances and all(i.healthy for i in instances)
    assert sm.describe_endpoint(EndpointName="dying")["EndpointStatus"] == "InService"
    sm.delete_endpoint(EndpointName="dying")
    state_changes.wait_for("dying", "DELETING")
    statuses = [e["detail"]["EndpointStatus"] for e in state_changes.of("dying")]
    assert statuses == ["CREATING", "IN_SERVICE", "DELETING"]  # never Failed on the way


def _serving_instances(sm, name: str) -> int:
    return sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"]


def test_instance_gets_the_model_environment_and_its_port(server: LocalSageMakerServer, tmp_path: Path) -> None:
    show_env_then_serve = (
        "import os, runpy, sys; "
        "print('MODEL', os.environ['MODEL_NAME'], 'PORT', os.environ['SAGEMAKER_BIND_TO_PORT'], flush=True); "
        "sys.argv = ['sd_runtime', 'serve']; runpy.run_module('sd_runtime', run_name='__main__')"
    )
    local = server.start(runtime_command=shlex.join([sys.executable, "-c", show_env_then_serve]))
    sm = _sagemaker()
    _create_model(sm, "env-model", environment={"MODEL_NAME": "sd-v1-5"})
    _create_async_config(sm, "env-config", "env-model", count=1)
    sm.create_endpoint(EndpointName="env", EndpointConfigName="env-config")
    assert _wait_for_status(sm, "env", "InService", timeout_s=30)["EndpointStatus"] == "InService"

    instance = local.endpoint("env").instances[0]
    assert instance.log_path.is_relative_to(tmp_path)
    assert f"MODEL sd-v1-5 PORT {instance.port}" in instance.log_path.read_text()


def test_instance_that_never_answers_ping_fails_the_endpoint(server: LocalSageMakerServer, tmp_path: Path) -> None:
    local = server.start(
        runtime_command=shlex.join([sys.executable, "-c", "import time; time.sleep(60)"]), startup_timeout_s=1
    )
    sm = _sagemaker()
    _create_model(sm, "silent-model")
    _create_async_config(sm, "silent-config", "silent-model", count=1)
    sm.create_endpoint(EndpointName="silent", EndpointConfigName="silent-config")

    described = _wait_for_status(sm, "silent", "Failed", timeout_s=10)
    assert described["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in described["FailureReason"]
    assert str(tmp_path) not in described["FailureReason"] and ".log" not in described["FailureReason"]
    process = local.endpoint("silent").instances[0].process
    assert process.wait(timeout=10) is not None  # a failed endpoint holds no instances


def test_server_shutdown_stops_every_instance(server: LocalSageMakerServer) -> None:
    local = server.start()
    sm = _sagemaker()
    _create_model(sm, "shutdown-model")
    _create_async_config(sm, "shutdown-config", "shutdown-model", count=2)
    sm.create_endpoint(EndpointName="shutdown", EndpointConfigName="shutdown-config")
    assert _wait_for_status(sm, "shutdown", "InService", timeout_s=30)["EndpointStatus"] == "InService"
    processes = [instance.process for instance in local.endpoint("shutdown").instances]

    server.stop()
    assert all(process.poll() is not None for process in processes)


def test_quota_exceeded_is_resource_limit_exceeded(server: LocalSageMakerServer) -> None:
    server.start(max_instances=2)
    sm = _sagemaker()
    _create_model(sm, "quota-model")
    _create_async_config(sm, "quota-config", "quota-model", count=3)

    with pytest.raises(ClientError) as raised:
        sm.create_endpoint(EndpointName="too-big", EndpointConfigName="quota-config")
    assert raised.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    with pytest.raises(ClientError):
        sm.describe_endpoint(EndpointName="too-big")


def test_duplicate_model_is_validation_exception(server: LocalSageMakerServer) -> None:
    server.start()
    sm = _sagemaker()
    _create_model(sm, "twice")
    with pytest.raises(ClientError) as raised:
        _create_model(sm, "twice")
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith("Cannot create already existing model")


def test_unknown_names_are_validation_exceptions(server: LocalSageMakerServer) -> None:
    server.start()
    sm = _sagemaker()
    with pytest.raises(ClientError) as raised:
        sm.describe_endpoint(EndpointName="missing")
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"] == 'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/missing".'
    with pytest.raises(ClientError) as raised:
        sm.create_endpoint(EndpointName="orphan", EndpointConfigName="missing")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as raised:
        _create_async_config(sm, "no-model", "missing", count=1)
    assert "Could not find model" in raised.value.response["Error"]["Message"]


def test_unsupported_instance_type_is_validation_exception(server: LocalSageMakerServer) -> None:
    server.start()
    sm = _sagemaker()
    _create_model(sm, "typed-model")
    with pytest.raises(ClientError) as raised:
        _create_async_config(sm, "typed-config", "typed-model", count=1, instance_type="ml.warp.huge")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "ml.warp.huge" in raised.value.response["Error"]["Message"]


def test_lists_page_through_models(server: LocalSageMakerServer) -> None:
    server.start()
    sm = _sagemaker()
    for index in range(3):
        _create_model(sm, f"listed-{index}")
    pages = sm.get_paginator("list_models").paginate(
        SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 2}
    )
    names = [model["ModelName"] for page in pages for model in page["Models"]]
    assert names == ["listed-0", "listed-1", "listed-2"]
