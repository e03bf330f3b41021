"""Message handlers: plain functions of (message, dependencies).

Each ends by publishing the current snapshots of what it touched, also when a
redelivery finds the work done, so a crash between saving and publishing loses
no event (stable event ids make the repeat harmless).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from asset_registry import SERVICE, checkpoints, datasets
from asset_registry.checkpoints import Checkpoint
from asset_registry.datasets import Dataset, LegacyItem
from sdmw_contracts.envelope import EntityChanged, EventEnvelope
from sdmw_contracts.events import (
    CheckpointCreationRequested,
    CheckpointRegistrationRequested,
    CheckpointUpdateRequested,
    DatasetCreationRequested,
    DatasetUpdateRequested,
)
from sdmw_contracts.events.assets import CheckpointFile, checkpoint_prefix, dataset_item_id, dataset_prefix
from service_kit.consumer import Router
from service_kit.events import EventPublisher, publish_snapshots
from service_kit.messages import BusEvent
from service_kit.snapshots import SnapshotTable
from service_kit.storage import Storage, UploadRefused


class UnknownEntity(LookupError):
    """A command names something this service has not seen (yet): retry later."""


@dataclass
class Dependencies:
    snapshots: SnapshotTable
    storage: Storage
    publisher: EventPublisher
    logger: Logger


# ---------------------------------------------------------------- checkpoints


def on_checkpoint_creation(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(CheckpointCreationRequested)
    checkpoint = deps.snapshots.get(Checkpoint, command.checkpoint_id)
    if checkpoint is None:
        # An upload left open by a crash before the save below is aborted by
        # the bucket's lifecycle rule for incomplete multipart uploads.
        prefix = checkpoint_prefix(command.checkpoint_type, command.checkpoint_id)
        upload_ids = {f.filename: deps.storage.start_upload(prefix + f.filename) for f in command.files}
        checkpoint = command.initial_snapshot(deps.storage.bucket, version=1, upload_ids=upload_ids)
        deps.snapshots.save(checkpoint)
    _publish([checkpoint], checkpoint.id, envelope, deps)


def on_checkpoint_update(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(CheckpointUpdateRequested)
    checkpoint = deps.snapshots.get(Checkpoint, command.checkpoint_id)
    if checkpoint is None:
        raise UnknownEntity(f"update of checkpoint {command.checkpoint_id} arrived before its creation")
    updated = _disable(checkpoint, deps) if command.status == "Disabled" else _activate(checkpoint, command, deps)
    if updated is not checkpoint:
        deps.snapshots.save(updated)
    _publish([updated], updated.id, envelope, deps)


def _disable(checkpoint: Checkpoint, deps: Dependencies) -> Checkpoint:
    if checkpoint.status == "Disabled":
        return checkpoint
    for file in checkpoint.files:
        if file.upload_id:
            deps.storage.abort_upload(file.key, file.upload_id)
    return checkpoints.disabled(checkpoint)


def _activate(checkpoint: Checkpoint, command: CheckpointUpdateRequested, deps: Dependencies) -> Checkpoint:
    if checkpoint.rejection and checkpoint.rejection.request_id == command.request_id:
        return checkpoint  # this request was already refused
    if checkpoint.status != "Initialed":
        return checkpoints.rejected(checkpoint, command.request_id, f"checkpoint is {checkpoint.status}, not Initialed")
    problem = checkpoints.tag_problems(checkpoint, set(command.multi_parts_tags))
    if problem:
        return checkpoints.rejected(checkpoint, command.request_id, problem)
    current, refusals = _complete_uploads(checkpoint, command, deps)
    if refusals:
        # Files completed here stay completed; the retry finishes the rest.
        return checkpoints.rejected(current, command.request_id, "; ".join(refusals))
    return checkpoints.activated(current)


#: Uploads completed at once: each completion waits on S3 joining the parts, not on this process.
COMPLETION_THREADS = 8


def _complete_uploads(
    checkpoint: Checkpoint, command: CheckpointUpdateRequested, deps: Dependencies
) -> tuple[Checkpoint, list[str]]:
    """Complete every open upload at once; the checkpoint with those that completed, and why others were refused.

    Any other error is raised once all have finished (the message is retried; completing is safe to repeat).
    """
    open_files = [file for file in checkpoint.files if file.upload_id]

    def complete(file: CheckpointFile) -> int | UploadRefused:
        tags = command.multi_parts_tags[file.filename]
        try:
            return deps.storage.complete_upload(file.key, file.upload_id or "", tags, file.parts_number)
        except UploadRefused as refused:
            return refused

    with ThreadPoolExecutor(max_workers=min(COMPLETION_THREADS, len(open_files) or 1)) as pool:
        outcomes = list(pool.map(complete, open_files))
    current, refusals = checkpoint, []
    for file, outcome in zip(open_files, outcomes, strict=True):
        if isinstance(outcome, UploadRefused):
            refusals.append(str(outcome))
        else:
            current = checkpoints.with_file_completed(current, file.filename, outcome)
    return current, refusals


def on_checkpoint_registration(event: BusEvent, deps: Dependencies) -> None:
    """Files another service wrote (a trained model, a merge) become an Active checkpoint once found in S3."""
    envelope = event.envelope()
    command = envelope.parse_data(CheckpointRegistrationRequested)
    checkpoint = deps.snapshots.get(Checkpoint, command.checkpoint_id)
    if checkpoint is None:
        checkpoint = checkpoints.registered(command, _found_files(command, deps), version=1)
        deps.snapshots.save(checkpoint)
    _publish([checkpoint], checkpoint.id, envelope, deps)


def _found_files(command: CheckpointRegistrationRequested, deps: Dependencies) -> dict[str, int]:
    """Name under the prefix -> size; raises (so the message is retried, then dead-lettered) if any is missing."""
    bucket, prefix = checkpoints.split_location(command.s3_location)
    if bucket != deps.storage.bucket:
        raise UploadRefused(f"{command.s3_location} is not in the project's bucket {deps.storage.bucket}")
    found = {key[len(prefix) :]: size for key, size in deps.storage.objects_under(prefix).items()}
    found = {name: size for name, size in found.items() if name and not name.endswith("/")}
    if command.filenames:
        missing = [name for name in command.filenames if name not in found]
        if missing:
            raise UploadRefused(f"{command.s3_location}: not found: {', '.join(missing)}")
        return {name: found[name] for name in command.filenames}
    if not found:
        raise UploadRefused(f"{command.s3_location}: there are no objects under that prefix")
    return found


# ---------------------------------------------------------------- datasets


def on_dataset_creation(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(DatasetCreationRequested)
    dataset = _dataset(command.dataset_name, deps)
    if dataset is None:
        dataset = command.initial_snapshot(deps.storage.bucket, version=1)
        deps.snapshots.save(dataset)
    elif not datasets.created_by(dataset, command):
        # The edge claims a name before it sends a creation, so a second creation of a name never gets
        # here unless that claim failed (its read model lost, another sender): the first stays, and
        # this one is said, never silently dropped.
        deps.logger.error(
            "a second creation of a dataset name was not applied: the dataset it names exists",
            extra={
                "metric": "RefusedDatasetCreations",
                "dataset_name": dataset.id,
                "created_at": dataset.created_at.isoformat(),
                "refused_requested_at": command.requested_at.isoformat(),
                "refused_items": len(command.items),
            },
        )
    _publish([dataset], dataset.id, envelope, deps)


def on_dataset_update(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(DatasetUpdateRequested)
    dataset = _dataset(command.dataset_name, deps)
    if dataset is None:
        raise UnknownEntity(f"update of dataset {command.dataset_name} arrived before its creation")
    if dataset.status == command.status or (dataset.rejection and dataset.rejection.request_id == command.request_id):
        _publish([dataset], dataset.id, envelope, deps)
        return
    if command.status == "Enabled":
        # One listing of the dataset's prefix, not one request per item.
        missing = datasets.missing_files(dataset, set(deps.storage.objects_under(dataset_prefix(dataset.id))))
        if missing:
            dataset = datasets.rejected(dataset, command.request_id, _missing_reason(missing))
            deps.snapshots.save(dataset)
            _publish([dataset], dataset.id, envelope, deps)
            return
    dataset = datasets.with_status(dataset, command.status)
    deps.snapshots.save(dataset)
    _publish([dataset], dataset.id, envelope, deps)


def _missing_reason(missing: list[str], shown: int = 20) -> str:
    more = f" and {len(missing) - shown} more" if len(missing) > shown else ""
    return f"files not uploaded yet: {', '.join(missing[:shown])}{more}"


def _dataset(dataset_name: str, deps: Dependencies) -> Dataset | None:
    """The dataset with its items; those stored before datasets carried their items are read from their rows."""
    dataset = deps.snapshots.get(Dataset, dataset_name)
    if dataset is None or dataset.items or dataset.item_count == 0:
        return dataset
    return datasets.with_items(dataset, deps.snapshots.list(LegacyItem, id_prefix=dataset_item_id(dataset_name, "")))


# ---------------------------------------------------------------- wiring


def _publish(snapshots: Sequence[EntityChanged], correlation_id: str, cause: EventEnvelope, deps: Dependencies) -> None:
    publish_snapshots(deps.publisher, snapshots, producer=SERVICE, correlation_id=correlation_id, cause=cause)


def router(deps: Dependencies) -> Router:
    return (
        Router()
        .on_event(CheckpointCreationRequested.detail_type(), lambda e: on_checkpoint_creation(e, deps))
        .on_event(CheckpointUpdateRequested.detail_type(), lambda e: on_checkpoint_update(e, deps))
        .on_event(CheckpointRegistrationRequested.detail_type(), lambda e: on_checkpoint_registration(e, deps))
        .on_event(DatasetCreationRequested.detail_type(), lambda e: on_dataset_creation(e, deps))
        .on_event(DatasetUpdateRequested.detail_type(), lambda e: on_dataset_update(e, deps))
    )
