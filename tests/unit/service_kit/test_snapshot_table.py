"""The snapshot table's behaviour, run against the DynamoDB table (on moto) and its in-memory fake alike.

Handler unit tests use the fake; these tests are what keep it honest: each one
runs against both, so any behaviour the fake gets wrong fails here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from sdmw_contracts.envelope import EntityChanged
from service_kit.snapshots import INLINE_BYTES, SnapshotTable, StaleWrite
from service_kit.testing import InMemorySnapshotTable, stored_row
from tests.conftest import create_service_table

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class JobChanged(EntityChanged):
    """A job with a deadline while open, findable by its names."""

    status: str = "open"
    deadline: datetime | None = None
    names: list[str] = []
    payload: str = ""

    def due_at(self) -> datetime | None:
        return self.deadline if self.status == "open" else None

    def lookup_names(self) -> list[str]:
        return self.names


class OtherChanged(EntityChanged):
    """Another entity type in the same table, with the same names."""

    names: list[str] = []

    def lookup_names(self) -> list[str]:
        return self.names


class StricterJobChanged(JobChanged):
    """The same stored type read by a model that needs a field the stored snapshots lack."""

    owner: str

    @classmethod
    def entity_type(cls) -> str:
        return "Job"


def job(entity_id: str, version: int = 1, **fields: Any) -> JobChanged:
    return JobChanged(id=entity_id, version=version, **fields)


@dataclass
class Subject:
    table: SnapshotTable | InMemorySnapshotTable
    reads: Any  # () -> items read so far


def _dynamodb() -> Subject:
    resource = boto3.resource("dynamodb")
    counted = [0]

    def count(parsed: dict[str, Any], **_: Any) -> None:
        counted[0] += len(parsed.get("Items", [])) + ("Item" in parsed)

    resource.meta.client.meta.events.register("after-call.dynamodb.Query", count)
    resource.meta.client.meta.events.register("after-call.dynamodb.GetItem", count)
    return Subject(SnapshotTable(create_service_table("snapshots"), resource), lambda: counted[0])


def _memory() -> Subject:
    table = InMemorySnapshotTable()
    return Subject(table, lambda: table.items_read)


@pytest.fixture(params=["dynamodb", "in-memory"])
def subject(request: pytest.FixtureRequest) -> Subject:
    if request.param == "dynamodb":
        request.getfixturevalue("mocked_aws")
        return _dynamodb()
    return _memory()


@pytest.fixture
def table(subject: Subject) -> SnapshotTable | InMemorySnapshotTable:
    return subject.table


# ---------------------------------------------------------------- versions


def test_get_answers_what_was_saved_and_none_for_an_unknown_id(table):
    assert table.get(JobChanged, "a") is None
    table.save(job("a", names=["x"]))
    assert table.get(JobChanged, "a") == job("a", names=["x"])
    assert table.get(OtherChanged, "a") is None


def test_save_follows_the_stored_version_or_raises_stale_write(table):
    table.save(job("a", 1))
    with pytest.raises(StaleWrite):
        table.save(job("a", 1, status="other writer"))
    with pytest.raises(StaleWrite):
        table.save(job("a", 3))
    table.save(job("a", 2, status="done"), job("a", 3, status="done again"))
    assert table.get(JobChanged, "a").status == "done again"


def test_save_of_a_later_version_of_an_unknown_entity_is_stale(table):
    with pytest.raises(StaleWrite):
        table.save(job("a", 2))
    assert table.get(JobChanged, "a") is None


def test_apply_keeps_the_newest_whatever_the_order(table):
    assert table.apply(job("a", 2, status="second"))
    assert not table.apply(job("a", 1, status="first"))
    assert not table.apply(job("a", 2, status="duplicate"))
    assert table.apply(job("a", 3, status="third"))
    assert table.get(JobChanged, "a").status == "third"


def test_delete_if_version_leaves_a_newer_snapshot(table):
    table.apply(job("a", 0))
    table.apply(job("a", 1))
    table.delete_if_version(job("a", 0))
    assert table.get(JobChanged, "a").version == 1
    table.delete_if_version(job("a", 1))
    assert table.get(JobChanged, "a") is None


def test_a_snapshot_too_big_for_one_item_round_trips(table):
    big = job("big", payload="x" * (INLINE_BYTES + 10))
    table.save(big)
    table.save(big.model_copy(update={"version": 2, "status": "done"}))
    assert table.get(JobChanged, "big") == big.model_copy(update={"version": 2, "status": "done"})
    assert [j.id for j in table.list(JobChanged)] == ["big"]


# ---------------------------------------------------------------- lists


def test_list_answers_every_snapshot_of_a_type_in_id_order_and_by_id_prefix(table):
    for entity_id in ("b#2", "a", "b#1"):
        table.save(job(entity_id))
    table.save(OtherChanged(id="c", version=1))
    assert [j.id for j in table.list(JobChanged)] == ["a", "b#1", "b#2"]
    assert [j.id for j in table.list(JobChanged, id_prefix="b#")] == ["b#1", "b#2"]
    assert [o.id for o in table.list(OtherChanged)] == ["c"]


def test_list_hands_an_unreadable_item_to_on_unreadable_and_goes_on(table):
    table.save(job("a"))
    with pytest.raises(ValueError):
        table.list(StricterJobChanged)
    skipped = []
    assert table.list(StricterJobChanged, on_unreadable=lambda item, error: skipped.append(item)) == []
    assert [(item["entity_type"], item["entity_id"]) for item in skipped] == [("Job", "a")]


# ---------------------------------------------------------------- sweeps


def test_due_answers_open_snapshots_whose_deadline_has_passed_soonest_first(table):
    table.save(job("late", deadline=NOW - timedelta(minutes=5)))
    table.save(job("just", deadline=NOW))
    table.save(job("later", deadline=NOW + timedelta(seconds=1)))
    table.save(job("no-deadline"))
    table.save(job("finished", status="done", deadline=NOW - timedelta(hours=1)))
    assert [j.id for j in table.due(JobChanged, NOW)] == ["late", "just"]
    assert table.due(OtherChanged, NOW) == []


def test_a_snapshot_leaves_the_sweep_once_finished_and_moves_with_its_deadline(table):
    table.save(job("a", 1, deadline=NOW - timedelta(minutes=1)))
    table.save(job("a", 2, deadline=NOW + timedelta(minutes=1)))
    assert table.due(JobChanged, NOW) == []
    assert [j.id for j in table.due(JobChanged, NOW + timedelta(minutes=1))] == ["a"]
    table.save(job("a", 3, status="done", deadline=NOW - timedelta(minutes=1)))
    assert table.due(JobChanged, NOW + timedelta(days=1)) == []


def test_a_deleted_snapshot_is_kept_for_get_but_leaves_every_index(table):
    table.save(job("gone", 1, deadline=NOW - timedelta(minutes=1), names=["n"]))
    table.save(job("kept", 1, names=["n"]))
    deleted = table.get(JobChanged, "gone").as_deleted(NOW)
    table.save(deleted)
    assert table.get(JobChanged, "gone") == deleted and deleted.is_deleted and deleted.version == 2
    assert [j.id for j in table.list(JobChanged)] == ["kept"]
    assert [j.id for j in table.named(JobChanged, "n")] == ["kept"]
    assert table.due(JobChanged, NOW) == []
    assert table.apply(job("gone", 1, names=["n"])) is False  # a late older snapshot cannot bring it back
    assert [j.id for j in table.list(JobChanged)] == ["kept"]


def test_due_compares_times_in_any_zone_and_naive_ones_as_utc(table):
    table.save(job("a", deadline=NOW.astimezone(timezone(timedelta(hours=2)))))
    assert table.due(JobChanged, NOW.replace(tzinfo=None) - timedelta(microseconds=1)) == []
    assert [j.id for j in table.due(JobChanged, NOW.astimezone(timezone(timedelta(hours=-7))))] == ["a"]


def test_the_sweep_reads_the_overdue_jobs_only_however_many_jobs_ever_ran(subject):
    """Its cost is that of the open jobs: a thousand finished ones add no read at all."""
    table = subject.table

    def sweep_reads() -> tuple[list[str], int]:
        before = subject.reads()
        found = [j.id for j in table.due(JobChanged, NOW)]
        return found, subject.reads() - before

    table.save(job("overdue-1", deadline=NOW - timedelta(minutes=2)))
    table.save(job("overdue-2", deadline=NOW - timedelta(minutes=1)))
    table.save(job("not-yet", deadline=NOW + timedelta(minutes=1)))
    found, reads_with_none_finished = sweep_reads()
    assert found == ["overdue-1", "overdue-2"]

    for n in range(1000):
        table.save(job(f"done-{n:04}", status="done", deadline=NOW - timedelta(hours=1)))
    found, reads_with_a_thousand_finished = sweep_reads()
    assert found == ["overdue-1", "overdue-2"]
    assert reads_with_a_thousand_finished == reads_with_none_finished
    assert reads_with_none_finished <= 2 * 2  # each overdue job's index entry and row


# ---------------------------------------------------------------- names


def test_named_finds_a_snapshot_by_each_of_its_names_within_its_type(table):
    table.save(job("a", names=["x", "y"]))
    table.save(job("b", names=["y"]))
    table.save(OtherChanged(id="c", version=1, names=["x"]))
    assert [j.id for j in table.named(JobChanged, "x")] == ["a"]
    assert [j.id for j in table.named(JobChanged, "y")] == ["a", "b"]
    assert table.named(JobChanged, "z") == []
    assert [o.id for o in table.named(OtherChanged, "x")] == ["c"]


def test_a_name_dropped_by_a_later_version_no_longer_finds_it(subject):
    table = subject.table
    table.save(job("a", 1, names=["old", "kept"]))
    table.save(job("a", 2, names=["kept", "new"]))
    before = subject.reads()
    assert table.named(JobChanged, "old") == []
    assert subject.reads() == before  # its index entry went with the name, not only the answer
    assert [j.version for j in table.named(JobChanged, "kept")] == [2]
    assert [j.version for j in table.named(JobChanged, "new")] == [2]


def test_an_older_snapshot_that_arrives_late_claims_none_of_its_names(table):
    table.apply(job("a", 2, names=["current"]))
    assert not table.apply(job("a", 1, names=["stale"]))
    assert table.named(JobChanged, "stale") == []
    assert [j.version for j in table.named(JobChanged, "current")] == [2]


def test_a_deleted_snapshot_is_found_by_none_of_its_names(subject):
    table = subject.table
    table.apply(job("a", 0, names=["x"]))
    table.delete_if_version(job("a", 0))
    before = subject.reads()
    assert table.named(JobChanged, "x") == []
    assert subject.reads() == before
    table.apply(job("a", 1, names=["x"]))
    assert [j.id for j in table.named(JobChanged, "x")] == ["a"]


def test_a_very_long_name_still_finds_its_snapshot(table):
    long_name = "n" * 3000
    table.save(job("a", names=[long_name]))
    assert [j.id for j in table.named(JobChanged, long_name)] == ["a"]
    assert table.named(JobChanged, long_name[:-1]) == []


def test_a_lookup_reads_the_named_snapshot_only_however_many_others_there_are(subject):
    table = subject.table
    table.save(job("wanted", names=["endpoint-1"]))
    before = subject.reads()
    table.named(JobChanged, "endpoint-1")
    alone = subject.reads() - before
    for n in range(300):
        table.save(job(f"other-{n}", names=[f"endpoint-{n + 2}"]))
    before = subject.reads()
    assert [j.id for j in table.named(JobChanged, "endpoint-1")] == ["wanted"]
    assert subject.reads() - before == alone


def test_a_row_written_by_hand_with_stored_row_is_listed_like_any_other(mocked_aws):
    table = SnapshotTable(create_service_table("by-hand"), boto3.resource("dynamodb"))
    boto3.resource("dynamodb").Table("by-hand").put_item(
        Item=stored_row("Job", "a", version=1, data=job("a").model_dump_json())
    )
    assert table.list(JobChanged) == [job("a")] and table.get(JobChanged, "a") == job("a")
