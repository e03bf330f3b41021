"""Endpoint deployment jobs: how a job moves, as pure functions of its snapshot.

A job is the ``EndpointDeploymentChanged`` snapshot itself; every change makes a
new snapshot with the next version.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from endpoint_manager.sagemaker import EndpointSpec, EndpointState
from sdmw_contracts.events import EndpointDeploymentChanged

Job = EndpointDeploymentChanged
FINISHED = frozenset({"failed", "deleted"})
#: A deployment's command is handled in seconds, or retried and then dead-lettered well within this.
START_WITHIN = timedelta(minutes=15)


def spec_of(job: Job) -> EndpointSpec:
    """SageMaker names derive from the job id, so a retry finds what it created."""
    return EndpointSpec(
        endpoint_name=job.endpoint_name,
        model_name=f"model-{job.id}",
        config_name=f"config-{job.id}",
        instance_type=job.instance_type,
        instance_count=job.initial_instance_count,
    )


def _next(job: Job, **changes: object) -> Job:
    return job.model_copy(update={**changes, "version": job.version + 1})


def needs_creation(job: Job) -> bool:
    return job.status == "inprogress" and job.endpoint_status is None


def creation_started(job: Job) -> Job:
    return _next(job, endpoint_status="Creating")


def failed(job: Job, reason: str, now: datetime) -> Job:
    return _next(job, status="failed", error=reason, end_time=now)


def deleted(job: Job, now: datetime) -> Job:
    # "deleted", not a SageMaker status: the original middleware's word, which the WebUI extension hides.
    return _next(job, status="deleted", endpoint_status="deleted", end_time=job.end_time or now)


def observed(job: Job, state: EndpointState | None, now: datetime) -> Job | None:
    """The job after SageMaker reported ``state``; None when nothing changes."""
    if job.status in FINISHED:
        return None
    if state is None:
        if job.endpoint_status is None:
            return None  # not created yet: the command handler is still at work
        return failed(job, "the SageMaker endpoint no longer exists", now)
    if state.status == job.endpoint_status:
        return None
    if state.status == "InService":
        return _next(job, status="success", endpoint_status="InService", error="", end_time=now)
    if state.status == "Failed":
        reason = state.failure_reason or "SageMaker reported the endpoint Failed without a reason"
        return _next(job, status="failed", endpoint_status="Failed", error=reason, end_time=now)
    return _next(job, endpoint_status=state.status)


def never_started(job: Job, now: datetime) -> Job | None:
    """The job failed if its creation has not started within :data:`START_WITHIN` (its command was dead-
    lettered: SageMaker was never asked); None while there is still time, or once it started."""
    if not needs_creation(job) or now - job.start_time < START_WITHIN:
        return None
    minutes = int(START_WITHIN.total_seconds() // 60)
    return failed(job, f"the deployment did not start within {minutes} minutes; deploy it again", now)


def live_job_for(all_jobs: list[Job], endpoint_name: str) -> Job | None:
    """The newest job for this endpoint name that is not finished."""
    live = [job for job in all_jobs if job.endpoint_name == endpoint_name and job.status not in FINISHED]
    return max(live, key=lambda job: job.start_time, default=None)
