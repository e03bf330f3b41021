"""Test doubles of service_kit's AWS-backed parts, for fast handler unit tests.

``InMemorySnapshotTable`` is a fake (a test double) of ``snapshots.SnapshotTable``:
the same methods with the same behaviour (versions, conditional ``apply`` and
``save``, ``StaleWrite``, ``list``, ``due``, ``named``), kept in a dict. The
behavioural tests in ``tests/unit/service_kit/test_snapshot_table.py`` run
against both, so the two cannot drift apart. Integration tests use the real
table on the emulator.

It counts what it reads in ``items_read``: the index entries and rows the real
table's queries and gets would return, so a test can show what a lookup costs.
(The real table may also meet a name claim left by a write that lost a race,
which it reads and drops; the fake has none.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sdmw_contracts.envelope import EntityChanged
from service_kit.resources import BY_TYPE
from service_kit.snapshots import StaleWrite, due_key, entity_key, snapshot_json

S = TypeVar("S", bound=EntityChanged)


@dataclass(frozen=True)
class _Stored:
    version: int
    data: str
    due: str | None  # due_key of its due time, None when it has none
    names: frozenset[str]
    indexed: bool  # False for a deleted entity: its row is kept, but no index holds it


def stored_row(entity_type: str, entity_id: str, **attributes: Any) -> dict[str, Any]:
    """An entity's row as ``SnapshotTable`` keys it, with ``attributes`` (``version``, ``data``): for a test that
    writes a row by hand, an unreadable one say, into a real table."""
    return {
        **entity_key(entity_type, entity_id),
        BY_TYPE.partition_key: entity_type,
        BY_TYPE.sort_key: entity_id,
        **attributes,
    }


class InMemorySnapshotTable:
    """A fake ``SnapshotTable`` in memory; for unit tests only."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], _Stored] = {}
        self._lock = threading.Lock()
        #: Index entries and rows read so far.
        self.items_read = 0

    # ------------------------------------------------------------ reads

    def get(self, model: type[S], entity_id: str) -> S | None:
        stored = self._read(model.entity_type(), entity_id)
        return None if stored is None else model.model_validate_json(stored.data)

    def list(
        self,
        model: type[S],
        id_prefix: str | None = None,
        on_unreadable: Callable[[dict[str, Any], Exception], None] | None = None,
    ) -> list[S]:
        kind = model.entity_type()
        found = []
        for entity_id, stored in self._of_type(kind):
            if id_prefix and not entity_id.startswith(id_prefix):
                continue
            self.items_read += 1
            try:
                found.append(model.model_validate_json(stored.data))
            except Exception as error:
                if on_unreadable is None:
                    raise
                item = {"pk": f"{kind}#{entity_id}", "entity_type": kind, "entity_id": entity_id, "data": stored.data}
                on_unreadable(item, error)
        return found

    def due(self, model: type[S], now: datetime) -> list[S]:
        kind, cutoff = model.entity_type(), due_key(now)
        entries = sorted(
            (stored.due, entity_id)
            for entity_id, stored in self._of_type(kind)
            if stored.due is not None and stored.due <= cutoff
        )
        self.items_read += len(entries)  # the index's entries, then each row
        found = (self.get(model, entity_id) for _, entity_id in entries)
        return [s for s in found if s is not None and (d := s.due_at()) is not None and due_key(d) <= cutoff]

    def named(self, model: type[S], name: str) -> list[S]:
        ids = [entity_id for entity_id, stored in self._of_type(model.entity_type()) if name in stored.names]
        self.items_read += len(ids)
        found = (self.get(model, entity_id) for entity_id in ids)
        return [s for s in found if s is not None and name in s.lookup_names()]

    def _read(self, kind: str, entity_id: str) -> _Stored | None:
        stored = self._rows.get((kind, entity_id))
        self.items_read += stored is not None
        return stored

    def _of_type(self, kind: str) -> Iterator[tuple[str, _Stored]]:
        """The stored entities of a type, in id order (as the index holds them); counts nothing."""
        with self._lock:
            rows = sorted(
                (entity_id, stored) for (k, entity_id), stored in self._rows.items() if k == kind and stored.indexed
            )
        yield from rows

    # ------------------------------------------------------------ writes

    def apply(self, snapshot: EntityChanged) -> bool:
        with self._lock:
            held = self._rows.get(_key(snapshot))
            if held is not None and held.version >= snapshot.version:
                return False
            self._rows[_key(snapshot)] = _stored(snapshot)
            return True

    def save(self, *snapshots: EntityChanged) -> None:
        for snapshot in snapshots:
            with self._lock:
                held = self._rows.get(_key(snapshot))
                version = snapshot.version
                # As the table's condition: the first versions (0, 1) create, any later one follows its predecessor.
                follows = held is None if version <= 1 else held is not None and held.version == version - 1
                if not follows:
                    kind = snapshot.entity_type()
                    raise StaleWrite(f"{kind} {snapshot.id} changed while version {version} was written")
                self._rows[_key(snapshot)] = _stored(snapshot)

    def delete_if_version(self, snapshot: EntityChanged) -> None:
        with self._lock:
            held = self._rows.get(_key(snapshot))
            if held is not None and held.version == snapshot.version:
                del self._rows[_key(snapshot)]


def _key(snapshot: EntityChanged) -> tuple[str, str]:
    return snapshot.entity_type(), snapshot.id


def _stored(snapshot: EntityChanged) -> _Stored:
    """As ``SnapshotTable`` stores it: a deleted entity's row is in no index (no type, due time or names)."""
    due = None if snapshot.is_deleted else snapshot.due_at()
    return _Stored(
        version=snapshot.version,
        data=snapshot_json(snapshot),
        due=None if due is None else due_key(due),
        names=frozenset() if snapshot.is_deleted else frozenset(snapshot.lookup_names()),
        indexed=not snapshot.is_deleted,
    )
