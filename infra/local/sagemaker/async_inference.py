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
fails, what is still queued fails with a reason. When an instance dies, what it
was running fails and what is queued waits for the other instances or the one
started in its place. When the server stops, what is queued fails, unless the
server keeps its state (``persistence.py``): then what is queued or was running
is kept, to run when it starts again.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.local.sagemaker.common import without_local_paths
from infra.local.sagemaker.instances import Instance, exit_cause, with_log_tail
from infra.local.sagemaker.state import Endpoint
from sdmw_contracts.s3 import split_s3_uri

log = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/json"
DEFAULT_MAX_CONCURRENT_INVOCATIONS = 1
TEXT = "text/plain; charset=utf-8"
MAX_MESSAGE_CHARS = 2048  # of a container's error body, quoted in a failure reason
EXIT_LOG_LINES = 5  # of a dead instance's log, quoted in the failure of the request it ran
READ_CHUNK = 64 * 1024
WAKE_S = 0.5  # how often an idle worker looks whether its instance is still there


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
# where SageMaker points at the endpoint's CloudWatch logs, these point at the
# instance's log (the server's own log says where it is). No reason shows a
# path of this machine: users read them in their jobs' errors.


def model_error_reason(status: int, body: bytes, instance: Instance) -> str:
    kind = "client" if 400 <= status < 500 else "server"
    message = body.decode("utf-8", errors="replace").strip()[:MAX_MESSAGE_CHARS]
    return (
        f'ClientError: Received {kind} error ({status}) from model with message "{without_local_paths(message)}". '
        f"See the log of {instance.label} for more information."
    )


def timeout_reason(request: AsyncRequest, instance: Instance) -> str:
    return (
        "ClientError: Your invocation timed out while waiting for a response from the model "
        f"(InvocationTimeoutSeconds: {request.invocation_timeout_s}). "
        f"See the log of {instance.label} for more information."
    )


def unreachable_reason(error: Exception, instance: Instance) -> str:
    return (
        f"ClientError: Could not get a response from the model on {instance.label}: "
        f"{without_local_paths(repr(error))}. See the log of {instance.label} for more information."
    )


def exited_reason(code: int, instance: Instance) -> str:
    reason = f"ClientError: The primary container for {instance.label} {exit_cause(code)} while it ran the request."
    return with_log_tail(reason, instance, EXIT_LOG_LINES)


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
    """The requests accepted for one endpoint, and the workers (``max_concurrent_invocations`` per
    serving instance) that serve them.

    Instances come and go (``add_instance``, ``remove_instance``): a request a
    worker took is given back, to the front of the queue, when its instance is
    gone before it was sent, or when the server stops with the request running
    (``suspend``); ``unfinished`` then answers what is left.
    """

    def __init__(self, endpoint_name: str, config: OutputConfig, clients: AwsClients) -> None:
        self.endpoint_name = endpoint_name
        self.config = config
        self._clients = clients
        self._changed = threading.Condition()
        self._pending: deque[AsyncRequest] = deque()
        self._running: list[AsyncRequest] = []
        self._threads: list[threading.Thread] = []
        self._removed: list[Instance] = []
        self._closed_reason: str | None = None
        self._suspended = False

    def add_instance(self, instance: Instance) -> None:
        for slot in range(self.config.max_concurrent_invocations):
            name = f"async-{self.endpoint_name}-{instance.variant_name}-{instance.index + 1}-{slot + 1}"
            self._start_thread(name, self._serve, instance)

    def remove_instance(self, instance: Instance) -> None:
        """Its workers stop; what they took and did not send to it goes back to the queue."""
        with self._changed:
            self._removed.append(instance)
            self._changed.notify_all()

    def submit(self, request: AsyncRequest) -> None:
        with self._changed:
            self._pending.append(request)
            self._changed.notify()

    def close(self, reason: str) -> None:
        """Fail what is queued (and what fails in flight) with ``reason``; the workers then stop. Never blocks."""
        with self._changed:
            if self._closed_reason is not None:
                return
            self._closed_reason = reason
            queued = list(self._pending)
            self._pending.clear()
            self._changed.notify_all()
        if queued:
            self._start_thread(f"async-{self.endpoint_name}-closing", self._fail_all, queued, reason)

    def suspend(self) -> None:
        """The server stops and keeps its state: take nothing more, give back what fails from now on."""
        with self._changed:
            self._suspended = True
            self._changed.notify_all()

    def unfinished(self) -> list[AsyncRequest]:
        """What was accepted and not answered: what runs, then what is queued, in the order they came."""
        with self._changed:
            return [*self._running, *self._pending]

    def join(self, deadline: float) -> None:
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def serving(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _start_thread(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _gone(self, instance: Instance) -> bool:
        return instance.exit_code() is not None or any(removed is instance for removed in self._removed)

    def _take(self, instance: Instance) -> AsyncRequest | None:
        """The next request for a worker of ``instance``, or None when the worker is to stop."""
        with self._changed:
            while self._closed_reason is None and not self._suspended and not self._gone(instance):
                if self._pending:
                    request = self._pending.popleft()
                    self._running.append(request)
                    return request
                self._changed.wait(WAKE_S)
            return None

    def _give_back(self, request: AsyncRequest) -> Outcome | None:
        """Back to the front of the queue (None), or its failure when the queue was closed meanwhile."""
        with self._changed:
            if self._closed_reason is not None:
                return failed(self._closed_reason)
            self._running.remove(request)
            self._pending.appendleft(request)
            self._changed.notify()
            return None

    def _done(self, request: AsyncRequest) -> None:
        with self._changed:
            self._running.remove(request)

    def _serve(self, instance: Instance) -> None:
        while (request := self._take(instance)) is not None:
            try:
                outcome = self._outcome(instance, request) or self._give_back(request)
                if outcome is None:
                    continue  # given back
                self._finish(request, outcome)
            except Exception:
                log.exception("async inference %s on endpoint %s", request.inference_id, self.endpoint_name)
            self._done(request)

    def _fail_all(self, requests: list[AsyncRequest], reason: str) -> None:
        for request in requests:
            try:
                self._finish(request, failed(reason))
            except Exception:
                log.exception("async inference %s on endpoint %s", request.inference_id, self.endpoint_name)

    def _outcome(self, instance: Instance, request: AsyncRequest) -> Outcome | None:
        """What came of the request on ``instance``; None when it is to be given back, not answered."""
        if self._closed_reason is not None:
            return failed(self._closed_reason)
        if time.time() - request.received_at > request.request_ttl_s:
            return failed(expired_reason(request))
        if self._gone(instance):
            return None  # another instance, or the one started in its place, runs it
        payload = read_input(self._clients("s3"), request)
        if isinstance(payload, Outcome):
            return payload
        outcome = call_container(instance, request, payload)
        if outcome.completed:
            return outcome
        if self._closed_reason is not None:
            return failed(self._closed_reason)  # the instance went away with the endpoint
        if self._suspended:
            return None  # the server stopped the instance: the request runs again when it starts
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

    ``endpoint_status_changed`` and ``instance_changed`` are listeners of
    LocalSageMaker, called under its lock: the queue is there from when the
    endpoint goes InService, its instances serve it while they pass their
    health checks, and it is closed when the endpoint is deleted or fails.
    ``submit`` is called under the same lock, so a request is either refused or
    answered.
    """

    def __init__(self, region: str, clients: AwsClients | None = None) -> None:
        self._clients = clients or AwsClients(region)
        self._queues: dict[str, EndpointQueue] = {}  # by endpoint ARN
        self._closed: list[EndpointQueue] = []

    def endpoint_status_changed(self, endpoint: Endpoint) -> None:
        if endpoint.async_inference_config is None:
            return
        if endpoint.status == "InService" and endpoint.arn not in self._queues:
            endpoint_queue = self._new_queue(endpoint)
            for instance in endpoint.instances:
                if instance.healthy:
                    endpoint_queue.add_instance(instance)
            self._queues[endpoint.arn] = endpoint_queue
        elif endpoint.status == "Deleting":
            self._close(endpoint.arn, f"The endpoint {endpoint.name} was deleted before the request completed.")
        elif endpoint.status == "Failed":
            self._close(endpoint.arn, failed_endpoint_reason(endpoint))

    def instance_changed(self, endpoint: Endpoint, instance: Instance, serving: bool) -> None:
        endpoint_queue = self._queues.get(endpoint.arn)
        if endpoint_queue is None:
            return
        if serving:
            endpoint_queue.add_instance(instance)
        else:
            endpoint_queue.remove_instance(instance)

    def queue(self, endpoint_arn: str) -> EndpointQueue | None:
        return self._queues.get(endpoint_arn)

    def resume(self, endpoint: Endpoint, requests: list[AsyncRequest]) -> None:
        """Queue again what an endpoint had accepted when the server stopped; fail it if the endpoint cannot serve."""
        if endpoint.async_inference_config is None or not requests:
            return
        endpoint_queue = self._queues.get(endpoint.arn)
        if endpoint_queue is None:  # the endpoint came back Failed
            endpoint_queue = self._new_queue(endpoint)
            self._queues[endpoint.arn] = endpoint_queue
            for request in requests:
                endpoint_queue.submit(request)
            self._close(endpoint.arn, failed_endpoint_reason(endpoint))
            return
        for request in requests:
            endpoint_queue.submit(request)

    def close_all(self, reason: str) -> None:
        for arn in list(self._queues):
            self._close(arn, reason)

    def suspend_all(self) -> None:
        """The server stops and keeps its state: queues keep what they hold (``unfinished``)."""
        for endpoint_queue in self._queues.values():
            endpoint_queue.suspend()

    def unfinished(self) -> list[AsyncRequest]:
        """Every request accepted and not answered, of every endpoint."""
        return [request for endpoint_queue in self._queues.values() for request in endpoint_queue.unfinished()]

    def join(self, timeout_s: float) -> None:
        """Wait for the queues' workers to stop: closed queues answer what they hold (and publish the
        notifications), suspended ones give it back."""
        deadline = time.monotonic() + timeout_s
        for endpoint_queue in [*self._closed, *self._queues.values()]:
            endpoint_queue.join(deadline)

    def _new_queue(self, endpoint: Endpoint) -> EndpointQueue:
        assert endpoint.async_inference_config is not None
        return EndpointQueue(endpoint.name, OutputConfig.of(endpoint.async_inference_config), self._clients)

    def _close(self, arn: str, reason: str) -> None:
        endpoint_queue = self._queues.pop(arn, None)
        if endpoint_queue is not None:
            endpoint_queue.close(reason)
            self._closed = [q for q in self._closed if q.serving()] + [endpoint_queue]


def failed_endpoint_reason(endpoint: Endpoint) -> str:
    return f"The endpoint {endpoint.name} failed before the request completed: {endpoint.failure_reason}"
