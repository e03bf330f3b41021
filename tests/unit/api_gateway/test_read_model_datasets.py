"""Datasets in the read model: one fact carries the dataset and its items; older per-item facts still count."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import boto3
import pytest
from aws_lambda_powertools import Logger

from api_gateway.read_model import ReadModel, projection_router
from sdmw_contracts.events import DatasetChanged, DatasetCreationRequested, DatasetItemChanged
from sdmw_contracts.events.assets import DatasetItemSpec
from service_kit.claims import EventClaims
from service_kit.consumer import Consumer
from service_kit.events import EventBridgePublisher, outgoing
from service_kit.snapshots import SnapshotTable, entity_key
from service_kit.worker import LocalLambdaContext, lambda_record
from tests.conftest import create_service_table

NOW = datetime(2024, 1, 1, tzinfo=UTC)
BUCKET = "edge-bucket"


def dataset(version: int, items: int, status: str = "Initialed") -> DatasetChanged:
    command = DatasetCreationRequested(
        dataset_name="pets",
        items=[
            DatasetItemSpec(name=f"img_{n:05}.png", type="image", original_filename=f"/p/{n}") for n in range(items)
        ],
        requested_at=NOW,
    )
    snapshot = command.initial_snapshot(BUCKET, version=version)
    moved = [item.model_copy(update={"status": status}) for item in snapshot.items]
    return snapshot.model_copy(update={"status": status, "items": moved})


@pytest.fixture
def read_model(mocked_aws) -> ReadModel:
    return ReadModel(SnapshotTable(create_service_table("read-model"), boto3.resource("dynamodb")))


def test_the_items_come_with_their_dataset(read_model):
    read_model.apply(dataset(0, 3))
    read_model.apply(dataset(2, 3, "Enabled"))
    assert not read_model.apply(dataset(1, 3))
    items = read_model.dataset_items("pets")
    assert [(i.name, i.status) for i in items] == [(f"img_{n:05}.png", "Enabled") for n in range(3)]
    assert read_model.dataset_items("nope") is None


def test_a_dataset_projected_before_it_carried_items_reads_its_item_snapshots(read_model):
    read_model.apply(dataset(1, 1).model_copy(update={"items": []}))
    read_model.apply(
        DatasetItemChanged(
            id="pets/a.png",
            version=1,
            dataset_name="pets",
            name="a.png",
            type="image",
            key="dataset/pets/a.png",
            s3_uri=f"s3://{BUCKET}/dataset/pets/a.png",
            original_filename="/a.png",
            status="Initialed",
        )
    )
    assert [i.name for i in read_model.dataset_items("pets")] == ["a.png"]


def test_the_projector_applies_a_claim_checked_dataset_of_5000_items(read_model, mocked_aws):
    """Publisher (with claim check) -> SQS body -> projector: one message, whole dataset."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    entries: list[dict] = []

    class Events:
        def put_events(self, Entries):
            entries.extend(Entries)
            return {"FailedEntryCount": 0, "Entries": [{} for _ in Entries]}

    publisher = EventBridgePublisher("bus", "sdmw.asset-registry", client=Events(), claims=EventClaims(BUCKET, s3))
    big = dataset(1, 5000)
    publisher.publish([outgoing(big, producer="asset-registry", correlation_id="pets")])
    [entry] = entries
    body = json.dumps(
        {
            "id": "1",
            "source": entry["Source"],
            "detail-type": entry["DetailType"],
            "detail": json.loads(entry["Detail"]),
        }
    )
    record = lambda_record(
        {"MessageId": "m", "ReceiptHandle": "r", "Body": body, "Attributes": {"ApproximateReceiveCount": "1"}},
        "arn:aws:sqs:us-east-1:123456789012:q",
        "us-east-1",
    )
    consumer = Consumer(projection_router(read_model), Logger(service="t"), None, claims=EventClaims(s3=s3))
    context = LocalLambdaContext(function_name="t", deadline=time.monotonic() + 60, aws_request_id=str(uuid.uuid4()))
    assert consumer.handle_batch({"Records": [record]}, context) == {"batchItemFailures": []}
    assert read_model.dataset_items("pets") == big.items
    # The dataset's own row, which lists and the edge's polling read, stays small: its items are kept apart.
    assert read_model.get(DatasetChanged, "pets") == big.model_copy(update={"items": []})
    row = boto3.resource("dynamodb").Table("read-model").get_item(Key=entity_key("Dataset", "pets"))["Item"]
    assert len(row["data"]) < 1024
