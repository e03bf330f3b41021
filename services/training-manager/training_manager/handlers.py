"""Message handlers: plain functions of (message, dependencies).

Each ends by publishing the current snapshot of what it touched, also when a
redelivery finds the work done, so a crash between saving and publishing loses
no event (stable event ids make the repeat harmless). SageMaker is asked to
start a job before the job is saved as started; starting it again after a
crash finds it already there (its name comes from the entity's id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import (
    CheckpointRegistrationRequested,
    ModelCreationRequested,
    ModelUpdateRequested,
    TrainJobRequested,
    TrainJobUpdateRequested,
)
from sdmw_contracts.events.progress import TrainingProgressReported
from sdmw_contracts.events.sagemaker import SageMakerTrainingJobStateChange
from sdmw_contracts.events.training import (
    CHECKPOINT_TYPE_OF,
    ModelDeletionRequested,
    TrainJobCancelRequested,
    TrainJobDeletionRequested,
    input_prefix,
    model_prefix,
    train_prefix,
)
from sdmw_contracts.s3 import split_s3_uri
from service_kit.consumer import Router
from service_kit.events import EventPublisher, outgoing, publish_snapshots
from service_kit.messages import BusEvent
from service_kit.resources import SCHEDULED_EVENT
from service_kit.snapshots import SnapshotTable, StaleWrite
from service_kit.storage import Storage, UploadRefused
from training_manager import SERVICE, jobs
from training_manager.files import JobFiles
from training_manager.jobs import Model, TrainJob
from training_manager.sagemaker import (
    TrainingGateway,
    TrainingJobSpec,
    TrainingRefused,
    TrainingSettings,
    model_creation_spec,
    training_spec,
)


class UnknownEntity(LookupError):
    """A command names something this service has not seen (yet): retry later."""


@dataclass
class Dependencies:
    snapshots: SnapshotTable
    storage: Storage
    training: TrainingGateway
    settings: TrainingSettings
    publisher: EventPublisher
    logger: Logger
    files: JobFiles
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


#: How often a write that lost a race (StaleWrite) is tried again on the fresh snapshot before the
#: message is left to be redelivered: progress reports change a running job about once a second.
_WRITE_ATTEMPTS = 5


# ---------------------------------------------------------------- models


def on_model_creation(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(ModelCreationRequested)
    model = deps.snapshots.get(Model, command.model_id)
    if model is None:
        # An upload left open by a crash before the save is aborted by the bucket's lifecycle rule.
        uploads = input_prefix(model_prefix(command.model_id))
        upload_ids = {f.filename: deps.storage.start_upload(uploads + f.filename) for f in command.files}
        model = command.initial_snapshot(deps.storage.bucket, version=1, upload_ids=upload_ids)
        deps.snapshots.save(model)
    _publish(model, envelope, deps)


def on_model_update(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(ModelUpdateRequested)
    _update(Model, command.model_id, command, envelope, deps, lambda model: _start_creation(model, command, deps))


def _update(
    kind: type[jobs.J],
    job_id: str,
    command: ModelUpdateRequested | TrainJobUpdateRequested,
    envelope: EventEnvelope,
    deps: Dependencies,
    start: Callable[[jobs.J], jobs.J],
) -> None:
    """Start the job or give it up, as the client asked; a request already refused is not tried again."""
    job = deps.snapshots.get(kind, job_id)
    if job is None:
        raise UnknownEntity(f"update of {kind.entity_type()} {job_id} arrived before its creation")
    if job.is_deleted:
        if not jobs.was_answered(job, command.request_id):
            job = jobs.rejected(job, command.request_id, f"{kind.entity_type()} {job.id} was deleted")
            deps.snapshots.save(job)
    elif not jobs.was_answered(job, command.request_id):
        updated = _give_up(job, deps) if command.status == "Fail" else start(job)
        if updated is not job:
            deps.snapshots.save(updated)
            job = updated
    _publish(job, envelope, deps)


def _start_creation(model: Model, command: ModelUpdateRequested, deps: Dependencies) -> Model:
    if model.status != "Initialed":
        if model.status in {"Creating", "Complete"}:
            return model  # already started: this is a repeat
        return jobs.rejected(model, command.request_id, f"model {model.id} is {model.status}, not Initialed")
    current = model
    for file in model.files:
        if not file.upload_id:
            continue
        tags = command.multi_parts_tags.get(file.filename)
        if not tags:
            return jobs.rejected(current, command.request_id, f"multi_parts_tags has no parts for {file.filename}")
        try:
            size = deps.storage.complete_upload(file.key, file.upload_id, tags, file.parts_number)
        except UploadRefused as refused:
            return jobs.rejected(current, command.request_id, str(refused))
        current = jobs.with_upload_completed(current, file.filename, size)
    return _start(current, model_creation_spec(current, deps.settings), deps)


def _start(job: jobs.J, spec: TrainingJobSpec, deps: Dependencies) -> jobs.J:
    try:
        deps.training.start(spec)
    except TrainingRefused as refused:
        deps.logger.warning("training job refused", extra={"job": spec.name, "reason": str(refused)})
        return jobs.failed(job, str(refused), deps.clock())
    return jobs.started(job, spec.name, deps.clock())


def _give_up(job: jobs.J, deps: Dependencies) -> jobs.J:
    """The client abandons the job: stop what runs, abort what is being uploaded."""
    if jobs.is_final(job):
        return job
    if job.sagemaker_job_name:
        deps.training.stop(job.sagemaker_job_name)
    for file in getattr(job, "files", []):
        if file.upload_id:
            deps.storage.abort_upload(file.key, file.upload_id)
    return jobs.failed(job, "abandoned by the client (status Fail)", deps.clock())


# ---------------------------------------------------------------- train jobs


def on_train_job_requested(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(TrainJobRequested)
    job = deps.snapshots.get(TrainJob, command.train_job_id)
    if job is None:
        job = command.initial_snapshot(deps.storage.bucket, version=1)
        deps.snapshots.save(job)
    _publish(job, envelope, deps)


def on_train_job_update(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(TrainJobUpdateRequested)
    _update(TrainJob, command.train_job_id, command, envelope, deps, lambda job: _start_training(job, command, deps))


def _start_training(job: TrainJob, command: TrainJobUpdateRequested, deps: Dependencies) -> TrainJob:
    if job.status != "Initialed":
        if job.status in {"Training", "Complete"}:
            return job
        return jobs.rejected(job, command.request_id, f"train job {job.id} is {job.status}, not Initialed")
    uploads = input_prefix(train_prefix(job.id))
    missing = [name for name in job.filenames if deps.storage.object_size(uploads + name) is None]
    if missing:
        return jobs.rejected(job, command.request_id, f"files not uploaded yet: {', '.join(missing)}")
    return _start(job, training_spec(job), deps)


# ---------------------------------------------------------------- SageMaker's side


def on_training_state_change(event: BusEvent, deps: Dependencies) -> None:
    """SageMaker said a training job changed; ask it for the current state and apply that.

    Reading the current state (not the event's) makes late or reordered events harmless.
    """
    change = SageMakerTrainingJobStateChange.model_validate(event.detail)
    job = _job_named(change.TrainingJobName, deps)
    if job is None:
        deps.logger.info("state change of a training job that is not ours", extra={"job": change.TrainingJobName})
        return
    deps.logger.set_correlation_id(job.id)
    _follow(job, deps)


def on_sweep(event: BusEvent, deps: Dependencies) -> None:
    """Ask SageMaker about every running job: a missed state-change event must not leave it running forever.

    A running job is due from its start (``due_at``), so the table's due index holds exactly the running
    ones: the sweep never reads the finished jobs, however many there are.
    """
    now = deps.clock()
    for job in [*deps.snapshots.due(Model, now), *deps.snapshots.due(TrainJob, now)]:
        if not jobs.is_running(job):
            continue
        try:
            _follow(job, deps)
        except (ClientError, StaleWrite) as exc:  # throttled, or moved meanwhile: the next sweep asks again
            deps.logger.warning("sweep skipped a job", extra={"job": job.id, "reason": str(exc)})


def _follow(job: Model | TrainJob, deps: Dependencies) -> None:
    if not job.sagemaker_job_name or job.is_deleted:
        return
    name = job.sagemaker_job_name
    state = deps.training.describe(name)
    now = deps.clock()

    def apply(current: jobs.J) -> jobs.J | None:
        if state is None:
            return (
                None if jobs.is_final(current) else jobs.failed(current, f"SageMaker has no training job {name}", now)
            )
        return jobs.observed(current, state, now)

    job, changed = _change(job, apply, deps)
    if jobs.is_final(job) or changed:
        _publish(job, None, deps)


def _change(job: jobs.J, change: Callable[[jobs.J], jobs.J | None], deps: Dependencies) -> tuple[jobs.J, bool]:
    """Save ``change(job)`` unless it is None; when another write got there first (a progress report),
    apply the change to the fresh snapshot instead. The job as it now is, and whether this changed it."""
    for _ in range(_WRITE_ATTEMPTS - 1):
        updated = change(job)
        if updated is None:
            return job, False
        try:
            deps.snapshots.save(updated)
            return updated, True
        except StaleWrite:
            job = deps.snapshots.get(type(job), job.id) or job
    updated = change(job)
    if updated is None:
        return job, False
    deps.snapshots.save(updated)  # a StaleWrite now leaves the message to be redelivered
    return updated, True


def _job_named(sagemaker_name: str, deps: Dependencies) -> Model | TrainJob | None:
    kind, _, entity_id = sagemaker_name.partition("-")
    if kind == "model":
        return deps.snapshots.get(Model, entity_id)
    if kind == "train":
        return deps.snapshots.get(TrainJob, entity_id)
    return None


# ---------------------------------------------------------------- watching, stopping, cleaning up


def on_training_progress(event: BusEvent, deps: Dependencies) -> None:
    """The container's report becomes the job's next snapshot; late, repeated or orphan reports change nothing.

    Progress is advisory: a report that keeps losing the race to other writes is dropped, not retried.
    """
    report = event.envelope().parse_data(TrainingProgressReported)
    job = deps.snapshots.get(TrainJob, report.job_id)
    if job is None:
        deps.logger.info("progress of a train job that is not ours", extra={"job": report.job_id})
        return
    try:
        job, changed = _change(job, lambda current: jobs.with_progress(current, report.sequence, report.progress), deps)
    except StaleWrite:
        deps.logger.info("progress report dropped: the job kept changing", extra={"job": report.job_id})
        return
    if changed:
        _publish(job, None, deps)


def on_train_job_cancel(event: BusEvent, deps: Dependencies) -> None:
    """Stop the job on SageMaker; it ends Fail ``cancelled`` once SageMaker says it stopped (one it never
    started ends so at once). A finished job stays as it is."""
    envelope = event.envelope()
    command = envelope.parse_data(TrainJobCancelRequested)
    job = deps.snapshots.get(TrainJob, command.train_job_id)
    if job is None:
        raise UnknownEntity(f"cancel of train job {command.train_job_id} arrived before its creation")
    if job.is_deleted or jobs.is_final(job):
        _publish(job, envelope, deps)
        return
    if job.sagemaker_job_name:
        deps.training.stop(job.sagemaker_job_name)  # again on a redelivery: SageMaker takes that as a no-op
    now = deps.clock()

    def cancel(current: TrainJob) -> TrainJob | None:
        if jobs.is_final(current) or current.cancel_requested_at is not None:
            return None
        if current.status == "Training":
            return jobs.cancel_requested(current, now)
        return jobs.cancelled(current, now)

    job, _ = _change(job, cancel, deps)
    _publish(job, envelope, deps)


def on_train_job_deletion(event: BusEvent, deps: Dependencies) -> None:
    """A finished job's input and output files go, then the job (its checkpoint is asset-registry's and stays)."""
    envelope = event.envelope()
    command = envelope.parse_data(TrainJobDeletionRequested)
    job = deps.snapshots.get(TrainJob, command.train_job_id)
    if job is None:
        raise UnknownEntity(f"deletion of train job {command.train_job_id} arrived before its creation")
    if not job.is_deleted:
        if not jobs.is_final(job):
            deps.logger.warning("deletion of a train job that has not finished ignored", extra={"job": job.id})
            _publish(job, envelope, deps)
            return
        removed = deps.files.delete_under(_key_prefix(job.output_path), keep=_checkpoint_keys(job))
        deps.logger.info("train job's files deleted", extra={"job": job.id, "objects": removed})
        job, _ = _change(job, lambda current: None if current.is_deleted else current.as_deleted(deps.clock()), deps)
    _publish(job, envelope, deps)


def on_model_deletion(event: BusEvent, deps: Dependencies) -> None:
    """A model that is not being created loses its files (uploads, working model), then is forgotten."""
    envelope = event.envelope()
    command = envelope.parse_data(ModelDeletionRequested)
    model = deps.snapshots.get(Model, command.model_id)
    if model is None:
        raise UnknownEntity(f"deletion of model {command.model_id} arrived before its creation")
    if not model.is_deleted:
        if model.status == "Creating":
            deps.logger.warning("deletion of a model being created ignored", extra={"model": model.id})
            _publish(model, envelope, deps)
            return
        removed = deps.files.delete_under(_key_prefix(model.s3_base))
        deps.logger.info("model's files deleted", extra={"model": model.id, "objects": removed})
        model, _ = _change(
            model, lambda current: None if current.is_deleted else current.as_deleted(deps.clock()), deps
        )
    _publish(model, envelope, deps)


def _key_prefix(location: str) -> str:
    """The key prefix of an s3:// location in the project's bucket, ending in '/'."""
    _, key = split_s3_uri(location)
    return key if key.endswith("/") else key + "/"


def _checkpoint_keys(job: TrainJob) -> set[str]:
    """The file a Complete job produced: registered as a checkpoint, it is asset-registry's to keep or delete."""
    if job.status != "Complete" or not job.output_s3_location:
        return set()
    return {_key_prefix(job.output_s3_location) + trained_filename(job)}


# ---------------------------------------------------------------- wiring


def _publish(job: Model | TrainJob, cause: EventEnvelope | None, deps: Dependencies) -> None:
    """The job's snapshot and, for a Complete train job, the registration of what it produced (not once the
    job is deleted: its checkpoint may be gone by then, and must not be registered again)."""
    publish_snapshots(deps.publisher, [job], producer=SERVICE, correlation_id=job.id, cause=cause)
    if isinstance(job, TrainJob) and job.status == "Complete" and not job.is_deleted:
        deps.publisher.publish([outgoing(registration(job), producer=SERVICE, correlation_id=job.id)])


def registration(job: TrainJob) -> CheckpointRegistrationRequested:
    """asset-registry registers the output as a checkpoint; the same id each time, so repeats change nothing.

    DreamBooth and LoRA jobs alike leave one file, ``<output_name>.safetensors`` (an A1111 single-file
    checkpoint or a kohya LoRA): the checkpoint is that file, found by that name, and nothing else.
    """
    return CheckpointRegistrationRequested(
        checkpoint_id=job.checkpoint_id or jobs.checkpoint_id_for(job),
        checkpoint_type=CHECKPOINT_TYPE_OF[job.train_type],
        s3_location=job.output_s3_location or "",
        filenames=[trained_filename(job)],
        params={
            "new_model_name": job.output_name,
            "train_job_id": job.id,
            "model_id": job.model_id,
            "train_type": job.train_type,
        },
        requested_at=job.completed_at or job.created_at,
    )


def trained_filename(job: TrainJob) -> str:
    """The one file a train job writes (sd-runtime's ``train``: ``model/<model_name>.safetensors``)."""
    return f"{job.output_name}.safetensors"


def router(deps: Dependencies) -> Router:
    return (
        Router()
        .on_event(ModelCreationRequested.detail_type(), lambda e: on_model_creation(e, deps))
        .on_event(ModelUpdateRequested.detail_type(), lambda e: on_model_update(e, deps))
        .on_event(TrainJobRequested.detail_type(), lambda e: on_train_job_requested(e, deps))
        .on_event(TrainJobUpdateRequested.detail_type(), lambda e: on_train_job_update(e, deps))
        .on_event(TrainJobCancelRequested.detail_type(), lambda e: on_train_job_cancel(e, deps))
        .on_event(TrainJobDeletionRequested.detail_type(), lambda e: on_train_job_deletion(e, deps))
        .on_event(ModelDeletionRequested.detail_type(), lambda e: on_model_deletion(e, deps))
        .on_event(TrainingProgressReported.detail_type(), lambda e: on_training_progress(e, deps))
        .on_event(SageMakerTrainingJobStateChange.DETAIL_TYPE, lambda e: on_training_state_change(e, deps))
        .on_event(SCHEDULED_EVENT, lambda e: on_sweep(e, deps))
    )
