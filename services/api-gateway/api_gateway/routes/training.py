"""Routes 17-19 and 23-25: model-creation jobs and training jobs (owned by training-manager).

The edge checks what it can from its read model before anything is accepted
(the base checkpoint is Active, the model Complete, the datasets Enabled, the
settings within their bounds), so a bad request changes nothing; the owner
refuses only what depends on its own state (files not uploaded yet).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api_gateway.catalogue import AmbiguousName, find_model
from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import ApiError, answers, conflict, not_found
from api_gateway.ids import new_id
from api_gateway.pages import Limit, NextToken, described, newest_first, paged_answers
from api_gateway.routes import MAX_ID_LENGTH, presign_expiry, presigned_answers
from api_gateway.routes.assets import refuse_oversized_multipart
from api_gateway.routes.webhooks import refuse_unsafe_target
from api_gateway.transitions import await_deleted, await_first_owner_snapshot, await_outcome, send, send_then_record
from sdmw_contracts.api.jobs import Deleted
from sdmw_contracts.api.training import (
    PRODUCED_TYPE,
    CancelTrainJobResponse,
    CreatedModelJob,
    CreatedTrainJob,
    CreateModelRequest,
    CreateModelResponse,
    CreateTrainJobRequest,
    CreateTrainJobResponse,
    ListModelsResponse,
    ListTrainJobsResponse,
    ModelView,
    TrainJobView,
    UpdatedModelJob,
    UpdatedTrainJob,
    UpdateModelRequest,
    UpdateModelResponse,
    UpdateTrainJobRequest,
    UpdateTrainJobResponse,
)
from sdmw_contracts.envelope import Command
from sdmw_contracts.events import (
    CheckpointChanged,
    DatasetChanged,
    ModelChanged,
    ModelCreationRequested,
    ModelUpdateRequested,
    TrainJobChanged,
    TrainJobRequested,
    TrainJobUpdateRequested,
)
from sdmw_contracts.events.assets import DIFFUSERS_INDEX, FileParts
from sdmw_contracts.events.training import (
    DataRef,
    ModelDeletionRequested,
    TrainJobCancelRequested,
    TrainJobDeletionRequested,
    input_prefix,
    train_prefix,
)
from sdmw_contracts.runtime import ModelRef, plain_model_name
from sdmw_contracts.training import MAX_HYPERPARAMETER_LENGTH, TrainingHyperparameters

router = APIRouter(tags=["training"])
Edge = Annotated[EdgeDependencies, Depends(edge)]

#: Keys of the training settings that are the job's, not the runtime's.
_JOB_SETTINGS = {"training_instance_type", "dataset_names", "class_dataset_names", "output_name"}
_HYPERPARAMETERS = set(TrainingHyperparameters.model_fields) - {"task", "model_name", "config_params"}
_ID_EXAMPLE = "1f9679f3-25b8-4c44-8345-0a845da30094"
TrainJobId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, examples=[_ID_EXAMPLE])]
ModelId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, examples=[_ID_EXAMPLE])]
#: A train job's error once it was cancelled (training-manager's jobs.CANCELLED).
CANCELLED = "cancelled"


# ---------------------------------------------------------------- routes 17-19


@router.post("/model", responses=presigned_answers(answers(400, 404, 503, 504)))
def create_model(body: CreateModelRequest, deps: Edge, response: Response) -> CreateModelResponse:
    """A model-creation job from an Active checkpoint, or from a file uploaded with it (parts URLs answered)."""
    model_id = new_id()
    create = body.params.create_model_params
    command = ModelCreationRequested(
        model_id=model_id,
        model_type=body.model_type,
        name=body.name,
        files=[FileParts(filename=f.filename, parts_number=f.parts_number) for f in body.filenames],
        base_checkpoint=None if body.filenames else _base_checkpoint(body, deps),
        extract_ema=create.extract_ema,
        params=body.params.model_dump(mode="json"),
        requested_at=deps.clock(),
    )
    initial = command.initial_snapshot(deps.presigner.bucket, version=0)
    if body.filenames:  # the part URLs must fit one answer, before anything is recorded or sent
        refuse_oversized_multipart(deps, initial.files, initial.params, presign_expiry(deps, response))
    send_then_record(deps, command, [initial], correlation_id=model_id)
    model = await_first_owner_snapshot(deps, ModelChanged, model_id) if body.filenames else initial
    uploads = deps.presigner.multipart_uploads(model.files, presign_expiry(deps, response))
    job = CreatedModelJob(
        id=model.id,
        status=model.status,
        s3_base=model.s3_base,
        model_type=model.model_type,
        params=model.params,
        s3PresignUrl=uploads,
    )
    return CreateModelResponse(job=job, s3PresignUrl={u.filename or u.key: u.s3_signed_urls for u in uploads})


def _base_checkpoint(body: CreateModelRequest, deps: EdgeDependencies) -> ModelRef:
    """The Active Stable-diffusion checkpoint the model starts from, or a 400/404 naming the field."""
    wanted = plain_model_name(body.params.create_model_params.ckpt_path)
    if body.checkpoint_id:
        checkpoint = deps.read_model.get(CheckpointChanged, body.checkpoint_id)
        if checkpoint is None:
            raise not_found(f"checkpoint_id: no checkpoint {body.checkpoint_id}")
        if checkpoint.status != "Active" or checkpoint.checkpoint_type != "Stable-diffusion":
            raise ApiError(
                400,
                f"checkpoint_id: checkpoint {checkpoint.id} is a {checkpoint.status} {checkpoint.checkpoint_type} "
                "checkpoint, not an Active Stable-diffusion one",
            )
        if DIFFUSERS_INDEX in checkpoint.filenames:
            return ModelRef(name=checkpoint.params.get("new_model_name") or wanted, s3_uri=checkpoint.s3_location)
        cloud_path = str((body.params.model_extra or {}).get("s3_ckpt_path") or "")
        ref = checkpoint.model_named(wanted) or checkpoint.model_named(cloud_path.rsplit("/", 1)[-1])
        if ref is None and len(checkpoint.files) == 1:
            ref = ModelRef(name=checkpoint.files[0].filename, s3_uri=checkpoint.files[0].s3_uri)
        if ref is None:
            raise ApiError(400, f"params.create_model_params.ckpt_path: checkpoint {checkpoint.id} has no {wanted}")
        return ref
    try:
        ref = find_model(deps.read_model, "Stable-diffusion", wanted)
    except AmbiguousName as exc:
        raise ApiError(400, f"params.create_model_params.ckpt_path: {exc}") from None
    if ref:
        return ref
    raise ApiError(
        400,
        f"params.create_model_params.ckpt_path: no Active Stable-diffusion checkpoint is named {wanted!r}; "
        "upload it with POST /checkpoint, or send the file with this request (filenames)",
    )


@router.put("/model", responses=answers(400, 404, 409, 503, 504))
def update_model(body: UpdateModelRequest, deps: Edge) -> UpdateModelResponse:
    """``Creating``: complete the uploads (``multi_parts_tags``) and start. ``Fail``: give the job up."""
    model = deps.read_model.get(ModelChanged, body.model_id)
    if model is None:
        raise not_found(f"model_id: no model {body.model_id}")
    if model.status != body.status:
        tags = {name: [tag.model_dump() for tag in parts] for name, parts in body.multi_parts_tags.items()}
        model = _transition(
            deps,
            model,
            body.status,
            started="Creating",
            command=lambda request_id: ModelUpdateRequested(
                model_id=model.id, request_id=request_id, status=body.status, multi_parts_tags=tags
            ),
        )
    job = UpdatedModelJob(
        output_path=model.output_s3_location or model.s3_base,
        id=model.id,
        endpointName=None,
        jobStatus=model.status,
        jobType=model.model_type,
    )
    return UpdateModelResponse(job=job)


Job = TypeVar("Job", ModelChanged, TrainJobChanged)


def _transition(deps: EdgeDependencies, job: Job, wanted: str, started: str, command: Callable[[str], Command]) -> Job:
    """Ask the owner to start (``started``) or give up (``Fail``) the job; the job once it has answered.

    Only Initialed jobs start, and finished ones cannot be given up (409).
    """
    kind = job.entity_type()
    if wanted == started and job.status != "Initialed":
        raise conflict(f"{kind} {job.id} is {job.status}, not Initialed")
    if wanted == "Fail" and job.status == "Complete":
        raise conflict(f"{kind} {job.id} is Complete; a finished job cannot be given up")
    request_id = new_id()
    send(deps, command(request_id), correlation_id=job.id)
    answers = {"Fail"} if wanted == "Fail" else {started, "Complete", "Fail"}
    return await_outcome(deps, type(job), job.id, request_id, lambda j: j.status in answers)


@router.get("/models", description=described("Models, newest first."), responses=paged_answers(answers(400)))
def list_models(
    deps: Edge,
    response: Response,
    types: Annotated[list[str], Query(max_length=16, examples=[["Stable-diffusion"]])] = [],  # noqa: B006 - FastAPI copies query defaults
    status: Annotated[list[str], Query(max_length=16, examples=[["Complete"]])] = [],  # noqa: B006
    limit: Limit = None,
    next_token: NextToken = None,
) -> ListModelsResponse:
    page = newest_first(
        (
            m
            for m in deps.read_model.list(ModelChanged)
            if (not types or m.model_type in types) and (not status or m.status in status)
        ),
        list_name="models",
        at=lambda m: m.created_at,
        view=_model_view,
        limit=limit,
        next_token=next_token,
        response=response,
    )
    return ListModelsResponse(models=page.items, next_token=page.next_token)


def _model_view(model: ModelChanged) -> ModelView:
    return ModelView(
        id=model.id,
        model_name=model.name,
        created=int(model.created_at.timestamp()),
        params=_model_params(model),
        status=model.status,
        output_s3_location=model.output_s3_location or "",
    )


def _model_params(model: ModelChanged) -> dict[str, Any]:
    """The params as sent, plus what the WebUI extension reads of a finished model."""
    params = dict(model.params)
    if model.error:
        params["error"] = model.error
    if model.status == "Complete":
        params["resp"] = {"config_dict": _default_db_config(model)}
    return params


def _default_db_config(model: ModelChanged) -> dict[str, Any]:
    """A DreamBooth-extension ``db_config.json`` to start from, with the runtime's defaults."""
    defaults = TrainingHyperparameters(task="dreambooth", model_name=model.name)
    return {
        "model_name": model.name,
        "model_dir": f"models/sagemaker_dreambooth/{model.name}",
        "learning_rate": defaults.learning_rate,
        "max_train_steps": defaults.max_train_steps,
        "train_batch_size": defaults.train_batch_size,
        "resolution": defaults.resolution,
        "prior_loss_weight": defaults.prior_loss_weight,
        "mixed_precision": defaults.mixed_precision,
        "use_lora": False,
        "lora_unet_rank": defaults.lora_rank,
        "center_crop": defaults.center_crop,
        "concepts_list": [],
    }


# ---------------------------------------------------------------- routes 23-25


@router.post("/train", responses=presigned_answers(answers(400, 404, 409, 503)))
def create_train_job(body: CreateTrainJobRequest, deps: Edge, response: Response) -> CreateTrainJobResponse:
    """A training job on a Complete model; answers a presigned PUT URL per file to upload with it.

    A ``webhook`` that may not be a target (not public http(s)) is refused with 400, and nothing is started.
    """
    if body.webhook is not None:
        refuse_unsafe_target(deps, body.webhook, "webhook")
    model = deps.read_model.get(ModelChanged, body.model_id)
    if model is None:
        raise not_found(f"model_id: no model {body.model_id}")
    if model.status != "Complete" or not model.output_s3_location:
        raise conflict(f"model_id: model {model.id} is {model.status}, not Complete")
    settings = body.params.settings()
    train_job_id = new_id()
    instance = _datasets(settings.get("dataset_names") or [], "dataset_names", deps)
    classes = _datasets(settings.get("class_dataset_names") or [], "class_dataset_names", deps)
    if not instance and not body.filenames:
        raise _invalid(["filenames"], "give params.train_params.dataset_names, or files to upload (filenames)")
    output_name = settings.get("output_name") or f"{model.name}-{train_job_id[:8]}"
    command = TrainJobRequested(
        train_job_id=train_job_id,
        train_type=body.training,
        model_id=model.id,
        model_name=model.name,
        base_model_uri=model.output_s3_location,
        instance_type=settings.get("training_instance_type") or deps.settings.training_instance_type,
        hyperparameters=_hyperparameters(body, settings, output_name),
        instance_datasets=instance,
        class_datasets=classes,
        filenames=list(body.filenames),
        params=body.params.model_dump(mode="json", exclude_unset=True),
        requested_at=deps.clock(),
        webhook=body.job_webhook(),
    )
    job = command.initial_snapshot(deps.presigner.bucket, version=0)
    send_then_record(deps, command, [job], correlation_id=train_job_id)
    expires_s = presign_expiry(deps, response)
    uploads = input_prefix(train_prefix(train_job_id))
    return CreateTrainJobResponse(
        job=CreatedTrainJob(
            id=job.id,
            status=job.status,
            trainType=PRODUCED_TYPE[job.train_type],
            params=job.params,
            input_location=job.input_location,
        ),
        s3PresignUrl={name: deps.presigner.put_url(uploads + name, expires_s) for name in body.filenames},
    )


def _hyperparameters(
    body: CreateTrainJobRequest, settings: dict[str, Any], output_name: str
) -> TrainingHyperparameters:
    """The runtime's settings, checked against its bounds; a 422 names the field as the client sent it."""
    sent = {key: value for key, value in settings.items() if key in _HYPERPARAMETERS}
    where = "train_params" if body.params.train_params is not None else "training_params"
    if len(json.dumps(body.params.config_params)) > MAX_HYPERPARAMETER_LENGTH:
        raise _invalid(["params", "config_params"], f"must be at most {MAX_HYPERPARAMETER_LENGTH} characters as JSON")
    try:
        return TrainingHyperparameters(
            task=body.training, model_name=output_name, config_params=body.params.config_params, **sent
        )
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", "params", where, *error["loc"])} for error in exc.errors()]
        ) from exc


def _datasets(names: list[str], field: str, deps: EdgeDependencies) -> list[DataRef]:
    found = []
    for name in names:
        dataset = deps.read_model.get(DatasetChanged, name)
        if dataset is None:
            raise not_found(f"params.train_params.{field}: no dataset {name}")
        if dataset.status != "Enabled":
            raise conflict(f"params.train_params.{field}: dataset {name} is {dataset.status}, not Enabled")
        found.append(DataRef(name=name, s3_uri=dataset.s3_location))
    return found


def _invalid(loc: list[str], message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": message, "type": "value_error"}])


@router.put("/train", responses=answers(400, 404, 409, 503, 504))
def update_train_job(body: UpdateTrainJobRequest, deps: Edge) -> UpdateTrainJobResponse:
    """``Training`` once the files are uploaded (else 400 naming the missing ones); ``Fail`` to give up."""
    job = deps.read_model.get(TrainJobChanged, body.train_job_id)
    if job is None:
        raise not_found(f"train_job_id: no train job {body.train_job_id}")
    if job.status != body.status:
        job = _transition(
            deps,
            job,
            body.status,
            started="Training",
            command=lambda request_id: TrainJobUpdateRequested(
                train_job_id=job.id, request_id=request_id, status=body.status
            ),
        )
    return UpdateTrainJobResponse(
        job=UpdatedTrainJob(
            id=job.id,
            status=job.status,
            created=int(job.created_at.timestamp()),
            trainType=PRODUCED_TYPE[job.train_type],
            params=job.params,
            input_location=job.input_location,
        )
    )


@router.get("/trains", description=described("Training jobs, newest first."), responses=paged_answers(answers(400)))
def list_train_jobs(
    deps: Edge,
    response: Response,
    types: Annotated[list[str], Query(max_length=16, examples=[["Stable-diffusion"]])] = [],  # noqa: B006 - FastAPI copies query defaults
    status: Annotated[list[str], Query(max_length=16, examples=[["Complete"]])] = [],  # noqa: B006
    limit: Limit = None,
    next_token: NextToken = None,
) -> ListTrainJobsResponse:
    page = newest_first(
        (
            j
            for j in deps.read_model.list(TrainJobChanged)
            if (not types or PRODUCED_TYPE[j.train_type] in types or j.train_type in types)
            and (not status or j.status in status)
        ),
        list_name="trains",
        at=lambda j: j.created_at,
        view=_train_job_view,
        limit=limit,
        next_token=next_token,
        response=response,
    )
    return ListTrainJobsResponse(trainJobs=page.items, next_token=page.next_token)


def _train_job_view(job: TrainJobChanged) -> TrainJobView:
    return TrainJobView(
        id=job.id,
        modelName=job.model_name,
        status=job.status,
        trainType=PRODUCED_TYPE[job.train_type],
        created=int(job.created_at.timestamp()),
        sagemakerTrainName=job.sagemaker_job_name,
        output_name=job.output_name,
        checkpoint_id=job.checkpoint_id,
        error=job.error or None,
        progress=job.progress,
    )


# ---------------------------------------------------------------- stopping and removing jobs


def _train_job(deps: EdgeDependencies, train_job_id: str) -> TrainJobChanged:
    job = deps.read_model.get(TrainJobChanged, train_job_id)
    if job is None:
        raise not_found(f"no training job {train_job_id}")
    return job


@router.post("/trains/{train_job_id}/cancel", status_code=202, responses=answers(404, 409, 503))
def cancel_train_job(train_job_id: TrainJobId, deps: Edge) -> CancelTrainJobResponse:
    """Stops a training job: one not started yet ends ``Fail`` (error ``cancelled``) at once, a running one once
    SageMaker has stopped it. Answers the job as the owner then shows it; cancelling it again is harmless."""
    job = _train_job(deps, train_job_id)
    if job.status == "Fail" and job.error == CANCELLED:
        return CancelTrainJobResponse(job=_train_job_view(job))
    if job.status in ("Complete", "Fail"):
        raise conflict(f"training job {job.id} is already finished: {job.status}")
    send(deps, TrainJobCancelRequested(train_job_id=job.id, requested_at=deps.clock()), correlation_id=job.id)
    current = deps.read_model.wait_for(
        TrainJobChanged,
        job.id,
        lambda j: j.cancel_requested_at is not None or j.status in ("Complete", "Fail"),
        deps.settings.transition_wait_s,
    )
    return CancelTrainJobResponse(job=_train_job_view(current if current and not current.is_deleted else job))


@router.delete("/trains/{train_job_id}", responses=answers(404, 409, 503, 504))
def delete_train_job(train_job_id: TrainJobId, deps: Edge) -> Deleted:
    """Forgets a finished training job and removes its uploaded files and SageMaker's output, except the
    checkpoint it produced (a checkpoint of its own: delete that as a checkpoint). A running job: 409."""
    job = _train_job(deps, train_job_id)
    if job.status not in ("Complete", "Fail"):
        raise conflict(f"training job {job.id} is {job.status}; cancel it first")
    send(deps, TrainJobDeletionRequested(train_job_id=job.id, requested_at=deps.clock()), correlation_id=job.id)
    await_deleted(deps, TrainJobChanged, job.id)
    return Deleted(id=job.id)


@router.delete("/models/{model_id}", responses=answers(404, 409, 503, 504))
def delete_model(model_id: ModelId, deps: Edge) -> Deleted:
    """Forgets a model and removes its files; not while it is being created, nor while a training runs on it."""
    model = deps.read_model.get(ModelChanged, model_id)
    if model is None:
        raise not_found(f"no model {model_id}")
    if model.status == "Creating":
        raise conflict(f"model {model.id} is Creating; wait for it to finish or give it up (PUT /model, status Fail)")
    users = [j.id for j in deps.read_model.list(TrainJobChanged) if j.model_id == model.id and j.status == "Training"]
    if users:
        raise conflict(f"model {model.id} is used by the running training job {users[0]}; cancel it first")
    send(deps, ModelDeletionRequested(model_id=model.id, requested_at=deps.clock()), correlation_id=model.id)
    await_deleted(deps, ModelChanged, model.id)
    return Deleted(id=model.id)
