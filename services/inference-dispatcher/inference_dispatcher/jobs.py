"""Inference jobs: how one moves, as pure functions of its snapshot.

inprogress -> succeed | failed, and nothing after. Every job gets a deadline
when it is sent to SageMaker, so the sweep can fail it if no notification ever
comes: a job never stays inprogress forever.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sdmw_contracts.events import InferenceJobChanged

Job = InferenceJobChanged


def param_name(job_id: str) -> str:
    return f"{job_id}_param.json"


def image_name(index: int) -> str:
    return f"image_{index}.jpg"


def new_job(
    job_id: str,
    task_type: str,
    endpoint_name: str | None,
    requested_at: datetime,
    deadline: datetime,
    models: dict[str, list[str]] | None = None,
) -> Job:
    return Job(
        id=job_id,
        version=1,
        task_type=task_type,
        endpoint_name=endpoint_name,
        models=models or {},
        status="inprogress",
        start_time=requested_at,
        deadline=deadline,
    )


def _next(job: Job, **changes: object) -> Job:
    return job.model_copy(update={**changes, "version": job.version + 1})


def is_finished(job: Job) -> bool:
    return job.status != "inprogress"


def dispatched(job: Job, endpoint_name: str, output_location: str, now: datetime, deadline: datetime) -> Job:
    return _next(
        job, endpoint_name=endpoint_name, output_location=output_location, dispatched_at=now, deadline=deadline
    )


def is_dispatched(job: Job) -> bool:
    return job.output_location is not None


def succeeded(
    job: Job,
    image_count: int,
    sagemaker_raw: str,
    now: datetime,
    merged_checkpoint_uri: str | None = None,
    caption: str | None = None,
) -> Job:
    return _next(
        job,
        status="succeed",
        merged_checkpoint_uri=merged_checkpoint_uri,
        caption=caption,
        image_names=[image_name(i) for i in range(image_count)],
        param_name=param_name(job.id),
        sagemaker_raw=sagemaker_raw,
        complete_time=now,
    )


def failed(job: Job, reason: str, now: datetime, sagemaker_raw: str = "") -> Job:
    return _next(
        job, status="failed", error=reason, sagemaker_raw=sagemaker_raw or job.sagemaker_raw, complete_time=now
    )


def overdue(job: Job, now: datetime) -> bool:
    return not is_finished(job) and job.deadline is not None and now >= job.deadline


def deadline_after(start: datetime, queue_ttl_s: int, invocation_timeout_s: int, grace_s: int) -> datetime:
    """The latest SageMaker can still answer: queued up to the TTL, then run up to the timeout."""
    return start + timedelta(seconds=queue_ttl_s + invocation_timeout_s + grace_s)


def merged_checkpoint_id(job: Job) -> str:
    """The merged checkpoint's id: fixed per job, so registering it again changes nothing."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sdmw:merge-job:{job.id}:checkpoint"))
