"""Message handlers: plain functions of (message, dependencies).

A job is saved before SageMaker is called and published after every change;
a redelivery publishes the current snapshot again (stable event ids make the
repeat harmless), so no event is lost to a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from inference_dispatcher import SERVICE, jobs
from inference_dispatcher.adapters import Endpoints, Storage
from inference_dispatcher.invocations import (
    generation_request,
    interrogation_request,
    is_interrogation,
    merge_request,
)
from inference_dispatcher.jobs import Job
from inference_dispatcher.lookups import EndpointNotReady, Lookups, UnknownModel
from inference_dispatcher.resources import ERROR_TOPIC, SUCCESS_TOPIC
from inference_dispatcher.results import Notification, UnreadableResult, parse_response, store_result
from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import (
    CheckpointChanged,
    CheckpointRegistrationRequested,
    EndpointDeploymentChanged,
    InferenceRequested,
    ModelMergeRequested,
)
from sdmw_contracts.runtime import InvocationRequest, InvocationResponse
from service_kit.consumer import Router
from service_kit.events import EventPublisher, outgoing, publish_snapshots
from service_kit.messages import BusEvent, SnsNotification
from service_kit.resources import SCHEDULED_EVENT
from service_kit.snapshots import SnapshotTable


class NotYetKnown(RuntimeError):
    """A model named by a fresh request is not in the dispatcher's view yet: retry shortly."""


class UnknownJob(LookupError):
    """A notification names a job this service does not have."""


@dataclass
class Dependencies:
    jobs: SnapshotTable
    lookups: Lookups
    storage: Storage
    endpoints: Endpoints
    publisher: EventPublisher
    logger: Logger
    grace_s: int = 60
    #: How long after a request an unknown model may still be on its way to the dispatcher's view.
    model_arrival_grace_s: int = 15
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def deadline_from(self, start: datetime) -> datetime:
        return jobs.deadline_after(start, self.endpoints.queue_ttl_s, self.endpoints.invocation_timeout_s, self.grace_s)


# ---------------------------------------------------------------- requests


def on_inference_requested(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(InferenceRequested)
    _start(command.job_id, command.task_type, command.endpoint_name, command, envelope, deps)


def on_merge_requested(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(ModelMergeRequested)
    _start(command.job_id, "merge", command.endpoint_name, command, envelope, deps)


def _start(
    job_id: str,
    task: str,
    endpoint_name: str | None,
    command: InferenceRequested | ModelMergeRequested,
    envelope: EventEnvelope,
    deps: Dependencies,
) -> None:
    job = deps.jobs.get(Job, job_id)
    if job is None:
        deadline = deps.deadline_from(command.requested_at)
        job = jobs.new_job(job_id, task, endpoint_name, command.requested_at, deadline, command.models)
        deps.jobs.save(job)
    if not jobs.is_finished(job) and not jobs.is_dispatched(job):
        job = _dispatch(job, command, deps)
        deps.jobs.save(job)
    _publish(job, envelope, deps)


def _dispatch(job: Job, command: InferenceRequested | ModelMergeRequested, deps: Dependencies) -> Job:
    """Send the job to SageMaker, or fail it with a reason the user can read."""
    try:
        payload = _payload(command, deps)
        endpoint = _ready_endpoint(job.endpoint_name, deps)
        request = _invocation(job, payload, deps)
        input_uri = deps.storage.put_json(f"inference-input/{job.id}.json", request.model_dump(mode="json"))
        output_location = deps.endpoints.invoke_async(endpoint, input_uri, job.id)
    except UnknownModel as exc:
        if deps.clock() - command.requested_at < timedelta(seconds=deps.model_arrival_grace_s):
            raise NotYetKnown(str(exc)) from exc
        return jobs.failed(job, str(exc), deps.clock())
    except EndpointNotReady as exc:
        return jobs.failed(job, str(exc), deps.clock())
    except ClientError as exc:
        error = exc.response.get("Error", {})
        reason = f"SageMaker refused the request: {error.get('Code')}: {error.get('Message')}"
        return jobs.failed(job, reason, deps.clock())
    now = deps.clock()
    return jobs.dispatched(job, endpoint, output_location, now, deps.deadline_from(now))


def _payload(command: InferenceRequested | ModelMergeRequested, deps: Dependencies) -> dict[str, Any]:
    if command.payload is not None:
        return command.payload
    return json.loads(deps.storage.get_bytes(command.payload_s3_uri or ""))


def _ready_endpoint(name: str | None, deps: Dependencies) -> str:
    if name is None:
        return deps.lookups.any_endpoint_in_service()
    status = deps.endpoints.status(name)
    if status is None:
        raise EndpointNotReady(f"endpoint {name} does not exist")
    if status != "InService":
        raise EndpointNotReady(f"endpoint {name} is {status}, not InService")
    return name


def _invocation(job: Job, payload: dict[str, Any], deps: Dependencies) -> InvocationRequest:
    if job.task_type == "merge":
        return merge_request(job.id, payload, deps.lookups, deps.storage.bucket)
    if is_interrogation(job.task_type):
        return interrogation_request(job.id, job.task_type, payload)
    return generation_request(job.id, job.task_type, payload, deps.lookups)


# ---------------------------------------------------------------- SageMaker's answers


def on_async_notification(message: SnsNotification, deps: Dependencies) -> None:
    notification = Notification(message.json())
    job = deps.jobs.get(Job, notification.inference_id)
    if job is None:
        raise UnknownJob(f"notification for unknown inference job {notification.inference_id!r}")
    deps.logger.set_correlation_id(job.id)
    if not jobs.is_finished(job):
        job = _finish(job, notification, deps)
        deps.jobs.save(job)
    _publish(job, None, deps)


def _finish(job: Job, notification: Notification, deps: Dependencies) -> Job:
    raw = notification.as_seed_text()
    if not notification.completed:
        return jobs.failed(job, notification.failure_reason, deps.clock(), raw)
    try:
        response = parse_response(deps.storage.get_bytes(notification.output_location or ""))
        caption = interrogation_caption(response) if is_interrogation(job.task_type) else None
        count = store_result(deps.storage, job.id, response)
    except UnreadableResult as exc:
        return jobs.failed(job, str(exc), deps.clock(), raw)
    merged = merged_output(response) if job.task_type == "merge" else None
    return jobs.succeeded(job, count, raw, deps.clock(), merged, caption)


def interrogation_caption(response: InvocationResponse) -> str:
    """A1111's interrogate answer, ``caption``; an interrogation's answer without one is unreadable."""
    if response.caption is None:
        raise UnreadableResult("the runtime's answer to an interrogation has no caption")
    return response.caption


def merged_output(response: InvocationResponse) -> str | None:
    """Where the runtime wrote the merged checkpoint, as its ``info`` says."""
    try:
        info = json.loads(response.info or "{}")
    except ValueError:
        return None
    uri = info.get("output_s3_uri") if isinstance(info, dict) else None
    return uri if isinstance(uri, str) and uri.startswith("s3://") else None


def on_sweep(event: BusEvent, deps: Dependencies) -> None:
    """Fail every job whose result is overdue: no notification can still come for it."""
    now = deps.clock()
    for job in deps.jobs.list(Job):
        if jobs.overdue(job, now):
            reason = f"no result from SageMaker by {job.deadline:%Y-%m-%d %H:%M:%S} UTC; the job timed out"
            failed = jobs.failed(job, reason, now)
            deps.jobs.save(failed)
            _publish(failed, None, deps)


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
        .on_event(EndpointDeploymentChanged.detail_type(), deps.lookups.projector(EndpointDeploymentChanged))
        .on_event(CheckpointChanged.detail_type(), deps.lookups.projector(CheckpointChanged))
        .on_event(SCHEDULED_EVENT, lambda e: on_sweep(e, deps))
        .on_topic(SUCCESS_TOPIC, lambda m: on_async_notification(m, deps))
        .on_topic(ERROR_TOPIC, lambda m: on_async_notification(m, deps))
    )
