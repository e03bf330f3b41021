"""Routes 11-15, 20-22 and 26-29: presigned uploads, catalogues, checkpoints, datasets."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import ApiError, answers, conflict, not_found
from api_gateway.presign import ExpiryTooLong
from api_gateway.routes import example_answer
from api_gateway.transitions import await_first_owner_snapshot, await_outcome, record_then_send, send
from sdmw_contracts.api.assets import (
    BUCKET_NAME_PATTERN,
    CheckpointListItem,
    CheckpointView,
    CreateCheckpointRequest,
    CreateCheckpointResponse,
    CreateDatasetRequest,
    CreateDatasetResponse,
    DatasetDataResponse,
    DatasetItemView,
    DatasetListItem,
    ListCheckpointsResponse,
    ListDatasetsResponse,
    UpdateCheckpointRequest,
    UpdateCheckpointResponse,
    UpdateDatasetRequest,
    UpdateDatasetResponse,
)
from sdmw_contracts.api.names import DatasetName, ObjectName
from sdmw_contracts.events import (
    CheckpointChanged,
    CheckpointCreationRequested,
    CheckpointUpdateRequested,
    DatasetChanged,
    DatasetCreationRequested,
    DatasetUpdateRequested,
)
from sdmw_contracts.events.assets import (
    DatasetItemSpec,
    FileParts,
)

router = APIRouter(tags=["assets"])
Edge = Annotated[EdgeDependencies, Depends(edge)]
ExpiresIn = Annotated[int | None, Query(ge=1, description="Seconds the presigned URLs stay valid.")]

#: Catalogue route -> the checkpoint type it lists.
CATALOGUES = {
    "/inference/get-lora-list": "Lora",
    "/inference/get-texual-inversion-list": "embeddings",
    "/inference/get-hypernetwork-list": "hypernetworks",
    "/inference/get-controlnet-model-list": "ControlNet",
}


def _expiry(deps: EdgeDependencies, expires_in: int | None) -> int:
    try:
        return deps.presigner.expiry(expires_in)
    except ExpiryTooLong as exc:
        raise ApiError(400, str(exc)) from exc


# ---------------------------------------------------------------- route 11


_UPLOAD_URL_EXAMPLE = (
    "https://stable-diffusion-aws-extension-aigcbucketa457cb49-1tlr2pqwkosg3.s3.amazonaws.com/config/aigc.json?XXX"
)


@router.get(
    "/inference/generate-s3-presigned-url-for-uploading",
    responses={**answers(400), **example_answer(_UPLOAD_URL_EXAMPLE)},
)
def generate_s3_presigned_url_for_uploading(
    deps: Edge,
    key: Annotated[ObjectName, Query(openapi_examples={"seed": {"value": "config/aigc.json"}})],
    s3_bucket_name: Annotated[
        str | None,
        Query(
            max_length=63,
            pattern=BUCKET_NAME_PATTERN.pattern,
            examples=["stable-diffusion-aws-extension-aigcbucket"],
        ),
    ] = None,
    expires_in: ExpiresIn = None,
) -> str:
    """A presigned PUT URL into the project's bucket, only under the allowed prefixes."""
    if s3_bucket_name not in (None, deps.presigner.bucket):
        raise ApiError(400, f"uploads go to the project's bucket {deps.presigner.bucket} only")
    allowed = deps.settings.upload_key_prefixes
    if not key.startswith(allowed):
        raise ApiError(400, f"key must start with one of: {', '.join(allowed)}")
    return deps.presigner.put_url(key, _expiry(deps, expires_in))


# ---------------------------------------------------------------- routes 12-15


def _catalogue(checkpoint_type: str):
    def catalogue(deps: Edge) -> list[str]:
        return sorted(
            filename
            for checkpoint in deps.read_model.list(CheckpointChanged)
            if checkpoint.checkpoint_type == checkpoint_type and checkpoint.status == "Active"
            for filename in checkpoint.filenames
        )

    return catalogue


for _path, _type in CATALOGUES.items():
    router.add_api_route(
        _path,
        _catalogue(_type),
        methods=["GET"],
        summary=f"Active {_type} checkpoints",
        responses=example_answer(["raidenshogun1-000009.safetensors"]),
    )


# ---------------------------------------------------------------- routes 20-22


def _checkpoint_view(checkpoint: CheckpointChanged) -> CheckpointView:
    return CheckpointView(
        id=checkpoint.id,
        type=checkpoint.checkpoint_type,
        s3_location=checkpoint.s3_location,
        status=checkpoint.status,
        params=checkpoint.params,
    )


@router.post("/checkpoint", responses=answers(400, 503, 504))
def create_checkpoint(
    body: CreateCheckpointRequest, deps: Edge, expires_in: ExpiresIn = None
) -> CreateCheckpointResponse:
    """Registers a checkpoint and answers one presigned URL per part of each file."""
    expires_s = _expiry(deps, expires_in)
    checkpoint_id = str(uuid.uuid4())
    bucket = deps.presigner.bucket
    command = CheckpointCreationRequested(
        checkpoint_id=checkpoint_id,
        checkpoint_type=body.checkpoint_type,
        files=[FileParts(filename=f.filename, parts_number=f.parts_number) for f in body.filenames],
        params=body.params,
        requested_at=deps.clock(),
    )
    initial = command.initial_snapshot(bucket, version=0)
    record_then_send(deps, [initial], command, correlation_id=checkpoint_id)
    checkpoint = await_first_owner_snapshot(deps, CheckpointChanged, checkpoint_id)
    uploads = deps.presigner.multipart_uploads(checkpoint.files, expires_s)
    return CreateCheckpointResponse(
        checkpoint=_checkpoint_view(checkpoint),
        s3PresignUrl={upload.filename or upload.key: upload.s3_signed_urls for upload in uploads},
        multipart_uploads=uploads,
    )


@router.put("/checkpoint", responses=answers(400, 404, 409, 503, 504))
def update_checkpoint(body: UpdateCheckpointRequest, deps: Edge) -> UpdateCheckpointResponse:
    """``Active``: complete and verify the uploads with the client's ETags. ``Disabled``: disable."""
    checkpoint = deps.read_model.get(CheckpointChanged, body.checkpoint_id)
    if checkpoint is None:
        raise not_found(f"no checkpoint {body.checkpoint_id}")
    if checkpoint.status == body.status == "Disabled":
        return UpdateCheckpointResponse(checkpoint=_checkpoint_view(checkpoint))
    if body.status == "Active" and checkpoint.status != "Initialed":
        raise conflict(f"checkpoint {checkpoint.id} is {checkpoint.status}, not Initialed")
    request_id = str(uuid.uuid4())
    command = CheckpointUpdateRequested(
        checkpoint_id=checkpoint.id,
        request_id=request_id,
        status=body.status,
        multi_parts_tags={name: [tag.model_dump() for tag in tags] for name, tags in body.multi_parts_tags.items()},
    )
    send(deps, command, correlation_id=checkpoint.id)
    updated = await_outcome(deps, CheckpointChanged, checkpoint.id, request_id, lambda c: c.status == body.status)
    return UpdateCheckpointResponse(checkpoint=_checkpoint_view(updated))


@router.get("/checkpoints")
def list_checkpoints(
    deps: Edge,
    status: Annotated[list[str], Query(examples=[["Active"]])] = [],  # noqa: B006 - FastAPI copies query defaults
    types: Annotated[list[str], Query(examples=[["Stable-diffusion", "Lora"]])] = [],  # noqa: B006
) -> ListCheckpointsResponse:
    found = [
        c
        for c in deps.read_model.list(CheckpointChanged)
        if (not status or c.status in status) and (not types or c.checkpoint_type in types)
    ]
    found.sort(key=lambda c: c.created_at, reverse=True)
    return ListCheckpointsResponse(
        checkpoints=[
            CheckpointListItem(
                id=c.id,
                # The extension joins s3Location + "/" + name.
                s3Location=c.s3_location.rstrip("/"),
                type=c.checkpoint_type,
                status=c.status,
                name=c.filenames,
                created=int(c.created_at.timestamp()),
            )
            for c in found
        ]
    )


# ---------------------------------------------------------------- routes 26-29


@router.post("/dataset", responses=answers(400, 409, 503))
def create_dataset(body: CreateDatasetRequest, deps: Edge, expires_in: ExpiresIn = None) -> CreateDatasetResponse:
    """Registers a dataset and answers a presigned PUT URL per file, keyed by the client's filename."""
    expires_s = _expiry(deps, expires_in)
    if deps.read_model.get(DatasetChanged, body.dataset_name) is not None:
        raise conflict(f"dataset {body.dataset_name} already exists")
    command = DatasetCreationRequested(
        dataset_name=body.dataset_name,
        items=[DatasetItemSpec(name=i.name, type=i.type, original_filename=i.filename) for i in body.content],
        params=body.params,
        requested_at=deps.clock(),
    )
    dataset = command.initial_snapshot(deps.presigner.bucket, version=0)
    record_then_send(deps, [dataset], command, correlation_id=body.dataset_name)
    urls = {item.original_filename: deps.presigner.put_url(item.key, expires_s) for item in dataset.items}
    return CreateDatasetResponse(datasetName=body.dataset_name, s3PresignUrl=urls)


@router.put("/dataset", responses=answers(400, 404, 503, 504))
def update_dataset(body: UpdateDatasetRequest, deps: Edge) -> UpdateDatasetResponse:
    """``Enabled`` once every file has arrived (else 400 naming the missing ones); or ``Disabled``."""
    dataset = deps.read_model.get(DatasetChanged, body.dataset_name)
    if dataset is None:
        raise not_found(f"no dataset {body.dataset_name}")
    if dataset.status != body.status:
        request_id = str(uuid.uuid4())
        command = DatasetUpdateRequested(dataset_name=dataset.id, request_id=request_id, status=body.status)
        send(deps, command, correlation_id=dataset.id)
        dataset = await_outcome(deps, DatasetChanged, dataset.id, request_id, lambda d: d.status == body.status)
    return UpdateDatasetResponse(datasetName=dataset.id, status=dataset.status)


@router.get("/datasets")
def list_datasets(
    deps: Edge,
    dataset_status: Annotated[list[str], Query(examples=[["Enabled"]])] = [],  # noqa: B006 - FastAPI copies query defaults
) -> ListDatasetsResponse:
    found = [d for d in deps.read_model.list(DatasetChanged) if not dataset_status or d.status in dataset_status]
    found.sort(key=lambda d: d.created_at, reverse=True)
    return ListDatasetsResponse(
        datasets=[
            DatasetListItem(
                **_shown_params(d.params),
                datasetName=d.id,
                s3=d.s3_location,
                status=d.status,
                timestamp=int(d.created_at.timestamp()),
            )
            for d in found
        ]
    )


#: Keys of a dataset listing that its params cannot replace.
_DATASET_KEYS = frozenset(DatasetListItem.model_fields)


def _shown_params(params: dict) -> dict:
    """The dataset's params (``description``...) as the listing merges them in, never over its own keys."""
    return {key: value for key, value in params.items() if key not in _DATASET_KEYS}


def dataset_data(
    dataset_name: Annotated[DatasetName, Path(openapi_examples={"seed": {"value": "test_dataset"}})],
    deps: Edge,
    expires_in: ExpiresIn = None,
) -> DatasetDataResponse:
    """The dataset's items, each with a presigned ``preview_url``."""
    items = deps.read_model.dataset_items(dataset_name)
    if items is None:
        raise not_found(f"no dataset {dataset_name}")
    expires_s = _expiry(deps, expires_in)
    return DatasetDataResponse(
        dataset_name=dataset_name,
        data=[
            DatasetItemView(
                key=item.key,
                name=item.name,
                type=item.type,
                preview_url=deps.presigner.get_url(item.key, expires_s),
                dataStatus=item.status,
            )
            for item in sorted(items, key=lambda i: i.name)
        ],
    )


# The seed documents /{dataset_name}/data; the deployed middleware served /dataset/{dataset_name}/data.
router.add_api_route("/dataset/{dataset_name}/data", dataset_data, methods=["GET"], responses=answers(400, 404))
router.add_api_route("/{dataset_name}/data", dataset_data, methods=["GET"], responses=answers(400, 404))
