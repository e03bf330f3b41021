"""Routes 11-15, 20-22 and 26-29: presigned uploads, catalogues, checkpoints, datasets; and the checkpoint
and dataset lifecycle: import from a URL, rename, delete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Depends, Path, Query, Response

from api_gateway import names
from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import ApiError, answers, conflict, not_found
from api_gateway.ids import new_id
from api_gateway.limits import MAX_RESPONSE_BYTES, escaped_size
from api_gateway.pages import Limit, NextToken, described, newest_first, paged_answers, paginate, text_key
from api_gateway.routes import example_answer, presign_expiry, presigned_answers
from api_gateway.transitions import await_first_owner_snapshot, await_outcome, send, send_then_record
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
    DeleteCheckpointResponse,
    DeleteDatasetResponse,
    ImportCheckpointRequest,
    ListCheckpointsResponse,
    ListDatasetsResponse,
    RenameCheckpointRequest,
    UpdateCheckpointRequest,
    UpdateCheckpointResponse,
    UpdateDatasetRequest,
    UpdateDatasetResponse,
)
from sdmw_contracts.api.names import DatasetName, ObjectName, check_object_name
from sdmw_contracts.events import (
    CheckpointChanged,
    CheckpointCreationRequested,
    CheckpointUpdateRequested,
    DatasetChanged,
    DatasetCreationRequested,
    DatasetUpdateRequested,
    InferenceJobChanged,
    TrainJobChanged,
)
from sdmw_contracts.events.assets import (
    CheckpointDeletionRequested,
    CheckpointImportRequested,
    CheckpointRenameRequested,
    DatasetDeletionRequested,
    DatasetItemSpec,
    FileParts,
    model_lookup_name,
)
from service_kit.webhook_targets import HostNotResolved, RefusedTarget, check_target

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


# ---------------------------------------------------------------- how many presigned URLs one answer carries
#
# An answer is one Lambda response: at most MAX_RESPONSE_BYTES (6,226,020) as it sits in the response
# (``escaped_size``). A presigned URL on AWS is about 1.5-2 KB: the bucket (up to 63), the key, the
# query's fixed part (~300), an upload id (~100-200) and the execution role's session token (~1,100-1,400
# URL-encoded); 1,801 measured with a 1,100-character token, a 63-character bucket, a 200-character upload
# id and an 80-character key. Each costs about 0.85 ms to sign.
#
# - POST /checkpoint (and /model) answers every part URL twice (``s3PresignUrl`` and
#   ``multipart_uploads``): 1,000 parts x 2 x (~2,000 + 5) = ~4.0 MB, under 6.2 MB, signed in ~0.9 s.
#   1,000 parts of up to 5 GiB (S3's largest part) carry 4.9 TiB, about S3's largest object (5 TiB); the
#   WebUI extension asks one part per 1,000 MiB of one file per request (ceil(size / 1000 MiB)), so a file
#   of up to 976 GiB; the seed's samples ask 5. No route hands out more part URLs later: a file needs
#   its parts in one request.
# - POST /dataset answers one PUT URL per item: 5,000 items (the largest dataset the system is tested
#   with, tests/e2e/test_large_dataset.py) x (~450 + 40) = ~2.5 MB with the emulator's URLs; on AWS, with
#   the session token in each URL, ~2,900 items of short names fit.
#
# The counts bound the work of one request; whether the answer fits is then checked from the URLs'
# real lengths (long names take up to 3 x 1,024 characters of a URL once percent-encoded, a session token
# may be longer than measured), before anything is sent, so a request refused with 422 leaves nothing.

#: Part URLs one request may ask for, over all its files.
MAX_UPLOAD_PARTS = 1_000
#: Files one request may upload in parts (each is an S3 multipart upload opened by the owner).
MAX_UPLOAD_FILES = 100
#: Items one POST /dataset may create (one presigned PUT URL each).
MAX_DATASET_ITEMS = 5_000
#: S3's largest part (5 GiB), to tell a client how much fewer parts still carry.
S3_MAX_PART_BYTES = 5 * 1024**3
#: The longest upload id assumed when an answer's size is reckoned before S3 has given one.
UPLOAD_ID_CHARS = 256


def _too_large_answer(urls: int, size: int, advice: str) -> ApiError:
    return ApiError(
        422,
        f"the answer would carry {urls:,} presigned URLs in {size:,} bytes, over the {MAX_RESPONSE_BYTES:,} "
        f"bytes one answer may take: {advice}",
    )


def refuse_oversized_multipart(deps: EdgeDependencies, files: Sequence[Any], params: Any, expires_s: int) -> None:
    """422 unless a multipart answer for ``files`` (each with ``filename``, ``key``, ``parts_number``) fits
    one response: at most :data:`MAX_UPLOAD_FILES` files, :data:`MAX_UPLOAD_PARTS` parts in all, and
    their URLs (reckoned from one signed per file) with ``params`` under :data:`MAX_RESPONSE_BYTES`."""
    parts = sum(file.parts_number for file in files)
    fewer = (
        f"upload in fewer, larger parts (S3 takes parts of up to 5 GiB: {MAX_UPLOAD_PARTS:,} parts carry "
        f"{MAX_UPLOAD_PARTS * S3_MAX_PART_BYTES / 1024**4:.1f} TiB), or the other files in another request"
    )
    if len(files) > MAX_UPLOAD_FILES:
        raise ApiError(
            422,
            f"filenames: at most {MAX_UPLOAD_FILES} files per request ({len(files):,} given): send the "
            "others in another request",
        )
    if parts > MAX_UPLOAD_PARTS:
        raise ApiError(
            422, f"filenames: at most {MAX_UPLOAD_PARTS:,} parts per request in all ({parts:,} asked): {fewer}"
        )
    size = 1024 + escaped_size(params)
    for file in files:
        [sample] = deps.presigner.upload_part_urls(file.key, "u" * UPLOAD_ID_CHARS, 1, expires_s)
        url = escaped_size(sample) + len(str(file.parts_number)) + 1  # the part number's digits, a comma
        names = 2 * escaped_size(file.filename) + escaped_size(file.key) + 2 * UPLOAD_ID_CHARS + 256
        size += 2 * file.parts_number * url + names  # each URL twice: s3PresignUrl and multipart_uploads
    if size > MAX_RESPONSE_BYTES:
        raise _too_large_answer(2 * parts, size, f"{fewer} (or use shorter file names)")


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
                if checkpoint.checkpoint_type == checkpoint_type
                and checkpoint.status == "Active"
                and not checkpoint.is_deleted  # the list index may lag behind a deletion
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
        error=checkpoint.error,
        progress=checkpoint.progress,
    )


@router.post("/checkpoint", responses=presigned_answers(answers(400, 503, 504)))
def create_checkpoint(
    body: CreateCheckpointRequest, deps: Edge, response: Response, expires_in: ExpiresIn = None
) -> CreateCheckpointResponse:
    """Registers a checkpoint and answers one presigned URL per part of each file."""
    expires_s = presign_expiry(deps, response, expires_in)
    checkpoint_id = new_id()
    bucket = deps.presigner.bucket
    command = CheckpointCreationRequested(
        checkpoint_id=checkpoint_id,
        checkpoint_type=body.checkpoint_type,
        files=[FileParts(filename=f.filename, parts_number=f.parts_number) for f in body.filenames],
        params=body.params,
        requested_at=deps.clock(),
    )
    initial = command.initial_snapshot(bucket, version=0)
    refuse_oversized_multipart(deps, initial.files, _checkpoint_view(initial).model_dump(mode="json"), expires_s)
    send_then_record(deps, command, [initial], correlation_id=checkpoint_id)
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
    request_id = new_id()
    command = CheckpointUpdateRequested(
        checkpoint_id=checkpoint.id,
        request_id=request_id,
        status=body.status,
        multi_parts_tags={name: [tag.model_dump() for tag in tags] for name, tags in body.multi_parts_tags.items()},
    )
    send(deps, command, correlation_id=checkpoint.id)
    # Completed uploads whose files are not what the type says end Failed, never Active.
    updated = await_outcome(
        deps, CheckpointChanged, checkpoint.id, request_id, lambda c: c.status in (body.status, "Failed")
    )
    if updated.status == "Failed" and body.status == "Active":
        raise ApiError(400, f"checkpoint {updated.id} is Failed: {updated.error}")
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
    page = newest_first(
        (
            c
            for c in deps.read_model.list(CheckpointChanged)
            if (not status or c.status in status) and (not types or c.checkpoint_type in types) and not c.is_deleted
        ),
        list_name="checkpoints",
        at=lambda c: c.created_at,
        view=_checkpoint_item,
        limit=limit,
        next_token=next_token,
        response=response,
    )
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
        error=checkpoint.error,
        progress=checkpoint.progress,
    )


# ---------------------------------------------------------------- the checkpoint lifecycle

CheckpointId = Annotated[str, Path(min_length=1, max_length=128, examples=["906a5a1f-6833-45aa-8a10-fb0e983e0eae"])]


@router.post("/checkpoints/import", status_code=202, responses=answers(400, 503))
def import_checkpoint(body: ImportCheckpointRequest, deps: Edge) -> UpdateCheckpointResponse:
    """Fetch one file from a public http(s) URL into a new checkpoint (Initialed while it downloads, then
    Active, or Failed with the reason). A URL naming a private, loopback or link-local address, before or
    after DNS, is refused at once."""
    try:
        check_target(
            body.url,
            allow_loopback=deps.settings.imports_allow_loopback,
            getaddrinfo=deps.resolve,
            rule="checkpoints are only imported from public addresses",
        )
    except (RefusedTarget, HostNotResolved) as refused:
        raise ApiError(400, f"url: {refused}") from None
    checkpoint_id = new_id()
    command = CheckpointImportRequested(
        checkpoint_id=checkpoint_id,
        checkpoint_type=body.checkpoint_type,
        url=body.url,
        filename=body.filename or _filename_in(body.url),
        params=body.params,
        requested_at=deps.clock(),
    )
    initial = command.initial_snapshot(deps.presigner.bucket, version=0)
    send_then_record(deps, command, [initial], correlation_id=checkpoint_id)
    return UpdateCheckpointResponse(statusCode=202, checkpoint=_checkpoint_view(initial))


def _filename_in(url: str) -> str:
    """The URL's last path segment, as the file's name; 400 when it makes no file name."""
    name = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
    try:
        return check_object_name(name)
    except ValueError as error:
        raise ApiError(
            400, f"filename: the URL's last path segment {name!r} is no file name ({error}): name the file"
        ) from None


@router.put("/checkpoints/{checkpoint_id}/name", responses=answers(400, 404, 409, 503, 504))
def rename_checkpoint(
    checkpoint_id: CheckpointId, body: RenameCheckpointRequest, deps: Edge
) -> UpdateCheckpointResponse:
    """The checkpoint answers to ``name`` from now on (lists, catalogues, inference); its S3 objects stay where
    they are. A one-file checkpoint's file is renamed (its extension kept), a diffusers folder's
    ``new_model_name`` changes; a name another checkpoint of the type has is refused with 409."""
    checkpoint = _checkpoint(deps, checkpoint_id)
    if checkpoint.model_named(body.name) is not None:
        return UpdateCheckpointResponse(checkpoint=_checkpoint_view(checkpoint))  # it answers to it already
    holders = [
        other.id
        for other in deps.read_model.named(CheckpointChanged, model_lookup_name(checkpoint.checkpoint_type, body.name))
        if other.id != checkpoint.id and other.model_named(body.name) is not None
    ]
    if holders:
        raise conflict(f"another {checkpoint.checkpoint_type} checkpoint ({', '.join(holders)}) is named {body.name}")
    request_id = new_id()
    command = CheckpointRenameRequested(checkpoint_id=checkpoint.id, request_id=request_id, new_name=body.name)
    send(deps, command, correlation_id=checkpoint.id)
    renamed = await_outcome(
        deps, CheckpointChanged, checkpoint.id, request_id, lambda c: c.model_named(body.name) is not None
    )
    return UpdateCheckpointResponse(checkpoint=_checkpoint_view(renamed))


@router.delete("/checkpoints/{checkpoint_id}", responses=answers(404, 409, 503, 504))
def delete_checkpoint(checkpoint_id: CheckpointId, deps: Edge) -> DeleteCheckpointResponse:
    """Deletes the checkpoint and its S3 objects (its open uploads aborted); 409 naming the job while an
    inference job in progress or a running training uses it."""
    checkpoint = _checkpoint(deps, checkpoint_id)
    user = _job_using(deps, checkpoint)
    if user:
        raise conflict(f"checkpoint {checkpoint.id} is in use by {user}: delete it once that job has ended")
    send(deps, CheckpointDeletionRequested(checkpoint_id=checkpoint.id, requested_at=deps.clock()), checkpoint.id)
    _await_deletion(deps, CheckpointChanged, checkpoint.id)
    return DeleteCheckpointResponse(id=checkpoint.id)


def _checkpoint(deps: EdgeDependencies, checkpoint_id: str) -> CheckpointChanged:
    checkpoint = deps.read_model.get(CheckpointChanged, checkpoint_id)
    if checkpoint is None:
        raise not_found(f"no checkpoint {checkpoint_id}")
    return checkpoint


def _job_using(deps: EdgeDependencies, checkpoint: CheckpointChanged) -> str | None:
    """The job that reads the checkpoint now, in words; None when none does."""
    for job in deps.read_model.list(InferenceJobChanged):
        if job.status == "inprogress" and not job.is_deleted and _names_it(job.models, checkpoint):
            return f"inference job {job.id}"
    for train in deps.read_model.list(TrainJobChanged):
        if train.status == "Training" and not train.is_deleted and _is_base_model(train.base_model_uri, checkpoint):
            return f"train job {train.id}"
    return None


def _names_it(models: dict[str, list[str]], checkpoint: CheckpointChanged) -> bool:
    names = models.get(checkpoint.checkpoint_type, [])
    return any(checkpoint.model_named(name) is not None for name in names)


def _is_base_model(base_model_uri: str, checkpoint: CheckpointChanged) -> bool:
    """Whether a training's base model is this checkpoint: its folder, or one of its files."""
    uri = base_model_uri.rstrip("/")
    return uri == checkpoint.s3_location.rstrip("/") or any(uri == file.s3_uri for file in checkpoint.files)


def _await_deletion(
    deps: EdgeDependencies, model: type[CheckpointChanged] | type[DatasetChanged], entity_id: str
) -> None:
    gone = deps.read_model.wait_for(model, entity_id, lambda s: s.is_deleted, deps.settings.transition_wait_s)
    if gone is None or not gone.is_deleted:
        raise ApiError(504, f"the deletion of {entity_id} is accepted but not finished yet; check again shortly")


# ---------------------------------------------------------------- routes 26-29


@router.post("/dataset", responses=presigned_answers(answers(400, 409, 503)))
def create_dataset(
    body: CreateDatasetRequest, deps: Edge, response: Response, expires_in: ExpiresIn = None
) -> CreateDatasetResponse:
    """Registers a dataset and answers a presigned PUT URL per file, keyed by the client's filename.

    The name is held first (``api_gateway.names``), so of parallel creations of one name exactly one is
    sent and the others are answered 409 before anything is sent; none is answered 200 and then dropped by
    the owner. A request that dies holding the name leaves nothing listed, and frees it after a minute.
    """
    expires_s = presign_expiry(deps, response, expires_in)
    if len(body.content) > MAX_DATASET_ITEMS:
        raise ApiError(
            422,
            f"content: at most {MAX_DATASET_ITEMS:,} items per dataset ({len(body.content):,} given): "
            "split them into several datasets",
        )
    if deps.read_model.get(DatasetChanged, body.dataset_name) is not None:
        raise _dataset_taken(body.dataset_name)
    command = DatasetCreationRequested(
        dataset_name=body.dataset_name,
        items=[DatasetItemSpec(name=i.name, type=i.type, original_filename=i.filename) for i in body.content],
        params=body.params,
        requested_at=deps.clock(),
    )
    dataset = command.initial_snapshot(deps.presigner.bucket, version=0)
    urls = {item.original_filename: deps.presigner.put_url(item.key, expires_s) for item in dataset.items}
    answer = CreateDatasetResponse(datasetName=body.dataset_name, s3PresignUrl=urls)
    if (size := escaped_size(answer.model_dump(mode="json"))) > MAX_RESPONSE_BYTES:
        raise _too_large_answer(len(urls), size, "split the items into several datasets (or use shorter names)")
    held = names.hold(deps.read_model, "dataset", body.dataset_name, deps.clock())
    # Checked again once held: a creation that held the name before this one may have been sent since.
    if held is None or deps.read_model.get(DatasetChanged, body.dataset_name) is not None:
        raise _dataset_taken(body.dataset_name)
    try:
        send_then_record(deps, command, [dataset], correlation_id=body.dataset_name)
    except BaseException:
        deps.read_model.forget(held)  # not sent: the name is free again at once
        raise
    return answer


@router.delete("/datasets/{dataset_name}", responses=answers(404, 409, 503, 504))
def delete_dataset(
    dataset_name: Annotated[DatasetName, Path(openapi_examples={"seed": {"value": "test_dataset"}})], deps: Edge
) -> DeleteDatasetResponse:
    """Deletes the dataset and every object under its prefix; 409 naming the job while a running training
    reads it."""
    dataset = deps.read_model.get(DatasetChanged, dataset_name)
    if dataset is None:
        raise not_found(f"no dataset {dataset_name}")
    for train in deps.read_model.list(TrainJobChanged):
        read = {ref.name for ref in [*train.instance_datasets, *train.class_datasets]}
        if train.status == "Training" and not train.is_deleted and dataset.id in read:
            raise conflict(f"dataset {dataset.id} is read by train job {train.id}: delete it once that job has ended")
    send(deps, DatasetDeletionRequested(dataset_name=dataset.id, requested_at=deps.clock()), dataset.id)
    _await_deletion(deps, DatasetChanged, dataset.id)
    return DeleteDatasetResponse(datasetName=dataset.id)


def _dataset_taken(name: str) -> ApiError:
    return conflict(f"a dataset named {name} exists or is being created: choose another name")


@router.put("/dataset", responses=answers(400, 404, 503, 504))
def update_dataset(body: UpdateDatasetRequest, deps: Edge) -> UpdateDatasetResponse:
    """``Enabled`` once every file has arrived (else 400 naming the missing ones); or ``Disabled``."""
    dataset = deps.read_model.get(DatasetChanged, body.dataset_name)
    if dataset is None:
        raise not_found(f"no dataset {body.dataset_name}")
    if dataset.status != body.status:
        request_id = new_id()
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
    page = newest_first(
        (d for d in deps.read_model.list(DatasetChanged) if not dataset_status or d.status in dataset_status),
        list_name="datasets",
        at=lambda d: d.created_at,
        view=_dataset_item,
        limit=limit,
        next_token=next_token,
        response=response,
    )
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
