"""Datasets and their items: how they move, as pure functions of their snapshots.

Initialed (waiting for the client's uploads) -> Enabled once every file is in
the bucket; Disabled on request. The dataset and its items move together.
"""

from __future__ import annotations

from sdmw_contracts.events.assets import (
    DatasetChanged,
    DatasetCreationRequested,
    DatasetItemChanged,
    DatasetStatus,
    Rejection,
    dataset_item_id,
    dataset_prefix,
)

Dataset = DatasetChanged
Item = DatasetItemChanged
DATASET = Dataset.entity_type()
ITEM = Item.entity_type()


def new_dataset(command: DatasetCreationRequested, bucket: str) -> tuple[Dataset, list[Item]]:
    prefix = dataset_prefix(command.dataset_name)
    dataset = Dataset(
        id=command.dataset_name,
        version=1,
        status="Initialed",
        s3_location=f"s3://{bucket}/{prefix}",
        item_count=len(command.items),
        params=command.params,
        created_at=command.requested_at,
    )
    items = [
        Item(
            id=dataset_item_id(command.dataset_name, spec.name),
            version=1,
            dataset_name=command.dataset_name,
            name=spec.name,
            type=spec.type,
            key=prefix + spec.name,
            s3_uri=f"s3://{bucket}/{prefix}{spec.name}",
            original_filename=spec.original_filename,
            status="Initialed",
        )
        for spec in command.items
    ]
    return dataset, items


def with_status(dataset: Dataset, items: list[Item], status: DatasetStatus) -> tuple[Dataset, list[Item]]:
    """The dataset and those of its items not yet in ``status``, moved to it."""
    moved_items = [item.model_copy(update={"status": status, "version": item.version + 1}) for item in items]
    moved = dataset.model_copy(update={"status": status, "version": dataset.version + 1, "rejection": None})
    return moved, [item for item, old in zip(moved_items, items, strict=True) if old.status != status]


def rejected(dataset: Dataset, request_id: str, reason: str) -> Dataset:
    return dataset.model_copy(
        update={"version": dataset.version + 1, "rejection": Rejection(request_id=request_id, reason=reason)}
    )
