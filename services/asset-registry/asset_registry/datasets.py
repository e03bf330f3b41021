"""Datasets and their items: how they move, as pure functions of their snapshots.

Initialed (waiting for the client's uploads) -> Enabled once every file is in
the bucket; Disabled on request. The dataset and its items move together.
"""

from __future__ import annotations

from sdmw_contracts.events.assets import DatasetChanged, DatasetItemChanged, DatasetStatus, Rejection

Dataset = DatasetChanged
Item = DatasetItemChanged


def with_status(dataset: Dataset, items: list[Item], status: DatasetStatus) -> tuple[Dataset, list[Item]]:
    """The dataset and those of its items not yet in ``status``, moved to it."""
    moved_items = [item.model_copy(update={"status": status, "version": item.version + 1}) for item in items]
    moved = dataset.model_copy(update={"status": status, "version": dataset.version + 1, "rejection": None})
    return moved, [item for item, old in zip(moved_items, items, strict=True) if old.status != status]


def rejected(dataset: Dataset, request_id: str, reason: str) -> Dataset:
    return dataset.model_copy(
        update={"version": dataset.version + 1, "rejection": Rejection(request_id=request_id, reason=reason)}
    )
