"""Routes 2-6 and 16: inference jobs, their outputs, and model merge."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import not_found
from api_gateway.transitions import record_then_send
from sdmw_contracts.api.common import seed_time
from sdmw_contracts.api.inference import (
    InferenceJobView,
    InferenceRequest,
    InferenceResponse,
    ModelMergeRequest,
    ModelMergeResponse,
    seed_complete_time,
)
from sdmw_contracts.events import InferenceJobChanged, InferenceRequested, ModelMergeRequested
from sdmw_contracts.events.inference import result_prefix

router = APIRouter(tags=["inference"])
Edge = Annotated[EdgeDependencies, Depends(edge)]


def job_view(job: InferenceJobChanged) -> InferenceJobView:
    return InferenceJobView(
        inference_info_name=job.param_name,
        startTime=seed_time(job.start_time),
        taskType=job.task_type,
        completeTime=seed_complete_time(job.complete_time),
        InferenceJobId=job.id,
        status=job.status,
        sagemakerRaw=job.sagemaker_raw,
        image_names=job.image_names,
        error=job.error if job.status == "failed" else None,
    )


def _initial(deps: EdgeDependencies, job_id: str, task: str, endpoint_name: str | None) -> InferenceJobChanged:
    return InferenceJobChanged(
        id=job_id, version=0, task_type=task, endpoint_name=endpoint_name, status="inprogress", start_time=deps.clock()
    )


@router.post("/inference-api/inference")
def run_inference(body: InferenceRequest, deps: Edge) -> InferenceResponse:
    """Starts a txt2img or img2img job on an async endpoint; answers at once with its id."""
    job_id = str(uuid.uuid4())
    initial = _initial(deps, job_id, body.task_type, body.sagemaker_endpoint_name)
    payload = body.model_dump(mode="json", by_alias=True)
    command = InferenceRequested(
        job_id=job_id,
        endpoint_name=body.sagemaker_endpoint_name,
        task_type=body.task_type,
        requested_at=initial.start_time,
        **deps.claims.hand_over(f"inference-requests/{job_id}.json", payload),
    )
    record_then_send(deps, [initial], command, correlation_id=job_id)
    return InferenceResponse(
        inference_id=job_id,
        status="inprogress",
        endpoint_name=body.sagemaker_endpoint_name,
        output_path=f"s3://{deps.presigner.bucket}/{result_prefix(job_id)}",
    )


@router.post("/inference/run-model-merge")
def run_model_merge(body: ModelMergeRequest, deps: Edge) -> ModelMergeResponse:
    """Merges checkpoints on an endpoint as an inference job of task type ``merge``."""
    job_id = str(uuid.uuid4())
    initial = _initial(deps, job_id, "merge", body.sagemaker_endpoint_name)
    command = ModelMergeRequested(
        job_id=job_id,
        endpoint_name=body.sagemaker_endpoint_name,
        requested_at=initial.start_time,
        payload=body.model_dump(mode="json"),
    )
    record_then_send(deps, [initial], command, correlation_id=job_id)
    return ModelMergeResponse(
        primary_model_name=body.primary_model_name,
        secondary_model_name=body.secondary_model_name,
        tertiary_model_name=body.tertiary_model_name,
        inference_id=job_id,
        status="inprogress",
    )


@router.get("/inference/list-inference-jobs")
def list_inference_jobs(deps: Edge) -> list[InferenceJobView]:
    found = sorted(deps.read_model.list(InferenceJobChanged), key=lambda j: j.start_time, reverse=True)
    return [job_view(job) for job in found]


def _job(deps: EdgeDependencies, job_id: str) -> InferenceJobChanged:
    job = deps.read_model.get(InferenceJobChanged, job_id)
    if job is None:
        raise not_found(f"no inference job {job_id}")
    return job


@router.get("/inference/get-inference-job")
def get_inference_job(jobID: Annotated[str, Query(min_length=1)], deps: Edge) -> InferenceJobView:
    return job_view(_job(deps, jobID))


@router.get("/inference/get-inference-job-image-output")
def get_inference_job_image_output(deps: Edge, jobID: Annotated[str | None, Query()] = None) -> list[str]:
    """Presigned URLs of the job's images (none until it succeeded)."""
    if not jobID:
        return []
    job = _job(deps, jobID)
    expires_s = deps.presigner.expiry(None)
    return [deps.presigner.get_url(result_prefix(job.id) + name, expires_s) for name in job.image_names]


@router.get("/inference/get-inference-job-param-output")
def get_inference_job_param_output(deps: Edge, jobID: Annotated[str | None, Query()] = None) -> list[str]:
    """A presigned URL of the job's parameter file (none until it succeeded)."""
    if not jobID:
        return []
    job = _job(deps, jobID)
    if not job.param_name:
        return []
    return [deps.presigner.get_url(result_prefix(job.id) + job.param_name, deps.presigner.expiry(None))]
