"""The read model: the latest snapshot of every entity, built from ``*Changed`` events.

The edge writes an initial snapshot (version 0) of what it creates once it
has sent the command, before it answers, so a read right after a create finds
it; the owner's events (version 1 and up) replace it, whichever comes first. Snapshots are applied only when
newer, so order and duplicates do not matter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sdmw_contracts.envelope import EntityChanged
from sdmw_contracts.events import ALL_EVENTS, DatasetChanged, DatasetItemChanged, EndpointDeploymentChanged
from sdmw_contracts.events.assets import DatasetItem, dataset_item_id
from service_kit.consumer import Router
from service_kit.logging import get_logger
from service_kit.messages import BusEvent
from service_kit.snapshots import SnapshotTable

S = TypeVar("S", bound=EntityChanged)

_logger = get_logger("api-gateway")


class ReadModel:
    def __init__(self, table: SnapshotTable) -> None:
        self._table = table
        #: Items lists skipped because they could not be read, since this process started; each skip is
        #: logged with the running total (``unreadable_items_total``, metric ``UnreadableReadModelItems``).
        self.unreadable_items = 0
        self._count_lock = threading.Lock()

    def apply(self, snapshot: EntityChanged) -> bool:
        if isinstance(snapshot, DatasetChanged) and snapshot.items:
            # The items (thousands, maybe) in a row of their own, first; the dataset's row stays small for
            # the lists and the edge's polling.
            self._table.apply(_DatasetItems(id=snapshot.id, version=snapshot.version, items=snapshot.items))
            snapshot = snapshot.model_copy(update={"items": []})
        return self._table.apply(snapshot)

    def get(self, model: type[S], entity_id: str) -> S | None:
        """The entity as last seen; None when it never was, or was deleted."""
        snapshot = self._table.get(model, entity_id)
        return None if snapshot is None or snapshot.is_deleted else snapshot

    # The edge's own rows (``api_gateway.idempotency``): written in version order, never published.

    def record(self, snapshot: EntityChanged) -> None:
        """Store the edge's own row; StaleWrite when another writer got to that version first."""
        self._table.save(snapshot)

    def forget(self, snapshot: EntityChanged) -> None:
        """Remove the edge's own row, unless something newer was written since."""
        self._table.delete_if_version(snapshot)

    def list(self, model: type[S], id_prefix: str | None = None) -> list[S]:
        """Every readable snapshot: an item that cannot be read is skipped, logged and counted, so one bad
        item never fails a list for everyone."""
        return self._table.list(model, id_prefix, on_unreadable=self._skip_unreadable)

    def named(self, model: type[S], name: str) -> list[S]:
        """The snapshots ``lookup_names`` finds by ``name``; reads those only, not the whole type."""
        return [snapshot for snapshot in self._table.named(model, name) if not snapshot.is_deleted]

    def _skip_unreadable(self, item: dict[str, Any], error: Exception) -> None:
        with self._count_lock:
            self.unreadable_items += 1
            total = self.unreadable_items
        _logger.error(
            "skipped an unreadable read-model item",
            extra={
                "metric": "UnreadableReadModelItems",
                "entity_type": _printable(item.get("entity_type")),
                "entity_id": _printable(item.get("entity_id")),
                "error": _printable(f"{type(error).__name__}: {error}", 500),
                "unreadable_items_total": total,
            },
        )

    def wait_for(self, model: type[S], entity_id: str, done: Callable[[S], bool], timeout_s: float) -> S | None:
        """Poll until the entity satisfies ``done`` or time runs out; the last seen snapshot.

        An owner usually answers within tens of milliseconds, so the first polls come quickly; the pause
        then grows by half each time up to ``max_pause_s``, which bounds both how late a slow answer (a
        large upload being completed) is seen and how many reads a long wait costs. A deleted entity is
        answered too: a wait after a delete waits for exactly that snapshot.
        """
        first_pause_s, growth, max_pause_s = 0.01, 1.5, 0.1
        deadline = time.monotonic() + timeout_s
        pause_s = first_pause_s
        while True:
            current = self._table.get(model, entity_id)
            left_s = deadline - time.monotonic()
            if (current is not None and done(current)) or left_s <= 0:
                return current
            time.sleep(min(pause_s, left_s))
            pause_s = min(pause_s * growth, max_pause_s)

    # Queries the routes need, kept here so routes stay thin.

    def dataset_items(self, dataset_name: str) -> list[DatasetItem] | None:
        """The dataset's items; None when there is no such dataset.

        ``DatasetChanged`` carries its items, kept here in a row of their own (``DatasetItems``) while
        ``get(DatasetChanged, ...)`` answers the dataset without them; a dataset projected before it carried
        them has them as ``DatasetItemChanged`` snapshots of their own.
        """
        dataset = self.get(DatasetChanged, dataset_name)
        if dataset is None:
            return None
        kept = self._table.get(_DatasetItems, dataset_name)
        if kept is not None:
            return kept.items
        if dataset.items or dataset.item_count == 0:
            return dataset.items
        legacy = self.list(DatasetItemChanged, id_prefix=dataset_item_id(dataset_name, ""))
        fields = DatasetItem.model_fields
        return [DatasetItem.model_validate(item.model_dump(include=set(fields))) for item in legacy]

    def endpoint_jobs(self) -> list[EndpointDeploymentChanged]:
        return sorted(self.list(EndpointDeploymentChanged), key=lambda job: job.start_time, reverse=True)

    def endpoint_job_named(self, endpoint_name: str, *, include_failed: bool) -> EndpointDeploymentChanged | None:
        """The newest job for an endpoint name that still stands for an endpoint."""
        ended = {"deleted"} if include_failed else {"deleted", "failed"}
        standing = [job for job in self.named(EndpointDeploymentChanged, endpoint_name) if job.status not in ended]
        return max(standing, key=lambda job: job.start_time, default=None)


def _printable(value: Any, limit: int = 128) -> str:
    return str(value)[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


class _DatasetItems(EntityChanged):
    """The read model's own row of a dataset's items, versioned with the dataset (not an event)."""

    items: list[DatasetItem]

    @classmethod
    def entity_type(cls) -> str:
        return "DatasetItems"


def projection_router(read_model: ReadModel) -> Router:
    """Every ``*Changed`` event in the contracts is applied to the read model."""
    router = Router()
    for name, model in ALL_EVENTS.items():
        if issubclass(model, EntityChanged):
            router.on_event(name, _projector(read_model, model))
    return router


def _projector(read_model: ReadModel, model: type[EntityChanged]) -> Callable[[BusEvent], None]:
    def project(event: BusEvent) -> None:
        read_model.apply(event.envelope().parse_data(model))

    return project
