"""Routes 2-6 and 16: inference jobs, their outputs, and model merge; and the original system's
inference routes the WebUI extension uses (``/inference/v2``, ``query-inference-jobs``,
``run-sagemaker-inference``)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import ApiError, answers, bounded, not_found
from api_gateway.routes import JobId, OptionalJobId, example_answer
from api_gateway.routes.webhooks import refuse_unsafe_target
from api_gateway.runnable import CannotRun, resolve_all, resolve_models
from api_gateway.transitions import record_then_send
from sdmw_contracts.api.common import seed_time
from sdmw_contracts.api.inference import (
    BASE_MODEL_TYPE,
    CreatedInferenceV2,
    InferenceJobView,
    InferenceRequest,
    InferenceResponse,
    InferenceV2Request,
    InferenceV2Response,
    InferenceV2RunResponse,
    ModelMergeRequest,
    ModelMergeResponse,
    QueryInferenceJobsRequest,
    RefusedInference,
    RunSageMakerInferenceRequest,
    seed_complete_time,
)
from sdmw_contracts.api.webhooks import JobWebhookFields
from sdmw_contracts.events import InferenceJobChanged, InferenceRequested, ModelMergeRequested
from sdmw_contracts.events.inference import result_prefix
from sdmw_contracts.events.webhooks import JobWebhook
from sdmw_contracts.generation import InterrogationParams
from sdmw_contracts.runtime import MergeSpec, ModelRef, plain_model_name

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
        caption=job.caption,
    )


@router.post("/inference-api/inference", responses=answers(400, 503))
def run_inference(body: InferenceRequest, deps: Edge) -> InferenceResponse:
    """Starts a txt2img or img2img job on an async endpoint; answers at once with its id, or with
    ``status: failed`` and the reason when the endpoint is not in service or a model is unknown.

    A ``webhook`` that may not be a target (not public http(s)) is refused with 400, and nothing is started.
    """
    return _submit(deps, str(uuid.uuid4()), body, _job_webhook(deps, body))


def _job_webhook(deps: EdgeDependencies, body: JobWebhookFields) -> JobWebhook | None:
    """The request's own webhook, checked (400 naming why it is refused); None when it names none."""
    if body.webhook is not None:
        refuse_unsafe_target(deps, body.webhook, "webhook")
    return body.job_webhook()


def _submit(
    deps: EdgeDependencies, job_id: str, body: InferenceRequest, webhook: JobWebhook | None = None
) -> InferenceResponse:
    params = body.generation_params()
    requested_at = deps.clock()
    endpoint = body.sagemaker_endpoint_name
    try:
        deps.directory.endpoint_in_service(endpoint)
        resolved = resolve_models(deps.directory, body.models, params)
    except CannotRun as exc:
        return _failed_at_once(deps, job_id, body.task_type, endpoint, body.models, requested_at, str(exc))
    command = InferenceRequested(
        job_id=job_id,
        endpoint_name=endpoint,
        task_type=body.task_type,
        requested_at=requested_at,
        models=body.models,
        resolved=resolved,
        params=params,
        webhook=webhook,
    )
    record_then_send(deps, [command.initial_snapshot(version=0)], command, correlation_id=job_id)
    return _started(deps, job_id, endpoint)


def _failed_at_once(
    deps: EdgeDependencies,
    job_id: str,
    task: str,
    endpoint: str,
    models: dict[str, list[str]],
    requested_at: datetime,
    reason: str,
) -> InferenceResponse:
    """A job that cannot run: recorded as failed, so get-inference-job shows why, and nothing is sent."""
    job = InferenceJobChanged(
        id=job_id,
        version=0,
        task_type=task,
        endpoint_name=endpoint,
        models=models,
        status="failed",
        start_time=requested_at,
        complete_time=requested_at,
        error=bounded(reason),
    )
    deps.read_model.apply(job)
    return InferenceResponse(inference_id=job_id, status="failed", endpoint_name=endpoint, error=job.error)


@router.post("/inference/run-model-merge", responses=answers(400, 503))
def run_model_merge(body: ModelMergeRequest, deps: Edge) -> ModelMergeResponse:
    """Merges checkpoints on an endpoint as an inference job of task type ``merge``."""
    job_id = str(uuid.uuid4())
    webhook = _job_webhook(deps, body)
    try:
        command = _merge_command(deps, job_id, body, webhook)
    except CannotRun as exc:
        raise ApiError(400, str(exc)) from exc
    record_then_send(deps, [command.initial_snapshot(version=0)], command, correlation_id=job_id)
    return ModelMergeResponse(
        primary_model_name=body.primary_model_name,
        secondary_model_name=body.secondary_model_name,
        tertiary_model_name=body.tertiary_model_name,
        inference_id=job_id,
        status="inprogress",
    )


def _merge_command(
    deps: EdgeDependencies, job_id: str, body: ModelMergeRequest, webhook: JobWebhook | None
) -> ModelMergeRequested:
    """The merge, its endpoint (the one named, or any in service) and its checkpoints resolved."""
    directory = deps.directory
    if body.sagemaker_endpoint_name:
        endpoint = directory.endpoint_in_service(body.sagemaker_endpoint_name)
    else:
        endpoint = directory.any_endpoint_in_service()
    titles = [name for name in (body.primary_model_name, body.secondary_model_name, body.tertiary_model_name) if name]
    found = resolve_all(directory, [(BASE_MODEL_TYPE, title) for title in titles])

    def ref(title: str | None) -> ModelRef | None:
        return found[BASE_MODEL_TYPE, title] if title else None

    merge = MergeSpec(
        primary=found[BASE_MODEL_TYPE, body.primary_model_name],
        secondary=found[BASE_MODEL_TYPE, body.secondary_model_name],
        tertiary=ref(body.tertiary_model_name),
        method=body.interp_method,
        multiplier=body.multiplier,
        save_as_half=body.save_as_half,
        output_s3_uri=f"s3://{deps.presigner.bucket}/{result_prefix(job_id)}{merged_file_name(job_id, body)}",
    )
    return ModelMergeRequested(
        job_id=job_id,
        endpoint_name=endpoint,
        requested_at=deps.clock(),
        models={BASE_MODEL_TYPE: titles},
        merge=merge,
        webhook=webhook,
    )


def merged_file_name(job_id: str, body: ModelMergeRequest) -> str:
    """The merged checkpoint's file: the custom name (a safetensors file), or one from the job's id."""
    name = body.custom_name or f"merged-{job_id[:8]}"
    return name if name.endswith(".safetensors") else f"{name}.safetensors"


@router.get("/inference/list-inference-jobs")
def list_inference_jobs(deps: Edge) -> list[InferenceJobView]:
    found = sorted(deps.read_model.list(InferenceJobChanged), key=lambda j: j.start_time, reverse=True)
    return [job_view(job) for job in found]


def _job(deps: EdgeDependencies, job_id: str) -> InferenceJobChanged:
    job = deps.read_model.get(InferenceJobChanged, job_id)
    if job is None:
        raise not_found(f"no inference job {job_id}")
    return job


@router.get("/inference/get-inference-job", responses=answers(404))
def get_inference_job(jobID: JobId, deps: Edge) -> InferenceJobView:
    return job_view(_job(deps, jobID))


#: A presigned GET URL of a job's output, as the seed shows it.
_OUTPUT_URL_EXAMPLE = [
    "https://stable-diffusion-aws-extension-aigcbucketa457cb49-1tlr2pqwkosg3.s3.amazonaws.com"
    "/out/1f9679f3-25b8-4c44-8345-0a845da30094/result/image_0.jpg"
]


@router.get(
    "/inference/get-inference-job-image-output", responses={**answers(404), **example_answer(_OUTPUT_URL_EXAMPLE)}
)
def get_inference_job_image_output(deps: Edge, jobID: OptionalJobId = None) -> list[str]:
    """Presigned URLs of the job's images (none until it succeeded)."""
    if not jobID:
        return []
    job = _job(deps, jobID)
    expires_s = deps.presigner.expiry(None)
    return [deps.presigner.get_url(result_prefix(job.id) + name, expires_s) for name in job.image_names]


@router.get(
    "/inference/get-inference-job-param-output", responses={**answers(404), **example_answer(_OUTPUT_URL_EXAMPLE)}
)
def get_inference_job_param_output(deps: Edge, jobID: OptionalJobId = None) -> list[str]:
    """A presigned URL of the job's parameter file (none until it succeeded)."""
    if not jobID:
        return []
    job = _job(deps, jobID)
    if not job.param_name:
        return []
    return [deps.presigner.get_url(result_prefix(job.id) + job.param_name, deps.presigner.expiry(None))]


# ---------------------------------------------------------------- the WebUI extension's inference routes


def _refused(status: int, error: str) -> JSONResponse:
    """A refusal the extension can read (it checks ``status`` and ``error`` in the body)."""
    error = bounded(error)
    return JSONResponse(status_code=status, content={"statusCode": status, "status": status, "error": error})


def _v2_key(job_id: str, what: str) -> str:
    return f"inference-v2/{job_id}/{what}.json"


def _cannot_run(deps: EdgeDependencies, endpoint_name: str, models: dict[str, list[str]]) -> str | None:
    """Why a job on ``endpoint_name`` with ``models`` cannot run, from the read model; None when it can."""
    try:
        deps.directory.endpoint_in_service(endpoint_name)
        resolve_models(deps.directory, models, None)
    except CannotRun as exc:
        return str(exc)
    return None


@router.post("/inference/v2", response_model=InferenceV2Response, responses=answers(400, _400=RefusedInference))
def create_inference_v2(body: InferenceV2Request, deps: Edge) -> InferenceV2Response | JSONResponse:
    """Step 1 of the extension's inference: check the endpoint and models, answer where the parameters go."""
    if reason := _cannot_run(deps, body.sagemaker_endpoint_name, body.models):
        return _refused(400, reason)
    job_id = str(uuid.uuid4())
    deps.claims.put_json(_v2_key(job_id, "request"), body.model_dump(mode="json"))
    params_key = _v2_key(job_id, "api_params")
    return InferenceV2Response(
        inference=CreatedInferenceV2(
            id=job_id,
            type=body.task_type,
            endpoint_name=body.sagemaker_endpoint_name,
            models=body.models,
            api_params_s3_location=f"s3://{deps.presigner.bucket}/{params_key}",
            api_params_s3_upload_url=deps.presigner.put_url(params_key, deps.presigner.expiry(None)),
        )
    )


@router.put(
    "/inference/v2/{job_id}/run",
    response_model=InferenceV2RunResponse,
    responses=answers(400, 404, 503, _400=RefusedInference),
)
def run_inference_v2(
    job_id: Annotated[str, Path(max_length=64)], deps: Edge, body: InferenceV2Request | None = None
) -> InferenceV2RunResponse | JSONResponse:
    """Step 3: start the job with the uploaded parameters; it then runs like any inference job."""
    if (existing := deps.read_model.get(InferenceJobChanged, job_id)) is not None:
        if existing.status == "failed":
            return _refused(400, existing.error or f"inference job {job_id} failed")
        return InferenceV2RunResponse(inference=_started(deps, existing.id, existing.endpoint_name or ""))
    request = deps.claims.get_json(_v2_key(job_id, "request"))
    if request is None:
        raise not_found(f"no inference job {job_id}: create it with POST /inference/v2 first")
    try:
        params = deps.claims.get_json(_v2_key(job_id, "api_params"))
    except ValueError:
        return _refused(400, "the parameters uploaded to api_params_s3_upload_url are not JSON")
    if not isinstance(params, dict):
        return _refused(400, "upload the parameters (a JSON object) to api_params_s3_upload_url first")
    started = _start_inference(deps, job_id, {**params, **request})
    return started if isinstance(started, JSONResponse) else InferenceV2RunResponse(inference=started)


def _start_inference(deps: EdgeDependencies, job_id: str, body: dict[str, Any]) -> InferenceResponse | JSONResponse:
    """Validate the merged request as ``/inference-api/inference`` does (422 naming the field), then start
    it; the extension reads a job that cannot run as a 400 with the reason.

    The extension's routes take no webhook: ``webhook`` fields in its parameters are ignored.
    """
    body = {key: value for key, value in body.items() if key not in JobWebhookFields.webhook_fields}
    try:
        request = InferenceRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    started = _submit(deps, job_id, request)
    if started.status == "failed":
        return _refused(400, started.error or "the job cannot run")
    return started


def _started(deps: EdgeDependencies, job_id: str, endpoint_name: str) -> InferenceResponse:
    return InferenceResponse(
        inference_id=job_id,
        status="inprogress",
        endpoint_name=endpoint_name,
        output_path=f"s3://{deps.presigner.bucket}/{result_prefix(job_id)}",
    )


@router.post("/inference/query-inference-jobs")
def query_inference_jobs(body: QueryInferenceJobsRequest, deps: Edge) -> list[InferenceJobView]:
    """Jobs newest first, filtered by every field given (an empty one filters nothing)."""
    found = sorted(deps.read_model.list(InferenceJobChanged), key=lambda j: j.start_time, reverse=True)
    start, end = _aware(body.start_time), _aware(body.end_time)
    matching = [
        job
        for job in found
        if (body.status is None or job.status == body.status)
        and (body.task_type is None or job.task_type == body.task_type)
        and (body.endpoint is None or job.endpoint_name == body.endpoint)
        and (body.checkpoint is None or _uses(job, body.checkpoint))
        and (start is None or job.start_time >= start)
        and (end is None or job.start_time <= end)
    ]
    return [job_view(job) for job in matching[: body.limit]]


def _is_models_map(models: Any) -> bool:
    """``{checkpoint type: [name, ...]}``, as the parameters file may hold anything."""
    return isinstance(models, dict) and all(
        isinstance(names, list) and all(isinstance(name, str) for name in names) for names in models.values()
    )


def _uses(job: InferenceJobChanged, title: str) -> bool:
    """Whether the job used the model ``title`` names (A1111's ``[hash]`` ignored on both sides)."""
    wanted = plain_model_name(title)
    return any(plain_model_name(name) == wanted for names in job.models.values() for name in names)


def _aware(value: datetime | None) -> datetime | None:
    """Times without a zone are UTC, as the seed's are."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


#: Where the extension's v1.0 client uploads the A1111 parameters before calling run-sagemaker-inference.
AIGC_PARAMETERS_KEY = "config/aigc.json"


@router.post(
    "/inference/run-sagemaker-inference",
    response_model=InferenceResponse,
    responses=answers(400, 503, _400=RefusedInference),
)
def run_sagemaker_inference(body: RunSageMakerInferenceRequest, deps: Edge) -> InferenceResponse | JSONResponse:
    """The v1.0 client's inference with the parameters from ``config/aigc.json``: txt2img/img2img, or
    A1111's interrogation (``interrogate_clip``/``interrogate_deepbooru``) of the image they carry."""
    interrogation = body.task_type.startswith("interrogate")
    try:
        params = deps.claims.get_json(AIGC_PARAMETERS_KEY)
    except ValueError:
        return _refused(400, f"{AIGC_PARAMETERS_KEY} is not JSON")
    if not isinstance(params, dict):
        needs = f"{body.task_type} needs the image: " if interrogation else ""
        return _refused(400, f"{needs}upload the parameters to {AIGC_PARAMETERS_KEY} first")
    if interrogation:
        return _start_interrogation(deps, body, params)
    models = body.models or params.get("models") or {}
    if not _is_models_map(models):
        return _refused(400, f"{AIGC_PARAMETERS_KEY}: models must map checkpoint types to lists of names")
    merged = {**params, "task_type": body.task_type, "sagemaker_endpoint_name": body.sagemaker_endpoint}
    return _start_inference(deps, str(uuid.uuid4()), {**merged, "models": models})


#: How the picture formats the runtime reads begin (PNG, JPEG, GIF, BMP, TIFF, WebP).
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _interrogation_image(task: str, params: dict[str, Any]) -> tuple[str | None, str]:
    """A1111's interrogate ``image`` from the parameters (``init_images[0]`` when there is none), or a refusal."""
    image, what = params.get("image"), "image"
    if not image:
        images = params.get("init_images")
        image, what = (images[0], "init_images[0]") if isinstance(images, list) and images else (None, "image")
    if not image:
        return None, f"{task} needs the image: put it in {AIGC_PARAMETERS_KEY} as 'image' (base64 or a data URL)"
    if not isinstance(image, str):
        return None, f"{AIGC_PARAMETERS_KEY}: {what} must be a base64-encoded image"
    data = image.split(",", 1)[1] if image.startswith("data:") and "," in image else image
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return None, f"{AIGC_PARAMETERS_KEY}: {what} is not base64"
    is_webp = raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"
    if not (is_webp or raw.startswith(_IMAGE_SIGNATURES)):
        return None, f"{AIGC_PARAMETERS_KEY}: {what} is not an image (PNG, JPEG, WebP, GIF, BMP or TIFF)"
    return image, what


def _start_interrogation(
    deps: EdgeDependencies, body: RunSageMakerInferenceRequest, params: dict[str, Any]
) -> InferenceResponse | JSONResponse:
    """An inference job whose task is the interrogation; the runtime's own caption model needs no checkpoint."""
    image, reason = _interrogation_image(body.task_type, params)
    if image is None:
        return _refused(400, reason)
    if reason := _cannot_run(deps, body.sagemaker_endpoint, {}):
        return _refused(400, reason)
    job_id = str(uuid.uuid4())
    command = InferenceRequested(
        job_id=job_id,
        endpoint_name=body.sagemaker_endpoint,
        task_type=body.task_type,
        requested_at=deps.clock(),
        interrogation=InterrogationParams(image=image, model=body.task_type.removeprefix("interrogate_")),
    )
    record_then_send(deps, [command.initial_snapshot(version=0)], command, correlation_id=job_id)
    return _started(deps, job_id, body.sagemaker_endpoint)
