"""Routes 2-6 and 16: inference jobs, their outputs, and model merge; and the original system's
inference routes the WebUI extension uses (``/inference/v2``, ``query-inference-jobs``,
``run-sagemaker-inference``)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api_gateway.claims import ClaimCheck, TooLarge
from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import ApiError, answers, bounded, conflict, not_found
from api_gateway.ids import new_id
from api_gateway.limits import MAX_BODY_BYTES
from api_gateway.pages import Limit, NextToken, described, newest_first, paged_answers
from api_gateway.routes import MAX_ID_LENGTH, JobId, OptionalJobId, example_answer, presign_expiry, presigned_answers
from api_gateway.routes.webhooks import refuse_unsafe_target
from api_gateway.runnable import CannotRun, resolve_all, resolve_models
from api_gateway.transitions import send, send_then_record
from sdmw_contracts.api.common import seed_time
from sdmw_contracts.api.inference import (
    BASE_MODEL_TYPE,
    CreatedInferenceV2,
    InferenceJobDeleted,
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
from sdmw_contracts.events.inference import InferenceCancelRequested, InferenceDeletionRequested, result_prefix
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
        error=job.error if job.status in ("failed", "cancelled") else None,
        # The WebUI extension reads an interrogation's caption whatever became of the job.
        caption=(job.caption or "") if job.task_type.startswith("interrogate") else job.caption,
        progress=job.progress,
    )


@router.post("/inference-api/inference", responses=answers(400, 503))
def run_inference(body: InferenceRequest, deps: Edge) -> InferenceResponse:
    """Starts a txt2img or img2img job on an async endpoint; answers at once with its id, or with
    ``status: failed`` and the reason when the endpoint is not in service or a model is unknown.

    A ``webhook`` that may not be a target (not public http(s)) is refused with 400, and nothing is started.
    """
    return _submit(deps, new_id(), body, _job_webhook(deps, body))


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
    send_then_record(deps, command, [command.initial_snapshot(version=0)], correlation_id=job_id)
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
    job_id = new_id()
    webhook = _job_webhook(deps, body)
    try:
        command = _merge_command(deps, job_id, body, webhook)
    except CannotRun as exc:
        raise ApiError(400, str(exc)) from exc
    send_then_record(deps, command, [command.initial_snapshot(version=0)], correlation_id=job_id)
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


def _newest_jobs(
    response: Response, jobs: list[InferenceJobChanged], limit: int | None, next_token: str | None
) -> list[InferenceJobView]:
    """One page of ``jobs``, newest first; the continuation in ``x-next-token``."""
    page = newest_first(
        jobs,
        list_name="inference-jobs",
        at=lambda job: job.start_time,
        view=job_view,
        limit=limit,
        next_token=next_token,
        response=response,
    )
    return page.items


@router.get(
    "/inference/list-inference-jobs",
    description=described("Inference jobs, newest first."),
    responses=paged_answers(answers(400)),
)
def list_inference_jobs(
    deps: Edge, response: Response, limit: Limit = None, next_token: NextToken = None
) -> list[InferenceJobView]:
    return _newest_jobs(response, deps.read_model.list(InferenceJobChanged), limit, next_token)


def _job(deps: EdgeDependencies, job_id: str) -> InferenceJobChanged:
    job = deps.read_model.get(InferenceJobChanged, job_id)
    if job is None:
        raise not_found(f"no inference job {job_id}")
    return job


@router.get("/inference/get-inference-job", responses=answers(404))
def get_inference_job(jobID: JobId, deps: Edge) -> InferenceJobView:
    return job_view(_job(deps, jobID))


InferenceJobPathId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, examples=["1f9679f3-25b8-4c44-8345-0a845da30094"])
]


@router.post(
    "/inference/{job_id}/cancel",
    status_code=202,
    responses={200: {"model": InferenceJobView, "description": "The job was already cancelled."}}
    | answers(404, 409, 503),
)
def cancel_inference_job(job_id: InferenceJobPathId, deps: Edge, response: Response) -> InferenceJobView:
    """Stops a running inference or merge job: one still queued on its endpoint never runs, one running
    stops between two sampling steps, and what it wrote is removed. Answers 202 with the job as its owner
    then shows it (``cancelled``, unless it finished first); a job already cancelled is answered 200 as it
    is; a finished one is 409."""
    job = _job(deps, job_id)
    if job.status == "cancelled":
        response.status_code = 200
        return job_view(job)
    if job.status != "inprogress":
        raise conflict(f"inference job {job.id} is already finished: {job.status}")
    send(deps, InferenceCancelRequested(job_id=job.id, requested_at=deps.clock()), correlation_id=job.id)
    current = deps.read_model.wait_for(
        InferenceJobChanged, job.id, lambda j: j.status != "inprogress", deps.settings.transition_wait_s
    )
    return job_view(current if current is not None and not current.is_deleted else job)


@router.delete("/inference/{job_id}", responses=answers(404, 409, 503, 504))
def delete_inference_job(job_id: InferenceJobPathId, deps: Edge) -> InferenceJobDeleted:
    """Forgets a finished (or cancelled) inference job and removes its files: its images and parameter
    file, its request and SageMaker's answer (a merge's checkpoint stays: it is a checkpoint of its own).
    A running job is 409: cancel it first."""
    job = _job(deps, job_id)
    if job.status == "inprogress":
        raise conflict(f"inference job {job.id} is still running: cancel it first")
    if job.version == 0:
        # Refused by the edge itself (_failed_at_once): its owner never heard of it and nothing was written.
        deps.read_model.apply(job.as_deleted(deps.clock()))
        return InferenceJobDeleted(id=job.id)
    send(deps, InferenceDeletionRequested(job_id=job.id, requested_at=deps.clock()), correlation_id=job.id)
    current = deps.read_model.wait_for(
        InferenceJobChanged, job.id, lambda j: j.is_deleted, deps.settings.transition_wait_s
    )
    if current is None or not current.is_deleted:
        raise ApiError(504, f"the deletion of inference job {job.id} is accepted but not done yet; check again")
    return InferenceJobDeleted(id=job.id)


#: A presigned GET URL of a job's output, as the seed shows it.
_OUTPUT_URL_EXAMPLE = [
    "https://stable-diffusion-aws-extension-aigcbucketa457cb49-1tlr2pqwkosg3.s3.amazonaws.com"
    "/out/1f9679f3-25b8-4c44-8345-0a845da30094/result/image_0.jpg"
]


@router.get(
    "/inference/get-inference-job-image-output",
    responses=presigned_answers({**answers(404), **example_answer(_OUTPUT_URL_EXAMPLE)}),
)
def get_inference_job_image_output(deps: Edge, response: Response, jobID: OptionalJobId = None) -> list[str]:
    """Presigned URLs of the job's images (none until it succeeded), signed afresh on each read."""
    if not jobID:
        return []
    job = _job(deps, jobID)
    expires_s = presign_expiry(deps, response)
    return [deps.presigner.get_url(result_prefix(job.id) + name, expires_s) for name in job.image_names]


@router.get(
    "/inference/get-inference-job-param-output",
    responses=presigned_answers({**answers(404), **example_answer(_OUTPUT_URL_EXAMPLE)}),
)
def get_inference_job_param_output(deps: Edge, response: Response, jobID: OptionalJobId = None) -> list[str]:
    """A presigned URL of the job's parameter file (none until it succeeded), signed afresh on each read."""
    if not jobID:
        return []
    job = _job(deps, jobID)
    if not job.param_name:
        return []
    return [deps.presigner.get_url(result_prefix(job.id) + job.param_name, presign_expiry(deps, response))]


# ---------------------------------------------------------------- the WebUI extension's inference routes
#
# The extension raises on any HTTP error status and shows ``', '.join(error)`` of a refusal, so these
# routes answer what it can show: POST /inference/v2 refuses with HTTP 200 and ``{"status": 400,
# "error": [messages]}``, as the original middleware did; a job that cannot run once it has an id
# (PUT .../run, run-sagemaker-inference) is recorded failed with the reason, which the extension then
# shows as a failed job, and get-inference-job shows why.


def _extension_refusal(status: int, messages: list[str]) -> JSONResponse:
    """A refusal of POST /inference/v2 as the extension reads it: HTTP 200, ``status`` and a list ``error``."""
    errors = [bounded(message) for message in messages]
    return JSONResponse(status_code=200, content={"statusCode": status, "status": status, "error": errors})


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


def _validation_messages(exc: ValidationError) -> list[str]:
    """Each problem as ``field.path: what is wrong``, for a person to read."""
    return [f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]


_V2_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": InferenceV2Request.model_json_schema()}},
    }
}


@router.post(
    "/inference/v2",
    response_model=InferenceV2Response | RefusedInference,
    responses=presigned_answers(),
    openapi_extra=_V2_BODY,
)
def create_inference_v2(
    deps: Edge, response: Response, body: Annotated[Any, Body()] = None
) -> InferenceV2Response | JSONResponse:
    """Step 1 of the extension's inference: check the request, the endpoint and the models, answer where
    the parameters go. A request that cannot run is answered HTTP 200 with ``status`` 400 (422 for a body
    that is not a valid request) and ``error``, a list of messages, as the original middleware answered it."""
    try:
        request = InferenceV2Request.model_validate(body)
    except ValidationError as exc:
        return _extension_refusal(422, _validation_messages(exc))
    if reason := _cannot_run(deps, request.sagemaker_endpoint_name, request.models):
        return _extension_refusal(400, [reason])
    job_id = new_id()
    deps.claims.put_json(_v2_key(job_id, "request"), request.model_dump(mode="json"))
    params_key = _v2_key(job_id, "api_params")
    return InferenceV2Response(
        inference=CreatedInferenceV2(
            id=job_id,
            type=request.task_type,
            endpoint_name=request.sagemaker_endpoint_name,
            models=request.models,
            api_params_s3_location=f"s3://{deps.presigner.bucket}/{params_key}",
            api_params_s3_upload_url=deps.presigner.put_url(params_key, presign_expiry(deps, response)),
        )
    )


@router.put("/inference/v2/{job_id}/run", response_model=InferenceV2RunResponse, responses=answers(404, 503))
def run_inference_v2(job_id: Annotated[str, Path(max_length=64)], deps: Edge) -> InferenceV2RunResponse:
    """Step 3: start the job with the parameters uploaded to its URL (the body, the request of step 1
    again, is not needed). It then runs like any inference job; one that cannot run (no parameters,
    parameters that are not valid, an endpoint or model gone) ends ``failed`` at once with the reason, and
    is answered so. Asking again answers the job as it is."""
    if (existing := deps.read_model.get(InferenceJobChanged, job_id)) is not None:
        return InferenceV2RunResponse(inference=_as_started(deps, existing))
    request = deps.claims.get_json(_v2_key(job_id, "request"))
    if request is None:
        raise not_found(f"no inference job {job_id}: create it with POST /inference/v2 first")
    try:
        params = read_parameters(deps.claims, _v2_key(job_id, "api_params"))
    except ParametersTooLarge as exc:
        reason = exc.reason("the parameters uploaded to api_params_s3_upload_url")
        return InferenceV2RunResponse(inference=_failed_request(deps, job_id, request, reason))
    except ValueError:
        reason = "the parameters uploaded to api_params_s3_upload_url are not JSON"
        return InferenceV2RunResponse(inference=_failed_request(deps, job_id, request, reason))
    if not isinstance(params, dict):
        reason = "upload the parameters (a JSON object) to api_params_s3_upload_url first"
        return InferenceV2RunResponse(inference=_failed_request(deps, job_id, request, reason))
    return InferenceV2RunResponse(inference=_start_inference(deps, job_id, {**params, **request}))


#: The largest parameters object (api_params_s3_upload_url's, config/aigc.json) the edge reads: the limit
#: of a request body (``api_gateway.limits.MAX_BODY_BYTES``), so that what the edge holds in memory for one
#: job is bounded the same way whichever way its parameters came. Anything larger is refused unread.
MAX_PARAMETERS_BYTES = MAX_BODY_BYTES


class ParametersTooLarge(TooLarge):
    def reason(self, what: str) -> str:
        return (
            f"Request Too Long: {what} are {self.size:,} bytes; they may be at most {MAX_PARAMETERS_BYTES:,} "
            "bytes, as a request body may (make the images smaller or fewer)"
        )


def read_parameters(claims: ClaimCheck, key: str) -> Any:
    """The parameters object at ``key``, parsed; None when there is none; ValueError when it is not JSON;
    :class:`ParametersTooLarge` when it is over :data:`MAX_PARAMETERS_BYTES`, read no further than that."""
    try:
        return claims.get_json(key, max_bytes=MAX_PARAMETERS_BYTES)
    except TooLarge as exc:
        raise ParametersTooLarge(exc.size) from exc


def _as_started(deps: EdgeDependencies, job: InferenceJobChanged) -> InferenceResponse:
    if job.status == "failed":
        return InferenceResponse(
            inference_id=job.id, status="failed", endpoint_name=job.endpoint_name or "", error=job.error
        )
    return _started(deps, job.id, job.endpoint_name or "")


def _failed_request(deps: EdgeDependencies, job_id: str, request: dict[str, Any], reason: str) -> InferenceResponse:
    """A job the client asked for that cannot run: recorded failed, with what the request said of it."""
    task = request.get("task_type") if request.get("task_type") in {"txt2img", "img2img"} else "txt2img"
    models = request.get("models") if _is_models_map(request.get("models")) else {}
    endpoint = str(request.get("sagemaker_endpoint_name") or request.get("sagemaker_endpoint") or "")
    return _failed_at_once(deps, job_id, task, endpoint, models, deps.clock(), reason)


def _start_inference(deps: EdgeDependencies, job_id: str, body: dict[str, Any]) -> InferenceResponse:
    """Validate the merged request as ``/inference-api/inference`` does, then start it; parameters that
    are not valid end the job failed at once, naming each field and what is wrong with it.

    The extension's routes take no webhook: ``webhook`` fields in its parameters are ignored.
    """
    body = {key: value for key, value in body.items() if key not in JobWebhookFields.webhook_fields}
    try:
        request = InferenceRequest.model_validate(body)
    except ValidationError as exc:
        return _failed_request(deps, job_id, body, "; ".join(_validation_messages(exc)))
    return _submit(deps, job_id, request)


def _started(deps: EdgeDependencies, job_id: str, endpoint_name: str) -> InferenceResponse:
    return InferenceResponse(
        inference_id=job_id,
        status="inprogress",
        endpoint_name=endpoint_name,
        output_path=f"s3://{deps.presigner.bucket}/{result_prefix(job_id)}",
    )


#: What query-inference-jobs lists unless asked for a task type: the jobs whose results the WebUI
#: extension's job list can show (it fails on any other task type); a merge's result is a checkpoint.
_IMAGE_TASKS = frozenset({"txt2img", "img2img", "interrogate_clip", "interrogate_deepbooru"})
#: ... and unless asked for a status, the statuses the extension's job view knows: picking a ``cancelled``
#: job there would fail, so cancelled jobs are listed when ``status`` asks for them.
_EXTENSION_STATUSES = frozenset({"inprogress", "succeed", "failed"})


@router.post(
    "/inference/query-inference-jobs",
    description=described(
        "Jobs newest first, filtered by every field given (an empty one filters nothing); merges only when "
        "`task_type` asks for them and cancelled jobs only when `status` does (the WebUI extension's list fails "
        "on either). The next page: the same body with `next_token`."
    ),
    responses=paged_answers(answers(400)),
)
def query_inference_jobs(body: QueryInferenceJobsRequest, deps: Edge, response: Response) -> list[InferenceJobView]:
    start, end = _aware(body.start_time), _aware(body.end_time)
    matching = [
        job
        for job in deps.read_model.list(InferenceJobChanged)
        if (job.status == body.status if body.status is not None else job.status in _EXTENSION_STATUSES)
        and (job.task_type == body.task_type if body.task_type is not None else job.task_type in _IMAGE_TASKS)
        and (body.endpoint is None or job.endpoint_name == body.endpoint)
        and (body.checkpoint is None or _uses(job, body.checkpoint))
        and (start is None or job.start_time >= start)
        and (end is None or job.start_time <= end)
    ]
    return _newest_jobs(response, matching, body.limit, body.next_token)


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


@router.post("/inference/run-sagemaker-inference", response_model=InferenceResponse, responses=answers(503))
def run_sagemaker_inference(body: RunSageMakerInferenceRequest, deps: Edge) -> InferenceResponse:
    """The v1.0 client's inference with the parameters from ``config/aigc.json``: txt2img/img2img, or
    A1111's interrogation (``interrogate_clip``/``interrogate_deepbooru``) of the image they carry.

    A job that cannot run (no parameters, no image, an endpoint not in service) is answered, and shown by
    get-inference-job, as ``failed`` with the reason: the extension follows the id it gets."""
    job_id = new_id()
    try:
        params = read_parameters(deps.claims, AIGC_PARAMETERS_KEY)
    except ParametersTooLarge as exc:
        params = None
        reason = exc.reason(f"the parameters in {AIGC_PARAMETERS_KEY}")
    except ValueError:
        params = None
        reason = f"{AIGC_PARAMETERS_KEY} is not JSON"
    else:
        needs = f"{body.task_type} needs the image: " if body.task_type.startswith("interrogate") else ""
        reason = f"{needs}upload the parameters to {AIGC_PARAMETERS_KEY} first"
    if not isinstance(params, dict):
        return _failed_at_once(deps, job_id, body.task_type, body.sagemaker_endpoint, {}, deps.clock(), reason)
    if body.task_type.startswith("interrogate"):
        return _start_interrogation(deps, job_id, body, params)
    models = body.models or params.get("models") or {}
    if not _is_models_map(models):
        reason = f"{AIGC_PARAMETERS_KEY}: models must map checkpoint types to lists of names"
        return _failed_at_once(deps, job_id, body.task_type, body.sagemaker_endpoint, {}, deps.clock(), reason)
    merged = {**params, "task_type": body.task_type, "sagemaker_endpoint_name": body.sagemaker_endpoint}
    return _start_inference(deps, job_id, {**merged, "models": models})


#: How the picture formats the runtime reads begin (PNG, JPEG, GIF, BMP, TIFF, WebP).
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
#: Where the extension's img2img page puts its image in ``config/aigc.json``, by the img2img tab selected
#: (``img2img_selected_tab_name``): the Inpaint tabs hand over ``{image, mask}``.
_IMG2IMG_TAB_IMAGES = {
    "img2img": "img2img_init_img",
    "Sketch": "img2img_sketch",
    "Inpaint": "img2img_init_img_with_mask",
    "Inpaint_sketch": "img2img_inpaint_color_sketch",
    "Inpaint_upload": "img2img_init_img_inpaint",
}


def _image_candidates(params: dict[str, Any]) -> list[tuple[str, Any]]:
    """Where an image to interrogate may be, most specific first: A1111's interrogate ``image``, the
    extension's image of the img2img tab it says was selected, its other tabs' images, ``init_images[0]``."""
    selected = _IMG2IMG_TAB_IMAGES.get(str(params.get("img2img_selected_tab_name")))
    keys = ["image", *([selected] if selected else []), *_IMG2IMG_TAB_IMAGES.values()]
    found = [(key, params.get(key)) for key in dict.fromkeys(keys)]
    images = params.get("init_images")
    if isinstance(images, list) and images:
        found.append(("init_images[0]", images[0]))
    return [(key, value["image"] if isinstance(value, dict) and "image" in value else value) for key, value in found]


def _interrogation_image(task: str, params: dict[str, Any]) -> tuple[str | None, str]:
    """The image to interrogate from the uploaded parameters (``_image_candidates``), or why there is none."""
    what, image = next(((key, value) for key, value in _image_candidates(params) if value), ("image", None))
    if not image:
        return None, (
            f"{task} needs the image: put it in {AIGC_PARAMETERS_KEY} as 'image' (base64 or a data URL), or "
            "as the extension's img2img page does (img2img_init_img)"
        )
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
    deps: EdgeDependencies, job_id: str, body: RunSageMakerInferenceRequest, params: dict[str, Any]
) -> InferenceResponse:
    """An inference job whose task is the interrogation; the runtime's own caption model needs no checkpoint."""
    image, reason = _interrogation_image(body.task_type, params)
    if image is not None:
        reason = _cannot_run(deps, body.sagemaker_endpoint, {}) or ""
    if image is None or reason:
        return _failed_at_once(deps, job_id, body.task_type, body.sagemaker_endpoint, {}, deps.clock(), reason)
    command = InferenceRequested(
        job_id=job_id,
        endpoint_name=body.sagemaker_endpoint,
        task_type=body.task_type,
        requested_at=deps.clock(),
        interrogation=InterrogationParams(image=image, model=body.task_type.removeprefix("interrogate_")),
    )
    send_then_record(deps, command, [command.initial_snapshot(version=0)], correlation_id=job_id)
    return _started(deps, job_id, body.sagemaker_endpoint)
