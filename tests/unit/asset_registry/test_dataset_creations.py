"""Issue 20, item 5, at the owner: a second creation of a dataset name keeps the first, and is said."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from aws_lambda_powertools import Logger

from asset_registry.handlers import Dependencies, router
from sdmw_contracts.events import DatasetCreationRequested
from sdmw_contracts.events.assets import DatasetItemSpec
from service_kit.events import RecordingPublisher
from service_kit.storage import S3Storage
from service_kit.testing import InMemorySnapshotTable
from tests.unit.asset_registry.test_handlers import BUCKET, NOW, as_event, latest


@pytest.fixture
def world(mocked_aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    publisher = RecordingPublisher()
    deps = Dependencies(
        snapshots=InMemorySnapshotTable(),
        storage=S3Storage(BUCKET, s3),
        publisher=publisher,
        logger=Logger(service="test"),
    )
    return s3, publisher, router(deps)


def creation(names: tuple[str, ...], at=NOW) -> DatasetCreationRequested:
    items = [DatasetItemSpec(name=n, type="image", original_filename=f"/home/me/{n}") for n in names]
    return DatasetCreationRequested(dataset_name="pets", items=items, requested_at=at)


def test_a_second_creation_of_a_name_keeps_the_first_and_is_logged(world, caplog):
    s3, publisher, route = world
    route.dispatch(as_event(creation(("a.png",))))
    caplog.clear()
    route.dispatch(as_event(creation(("b.png", "c.png"), at=NOW + timedelta(seconds=1))))
    dataset = latest(publisher, "DatasetChanged", "pets")
    assert [item["name"] for item in dataset["items"]] == ["a.png"] and dataset["version"] == 1
    [refusal] = [record for record in caplog.records if "a second creation" in record.getMessage()]
    assert refusal.levelname == "ERROR" and refusal.metric == "RefusedDatasetCreations"


def test_a_redelivered_creation_is_not_a_second_one(world, caplog):
    s3, publisher, route = world
    route.dispatch(as_event(creation(("a.png",))))
    route.dispatch(as_event(creation(("a.png",))))
    assert not [record for record in caplog.records if "a second creation" in record.getMessage()]
    assert [e["data"]["version"] for e in publisher.of_type("DatasetChanged")] == [1, 1]
