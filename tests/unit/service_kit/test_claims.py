"""Claim check for events over EventBridge's 256 KB: published through S3, read back before the handler."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import jsonschema
import pytest
from aws_lambda_powertools import Logger

from contracts import export_schemas
from sdmw_contracts.events import DatasetChanged, DatasetCreationRequested
from sdmw_contracts.events.assets import DatasetItemSpec
from service_kit.claims import CLAIM_ABOVE_BYTES, CLAIM_PREFIX, EventClaims
from service_kit.consumer import Consumer, Router
from service_kit.events import EventBridgePublisher, PublishError, outgoing
from service_kit.worker import LocalLambdaContext, lambda_record

BUCKET = "claims-bucket"
NOW = datetime(2024, 1, 1, tzinfo=UTC)


class FakeEvents:
    """EventBridge's PutEvents, keeping the entries (and refusing any over 256 KB, as EventBridge does)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.calls: list[int] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(Entries) <= 10 and sum(len(e["Detail"].encode()) for e in Entries) <= 256 * 1024
        self.calls.append(len(Entries))
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in Entries]}


def big_command(items: int = 5000) -> DatasetCreationRequested:
    return DatasetCreationRequested(
        dataset_name="big",
        items=[
            DatasetItemSpec(name=f"img_{n:05}.png", type="image", original_filename=f"/home/me/pictures/img_{n:05}.png")
            for n in range(items)
        ],
        requested_at=NOW,
    )


def as_sqs_event(entry: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "source": entry["Source"],
            "detail-type": entry["DetailType"],
            "detail": json.loads(entry["Detail"]),
        }
    )
    message = {"MessageId": "m0", "ReceiptHandle": "r0", "Body": body, "Attributes": {"ApproximateReceiveCount": "1"}}
    return {"Records": [lambda_record(message, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")]}


@pytest.fixture
def s3(mocked_aws):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_an_event_over_the_limit_goes_by_claim_check_and_the_handler_sees_it_whole(s3):
    events = FakeEvents()
    publisher = EventBridgePublisher("bus", "sdmw.api-gateway", client=events, claims=EventClaims(BUCKET, s3))
    command = big_command()
    event = outgoing(command, producer="api-gateway", correlation_id="big")
    assert len(event.detail_json()) > 256 * 1024
    publisher.publish([event])

    [entry] = events.entries
    detail = json.loads(entry["Detail"])
    assert detail["data"] == {} and detail["metadata"]["event_id"] == event.envelope.metadata.event_id
    key = f"{CLAIM_PREFIX}DatasetCreationRequested/{event.envelope.metadata.event_id}.json"
    assert detail["data_s3_uri"] == f"s3://{BUCKET}/{key}"
    schema = json.loads((export_schemas.SCHEMA_DIR / "DatasetCreationRequested.v1.json").read_text())
    jsonschema.validate(detail, schema)  # a claimed detail is valid by the exported schema

    seen: list[DatasetCreationRequested] = []
    parse = DatasetCreationRequested
    router = Router().on_event("DatasetCreationRequested", lambda e: seen.append(e.envelope().parse_data(parse)))
    consumer = Consumer(router, Logger(service="test"), idempotency_store=None, claims=EventClaims(s3=s3))
    context = LocalLambdaContext(function_name="test", deadline=time.monotonic() + 60)
    assert consumer.handle_batch(as_sqs_event(entry), context) == {"batchItemFailures": []}
    assert seen == [command]


def test_a_small_event_stays_inline(s3):
    events = FakeEvents()
    publisher = EventBridgePublisher("bus", "sdmw.api-gateway", client=events, claims=EventClaims(BUCKET, s3))
    publisher.publish([outgoing(big_command(items=3), producer="api-gateway", correlation_id="big")])
    detail = json.loads(events.entries[0]["Detail"])
    assert "data_s3_uri" not in detail or detail["data_s3_uri"] is None
    assert len(detail["data"]["items"]) == 3
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_a_republished_snapshot_writes_the_same_claim(s3):
    """The claim's key follows from the (stable) event id of a snapshot: a repeat overwrites, never adds."""
    events = FakeEvents()
    publisher = EventBridgePublisher("bus", "sdmw.asset-registry", client=events, claims=EventClaims(BUCKET, s3))
    dataset = big_command().initial_snapshot(BUCKET, version=1)
    for _ in range(2):
        publisher.publish([outgoing(dataset, producer="asset-registry", correlation_id="big")])
    uris = {json.loads(e["Detail"])["data_s3_uri"] for e in events.entries}
    assert len(uris) == 1 and s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1
    body = s3.get_object(Bucket=BUCKET, Key=uris.pop().split("/", 3)[3])["Body"].read()
    assert DatasetChanged.model_validate_json(body) == dataset


def test_put_events_calls_stay_under_256_kb_in_all(s3):
    """Events just under the claim limit go one per call; small ones ten per call."""
    events = FakeEvents()
    publisher = EventBridgePublisher("bus", "sdmw.api-gateway", client=events, claims=EventClaims(BUCKET, s3))
    medium = outgoing(big_command(items=1500), producer="api-gateway", correlation_id="m")
    assert 128 * 1024 < len(medium.detail_json()) <= CLAIM_ABOVE_BYTES
    small = outgoing(big_command(items=1), producer="api-gateway", correlation_id="s")
    publisher.publish([medium, medium, *[small] * 12])
    assert events.calls == [1, 10, 3]


def test_without_a_claim_check_an_oversized_event_is_refused():
    publisher = EventBridgePublisher("bus", "sdmw.api-gateway", client=FakeEvents())
    with pytest.raises(PublishError, match="256 KB"):
        publisher.publish([outgoing(big_command(), producer="api-gateway", correlation_id="big")])


def test_parse_data_of_a_claimed_envelope_asks_for_the_claim_first():
    event = outgoing(big_command(items=1), producer="api-gateway", correlation_id="big")
    claimed = event.envelope.model_copy(update={"data": {}, "data_s3_uri": "s3://b/k.json"})
    with pytest.raises(ValueError, match="claim"):
        claimed.parse_data(DatasetCreationRequested)


def test_the_limit_leaves_room_for_the_rest_of_the_entry():
    assert CLAIM_ABOVE_BYTES < 256 * 1024
