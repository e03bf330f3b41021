"""Message handlers: plain functions of (message, dependencies).

Each ends by publishing the current snapshots of what it touched, also when a
redelivery finds the work done, so a crash between saving and publishing loses
no event (stable event ids make the repeat harmless).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger

from asset_registry import SERVICE, checkpoints, datasets
from asset_registry.checkpoints import Checkpoint
from asset_registry.datasets import Dataset, LegacyItem
from asset_registry.imports import ImportFailed, ImportPolicy, open_download, stream_parts
from asset_registry.inspection import NotUsable, StoredFile, inspect_checkpoint
from asset_registry.storage import AssetStorage
from sdmw_contracts.envelope import EntityChanged, EventEnvelope
from sdmw_contracts.events import (
    CheckpointCreationRequested,
    CheckpointRegistrationRequested,
    CheckpointUpdateRequested,
    DatasetCreationRequested,
    DatasetUpdateRequested,
)
from sdmw_contracts.events.assets import (
    UNFINISHED_CHECKPOINT_AGE,
    CheckpointDeletionRequested,
    CheckpointFile,
    CheckpointImportRequested,
    CheckpointRenameRequested,
    DatasetDeletionRequested,
    checkpoint_prefix,
    dataset_item_id,
    dataset_prefix,
    model_lookup_name,
)
from sdmw_contracts.events.progress import JobProgress
from service_kit.consumer import Router
from service_kit.events import EventPublisher, publish_snapshots
from service_kit.messages import BusEvent
from service_kit.resources import SCHEDULED_EVENT
from service_kit.snapshots import SnapshotTable
from service_kit.storage import UploadRefused


class UnknownEntity(LookupError):
    """A command names something this service has not seen (yet): retry later."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Dependencies:
    snapshots: SnapshotTable
    storage: AssetStorage
    publisher: EventPublisher
    logger: Logger
    imports: ImportPolicy = field(default_factory=ImportPolicy)
    #: A checkpoint still Initialed this long after its creation is deleted by the sweep.
    unfinished_checkpoint_age: timedelta = UNFINISHED_CHECKPOINT_AGE
    clock: Callable[[], datetime] = _utc_now


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
    return _verified(current, deps)


def _verified(checkpoint: Checkpoint, deps: Dependencies) -> Checkpoint:
    """Active when its files are what its type says (read by ranges, never whole); else Failed with the reason."""
    stored = [
        StoredFile(
            name=file.filename,
            size=file.size if file.size is not None else deps.storage.object_size(file.key) or 0,
            read=lambda start, length, key=file.key: deps.storage.read_range(key, start, length),
        )
        for file in checkpoint.files
    ]
    try:
        found = inspect_checkpoint(checkpoint.checkpoint_type, stored)
    except NotUsable as not_usable:
        return checkpoints.failed(checkpoint, str(not_usable))
    return checkpoints.activated(checkpoint, found.architecture)


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
    """Files another service wrote (a trained model, a merge) become a checkpoint once found in S3: Active when
    they are what its type says, else Failed with the reason."""
    envelope = event.envelope()
    command = envelope.parse_data(CheckpointRegistrationRequested)
    checkpoint = deps.snapshots.get(Checkpoint, command.checkpoint_id)
    if checkpoint is None:
        registered = checkpoints.registered(command, _found_files(command, deps), version=0)
        checkpoint = _verified(registered, deps)  # version 1: Active, or Failed saying why
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


def on_checkpoint_import(event: BusEvent, deps: Dependencies) -> None:
    """Download the URL into the checkpoint's one file, then judge it like an upload: Active or Failed.

    A redelivery of an import that was cut short (the function timed out) starts the download over; one
    that finished publishes what it came to.
    """
    envelope = event.envelope()
    command = envelope.parse_data(CheckpointImportRequested)
    checkpoint = deps.snapshots.get(Checkpoint, command.checkpoint_id)
    if checkpoint is None:
        checkpoint = command.initial_snapshot(deps.storage.bucket, version=1)
        deps.snapshots.save(checkpoint)
        _publish([checkpoint], checkpoint.id, envelope, deps)
    if checkpoint.status == "Initialed" and not checkpoint.is_deleted:
        checkpoint = _imported(checkpoint, command.url, envelope, deps)
        deps.snapshots.save(checkpoint)
    _publish([checkpoint], checkpoint.id, envelope, deps)


def _imported(checkpoint: Checkpoint, url: str, cause: EventEnvelope, deps: Dependencies) -> Checkpoint:
    [file] = checkpoint.files
    deps.storage.abort_uploads_under(file.key)  # the parts of an earlier, interrupted try
    upload_id = deps.storage.start_upload(file.key)
    checkpoint = checkpoints.with_upload(checkpoint, upload_id)
    etags: list[str] = []
    started_at = deps.clock()

    def put_part(number: int, body: bytes) -> None:
        etags.append(deps.storage.upload_part(file.key, upload_id, number, body))

    def report(received: int, elapsed_s: float) -> None:
        nonlocal checkpoint
        checkpoint = checkpoints.with_progress(
            checkpoint, _download_progress(received, download.announced_bytes, elapsed_s, started_at, deps)
        )
        deps.snapshots.save(checkpoint)
        _publish([checkpoint], checkpoint.id, cause, deps)

    try:
        download = open_download(url, deps.imports)
        size = stream_parts(download, deps.imports, put_part, report)
    except ImportFailed as failure:
        deps.storage.abort_upload(file.key, upload_id)
        return checkpoints.failed(checkpoint, str(failure))
    except BaseException:
        deps.storage.abort_upload(file.key, upload_id)
        raise
    deps.storage.complete_parts(file.key, upload_id, etags)
    return _verified(checkpoints.with_file_completed(checkpoint, file.filename, size), deps)


def _download_progress(
    received: int, total: int, elapsed_s: float, started_at: datetime, deps: Dependencies
) -> JobProgress:
    fraction = min(1.0, received / total) if total else 0.0
    rate = received / elapsed_s if elapsed_s > 0 else 0
    return JobProgress(
        phase="download",
        step=received,
        total_steps=total,
        fraction=fraction,
        elapsed_s=elapsed_s,
        eta_s=(total - received) / rate if total and rate else None,
        reported_at=started_at + timedelta(seconds=elapsed_s),
    )


def on_checkpoint_rename(event: BusEvent, deps: Dependencies) -> None:
    """The checkpoint answers to the new name (its S3 keys stay); refused when the name is taken or unfit."""
    envelope = event.envelope()
    command = envelope.parse_data(CheckpointRenameRequested)
    checkpoint = deps.snapshots.get(Checkpoint, command.checkpoint_id)
    if checkpoint is None:
        raise UnknownEntity(f"rename of checkpoint {command.checkpoint_id} arrived before its creation")
    answered = checkpoint.rejection is not None and checkpoint.rejection.request_id == command.request_id
    if not answered and not checkpoint.is_deleted and checkpoints.current_name(checkpoint) != command.new_name:
        problem = checkpoints.rename_problem(checkpoint, command.new_name) or _name_taken(
            checkpoint, command.new_name, deps
        )
        if problem:
            checkpoint = checkpoints.rejected(checkpoint, command.request_id, problem)
        else:
            checkpoint = checkpoints.renamed(checkpoint, command.new_name)
        deps.snapshots.save(checkpoint)
    _publish([checkpoint], checkpoint.id, envelope, deps)


def _name_taken(checkpoint: Checkpoint, name: str, deps: Dependencies) -> str | None:
    lookup = model_lookup_name(checkpoint.checkpoint_type, name)
    for other in deps.snapshots.named(Checkpoint, lookup):
        if other.id != checkpoint.id and not other.is_deleted and other.model_named(name):
            return f"another {checkpoint.checkpoint_type} checkpoint ({other.id}) is named {name}"
    return None


def on_checkpoint_deletion(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(CheckpointDeletionRequested)
    checkpoint = deps.snapshots.get(Checkpoint, command.checkpoint_id)
    if checkpoint is None:
        raise UnknownEntity(f"deletion of checkpoint {command.checkpoint_id} arrived before its creation")
    checkpoint = _deleted(checkpoint, deps)
    _publish([checkpoint], checkpoint.id, envelope, deps)


def _deleted(checkpoint: Checkpoint, deps: Dependencies) -> Checkpoint:
    """The checkpoint's objects gone and its open uploads aborted, then its last snapshot saved; safe to repeat."""
    if checkpoint.is_deleted:
        return checkpoint
    ours = [file for file in checkpoint.files if file.s3_uri.startswith(f"s3://{deps.storage.bucket}/")]
    for file in ours:
        if file.upload_id:
            deps.storage.abort_upload(file.key, file.upload_id)
    # An import that was cut short may have left an upload the snapshot never recorded.
    deps.storage.abort_uploads_under(checkpoint_prefix(checkpoint.checkpoint_type, checkpoint.id))
    deps.storage.delete_keys([file.key for file in ours])
    deleted = checkpoint.as_deleted(deps.clock())
    deps.snapshots.save(deleted)
    return deleted


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


def on_dataset_deletion(event: BusEvent, deps: Dependencies) -> None:
    """Every object under the dataset's prefix goes, then its last snapshot is saved; safe to repeat."""
    envelope = event.envelope()
    command = envelope.parse_data(DatasetDeletionRequested)
    dataset = deps.snapshots.get(Dataset, command.dataset_name)
    if dataset is None:
        raise UnknownEntity(f"deletion of dataset {command.dataset_name} arrived before its creation")
    if not dataset.is_deleted:
        deps.storage.delete_under(dataset_prefix(dataset.id))
        dataset = dataset.as_deleted(deps.clock())
        deps.snapshots.save(dataset)
    _publish([dataset], dataset.id, envelope, deps)


# ---------------------------------------------------------------- the sweep


def on_sweep(event: BusEvent, deps: Dependencies) -> None:
    """Delete the checkpoints whose upload never completed (still Initialed ``unfinished_checkpoint_age`` on).

    ``CheckpointChanged.due_at`` is its creation plus UNFINISHED_CHECKPOINT_AGE; asking for those due by
    ``now`` shifted by the difference takes the setting's age instead.
    """
    now = deps.clock()
    due_by = now - deps.unfinished_checkpoint_age + UNFINISHED_CHECKPOINT_AGE
    for checkpoint in deps.snapshots.due(Checkpoint, due_by):
        if checkpoint.status != "Initialed":
            continue
        deps.logger.info(
            "deleting a checkpoint whose upload never completed",
            extra={"checkpoint_id": checkpoint.id, "created_at": checkpoint.created_at.isoformat()},
        )
        deleted = _deleted(checkpoint, deps)
        _publish([deleted], deleted.id, None, deps)


# ---------------------------------------------------------------- wiring


def _publish(
    snapshots: Sequence[EntityChanged], correlation_id: str, cause: EventEnvelope | None, deps: Dependencies
) -> None:
    publish_snapshots(deps.publisher, snapshots, producer=SERVICE, correlation_id=correlation_id, cause=cause)


def router(deps: Dependencies) -> Router:
    return (
        Router()
        .on_event(CheckpointCreationRequested.detail_type(), lambda e: on_checkpoint_creation(e, deps))
        .on_event(CheckpointUpdateRequested.detail_type(), lambda e: on_checkpoint_update(e, deps))
        .on_event(CheckpointRegistrationRequested.detail_type(), lambda e: on_checkpoint_registration(e, deps))
        .on_event(DatasetCreationRequested.detail_type(), lambda e: on_dataset_creation(e, deps))
        .on_event(DatasetUpdateRequested.detail_type(), lambda e: on_dataset_update(e, deps))
        .on_event(CheckpointImportRequested.detail_type(), lambda e: on_checkpoint_import(e, deps))
        .on_event(CheckpointRenameRequested.detail_type(), lambda e: on_checkpoint_rename(e, deps))
        .on_event(CheckpointDeletionRequested.detail_type(), lambda e: on_checkpoint_deletion(e, deps))
        .on_event(DatasetDeletionRequested.detail_type(), lambda e: on_dataset_deletion(e, deps))
        .on_event(SCHEDULED_EVENT, lambda e: on_sweep(e, deps))
    )
