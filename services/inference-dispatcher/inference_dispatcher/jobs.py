"""Inference jobs: how one moves, as pure functions of its snapshot.

inprogress -> succeed | failed | cancelled, and nothing after but being
deleted once finished. While it runs, the runtime's progress reports become
its next snapshots (``with_progress``). The dispatcher claims a job
(saves version 1 with ``claimed_at``) before it calls SageMaker: a duplicate of
the command finds the claim and leaves the job alone while the claim is live,
and a command whose worker died before sending it is sent again once the claim
has lapsed. (A worker killed after SageMaker took the job but before its
message was deleted makes SageMaker run the job twice: the second notification
finds the job finished and changes nothing.) Every job has a deadline from its
request, so the sweep can fail it if no notification ever comes: a job never
stays inprogress forever.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sdmw_contracts.events import InferenceJobChanged
from sdmw_contracts.events.progress import JobProgress

Job = InferenceJobChanged

CANCELLED_REASON = "cancelled by the user"


def param_name(job_id: str) -> str:
    return f"{job_id}_param.json"


def image_name(index: int) -> str:
    return f"image_{index}.jpg"


def image_names(count: int) -> list[str]:
    return [image_name(i) for i in range(count)]


def claimed(first: Job, now: datetime, deadline: datetime) -> Job:
    """The command's first snapshot as the dispatcher's version 1, claimed by the worker that saves it."""
    return first.model_copy(update={"version": 1, "claimed_at": now, "deadline": deadline})


def _next(job: Job, **changes: object) -> Job:
    return job.model_copy(update={**changes, "version": job.version + 1})


def is_finished(job: Job) -> bool:
    return job.status != "inprogress"


def takes_progress(job: Job, sequence: int) -> bool:
    """Whether a progress report numbered ``sequence`` is news: the job runs and holds an older one."""
    return job.status == "inprogress" and sequence > job.progress_sequence


def with_progress(job: Job, progress: JobProgress, sequence: int) -> Job:
    return _next(job, progress=progress, progress_sequence=sequence)


def cancelled(job: Job, requested_at: datetime, now: datetime) -> Job:
    """Stopped at the user's request: final, like succeed and failed; its outputs are removed when it ends."""
    return _next(job, status="cancelled", error=CANCELLED_REASON, cancel_requested_at=requested_at, complete_time=now)


def claim_is_live(job: Job, now: datetime, lease_s: int) -> bool:
    """Whether another worker may still be sending the job (it claimed it less than ``lease_s`` ago)."""
    return job.claimed_at is not None and now - job.claimed_at < timedelta(seconds=lease_s)


def reclaimed(job: Job, now: datetime) -> Job:
    """The job claimed again, after the worker that claimed it stopped before sending it."""
    return _next(job, claimed_at=now)


def released(job: Job) -> Job:
    """The job unclaimed, after sending it failed in a way worth retrying."""
    return _next(job, claimed_at=None)


def succeeded(
    job: Job,
    sagemaker_raw: str,
    now: datetime,
    merged_checkpoint_uri: str | None = None,
    caption: str | None = None,
    sagemaker_output_uri: str | None = None,
) -> Job:
    """Finished: the runtime wrote ``image_count`` images and the parameter file before it answered."""
    return _next(
        job,
        status="succeed",
        merged_checkpoint_uri=merged_checkpoint_uri,
        caption=caption,
        image_names=image_names(job.image_count),
        param_name=param_name(job.id),
        sagemaker_raw=sagemaker_raw,
        sagemaker_output_uri=sagemaker_output_uri,
        complete_time=now,
    )


def failed(
    job: Job, reason: str, now: datetime, sagemaker_raw: str = "", sagemaker_output_uri: str | None = None
) -> Job:
    return _next(
        job,
        status="failed",
        error=reason,
        sagemaker_raw=sagemaker_raw or job.sagemaker_raw,
        sagemaker_output_uri=sagemaker_output_uri,
        complete_time=now,
    )


def overdue(job: Job, now: datetime) -> bool:
    return not is_finished(job) and job.deadline is not None and now >= job.deadline


def deadline_after(start: datetime, queue_ttl_s: int, invocation_timeout_s: int, grace_s: int) -> datetime:
    """The latest SageMaker can still answer: queued up to the TTL, then run up to the timeout."""
    return start + timedelta(seconds=queue_ttl_s + invocation_timeout_s + grace_s)


def merged_checkpoint_id(job: Job) -> str:
    """The merged checkpoint's id: fixed per job, so registering it again changes nothing."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sdmw:merge-job:{job.id}:checkpoint"))
