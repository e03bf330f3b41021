"""Message handlers: plain functions of (message, dependencies).

Each ends by publishing the job's current snapshot, also when a redelivery
finds the work already done, so a crash between saving and publishing cannot
lose the event (the snapshot's stable event id makes the repeat harmless).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from endpoint_manager import SERVICE, jobs, leases
from endpoint_manager.jobs import Job
from endpoint_manager.sagemaker import AutoscalingNotOffered, EndpointGateway, NameTaken
from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import EndpointDeletionRequested, EndpointDeploymentRequested
from sdmw_contracts.events.endpoints import EndpointRecordDeletionRequested
from sdmw_contracts.events.sagemaker import SageMakerEndpointStateChange
from service_kit.consumer import Router
from service_kit.events import EventPublisher, publish_snapshots
from service_kit.messages import BusEvent
from service_kit.resources import SCHEDULED_EVENT
from service_kit.sagemaker import describe_error
from service_kit.snapshots import SnapshotTable, StaleWrite


class UnknownJob(LookupError):
    """A command names a job this service has not seen (yet): retry later."""


@dataclass
class Dependencies:
    jobs: SnapshotTable
    endpoints: EndpointGateway
    publisher: EventPublisher
    logger: Logger
    max_autoscaling_instances: int = 4
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def on_deployment_requested(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(EndpointDeploymentRequested)
    job = deps.jobs.get(Job, command.job_id)
    if job is None:
        job = command.initial_snapshot(version=1)
        deps.jobs.save(job)
    if jobs.needs_creation(job):
        holder = leases.acquire(deps.jobs, job.endpoint_name, job.id, lambda other: _is_live(other, deps))
        job = _create_endpoint(job, deps) if holder is None else jobs.failed(job, _in_use(job, holder), deps.clock())
        deps.jobs.save(job)
    _publish(job, envelope, deps)


def _is_live(job_id: str, deps: Dependencies) -> bool:
    other = deps.jobs.get(Job, job_id)
    return other is not None and other.status not in jobs.FINISHED


def _in_use(job: Job, holder: str) -> str:
    return (
        f"the endpoint name {job.endpoint_name} is in use by deployment job {holder}; "
        "delete that endpoint first, or deploy under another name"
    )


def _create_endpoint(job: Job, deps: Dependencies) -> Job:
    spec = jobs.spec_of(job)
    try:
        deps.endpoints.create(spec)
    except NameTaken as exc:
        # Not ours: remove only the model and config this job made, never the endpoint of that name.
        deps.endpoints.delete_unused(spec)
        return jobs.failed(job, str(exc), deps.clock())
    except ClientError as exc:
        reason = describe_error(exc)
        deps.logger.warning("endpoint creation refused", extra={"endpoint": spec.endpoint_name, "reason": reason})
        _clean_up_quietly(job, deps)
        return jobs.failed(job, reason, deps.clock())
    return jobs.creation_started(job)


def _clean_up_quietly(job: Job, deps: Dependencies) -> None:
    """Remove what a failed creation left behind; a failure here must not hide the first one."""
    try:
        deps.endpoints.delete(jobs.spec_of(job))
    except ClientError:
        deps.logger.exception("clean-up after a failed creation did not finish", extra={"job_id": job.id})


def on_deletion_requested(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(EndpointDeletionRequested)
    job = deps.jobs.get(Job, command.job_id)
    if job is None:
        raise UnknownJob(f"deletion of job {command.job_id} arrived before its deployment")
    if job.status != "deleted":
        deps.endpoints.delete(jobs.spec_of(job))
        job = jobs.deleted(job, deps.clock())
        deps.jobs.save(job)
    _publish(job, envelope, deps)


#: A job whose endpoint is gone (or never came): only its record is left, which the client may delete.
RECORD_DELETABLE = frozenset({"deleted", "failed"})


def on_record_deletion_requested(event: BusEvent, deps: Dependencies) -> None:
    """Forget a job whose endpoint is gone; one with an endpoint (deploying, in service) stays as it is."""
    envelope = event.envelope()
    command = envelope.parse_data(EndpointRecordDeletionRequested)
    job = deps.jobs.get(Job, command.job_id)
    if job is None:
        raise UnknownJob(f"record deletion of job {command.job_id} arrived before its deployment")
    if job.is_deleted:
        pass  # a repeat: publish the same last snapshot again
    elif job.status in RECORD_DELETABLE:
        job = job.as_deleted(deps.clock())
        deps.jobs.save(job)
    else:
        deps.logger.warning("record deletion of a job with an endpoint ignored", extra={"job_id": job.id})
    _publish(job, envelope, deps)


def on_endpoint_state_change(event: BusEvent, deps: Dependencies) -> None:
    """SageMaker said an endpoint changed; ask it for the current state and apply that.

    Reading the current state (not the event's) makes late or reordered
    state-change events harmless.
    """
    change = SageMakerEndpointStateChange.model_validate(event.detail)
    job = jobs.live_job_for(deps.jobs.named(Job, change.EndpointName), change.EndpointName)
    if job is None:
        deps.logger.info("state change of an endpoint without a live job", extra={"endpoint": change.EndpointName})
        return
    deps.logger.set_correlation_id(job.id)
    _record(jobs.observed(job, deps.endpoints.describe(change.EndpointName), deps.clock()), deps)


def on_sweep(event: BusEvent, deps: Dependencies) -> None:
    """Ask SageMaker about every open job (deploying, or its endpoint in service; the due index holds exactly
    those): a lost state-change event, an endpoint deleted outside the system or a deployment whose command
    was dead-lettered must not leave a job wrong for good. One job's failure does not stop the others."""
    now = deps.clock()
    for job in deps.jobs.due(Job, now):
        try:
            _reconcile(job, deps, now)
        except (ClientError, StaleWrite) as exc:  # throttled, or a handler moved the job: next round
            deps.logger.warning("sweep skipped a job", extra={"job_id": job.id, "reason": str(exc)})


def _reconcile(job: Job, deps: Dependencies, now: datetime) -> None:
    if jobs.needs_creation(job):
        _record(jobs.never_started(job, now), deps)
    else:
        _record(jobs.observed(job, deps.endpoints.describe(job.endpoint_name), now), deps)


def _record(updated: Job | None, deps: Dependencies) -> None:
    """Save and publish what SageMaker's state made of a job (None: nothing changed); an endpoint that has
    just come into service gets its autoscaling first, where the job asked for it."""
    if updated is None:
        return
    if updated.status == "success" and updated.autoscaling_enabled:
        updated = _with_autoscaling(updated, deps)
    deps.jobs.save(updated)
    _publish(updated, None, deps)


def _with_autoscaling(job: Job, deps: Dependencies) -> Job:
    try:
        max_instances = max(deps.max_autoscaling_instances, job.initial_instance_count)
        deps.endpoints.enable_autoscaling(job.endpoint_name, max_instances)
    except AutoscalingNotOffered as exc:
        return job.model_copy(update={"error": f"endpoint is in service but autoscaling failed: {exc}"})
    except ClientError as exc:
        return job.model_copy(update={"error": f"endpoint is in service but autoscaling failed: {describe_error(exc)}"})
    return job


def _publish(job: Job, cause: EventEnvelope | None, deps: Dependencies) -> None:
    publish_snapshots(deps.publisher, [job], producer=SERVICE, correlation_id=job.id, cause=cause)


def router(deps: Dependencies) -> Router:
    return (
        Router()
        .on_event(EndpointDeploymentRequested.detail_type(), lambda e: on_deployment_requested(e, deps))
        .on_event(EndpointDeletionRequested.detail_type(), lambda e: on_deletion_requested(e, deps))
        .on_event(EndpointRecordDeletionRequested.detail_type(), lambda e: on_record_deletion_requested(e, deps))
        .on_event(SageMakerEndpointStateChange.DETAIL_TYPE, lambda e: on_endpoint_state_change(e, deps))
        .on_event(SCHEDULED_EVENT, lambda e: on_sweep(e, deps))
    )
