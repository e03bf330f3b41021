"""Snapshots over DynamoDB's 400 KB are stored in parts; versions, order and duplicates work as for any other."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from sdmw_contracts.events import DatasetChanged, DatasetCreationRequested
from sdmw_contracts.events.assets import DatasetItemSpec
from service_kit.snapshots import INLINE_BYTES, PART, ROW, SnapshotTable, StaleWrite
from tests.conftest import create_service_table

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def dataset(version: int, items: int = 5000, status: str = "Initialed") -> DatasetChanged:
    command = DatasetCreationRequested(
        dataset_name="big",
        items=[DatasetItemSpec(name=f"i{n:05}.png", type="image", original_filename=f"/p/{n}") for n in range(items)],
        requested_at=NOW,
    )
    snapshot = command.initial_snapshot("bucket", version=version)
    items_in_status = [item.model_copy(update={"status": status}) for item in snapshot.items]
    return snapshot.model_copy(update={"status": status, "items": items_in_status})


@pytest.fixture
def table(mocked_aws) -> SnapshotTable:
    return SnapshotTable(create_service_table("snapshots"), boto3.resource("dynamodb"))


def rows(sk_prefix: str) -> list[dict]:
    """The rows in the dataset's own partition whose sort key starts with ``sk_prefix``."""
    key = boto3.dynamodb.conditions.Key
    condition = key("pk").eq("Dataset#big") & key("sk").begins_with(sk_prefix)
    return boto3.resource("dynamodb").Table("snapshots").query(KeyConditionExpression=condition)["Items"]


def test_a_large_snapshot_round_trips_through_parts(table):
    big = dataset(1)
    assert len(big.model_dump_json()) > INLINE_BYTES
    table.save(big)
    assert table.get(DatasetChanged, "big") == big
    assert table.list(DatasetChanged) == [big]
    [row] = rows(ROW)
    assert "data" not in row and row["parts"] == len(rows(PART)) > 1


def test_a_newer_large_snapshot_replaces_the_parts_of_the_older(table):
    table.save(dataset(1))
    table.save(dataset(2, status="Enabled"))
    assert table.get(DatasetChanged, "big").status == "Enabled"
    [row] = rows(ROW)
    assert {part["version"] for part in rows(PART)} == {2}
    assert len(rows(PART)) == row["parts"]


def test_apply_keeps_the_newest_whatever_the_order_and_leaves_no_stray_parts(table):
    for version, status in ((2, "Enabled"), (1, "Initialed"), (2, "Enabled"), (0, "Initialed")):
        table.apply(dataset(version, status=status))
    current = table.get(DatasetChanged, "big")
    assert (current.version, current.status) == (2, "Enabled")
    assert {part["version"] for part in rows(PART)} == {2}
    assert len(rows(PART)) == rows(ROW)[0]["parts"]


def test_a_stale_owner_write_of_a_large_snapshot_fails_and_leaves_the_stored_one(table):
    table.save(dataset(1))
    with pytest.raises(StaleWrite):
        table.save(dataset(1, status="Enabled"))
    assert table.get(DatasetChanged, "big").status == "Initialed"
    assert len(rows(PART)) == rows(ROW)[0]["parts"]


def test_growing_from_inline_to_parts_and_deleting_an_initial_one(table):
    table.apply(dataset(0, items=2))
    assert "data" in rows(ROW)[0]
    table.apply(dataset(1))
    assert len(table.get(DatasetChanged, "big").items) == 5000
    table.delete_if_version(dataset(1))
    assert table.get(DatasetChanged, "big") is None and rows(PART) == []
