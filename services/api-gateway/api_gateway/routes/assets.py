"""Routes 11-15, 20-22 and 26-29: presigned uploads, catalogues, checkpoints, datasets."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import ApiError, answers, conflict, not_found
from api_gateway.pages import Limit, NextToken, described, instant, paged_answers, paginate, text_key
from api_gateway.routes import example_answer, presign_expiry, presigned_answers
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


# ---------------------------------------------------------------- route 11


_UPLOAD_URL_EXAMPLE = (
    "https://stable-diffusion-aws-extension-aigcbucketa457cb49-1tlr2pqwkosg3.s3.amazonaws.com/config/aigc.json?XXX"
)


@router.get(
    "/inference/generate-s3-presigned-url-for-uploading",
    responses=presigned_answers({**answers(400), **example_answer(_UPLOAD_URL_EXAMPLE)}),
)
def generate_s3_presigned_url_for_uploading(
    deps: Edge,
    response: Response,
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
    return deps.presigner.put_url(key, presign_expiry(deps, response, expires_in))


# ---------------------------------------------------------------- routes 12-15


def _catalogue(checkpoint_type: str):
    def catalogue(deps: Edge, response: Response, limit: Limit = None, next_token: NextToken = None) -> list[str]:
        page = paginate(
            (
                (filename, checkpoint.id)
                for checkpoint in deps.read_model.list(CheckpointChanged)
                if checkpoint.checkpoint_type == checkpoint_type and checkpoint.status == "Active"
                for filename in checkpoint.filenames
            ),
            list_name=f"catalogue-{checkpoint_type}",
            key=lambda entry: (*text_key(entry[0]), entry[1]),
            view=lambda entry: entry[0],
            descending=False,
            limit=limit,
            next_token=next_token,
        )
        page.tell(response)
        return page.items

    return catalogue


for _path, _type in CATALOGUES.items():
    router.add_api_route(
        _path,
        _catalogue(_type),
        methods=["GET"],
        summary=f"Active {_type} checkpoints",
        description=described(f"The file names of the Active {_type} checkpoints, in order."),
        responses=paged_answers({**answers(400), **example_answer(["raidenshogun1-000009.safetensors"])}),
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


@router.post("/checkpoint", responses=presigned_answers(answers(400, 503, 504)))
def create_checkpoint(
    body: CreateCheckpointRequest, deps: Edge, response: Response, expires_in: ExpiresIn = None
) -> CreateCheckpointResponse:
    """Registers a checkpoint and answers one presigned URL per part of each file."""
    expires_s = presign_expiry(deps, response, expires_in)
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


@router.get("/checkpoints", description=described("Checkpoints, newest first."), responses=paged_answers(answers(400)))
def list_checkpoints(
    deps: Edge,
    response: Response,
    status: Annotated[list[str], Query(examples=[["Active"]])] = [],  # noqa: B006 - FastAPI copies query defaults
    types: Annotated[list[str], Query(examples=[["Stable-diffusion", "Lora"]])] = [],  # noqa: B006
    limit: Limit = None,
    next_token: NextToken = None,
) -> ListCheckpointsResponse:
    page = paginate(
        (
            c
            for c in deps.read_model.list(CheckpointChanged)
            if (not status or c.status in status) and (not types or c.checkpoint_type in types)
        ),
        list_name="checkpoints",
        key=lambda c: (instant(c.created_at), c.id),
        view=_checkpoint_item,
        descending=True,
        limit=limit,
        next_token=next_token,
    )
    page.tell(response)
    return ListCheckpointsResponse(checkpoints=page.items, next_token=page.next_token)


def _checkpoint_item(checkpoint: CheckpointChanged) -> CheckpointListItem:
    return CheckpointListItem(
        id=checkpoint.id,
        # The extension joins s3Location + "/" + name.
        s3Location=checkpoint.s3_location.rstrip("/"),
        type=checkpoint.checkpoint_type,
        status=checkpoint.status,
        name=checkpoint.filenames,
        created=int(checkpoint.created_at.timestamp()),
    )


# ---------------------------------------------------------------- routes 26-29


@router.post("/dataset", responses=presigned_answers(answers(400, 409, 503)))
def create_dataset(
    body: CreateDatasetRequest, deps: Edge, response: Response, expires_in: ExpiresIn = None
) -> CreateDatasetResponse:
    """Registers a dataset and answers a presigned PUT URL per file, keyed by the client's filename."""
    expires_s = presign_expiry(deps, response, expires_in)
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


@router.get("/datasets", description=described("Datasets, newest first."), responses=paged_answers(answers(400)))
def list_datasets(
    deps: Edge,
    response: Response,
    dataset_status: Annotated[list[str], Query(examples=[["Enabled"]])] = [],  # noqa: B006 - FastAPI copies query defaults
    limit: Limit = None,
    next_token: NextToken = None,
) -> ListDatasetsResponse:
    page = paginate(
        (d for d in deps.read_model.list(DatasetChanged) if not dataset_status or d.status in dataset_status),
        list_name="datasets",
        key=lambda d: (instant(d.created_at), d.id),
        view=_dataset_item,
        descending=True,
        limit=limit,
        next_token=next_token,
    )
    page.tell(response)
    return ListDatasetsResponse(datasets=page.items, next_token=page.next_token)


def _dataset_item(dataset: DatasetChanged) -> DatasetListItem:
    return DatasetListItem(
        **_shown_params(dataset.params),
        datasetName=dataset.id,
        s3=dataset.s3_location,
        status=dataset.status,
        timestamp=int(dataset.created_at.timestamp()),
    )


#: Keys of a dataset listing that its params cannot replace.
_DATASET_KEYS = frozenset(DatasetListItem.model_fields)


def _shown_params(params: dict) -> dict:
    """The dataset's params (``description``...) as the listing merges them in, never over its own keys."""
    return {key: value for key, value in params.items() if key not in _DATASET_KEYS}


def dataset_data(
    dataset_name: Annotated[DatasetName, Path(openapi_examples={"seed": {"value": "test_dataset"}})],
    deps: Edge,
    response: Response,
    expires_in: ExpiresIn = None,
    limit: Limit = None,
    next_token: NextToken = None,
) -> DatasetDataResponse:
    items = deps.read_model.dataset_items(dataset_name)
    if items is None:
        raise not_found(f"no dataset {dataset_name}")
    expires_s = presign_expiry(deps, response, expires_in)
    page = paginate(
        items,
        list_name=f"dataset-data-{dataset_name}",
        key=lambda item: text_key(item.name),
        # Only the page's items are signed, each time the page is read.
        view=lambda item: DatasetItemView(
            key=item.key,
            name=item.name,
            type=item.type,
            preview_url=deps.presigner.get_url(item.key, expires_s),
            dataStatus=item.status,
        ),
        descending=False,
        limit=limit,
        next_token=next_token,
    )
    page.tell(response)
    return DatasetDataResponse(dataset_name=dataset_name, data=page.items, next_token=page.next_token)


# The seed documents /{dataset_name}/data; the deployed middleware served /dataset/{dataset_name}/data.
_DATASET_DATA = {
    "methods": ["GET"],
    "description": described("The dataset's items by name, each with a presigned `preview_url`."),
    "responses": paged_answers(presigned_answers(answers(400, 404))),
}
router.add_api_route("/dataset/{dataset_name}/data", dataset_data, **_DATASET_DATA)
router.add_api_route("/{dataset_name}/data", dataset_data, **_DATASET_DATA)
