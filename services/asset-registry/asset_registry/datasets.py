"""Datasets and their items: how they move, as pure functions of their snapshots.

Initialed (waiting for the client's uploads) -> Enabled once every file is in
the bucket; Disabled on request. The dataset and its items move together: one
snapshot (``DatasetChanged``, one version) holds both.
"""

from __future__ import annotations

from sdmw_contracts.events.assets import (
    DatasetChanged,
    DatasetCreationRequested,
    DatasetItem,
    DatasetItemChanged,
    DatasetStatus,
    Rejection,
)

Dataset = DatasetChanged
#: How datasets created before ``DatasetChanged.items`` existed keep their items: one snapshot each.
LegacyItem = DatasetItemChanged


def with_status(dataset: Dataset, status: DatasetStatus) -> Dataset:
    """The dataset and its items, moved to ``status``."""
    items = [item.model_copy(update={"status": status}) for item in dataset.items]
    return dataset.model_copy(
        update={"status": status, "items": items, "version": dataset.version + 1, "rejection": None}
    )


def with_items(dataset: Dataset, legacy: list[LegacyItem]) -> Dataset:
    """A dataset stored before it carried its items, with them (same version: nothing changed)."""
    if dataset.items or not legacy:
        return dataset
    items = [
        DatasetItem(
            name=item.name,
            type=item.type,
            key=item.key,
            s3_uri=item.s3_uri,
            original_filename=item.original_filename,
            status=item.status,
        )
        for item in legacy
    ]
    return dataset.model_copy(update={"items": items})


def missing_files(dataset: Dataset, stored: set[str]) -> list[str]:
    """Names of the items whose file (key) is not among ``stored`` keys."""
    return [item.name for item in dataset.items if item.key not in stored]


def rejected(dataset: Dataset, request_id: str, reason: str) -> Dataset:
    return dataset.model_copy(
        update={"version": dataset.version + 1, "rejection": Rejection(request_id=request_id, reason=reason)}
    )


def created_by(dataset: Dataset, command: DatasetCreationRequested) -> bool:
    """Whether ``dataset`` is what ``command`` created (a redelivery of it), not another creation of its name."""
    return dataset.created_at == command.requested_at and [item.name for item in dataset.items] == [
        spec.name for spec in command.items
    ]
