"""The consumer runtime: partial batch failures, idempotency, malformed messages."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from aws_lambda_powertools import Logger

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import EndpointDeletionRequested
from service_kit.consumer import Consumer, NoHandler, Router, dynamodb_idempotency
from service_kit.messages import MalformedMessage, SnsNotification, parse_message
from service_kit.worker import LocalLambdaContext, lambda_record, retry_delay_s
from tests.conftest import create_service_table


def bus_body(job_id: str, event_id: str | None = None) -> str:
    envelope = EventEnvelope.wrap(
        EndpointDeletionRequested(job_id=job_id, endpoint_name="e"),
        producer="api-gateway",
        correlation_id=job_id,
        event_id=event_id,
    )
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "source": "sdmw.api-gateway",
            "detail-type": "EndpointDeletionRequested",
            "detail": json.loads(envelope.model_dump_json()),
        }
    )


def sqs_event(*bodies: str) -> dict:
    messages = [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body, "Attributes": {"ApproximateReceiveCount": "1"}}
        for i, body in enumerate(bodies)
    ]
    return {"Records": [lambda_record(m, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1") for m in messages]}


def context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="test", deadline=time.monotonic() + 60)


@pytest.fixture
def seen():
    return []


@pytest.fixture
def consumer(mocked_aws, seen) -> Consumer:
    def handle(event):
        job_id = event.envelope().data["job_id"]
        if job_id.startswith("bad"):
            raise RuntimeError("cannot handle this one")
        seen.append(job_id)

    router = Router().on_event("EndpointDeletionRequested", handle)
    return Consumer(router, Logger(service="test"), dynamodb_idempotency(create_service_table("svc")))


def test_only_failed_records_are_reported(consumer, seen):
    result = consumer.handle_batch(sqs_event(bus_body("a"), bus_body("bad-1"), bus_body("b")), context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert seen == ["a", "b"]


def test_a_duplicate_event_is_processed_once(consumer, seen):
    event_id = str(uuid.uuid4())
    consumer.handle_batch(sqs_event(bus_body("a", event_id)), context())
    result = consumer.handle_batch(sqs_event(bus_body("a", event_id)), context())
    assert result == {"batchItemFailures": []}
    assert seen == ["a"]


def test_a_failed_message_is_processed_again_on_redelivery(consumer, seen):
    event_id = str(uuid.uuid4())
    body = bus_body("bad-2", event_id)
    assert consumer.handle_batch(sqs_event(body), context())["batchItemFailures"]
    assert consumer.handle_batch(sqs_event(body), context())["batchItemFailures"], "failure was cached as success"


def test_when_every_record_fails_all_are_reported(consumer):
    result = consumer.handle_batch(sqs_event("not json", bus_body("bad-3")), context())
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["m0", "m1"]


def test_an_event_without_handler_fails_rather_than_vanishing(consumer):
    body = json.loads(bus_body("x"))
    body["detail-type"] = "SomethingElse"
    result = consumer.handle_batch(sqs_event(json.dumps(body)), context())
    assert result["batchItemFailures"] == [{"itemIdentifier": "m0"}]


def test_parse_sns_notification():
    body = json.dumps(
        {
            "Type": "Notification",
            "MessageId": "n1",
            "TopicArn": "arn:aws:sns:us-east-1:1:sdmw-async-success",
            "Message": json.dumps({"inferenceId": "i"}),
        }
    )
    message = parse_message(body)
    assert isinstance(message, SnsNotification)
    assert message.topic_name == "sdmw-async-success" and message.json() == {"inferenceId": "i"}


@pytest.mark.parametrize("body", ["", "[]", "{}", '{"Type": "Notification"}'])
def test_malformed_bodies_are_refused(body):
    with pytest.raises(MalformedMessage):
        parse_message(body)


def test_router_without_topic_handler_refuses():
    message = SnsNotification(message_id="n", topic_arn="arn:aws:sns:r:1:t", message="{}")
    with pytest.raises(NoHandler):
        Router().dispatch(message)


def test_retry_back_off_grows_and_is_bounded():
    assert [retry_delay_s(n) for n in (1, 2, 3, 4, 10)] == [1, 2, 4, 8, 30]
