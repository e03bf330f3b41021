"""The local worker against real SQS queues on a moto server.

A message that keeps failing ends in the dead-letter queue; a duplicated event
is processed once; stopping the worker loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import boto3
import pytest
from aws_lambda_powertools import Logger

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import EndpointDeletionRequested
from service_kit.consumer import Consumer, Router, dynamodb_idempotency
from service_kit.resources import Queue, ServiceResources
from service_kit.worker import Worker
from tests.conftest import create_service_table


def event_body(job_id: str, event_id: str) -> str:
    envelope = EventEnvelope.wrap(
        EndpointDeletionRequested(job_id=job_id, endpoint_name="e"),
        producer="api-gateway",
        correlation_id=job_id,
        event_id=event_id,
    )
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "source": "sdmw.api-gateway",
            "detail-type": "EndpointDeletionRequested",
            "detail": json.loads(envelope.model_dump_json()),
        }
    )


class RunningWorker:
    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(worker.run(),), daemon=True)

    def __enter__(self) -> RunningWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._worker.stop)
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "worker did not stop"


@pytest.fixture
def queues(moto_server):
    from infra.local.provision import Provisioner

    provisioner = Provisioner("it")
    resources = ServiceResources("svc", queue=Queue("svc", visibility_timeout_s=5, max_receive_count=2))
    url, _, _ = provisioner._queue_with_dlq(resources)
    dlq_url = boto3.client("sqs").get_queue_url(QueueName=resources.dlq_name("it"))["QueueUrl"]
    return url, dlq_url


def wait_until(condition, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_failing_message_lands_in_dlq_and_duplicates_run_once(queues):
    url, dlq_url = queues
    handled: list[str] = []

    def handle(event):
        job_id = event.envelope().data["job_id"]
        if job_id == "poison":
            raise RuntimeError("always fails")
        handled.append(job_id)

    consumer = Consumer(
        Router().on_event("EndpointDeletionRequested", handle),
        Logger(service="it"),
        dynamodb_idempotency(create_service_table("it-svc")),
    )
    sqs = boto3.client("sqs")
    duplicate_id = str(uuid.uuid4())
    for body in (event_body("good", duplicate_id), event_body("good", duplicate_id), event_body("poison", "p-1")):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    with RunningWorker(Worker(consumer, url, Logger(service="it"), visibility_timeout_s=5, long_poll_s=1)):

        def poison_in_dlq():
            found = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1, VisibilityTimeout=0)
            return any("poison" in m["Body"] for m in found.get("Messages", []))

        assert wait_until(poison_in_dlq, 30), "the failing message never reached the DLQ"

    assert handled == ["good"]
    remaining = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert remaining["ApproximateNumberOfMessages"] == "0"
    assert remaining["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_stopping_loses_no_message(queues):
    url, _ = queues
    handled: list[str] = []
    consumer = Consumer(
        Router().on_event("EndpointDeletionRequested", lambda e: handled.append(e.envelope().data["job_id"])),
        Logger(service="it"),
        idempotency_store=None,
    )
    sqs = boto3.client("sqs")
    with RunningWorker(Worker(consumer, url, Logger(service="it"), visibility_timeout_s=5, long_poll_s=1)):
        time.sleep(0.5)
    sqs.send_message(QueueUrl=url, MessageBody=event_body("after-stop", str(uuid.uuid4())))
    with RunningWorker(Worker(consumer, url, Logger(service="it"), visibility_timeout_s=5, long_poll_s=1)):
        assert wait_until(lambda: handled == ["after-stop"], 15)
