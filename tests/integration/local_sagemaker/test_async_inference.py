"""InvokeEndpointAsync on the local SageMaker through an unmodified boto3 ``sagemaker-runtime`` client.

moto (in server mode, in-process) stands in for S3, SNS and SQS: each
notification topic is subscribed by a queue (SNS envelopes, not raw delivery)
that the tests read. Instances run ``fake_runtime.py``, written below.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError

from infra.local.sagemaker.async_inference import AsyncInference, AsyncRequest
from infra.local.sagemaker.common import Settings
from infra.local.sagemaker.runtime_plane import INTEGER_MEMBERS, STRING_MEMBERS
from infra.local.sagemaker.server import create_app
from infra.local.sagemaker.state import LocalSageMaker
from tests.integration.local_sagemaker.servers import ThreadedServer, emulated_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
BUCKET = "async-bucket"
OUTPUT_PATH = f"s3://{BUCKET}/async/out"
FAILURE_PATH = f"s3://{BUCKET}/async/failed"
ISO_MILLIS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# A test double of sd-runtime: the SageMaker container contract (GET /ping, POST
# /invocations) and nothing else. /invocations echoes what it was sent; a JSON body
# asks it to sleep first ("sleep_s") or to answer 500 with a message ("fail").
# Every invocation appends start and end markers to ECHO_RUNTIME_MARKERS.
FAKE_RUNTIME = '''\
"""EchoRuntime: a test double of sd-runtime's serving side."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKERS = os.environ.get("ECHO_RUNTIME_MARKERS")
MARKERS_LOCK = threading.Lock()


def mark(event, request_id):
    if MARKERS:
        with MARKERS_LOCK, open(MARKERS, "a") as markers:
            markers.write(json.dumps({"event": event, "id": request_id, "t": time.time()}) + "\\n")


class EchoRuntime(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer(200 if self.path == "/ping" else 404, b"", "text/plain")

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        mark("start", request.get("id"))
        time.sleep(request.get("sleep_s", 0))
        mark("end", request.get("id"))
        if "fail" in request:
            self.answer(500, json.dumps({"error": request["fail"]}).encode(), "application/json")
            return
        echo = {
            "request": request,
            "content_type": self.headers.get("Content-Type"),
            "accept": self.headers.get("Accept"),
            "custom_attributes": self.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
        }
        self.answer(200, json.dumps(echo).encode(), "application/json")

    def answer(self, status, body, content_type):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller gave up (an invocation timeout)


if os.path.exists(os.environ.get("ECHO_RUNTIME_REFUSE_IF", "/nonexistent")):
    print("refusing to start", flush=True)
    raise SystemExit(7)
time.sleep(float(os.environ.get("ECHO_RUNTIME_START_DELAY_S", "0")))
port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
ThreadingHTTPServer(("127.0.0.1", port), EchoRuntime).serve_forever()
'''


class Notifications:
    """What SageMaker published to one topic, read from the queue subscribed to it."""

    def __init__(self, sqs: Any, sns: Any, name: str) -> None:
        self._sqs = sqs
        self.topic_arn = sns.create_topic(Name=name)["TopicArn"]
        self._queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn["QueueArn"])
        self.received: dict[str, dict] = {}

    def drain(self, wait_s: int = 1) -> None:
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
        ).get("Messages", [])
        for message in messages:
            envelope = json.loads(message["Body"])
            assert envelope["Type"] == "Notification" and envelope["TopicArn"] == self.topic_arn
            notification = json.loads(envelope["Message"])
            self.received[notification["inferenceId"]] = notification
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

    def wait_for(self, inference_id: str, timeout_s: float = 15) -> dict:
        deadline = time.monotonic() + timeout_s
        while inference_id not in self.received:
            assert time.monotonic() < deadline, f"no notification for {inference_id} on {self.topic_arn}"
            self.drain()
        return self.received[inference_id]


@dataclass
class Stack:
    s3: Any
    success: Notifications
    errors: Notifications
    fake_runtime: Path
    workdir: Path

    def put_input(self, payload: dict) -> str:
        key = f"async/in/{uuid.uuid4()}.json"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(payload).encode())
        return f"s3://{BUCKET}/{key}"

    def read(self, location: str) -> bytes:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("async-inference")
    fake_runtime = workdir / "fake_runtime.py"
    fake_runtime.write_text(FAKE_RUNTIME)
    with emulated_aws(REGION):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        sqs, sns = boto3.client("sqs"), boto3.client("sns")
        yield Stack(
            s3=s3,
            success=Notifications(sqs, sns, "async-success"),
            errors=Notifications(sqs, sns, "async-error"),
            fake_runtime=fake_runtime,
            workdir=workdir,
        )


class LocalSageMakerServer:
    """The local SageMaker served by uvicorn in a thread; both boto3 clients point at it."""

    def __init__(self, stack: Stack, patch: pytest.MonkeyPatch, state_dir: Path | None = None) -> None:
        settings = Settings(
            account=ACCOUNT,
            region=REGION,
            runtime_command=(sys.executable, str(stack.fake_runtime)),
            workdir=stack.workdir / f"sagemaker-{uuid.uuid4().hex[:8]}",
            startup_timeout_s=20,
            state_dir=state_dir,
        )
        app = create_app(settings)
        self.state: LocalSageMaker = app.state.sagemaker
        self.plane: AsyncInference = app.state.async_inference
        self._server = ThreadedServer(app)
        patch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", self._server.url)
        patch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", self._server.url)

    def stop(self) -> None:
        """Stop as uvicorn does on SIGTERM: queued requests fail (or are kept, with a state dir), every
        instance stops."""
        self._server.stop(timeout_s=60)

    def all_processes_stopped(self) -> bool:
        return all(i.process.poll() is not None for e in self.state.endpoints() for i in e.instances)


@pytest.fixture(scope="module")
def server(stack: Stack) -> Iterator[LocalSageMakerServer]:
    with pytest.MonkeyPatch.context() as patch:
        local = LocalSageMakerServer(stack, patch)
        yield local
        local.stop()


def _runtime() -> Any:
    return boto3.client("sagemaker-runtime")


def _deploy(
    stack: Stack,
    name: str,
    *,
    concurrency: int | None = 1,
    environment: dict[str, str] | None = None,
    wait: bool = True,
) -> Path:
    """An async endpoint of one instance; returns the file its instance writes markers to."""
    sm = boto3.client("sagemaker")
    markers = stack.workdir / f"{name}-markers.jsonl"
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": "sd-runtime:local",
            "Environment": {"ECHO_RUNTIME_MARKERS": str(markers), **(environment or {})},
        },
    )
    async_config: dict[str, Any] = {
        "OutputConfig": {
            "S3OutputPath": OUTPUT_PATH + "/",
            "S3FailurePath": FAILURE_PATH + "/",
            "NotificationConfig": {"SuccessTopic": stack.success.topic_arn, "ErrorTopic": stack.errors.topic_arn},
        }
    }
    if concurrency is not None:
        async_config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": concurrency}
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 1}
        ],
        AsyncInferenceConfig=async_config,
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    return markers


def _delete(name: str) -> None:
    boto3.client("sagemaker").delete_endpoint(EndpointName=name)


def _markers(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _invoke(name: str, input_location: str, **extra: Any) -> dict:
    return _runtime().invoke_endpoint_async(EndpointName=name, InputLocation=input_location, **extra)


def _wait_for_first_marker(markers: Path, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not (markers.exists() and markers.read_text()):
        assert time.monotonic() < deadline, "the first request never reached the container"
        time.sleep(0.05)


def assert_no_local_path(reason: str, stack: Stack) -> None:
    """What users read tells why in words, never where this machine keeps its files."""
    assert str(stack.workdir) not in reason and ".log" not in reason and sys.executable not in reason, reason


def test_success_writes_the_output_then_notifies(stack: Stack, server: LocalSageMakerServer) -> None:
    _deploy(stack, "echo")
    input_location = stack.put_input({"prompt": "a cat"})

    response = _invoke(
        "echo",
        input_location,
        ContentType="application/json",
        Accept="application/json",
        CustomAttributes="trace=1",
        InferenceId="job-1",
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["InferenceId"] == "job-1"
    output = response["OutputLocation"]
    assert re.fullmatch(f"{OUTPUT_PATH}/({UUID})\\.out", output)
    output_name = output.rsplit("/", 1)[1].removesuffix(".out")
    assert response["FailureLocation"] == f"{FAILURE_PATH}/{output_name}-error.out"

    notification = stack.success.wait_for("job-1")
    assert notification == {
        "awsRegion": REGION,
        "eventTime": notification["eventTime"],
        "receivedTime": notification["receivedTime"],
        "invocationStatus": "Completed",
        "requestParameters": {
            "accept": "application/json",
            "contentType": "application/json",
            "endpointName": "echo",
            "inputLocation": input_location,
        },
        "responseParameters": {"contentType": "application/json", "outputLocation": output},
        "inferenceId": "job-1",
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    assert list(notification) == [
        "awsRegion",
        "eventTime",
        "receivedTime",
        "invocationStatus",
        "requestParameters",
        "responseParameters",
        "inferenceId",
        "eventVersion",
        "eventSource",
        "eventName",
    ]
    assert re.fullmatch(ISO_MILLIS, notification["eventTime"]) and re.fullmatch(
        ISO_MILLIS, notification["receivedTime"]
    )
    assert notification["receivedTime"] <= notification["eventTime"]
    assert json.loads(stack.read(output)) == {
        "request": {"prompt": "a cat"},
        "content_type": "application/json",
        "accept": "application/json",
        "custom_attributes": "trace=1",
    }
    stack.errors.drain(wait_s=0)
    assert "job-1" not in stack.errors.received
    _delete("echo")


def test_defaults_content_type_and_generates_the_inference_id(stack: Stack, server: LocalSageMakerServer) -> None:
    _deploy(stack, "defaults", concurrency=None)
    response = _invoke("defaults", stack.put_input({"prompt": "a dog"}))
    inference_id = response["InferenceId"]
    assert re.fullmatch(UUID, inference_id)

    notification = stack.success.wait_for(inference_id)
    assert set(notification["requestParameters"]) == {"endpointName", "inputLocation"}
    echoed = json.loads(stack.read(notification["responseParameters"]["outputLocation"]))
    assert echoed["content_type"] == "application/json"

    # The payload may come inline instead of from S3.
    response = _runtime().invoke_endpoint_async(
        EndpointName="defaults", Body=json.dumps({"prompt": "inline"}), InferenceId="job-inline"
    )
    notification = stack.success.wait_for("job-inline")
    assert notification["requestParameters"] == {"endpointName": "defaults"}
    assert json.loads(stack.read(response["OutputLocation"]))["request"] == {"prompt": "inline"}
    _delete("defaults")


def test_container_error_is_an_error_notification_with_its_message(stack: Stack, server: LocalSageMakerServer) -> None:
    _deploy(stack, "failing")
    input_location = stack.put_input({"fail": "CUDA out of memory"})
    response = _invoke("failing", input_location, InferenceId="job-500")

    notification = stack.errors.wait_for("job-500")
    assert notification["invocationStatus"] == "Failed"
    reason = notification["failureReason"]
    assert reason.startswith(
        'ClientError: Received server error (500) from model with message "{"error": "CUDA out of memory"}".'
    ), reason
    assert reason.endswith("See the log of instance 1 of production variant AllTraffic for more information.")
    assert_no_local_path(reason, stack)
    assert notification["requestParameters"] == {"endpointName": "failing", "inputLocation": input_location}
    assert notification["responseParameters"] == {
        "contentType": "application/json",
        "failureLocation": response["FailureLocation"],
    }
    assert list(notification)[:5] == ["awsRegion", "eventTime", "receivedTime", "invocationStatus", "failureReason"]
    assert json.loads(stack.read(response["FailureLocation"])) == {"error": "CUDA out of memory"}
    stack.success.drain(wait_s=0)
    assert "job-500" not in stack.success.received
    _delete("failing")


def test_invocation_timeout_fails_the_request(stack: Stack, server: LocalSageMakerServer) -> None:
    _deploy(stack, "slow")
    started = time.monotonic()
    response = _invoke("slow", stack.put_input({"sleep_s": 5}), InferenceId="job-slow", InvocationTimeoutSeconds=1)

    notification = stack.errors.wait_for("job-slow")
    assert time.monotonic() - started < 4
    assert "timed out" in notification["failureReason"]
    assert "InvocationTimeoutSeconds: 1" in notification["failureReason"]
    assert_no_local_path(notification["failureReason"], stack)
    assert stack.read(response["FailureLocation"]).decode() == notification["failureReason"]
    _delete("slow")


def test_missing_input_object_is_an_error_notification(stack: Stack, server: LocalSageMakerServer) -> None:
    markers = _deploy(stack, "no-input")
    missing = f"s3://{BUCKET}/async/in/missing.json"
    _invoke("no-input", missing, InferenceId="job-missing")

    notification = stack.errors.wait_for("job-missing")
    assert notification["failureReason"].startswith(f"ClientError: Could not read the input from {missing}:")
    assert "NoSuchKey" in notification["failureReason"]
    assert not markers.exists()  # the container was never called
    _delete("no-input")


def test_request_past_its_ttl_fails_without_reaching_the_container(stack: Stack, server: LocalSageMakerServer) -> None:
    markers = _deploy(stack, "expired")
    endpoint = server.state.endpoint("expired")
    request = AsyncRequest(
        endpoint_name="expired",
        inference_id="job-expired",
        input_location=stack.put_input({"prompt": "too late"}),
        payload=None,
        content_type=None,
        accept=None,
        custom_attributes=None,
        output_location=f"{OUTPUT_PATH}/expired.out",
        failure_location=None,
        request_ttl_s=60,
        invocation_timeout_s=900,
        received_at=time.time() - 61,  # as if it had waited in the queue past its TTL
    )
    with server.state.lock:
        endpoint_queue = server.plane.queue(endpoint.arn)
        assert endpoint_queue is not None
        endpoint_queue.submit(request)

    notification = stack.errors.wait_for("job-expired")
    assert "RequestTTLSeconds (60 seconds)" in notification["failureReason"]
    assert "responseParameters" not in notification  # no failure location for this one
    assert not markers.exists()
    _delete("expired")


def test_one_slot_per_instance_runs_requests_one_after_the_other(stack: Stack, server: LocalSageMakerServer) -> None:
    markers = _deploy(stack, "serial", concurrency=1)
    for index in (1, 2):
        _invoke("serial", stack.put_input({"id": index, "sleep_s": 0.5}), InferenceId=f"serial-{index}")
    stack.success.wait_for("serial-1")
    stack.success.wait_for("serial-2")

    events = sorted(_markers(markers), key=lambda marker: marker["t"])
    assert [(e["event"], e["id"]) for e in events] == [("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    _delete("serial")


def test_two_slots_per_instance_run_requests_together(stack: Stack, server: LocalSageMakerServer) -> None:
    markers = _deploy(stack, "parallel", concurrency=2)
    for index in (1, 2):
        _invoke("parallel", stack.put_input({"id": index, "sleep_s": 0.5}), InferenceId=f"parallel-{index}")
    stack.success.wait_for("parallel-1")
    stack.success.wait_for("parallel-2")

    events = sorted(_markers(markers), key=lambda marker: marker["t"])
    assert [e["event"] for e in events] == ["start", "start", "end", "end"]
    _delete("parallel")


def test_deleting_the_endpoint_fails_queued_requests(stack: Stack, server: LocalSageMakerServer) -> None:
    markers = _deploy(stack, "doomed")
    inference_ids = ["doomed-running", "doomed-queued-1", "doomed-queued-2"]
    for inference_id in inference_ids:
        _invoke("doomed", stack.put_input({"id": inference_id, "sleep_s": 5}), InferenceId=inference_id)
    _wait_for_first_marker(markers)

    _delete("doomed")
    for inference_id in inference_ids:
        reason = stack.errors.wait_for(inference_id)["failureReason"]
        assert reason == "The endpoint doomed was deleted before the request completed."
    assert [m["id"] for m in _markers(markers) if m["event"] == "start"] == ["doomed-running"]
    stack.success.drain(wait_s=0)
    assert not set(inference_ids) & set(stack.success.received)


def test_instance_dying_fails_what_it_ran_and_its_replacement_runs_what_waits(
    stack: Stack, server: LocalSageMakerServer
) -> None:
    markers = _deploy(stack, "dying")
    for inference_id in ("dying-running", "dying-queued"):
        _invoke("dying", stack.put_input({"id": inference_id, "sleep_s": 5}), InferenceId=inference_id)
    _wait_for_first_marker(markers)

    dead = server.state.endpoint("dying").instances[0]
    dead.process.kill()  # a crash, from outside
    reason = stack.errors.wait_for("dying-running")["failureReason"]
    assert "exited with code -9 (killed by SIGKILL) while it ran the request" in reason, reason
    assert_no_local_path(reason, stack)
    # SageMaker replaces the instance; the request that waited runs on the new one.
    assert stack.success.wait_for("dying-queued", timeout_s=30)["invocationStatus"] == "Completed"
    endpoint = server.state.endpoint("dying")
    assert endpoint.status == "InService"
    assert [i.healthy for i in endpoint.instances] == [True] and endpoint.instances[0] is not dead
    _delete("dying")


def test_endpoint_fails_when_instances_keep_failing_in_place_of_a_dead_one(
    stack: Stack, server: LocalSageMakerServer
) -> None:
    refuse = stack.workdir / "refuse-to-start"
    _deploy(stack, "doomed-place", environment={"ECHO_RUNTIME_REFUSE_IF": str(refuse)})
    refuse.touch()  # from now on every new instance exits at once
    try:
        server.state.endpoint("doomed-place").instances[0].process.kill()
        _invoke("doomed-place", stack.put_input({"id": "waits"}), InferenceId="doomed-place-waits")
        reason = stack.errors.wait_for("doomed-place-waits", timeout_s=30)["failureReason"]
    finally:
        refuse.unlink()
    endpoint = boto3.client("sagemaker").describe_endpoint(EndpointName="doomed-place")
    assert endpoint["EndpointStatus"] == "Failed"
    assert endpoint["FailureReason"].startswith(
        "Could not bring instance 1 of production variant AllTraffic back into service: 3 instances in a row "
        "started in its place failed. The last: The primary container for instance 1 of production variant "
        "AllTraffic exited with code 7 before it answered /ping. Last lines of its log:\n"
    ), endpoint["FailureReason"]
    assert "refusing to start" in endpoint["FailureReason"]
    assert_no_local_path(endpoint["FailureReason"], stack)
    assert reason == f"The endpoint doomed-place failed before the request completed: {endpoint['FailureReason']}"
    _delete("doomed-place")


def test_server_shutdown_fails_queued_requests(stack: Stack) -> None:
    with pytest.MonkeyPatch.context() as patch:
        local = LocalSageMakerServer(stack, patch)
        try:
            _deploy(stack, "shutdown")
            for index in (1, 2):
                _invoke("shutdown", stack.put_input({"sleep_s": 5}), InferenceId=f"shutdown-{index}")
        finally:
            local.stop()
    assert local.all_processes_stopped()
    for index in (1, 2):
        reason = stack.errors.wait_for(f"shutdown-{index}")["failureReason"]
        assert reason == "The local SageMaker shut down before the request completed."


def test_endpoint_and_its_invocations_are_back_after_a_restart(stack: Stack, tmp_path: Path) -> None:
    state_dir = tmp_path / "kept"
    with pytest.MonkeyPatch.context() as patch:
        before = LocalSageMakerServer(stack, patch, state_dir)
        try:
            markers = _deploy(stack, "kept")
            for inference_id in ("kept-running", "kept-queued"):
                _invoke("kept", stack.put_input({"id": inference_id, "sleep_s": 2}), InferenceId=inference_id)
            _wait_for_first_marker(markers)
        finally:
            before.stop()  # as `make down` stops it
        assert before.all_processes_stopped()
        stack.errors.drain(wait_s=1)
        assert not {"kept-running", "kept-queued"} & set(stack.errors.received)  # kept, not failed

        after = LocalSageMakerServer(stack, patch, state_dir)  # as `make up` starts it again
        try:
            sm = boto3.client("sagemaker")
            described = sm.describe_endpoint(EndpointName="kept")
            assert described["EndpointStatus"] == "InService"  # at once: SageMaker never stopped it
            assert described["EndpointArn"] == before.state.endpoint("kept").arn
            assert sm.describe_model(ModelName="kept")["PrimaryContainer"]["Image"] == "sd-runtime:local"
            assert sm.describe_endpoint_config(EndpointConfigName="kept")["AsyncInferenceConfig"]
            _invoke("kept", stack.put_input({"id": "kept-after"}), InferenceId="kept-after")  # waits for an instance

            for inference_id in ("kept-running", "kept-queued", "kept-after"):
                notification = stack.success.wait_for(inference_id, timeout_s=30)
                assert json.loads(stack.read(notification["responseParameters"]["outputLocation"]))["request"][
                    "id"
                ] == (inference_id)
            assert [m["id"] for m in _markers(markers) if m["event"] == "end"][-3:] == [
                "kept-running",
                "kept-queued",
                "kept-after",
            ]
            _delete("kept")
        finally:
            after.stop()
    assert after.all_processes_stopped()


def test_unknown_endpoint_and_bad_requests_are_validation_errors(server: LocalSageMakerServer) -> None:
    runtime = _runtime()
    with pytest.raises(ClientError) as raised:
        _invoke("nowhere", f"s3://{BUCKET}/in.json")
    assert raised.value.response["Error"] == {
        "Code": "ValidationError",
        "Message": f"Endpoint nowhere of account {ACCOUNT} not found.",
    }
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint_async(EndpointName="nowhere")  # neither InputLocation nor Body
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "InputLocation" in raised.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as raised:
        _invoke("nowhere", f"s3://{BUCKET}/in.json", InvocationTimeoutSeconds=3601, RequestTTLSeconds=21601)
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert error["Message"].startswith("2 validation errors detected: ")
    assert (
        "at 'invocationTimeoutSeconds' failed to satisfy constraint: Member must have value less than or equal to 3600"
        in error["Message"]
    )


def test_endpoint_not_in_service_is_validation_error(stack: Stack, server: LocalSageMakerServer) -> None:
    _deploy(stack, "creating", environment={"ECHO_RUNTIME_START_DELAY_S": "60"}, wait=False)
    with pytest.raises(ClientError) as raised:
        _invoke("creating", stack.put_input({"prompt": "too early"}))
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert raised.value.response["Error"]["Message"] == (
        f"Endpoint creating of account {ACCOUNT} is not in service (its status is Creating)."
    )
    _delete("creating")


def test_header_members_match_the_service_model() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    members = model.operation_model("InvokeEndpointAsync").input_shape.members
    for name, header, low, high, _ in STRING_MEMBERS:
        shape = members[name]
        assert shape.serialization == {"location": "header", "name": header}
        assert (shape.metadata.get("min", 0), shape.metadata["max"]) == (low, high)
    for name, header, low, high in INTEGER_MEMBERS:
        shape = members[name]
        assert shape.serialization == {"location": "header", "name": header}
        assert (shape.metadata["min"], shape.metadata["max"]) == (low, high)
    headers = {shape.serialization.get("name") for shape in members.values() if "location" in shape.serialization}
    assert headers == {h for _, h, *_ in STRING_MEMBERS} | {h for _, h, *_ in INTEGER_MEMBERS} | {"EndpointName"}
