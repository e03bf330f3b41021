"""Async inference as SageMaker carries it out: a queue per endpoint, served by its instances.

Every accepted InvokeEndpointAsync request waits in its endpoint's queue.
Each instance has ``MaxConcurrentInvocationsPerInstance`` workers (threads)
that take requests from that queue, so an instance never runs more at a time.
For one request a worker:

1. fails it if it waited longer than ``RequestTTLSeconds``;
2. reads the input from S3 (``InputLocation``), unless it came inline;
3. POSTs it to the instance's ``/invocations``, within ``InvocationTimeoutSeconds``;
4. writes the answer to S3: the output location on success, the failure
   location (when ``S3FailurePath`` is set) on failure;
5. then publishes SageMaker's notification to the success or error topic.

S3 and SNS are reached with boto3 clients from the standard environment
(``AWS_ENDPOINT_URL`` and friends), as in AWS. When an endpoint is deleted or
fails, or the server stops, what is still queued fails with a reason.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.local.sagemaker.instances import Instance
from infra.local.sagemaker.state import Endpoint
from sdmw_contracts.s3 import split_s3_uri

log = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/json"
DEFAULT_MAX_CONCURRENT_INVOCATIONS = 1
TEXT = "text/plain; charset=utf-8"
MAX_MESSAGE_CHARS = 2048  # of a container's error body, quoted in a failure reason
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class AsyncRequest:
    """One accepted InvokeEndpointAsync request; where its results go is decided when it is accepted."""

    endpoint_name: str
    inference_id: str
    input_location: str | None  # an s3:// URI, or None when the payload came inline
    payload: bytes | None
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    output_location: str
    failure_location: str | None
    request_ttl_s: int
    invocation_timeout_s: int
    received_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Outcome:
    """What came of a request: the body to store, and why it failed if it did."""

    completed: bool
    body: bytes
    content_type: str
    reason: str | None = None


def failed(reason: str, body: bytes | None = None, content_type: str = TEXT) -> Outcome:
    return Outcome(
        completed=False, body=reason.encode() if body is None else body, content_type=content_type, reason=reason
    )


@dataclass(frozen=True)
class OutputConfig:
    """The parts of an endpoint config's AsyncInferenceConfig that serving needs."""

    s3_output_path: str | None
    s3_failure_path: str | None
    success_topic: str | None
    error_topic: str | None
    max_concurrent_invocations: int

    @classmethod
    def of(cls, async_inference_config: Mapping[str, Any]) -> OutputConfig:
        output = async_inference_config.get("OutputConfig") or {}
        notifications = output.get("NotificationConfig") or {}
        client = async_inference_config.get("ClientConfig") or {}
        return cls(
            s3_output_path=output.get("S3OutputPath"),
            s3_failure_path=output.get("S3FailurePath"),
            success_topic=notifications.get("SuccessTopic"),
            error_topic=notifications.get("ErrorTopic"),
            max_concurrent_invocations=int(
                client.get("MaxConcurrentInvocationsPerInstance") or DEFAULT_MAX_CONCURRENT_INVOCATIONS
            ),
        )


# S3 locations and times


def join_s3(prefix: str, *names: str) -> str:
    return "/".join([prefix.rstrip("/"), *(name.strip("/") for name in names if name)])


def iso_millis(timestamp: float) -> str:
    """2023-05-23T03:23:21.814Z, as SageMaker writes eventTime and receivedTime."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# Failure reasons. A container's answer is quoted the way SageMaker quotes it;
# "the SageMaker Endpoint logs" are the instance's log file here.


def model_error_reason(status: int, body: bytes, instance: Instance) -> str:
    kind = "client" if 400 <= status < 500 else "server"
    message = body.decode("utf-8", errors="replace").strip()[:MAX_MESSAGE_CHARS]
    return (
        f'ClientError: Received {kind} error ({status}) from model with message "{message}". '
        f"See {instance.log_path} for more information."
    )


def timeout_reason(request: AsyncRequest, instance: Instance) -> str:
    return (
        "ClientError: Your invocation timed out while waiting for a response from the model "
        f"(InvocationTimeoutSeconds: {request.invocation_timeout_s}). See {instance.log_path} for more information."
    )


def unreachable_reason(error: Exception, instance: Instance) -> str:
    return (
        f"ClientError: Could not get a response from the model at {instance.url}: {error!r}. "
        f"See {instance.log_path} for more information."
    )


def exited_reason(code: int, instance: Instance) -> str:
    return (
        f"ClientError: The primary container for {instance.label} exited with code {code}. "
        f"See {instance.log_path} for more information."
    )


def _exit_code_soon(instance: Instance, wait_s: float = 2.0) -> int | None:
    """The container's exit code if it is dying: a dropped connection is usually a crash."""
    deadline = time.monotonic() + wait_s
    while (code := instance.exit_code()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return code


def expired_reason(request: AsyncRequest) -> str:
    return (
        f"ClientError: Request expired: it waited in the queue longer than RequestTTLSeconds "
        f"({request.request_ttl_s} seconds)."
    )


# The steps of one request


def read_input(s3: Any, request: AsyncRequest) -> bytes | Outcome:
    """The payload, or a failed Outcome when it cannot be read."""
    if request.payload is not None:
        return request.payload
    assert request.input_location is not None
    try:
        bucket, key = split_s3_uri(request.input_location)
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ValueError, BotoCoreError, ClientError) as error:
        return failed(f"ClientError: Could not read the input from {request.input_location}: {error}")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def call_container(instance: Instance, request: AsyncRequest, payload: bytes) -> Outcome:
    """POST the payload to the instance's /invocations; the whole exchange must fit the invocation timeout."""
    headers = {"Content-Type": request.content_type or DEFAULT_CONTENT_TYPE}
    if request.accept:
        headers["Accept"] = request.accept
    if request.custom_attributes:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = request.custom_attributes
    url = urlsplit(instance.url)
    deadline = time.monotonic() + request.invocation_timeout_s
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=request.invocation_timeout_s)
    try:
        connection.request("POST", "/invocations", body=payload, headers=headers)
        sock = connection.sock  # kept: the connection lets go of it once the response is in
        sock.settimeout(_remaining(deadline))
        response = connection.getresponse()
        chunks = []
        while True:
            sock.settimeout(_remaining(deadline))
            chunk = response.read1(READ_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
    except TimeoutError:
        return failed(timeout_reason(request, instance))
    except (OSError, http.client.HTTPException) as error:
        code = _exit_code_soon(instance)
        if code is not None:
            return failed(exited_reason(code, instance))
        return failed(unreachable_reason(error, instance))
    finally:
        connection.close()
    body = b"".join(chunks)
    content_type = response.getheader("Content-Type") or "application/octet-stream"
    if 200 <= response.status < 300:
        return Outcome(completed=True, body=body, content_type=content_type)
    return failed(model_error_reason(response.status, body, instance), body, content_type)


def notification(request: AsyncRequest, outcome: Outcome, location: str | None, region: str) -> dict[str, Any]:
    """The message SageMaker publishes to the success or error topic, keys in SageMaker's order."""
    given = {
        "accept": request.accept,
        "contentType": request.content_type,
        "endpointName": request.endpoint_name,
        "inputLocation": request.input_location,
    }
    message: dict[str, Any] = {
        "awsRegion": region,
        "eventTime": iso_millis(time.time()),
        "receivedTime": iso_millis(request.received_at),
        "invocationStatus": "Completed" if outcome.completed else "Failed",
    }
    if not outcome.completed:
        message["failureReason"] = outcome.reason
    message["requestParameters"] = {key: value for key, value in given.items() if value is not None}
    if location:
        location_key = "outputLocation" if outcome.completed else "failureLocation"
        message["responseParameters"] = {"contentType": outcome.content_type, location_key: location}
    message.update(inferenceId=request.inference_id, eventVersion="1.0", eventSource="aws:sagemaker")
    message["eventName"] = "InferenceResult"
    return message


class AwsClients:
    """S3 and SNS clients from the standard environment, made on first use and shared by the workers."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                config = Config(retries={"mode": "standard", "max_attempts": 5})
                self._clients[service] = boto3.session.Session().client(service, region_name=self.region, config=config)
            return self._clients[service]


# One endpoint's queue and workers


class EndpointQueue:
    """The requests accepted for one endpoint, and the workers (one per instance slot) that serve them."""

    def __init__(self, endpoint_name: str, config: OutputConfig, clients: AwsClients) -> None:
        self.endpoint_name = endpoint_name
        self.config = config
        self._clients = clients
        self._requests: queue.Queue[AsyncRequest | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._closed_reason: str | None = None

    def start(self, instances: Sequence[Instance]) -> None:
        for instance in instances:
            for slot in range(self.config.max_concurrent_invocations):
                name = f"async-{self.endpoint_name}-{instance.variant_name}-{instance.index + 1}-{slot + 1}"
                worker = threading.Thread(target=self._serve, args=(instance,), name=name, daemon=True)
                self._workers.append(worker)
                worker.start()

    def submit(self, request: AsyncRequest) -> None:
        self._requests.put(request)

    def close(self, reason: str) -> None:
        """Fail what is queued (and what fails in flight) with ``reason``; the workers then stop. Never blocks."""
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        for _ in self._workers:
            self._requests.put(None)  # behind every queued request, so each is answered first

    def join(self, deadline: float) -> None:
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def serving(self) -> bool:
        return any(worker.is_alive() for worker in self._workers)

    def _serve(self, instance: Instance) -> None:
        while (request := self._requests.get()) is not None:
            try:
                self._finish(request, self._outcome(instance, request))
            except Exception:
                log.exception("async inference %s on endpoint %s", request.inference_id, self.endpoint_name)

    def _outcome(self, instance: Instance, request: AsyncRequest) -> Outcome:
        if self._closed_reason is not None:
            return failed(self._closed_reason)
        if time.time() - request.received_at > request.request_ttl_s:
            return failed(expired_reason(request))
        if (code := instance.exit_code()) is not None:
            return failed(exited_reason(code, instance))  # the endpoint is about to fail; do not wait for it
        payload = read_input(self._clients("s3"), request)
        if isinstance(payload, Outcome):
            return payload
        outcome = call_container(instance, request, payload)
        if outcome.completed:
            return outcome
        if self._closed_reason is not None:
            return failed(self._closed_reason)  # the instance went away with the endpoint
        if (code := instance.exit_code()) is not None:
            return failed(exited_reason(code, instance))
        return outcome

    def _finish(self, request: AsyncRequest, outcome: Outcome) -> None:
        """Store the result, then notify: a subscriber always finds the object the notification names."""
        if outcome.completed:
            try:
                self._put(request.output_location, outcome)
            except (ValueError, BotoCoreError, ClientError) as error:
                outcome = failed(f"ClientError: Could not write the output to {request.output_location}: {error}")
        location = request.output_location if outcome.completed else self._store_failure(request, outcome)
        log.info(
            "async inference %s on endpoint %s: %s",
            request.inference_id,
            self.endpoint_name,
            "completed" if outcome.completed else outcome.reason,
        )
        topic = self.config.success_topic if outcome.completed else self.config.error_topic
        if topic:
            message = notification(request, outcome, location, self._clients.region)
            self._clients("sns").publish(TopicArn=topic, Message=json.dumps(message, separators=(",", ":")))

    def _store_failure(self, request: AsyncRequest, outcome: Outcome) -> str | None:
        if request.failure_location is None:
            return None
        try:
            self._put(request.failure_location, outcome)
        except (ValueError, BotoCoreError, ClientError):
            log.exception("could not write the failure of %s to %s", request.inference_id, request.failure_location)
            return None
        return request.failure_location

    def _put(self, location: str, outcome: Outcome) -> None:
        bucket, key = split_s3_uri(location)
        self._clients("s3").put_object(Bucket=bucket, Key=key, Body=outcome.body, ContentType=outcome.content_type)


# Every endpoint's queue


class AsyncInference:
    """The runtime plane's state: one queue per in-service async endpoint.

    ``endpoint_status_changed`` is a status listener of LocalSageMaker, called
    under its lock: the queue starts serving when the endpoint goes InService
    and is closed when it is deleted or fails. ``submit`` is called under the
    same lock, so a request is either refused or answered.
    """

    def __init__(self, region: str, clients: AwsClients | None = None) -> None:
        self._clients = clients or AwsClients(region)
        self._queues: dict[str, EndpointQueue] = {}  # by endpoint ARN
        self._closed: list[EndpointQueue] = []

    def endpoint_status_changed(self, endpoint: Endpoint) -> None:
        if endpoint.async_inference_config is None:
            return
        if endpoint.status == "InService" and endpoint.arn not in self._queues:
            endpoint_queue = EndpointQueue(
                endpoint.name, OutputConfig.of(endpoint.async_inference_config), self._clients
            )
            endpoint_queue.start(endpoint.instances)
            self._queues[endpoint.arn] = endpoint_queue
        elif endpoint.status == "Deleting":
            self._close(endpoint.arn, f"The endpoint {endpoint.name} was deleted before the request completed.")
        elif endpoint.status == "Failed":
            reason = f"The endpoint {endpoint.name} failed before the request completed: {endpoint.failure_reason}"
            self._close(endpoint.arn, reason)

    def queue(self, endpoint_arn: str) -> EndpointQueue | None:
        return self._queues.get(endpoint_arn)

    def close_all(self, reason: str) -> None:
        for arn in list(self._queues):
            self._close(arn, reason)

    def join(self, timeout_s: float) -> None:
        """Wait for closed queues to answer what they hold (and publish the notifications)."""
        deadline = time.monotonic() + timeout_s
        for endpoint_queue in list(self._closed):
            endpoint_queue.join(deadline)

    def _close(self, arn: str, reason: str) -> None:
        endpoint_queue = self._queues.pop(arn, None)
        if endpoint_queue is not None:
            endpoint_queue.close(reason)
            self._closed = [q for q in self._closed if q.serving()] + [endpoint_queue]
