"""Message handlers: plain functions of (message, dependencies).

A job is claimed (saved) before SageMaker is called, and its snapshot is
published when it finishes (the edge already shows it inprogress); a redelivery publishes the current snapshot again
(stable event ids make the repeat harmless), so no event is lost to a crash.
Every write is conditional on the version read, so the handlers are
idempotent by themselves and the consumer keeps no idempotency records.

While a job runs, the runtime's progress reports become its snapshots. A
cancel writes the job's cancel marker (which the runtime looks for) and ends
the job ``cancelled`` at once; whatever SageMaker answers for it later only
makes its leftovers go. Deleting a finished job removes its files, then the job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from inference_dispatcher import SERVICE, jobs
from inference_dispatcher.adapters import Endpoints, InvocationRefused, Storage
from inference_dispatcher.invocations import invocation
from inference_dispatcher.jobs import Job
from inference_dispatcher.results import Notification, UnreadableResult, caption, merged_output, parse_response
from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import CheckpointRegistrationRequested, InferenceRequested, ModelMergeRequested
from sdmw_contracts.events.inference import (
    InferenceCancelRequested,
    InferenceDeletionRequested,
    cancel_marker_key,
    is_interrogation,
)
from sdmw_contracts.events.progress import InferenceProgressReported
from service_kit.consumer import Router
from service_kit.events import EventPublisher, outgoing, publish_snapshots
from service_kit.messages import BusEvent, SnsNotification
from service_kit.resources import SCHEDULED_EVENT
from service_kit.sagemaker import ASYNC_ERROR_TOPIC, ASYNC_SUCCESS_TOPIC
from service_kit.snapshots import SnapshotTable, StaleWrite

Command = InferenceRequested | ModelMergeRequested


class ClaimedElsewhere(RuntimeError):
    """Another worker is sending this job right now: the message comes back after its visibility timeout."""


class UnknownJob(LookupError):
    """A notification names a job this service does not have."""


@dataclass
class Dependencies:
    jobs: SnapshotTable
    storage: Storage
    endpoints: Endpoints
    publisher: EventPublisher
    logger: Logger
    grace_s: int = 60
    #: How long a claim keeps other workers off a job: far longer than sending it takes (milliseconds).
    claim_lease_s: int = 30
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def deadline_from(self, start: datetime) -> datetime:
        return jobs.deadline_after(start, self.endpoints.queue_ttl_s, self.endpoints.invocation_timeout_s, self.grace_s)


# ---------------------------------------------------------------- requests


def on_inference_requested(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    _start(envelope.parse_data(InferenceRequested), envelope, deps)


def on_merge_requested(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    _start(envelope.parse_data(ModelMergeRequested), envelope, deps)


def _start(command: Command, envelope: EventEnvelope, deps: Dependencies) -> None:
    job = _claim(command, deps)
    if job is None:
        return
    if deps.storage.exists(cancel_marker_key(job.id)):
        # Cancelled before this worker claimed it (on_cancel_requested found no job): it never runs.
        cancelled = jobs.cancelled(job, job.start_time, deps.clock())
        deps.jobs.save(cancelled)
        _publish(cancelled, envelope, deps)
        return
    try:
        refusal = _dispatch(job, command, deps)
    except Exception:
        deps.jobs.save(jobs.released(job))  # so the retry need not wait for the claim to lapse
        raise
    if refusal is not None:
        failed = jobs.failed(job, refusal, deps.clock())
        deps.jobs.save(failed)
        _publish(failed, envelope, deps)


def _claim(command: Command, deps: Dependencies) -> Job | None:
    """The job, claimed by this worker; None when another worker has it or it is finished."""
    now = deps.clock()
    new = jobs.claimed(command.initial_snapshot(version=1), now, deps.deadline_from(command.requested_at))
    try:
        deps.jobs.save(new)
        return new
    except StaleWrite:
        pass  # a duplicate of the command, or a retry after this job was claimed
    job = deps.jobs.get(Job, command.job_id)
    if job is None:
        return None
    if jobs.is_finished(job):
        _publish(job, None, deps)  # in case the worker that finished it stopped before publishing
        return None
    if jobs.claim_is_live(job, now, deps.claim_lease_s):
        raise ClaimedElsewhere(f"inference job {job.id} is being sent by another worker")
    job = jobs.reclaimed(job, now)
    deps.jobs.save(job)
    return job


def _dispatch(job: Job, command: Command, deps: Dependencies) -> str | None:
    """Send the job to SageMaker; why SageMaker refused it, or None when it took it."""
    request = invocation(command, deps.storage.bucket)
    input_uri = deps.storage.put_json(input_key(job.id), request.model_dump_json())
    try:
        deps.endpoints.invoke_async(job.endpoint_name or "", input_uri, job.id)
    except InvocationRefused as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------- SageMaker's answers


def on_async_notification(message: SnsNotification, deps: Dependencies) -> None:
    notification = Notification(message.json())
    job = deps.jobs.get(Job, notification.inference_id)
    if job is None:
        raise UnknownJob(f"notification for unknown inference job {notification.inference_id!r}")
    deps.logger.set_correlation_id(job.id)
    if job.status == "cancelled":
        # It stopped (or finished anyway) after the cancel: it stays cancelled, and what it left is removed.
        _remove_outputs(job, notification.answer_location, deps)
        return
    if not jobs.is_finished(job):
        job = _finish(job, notification, deps)
        deps.jobs.save(job)
    _publish(job, None, deps)


def _finish(job: Job, notification: Notification, deps: Dependencies) -> Job:
    raw, answer = notification.as_seed_text(), notification.answer_location
    if not notification.completed:
        return jobs.failed(job, notification.failure_reason, deps.clock(), raw, answer)
    if job.task_type != "merge" and not is_interrogation(job.task_type):
        # the runtime wrote the files before it answered
        return jobs.succeeded(job, raw, deps.clock(), sagemaker_output_uri=answer)
    try:
        response = parse_response(deps.storage.get_bytes(notification.output_location or ""))
        if job.task_type == "merge":
            merged = merged_output(response)
            return jobs.succeeded(job, raw, deps.clock(), merged_checkpoint_uri=merged, sagemaker_output_uri=answer)
        return jobs.succeeded(job, raw, deps.clock(), caption=caption(response), sagemaker_output_uri=answer)
    except UnreadableResult as exc:
        return jobs.failed(job, str(exc), deps.clock(), raw, answer)


def on_sweep(event: BusEvent, deps: Dependencies) -> None:
    """Fail every job whose result is overdue: no notification can still come for it."""
    now = deps.clock()
    for job in deps.jobs.due(Job, now):
        if jobs.overdue(job, now):
            reason = f"no result from SageMaker by {job.deadline:%Y-%m-%d %H:%M:%S} UTC; the job timed out"
            failed = jobs.failed(job, reason, now)
            deps.jobs.save(failed)
            _publish(failed, None, deps)


# ---------------------------------------------------------------- progress, cancel, delete

#: How often a progress report is tried against a concurrent writer before it is dropped (it is advisory).
PROGRESS_WRITE_TRIES = 3


def on_progress_reported(event: BusEvent, deps: Dependencies) -> None:
    """The runtime's report becomes the job's next snapshot, when the job runs and the report is news."""
    envelope = event.envelope()
    report = envelope.parse_data(InferenceProgressReported)
    for _ in range(PROGRESS_WRITE_TRIES):
        job = deps.jobs.get(Job, report.job_id)
        if job is None or not jobs.takes_progress(job, report.sequence):
            return
        updated = jobs.with_progress(job, report.progress, report.sequence)
        try:
            deps.jobs.save(updated)
        except StaleWrite:
            continue  # another report, the result or a cancel got there first: look again
        _publish(updated, envelope, deps)
        return
    deps.logger.info("progress report dropped after concurrent writes", extra={"job_id": report.job_id})


def on_cancel_requested(event: BusEvent, deps: Dependencies) -> None:
    """A running job is marked for the runtime to stop and is cancelled; a finished one is left as it is."""
    envelope = event.envelope()
    command = envelope.parse_data(InferenceCancelRequested)
    job = deps.jobs.get(Job, command.job_id)
    if job is not None and job.status == "cancelled":
        _publish(job, envelope, deps)  # a repeat: the edge may be waiting for this snapshot
        return
    if job is not None and jobs.is_finished(job):
        return
    # The marker first: the runtime must be able to see it once the job shows cancelled, and a job not
    # claimed yet (its InferenceRequested still on the way) finds it when it is claimed (``_start``).
    marker = {"job_id": command.job_id, "requested_at": command.requested_at.isoformat()}
    deps.storage.put_json(cancel_marker_key(command.job_id), json.dumps(marker))
    # Read again after the marker is written: a claim made meanwhile either saw the marker or is here.
    job = deps.jobs.get(Job, command.job_id)
    if job is None or jobs.is_finished(job):
        return
    deps.logger.set_correlation_id(job.id)
    cancelled = jobs.cancelled(job, command.requested_at, deps.clock())
    deps.jobs.save(cancelled)
    _publish(cancelled, envelope, deps)


def on_deletion_requested(event: BusEvent, deps: Dependencies) -> None:
    """A finished job's files are removed and the job is forgotten; a running one is left alone."""
    envelope = event.envelope()
    command = envelope.parse_data(InferenceDeletionRequested)
    job = deps.jobs.get(Job, command.job_id)
    if job is None:
        return  # never claimed: nothing of it is in the bucket (the edge forgets such jobs itself)
    deps.logger.set_correlation_id(job.id)
    if job.is_deleted:
        _publish(job, envelope, deps)  # a repeat
        return
    if not jobs.is_finished(job):
        deps.logger.info("deletion of a running inference job ignored", extra={"job_id": job.id})
        return
    _remove_outputs(job, job.sagemaker_output_uri, deps)
    for key in (input_key(job.id), cancel_marker_key(job.id)):
        deps.storage.delete(f"s3://{deps.storage.bucket}/{key}")
    gone = job.as_deleted(deps.clock())
    deps.jobs.save(gone)
    _publish(gone, envelope, deps)


def _remove_outputs(job: Job, sagemaker_answer: str | None, deps: Dependencies) -> None:
    """Everything the runtime wrote under ``out/<id>/`` and SageMaker's answer object.

    A merge's checkpoint stays: it was registered as a checkpoint of its own and outlives its job.
    """
    keep = frozenset()
    if job.merged_checkpoint_uri and job.merged_checkpoint_uri.startswith(f"s3://{deps.storage.bucket}/"):
        keep = frozenset({job.merged_checkpoint_uri.removeprefix(f"s3://{deps.storage.bucket}/")})
    removed = deps.storage.delete_prefix(job_output_prefix(job.id), keep=keep)
    if sagemaker_answer:
        deps.storage.delete(sagemaker_answer)
    deps.logger.info("removed the outputs of an inference job", extra={"job_id": job.id, "objects": removed})


def input_key(job_id: str) -> str:
    """What the job's request to the runtime is written to (SageMaker's InputLocation)."""
    return f"inference-input/{job_id}.json"


def job_output_prefix(job_id: str) -> str:
    """Everything of one job under ``out/``: its result files (``result_prefix``) and anything beside them."""
    return f"out/{job_id}/"


# ---------------------------------------------------------------- wiring


def _publish(job: Job, cause: EventEnvelope | None, deps: Dependencies) -> None:
    """The job's snapshot and, for a finished merge, the registration of the merged checkpoint."""
    publish_snapshots(deps.publisher, [job], producer=SERVICE, correlation_id=job.id, cause=cause)
    if job.status == "succeed" and job.merged_checkpoint_uri:
        registration = merged_checkpoint_registration(job, job.merged_checkpoint_uri)
        deps.publisher.publish([outgoing(registration, producer=SERVICE, correlation_id=job.id)])


def merged_checkpoint_registration(job: Job, uri: str) -> CheckpointRegistrationRequested:
    location, _, filename = uri.rpartition("/")
    return CheckpointRegistrationRequested(
        checkpoint_id=jobs.merged_checkpoint_id(job),
        checkpoint_type="Stable-diffusion",
        s3_location=location + "/",
        filenames=[filename],
        params={"merge_job_id": job.id},
        requested_at=job.complete_time or job.start_time,
    )


def router(deps: Dependencies) -> Router:
    return (
        Router()
        .on_event(InferenceRequested.detail_type(), lambda e: on_inference_requested(e, deps))
        .on_event(ModelMergeRequested.detail_type(), lambda e: on_merge_requested(e, deps))
        .on_event(InferenceProgressReported.detail_type(), lambda e: on_progress_reported(e, deps))
        .on_event(InferenceCancelRequested.detail_type(), lambda e: on_cancel_requested(e, deps))
        .on_event(InferenceDeletionRequested.detail_type(), lambda e: on_deletion_requested(e, deps))
        .on_event(SCHEDULED_EVENT, lambda e: on_sweep(e, deps))
        .on_topic(ASYNC_SUCCESS_TOPIC, lambda m: on_async_notification(m, deps))
        .on_topic(ASYNC_ERROR_TOPIC, lambda m: on_async_notification(m, deps))
    )
