"""Models and train jobs: how each moves, as pure functions of its snapshot.

Model:     Initialed -> Creating -> Complete | Fail   (Fail also from Initialed)
Train job: Initialed -> Training -> Complete | Fail   (Fail also from Initialed)

Complete and Fail are final. A refusal changes nothing but the ``rejection``
naming the request, so the edge can tell the client why. A cancelled train job
ends Fail with the error ``cancelled``: at once when SageMaker never started
it, else once SageMaker says it stopped.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from sdmw_contracts.events import ModelChanged, TrainJobChanged
from sdmw_contracts.events.assets import Rejection
from sdmw_contracts.events.progress import JobProgress
from training_manager.sagemaker import TrainingState

Model = ModelChanged
TrainJob = TrainJobChanged
J = TypeVar("J", ModelChanged, TrainJobChanged)

FINAL = frozenset({"Complete", "Fail"})
#: The error of a train job stopped because the client asked.
CANCELLED = "cancelled"


def _next(job: J, **changes: object) -> J:
    return job.model_copy(update={**changes, "version": job.version + 1})


def is_final(job: Model | TrainJob) -> bool:
    return job.status in FINAL


def is_running(job: Model | TrainJob) -> bool:
    return job.status in {"Creating", "Training"}


def rejected(job: J, request_id: str, reason: str) -> J:
    return _next(job, rejection=Rejection(request_id=request_id, reason=reason))


def was_answered(job: Model | TrainJob, request_id: str) -> bool:
    return job.rejection is not None and job.rejection.request_id == request_id


def started(job: J, sagemaker_job_name: str, now: datetime) -> J:
    status = "Creating" if isinstance(job, ModelChanged) else "Training"
    return _next(job, status=status, sagemaker_job_name=sagemaker_job_name, started_at=now, rejection=None)


def failed(job: J, reason: str, now: datetime) -> J:
    return _next(job, status="Fail", error=reason, completed_at=now)


def completed(job: J, output_s3_location: str, now: datetime, checkpoint_id: str | None = None) -> J:
    changes: dict[str, object] = {"status": "Complete", "output_s3_location": output_s3_location, "completed_at": now}
    if isinstance(job, TrainJobChanged):
        changes["checkpoint_id"] = checkpoint_id
    return _next(job, **changes)


def with_upload_completed(model: Model, filename: str, size: int) -> Model:
    files = [
        file.model_copy(update={"upload_id": None, "size": size}) if file.filename == filename else file
        for file in model.files
    ]
    return model.model_copy(update={"files": files})


def with_progress(job: TrainJob, sequence: int, progress: JobProgress) -> TrainJob | None:
    """The job with the container's report; None when the report is late (not newer) or the job not Training."""
    if job.is_deleted or job.status != "Training" or sequence <= job.progress_sequence:
        return None
    return _next(job, progress=progress, progress_sequence=sequence)


def cancel_requested(job: TrainJob, now: datetime) -> TrainJob:
    """A running job the client cancelled: it ends once SageMaker has stopped it."""
    return _next(job, cancel_requested_at=now)


def cancelled(job: TrainJob, now: datetime) -> TrainJob:
    """A job SageMaker is not running, cancelled: it ends now."""
    return _next(job, status="Fail", error=CANCELLED, completed_at=now, cancel_requested_at=now)


def checkpoint_id_for(job: TrainJob) -> str:
    """The trained checkpoint's id: fixed per job, so registering it again changes nothing."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sdmw:train-job:{job.id}:checkpoint"))


def observed(job: J, state: TrainingState, now: datetime) -> J | None:
    """The job after SageMaker reported ``state``; None when nothing changes."""
    if is_final(job) or not state.finished:
        return None
    if state.status == "Completed":
        if not state.artifacts:
            return failed(job, "SageMaker reported the job Completed without model artifacts", now)
        checkpoint_id = checkpoint_id_for(job) if isinstance(job, TrainJobChanged) else None
        return completed(job, _as_prefix(state.artifacts), now, checkpoint_id)
    if state.status == "Stopped" and getattr(job, "cancel_requested_at", None) is not None:
        return failed(job, CANCELLED, now)
    return failed(job, failure_reason(state), now)


def failure_reason(state: TrainingState) -> str:
    if state.failure_reason:
        return state.failure_reason
    if state.status == "Stopped":
        detail = f" ({state.secondary_status})" if state.secondary_status else ""
        return f"the SageMaker training job was stopped{detail}"
    return f"the SageMaker training job ended {state.status} without a reason"


def _as_prefix(artifacts: str) -> str:
    """Uncompressed output is a prefix; SageMaker may name it without the closing '/'."""
    return artifacts if artifacts.endswith("/") or artifacts.endswith(".tar.gz") else artifacts + "/"
