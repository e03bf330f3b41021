"""Routes 11-15, 20-22 and 26-29: uploads, catalogues, checkpoints and datasets.

11. ``GET /inference/generate-s3-presigned-url-for-uploading``
12. ``GET /inference/get-texual-inversion-list`` (the seed's spelling)
13. ``GET /inference/get-lora-list``
14. ``GET /inference/get-hypernetwork-list``
15. ``GET /inference/get-controlnet-model-list``
20. ``POST /checkpoint`` (the seed's route list says GET; its section documents POST)
21. ``PUT /checkpoint``
22. ``GET /checkpoints``
26. ``POST /dataset``
27. ``PUT /dataset``
28. ``GET /datasets``
29. ``GET /{dataset_name}/data`` (also served as ``GET /dataset/{dataset_name}/data``)

Routes 11-15 answer a JSON string (a presigned PUT URL) or a JSON array of
names, so they have no model here; route 11's bucket rule is
:data:`BUCKET_NAME_PATTERN`.

Names that end up in object keys (checkpoint file names, multipart tag keys,
dataset names, dataset item names) are checked by
:mod:`sdmw_contracts.api.names` so they cannot leave their prefix.

Dataset content: the seed's ``filename`` is a path on the client's machine
(``/path/to/a/file.png``). It is accepted as sent and only used to tell the
client which presigned URL belongs to which of its files; the object is
stored under ``name``, which is validated.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from sdmw_contracts.api.common import ApiModel, JsonObject, StoredParams, next_token_field
from sdmw_contracts.api.names import ClientPath, DatasetName, ObjectName, check_unique
from sdmw_contracts.events.progress import JobProgress

CheckpointType = Literal["Stable-diffusion", "Lora", "embeddings", "hypernetworks", "ControlNet", "VAE"]
#: ``Failed``: its files turned out not to be what its type says (``error`` says why); it is never Active.
CheckpointStatus = Literal["Initialed", "Active", "Disabled", "Failed"]
#: What a client may set with ``PUT /checkpoint``.
CheckpointUpdateStatus = Literal["Active", "Disabled"]
DatasetStatus = Literal["Initialed", "Enabled", "Disabled"]
#: What a client may set with ``PUT /dataset``.
DatasetUpdateStatus = Literal["Enabled", "Disabled"]

#: S3 multipart uploads have parts numbered 1 to 10000.
MAX_MULTIPART_PARTS = 10_000
#: S3's bucket naming rule (lower case, digits, dots and hyphens; 3-63 characters).
BUCKET_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

_ETAG_EXAMPLE = "cc95c41fa28463c8e9b88d67805f24e0"


def _is_empty(value: object) -> bool:
    return not value


_CHECKPOINT_ID_EXAMPLE = "906a5a1f-6833-45aa-8a10-fb0e983e0eae"


# ---------------------------------------------------------------- shared upload shapes


class MultipartFile(ApiModel):
    """A file the client will upload in ``parts_number`` parts."""

    filename: ObjectName = Field(examples=["v1-5-pruned-emaonly.safetensors"])
    parts_number: int = Field(ge=1, le=MAX_MULTIPART_PARTS, examples=[5])


class PartTag(ApiModel):
    """One uploaded part: the ETag S3 returned for it and its number."""

    ETag: str = Field(min_length=1, examples=[_ETAG_EXAMPLE])
    PartNumber: int = Field(ge=1, le=MAX_MULTIPART_PARTS, examples=[1])


def _check_unique_filenames(files: list[MultipartFile]) -> list[MultipartFile]:
    check_unique((file.filename for file in files), "filenames")
    return files


def _check_multi_parts_tags(tags: dict[str, list[PartTag]]) -> dict[str, list[PartTag]]:
    for filename, parts in tags.items():
        if not parts:
            raise ValueError(f"{filename!r} must list at least one part")
        check_unique((str(part.PartNumber) for part in parts), f"PartNumber for {filename!r}")
    return tags


#: Files to upload in parts; no file name twice.
MultipartFiles = Annotated[list[MultipartFile], AfterValidator(_check_unique_filenames)]
#: File name -> the parts uploaded for it; each file lists at least one part, no part number twice.
MultiPartsTags = Annotated[dict[ObjectName, list[PartTag]], AfterValidator(_check_multi_parts_tags)]


class MultipartUpload(ApiModel):
    """One started multipart upload, as ``s3PresignUrl`` lists them.

    The seed shows ``upload_id``, ``bucket`` and ``key``; ``filename`` and
    ``s3_signed_urls`` (one presigned PUT URL per part, in part order) are
    added so a client can upload the parts without AWS credentials.
    """

    upload_id: str = Field(examples=["id"])
    bucket: str = Field(examples=["bucket name"])
    key: str = Field(examples=["object key"])
    filename: str | None = Field(default=None, examples=["v1-5-pruned-emaonly.safetensors"])
    s3_signed_urls: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- routes 20-22


#: The WebUI extension's "Upload Model to S3 from Laptop" sends its "Model Type" dropdown's label as the type.
EXTENSION_TYPE_LABELS: dict[str, str] = {
    "SD Checkpoints": "Stable-diffusion",
    "Textual Inversion": "embeddings",
    "LoRA model": "Lora",
    "ControlNet model": "ControlNet",
    "Hypernetwork": "hypernetworks",
    "VAE": "VAE",
}


class CreateCheckpointRequest(ApiModel):
    """``POST /checkpoint``: register a checkpoint and start its multipart uploads.

    ``checkpoint_type`` may also be one of the WebUI extension's labels for the types
    (``SD Checkpoints``, ``Textual Inversion``, ``LoRA model``, ``ControlNet model``, ``Hypernetwork``).
    """

    checkpoint_type: CheckpointType = Field(examples=["Stable-diffusion"])

    @field_validator("checkpoint_type", mode="before")
    @classmethod
    def _extension_label(cls, value: Any) -> Any:
        return EXTENSION_TYPE_LABELS.get(value, value) if isinstance(value, str) else value

    filenames: MultipartFiles = Field(min_length=1)
    params: StoredParams = Field(
        default_factory=dict,
        description="Kept with the checkpoint; at most 200 KiB as JSON.",
        examples=[{"new_model_name": "test_api", "number": 1, "string": "abc"}],
    )


class UpdateCheckpointRequest(ApiModel):
    """``PUT /checkpoint``: finish the uploads (``multi_parts_tags``) and set the status."""

    checkpoint_id: str = Field(min_length=1, max_length=128, examples=[_CHECKPOINT_ID_EXAMPLE])
    status: CheckpointUpdateStatus = Field(examples=["Active"])
    multi_parts_tags: MultiPartsTags = Field(
        default_factory=dict,
        description="File name -> the parts uploaded for it.",
        examples=[
            {
                "v1-5-pruned-emaonly.safetensors.tar": [
                    {"ETag": _ETAG_EXAMPLE, "PartNumber": 1},
                    {"ETag": "e4378bd84b0497559c55be8373cb79d0", "PartNumber": 2},
                ]
            }
        ],
    )


class CheckpointView(ApiModel):
    """A checkpoint as ``POST`` and ``PUT /checkpoint`` answer it."""

    id: str = Field(examples=[_CHECKPOINT_ID_EXAMPLE])
    type: CheckpointType = Field(examples=["Stable-diffusion"])
    s3_location: str = Field(examples=["s3://S3_Location"])
    status: CheckpointStatus = Field(examples=["Initialed"])
    params: JsonObject = Field(default_factory=dict)
    #: Only a Failed checkpoint shows it, so other answers keep exactly the seed's keys.
    error: str = Field(default="", description="Why the checkpoint is Failed.", exclude_if=_is_empty)
    #: Only an import downloading shows it.
    progress: JobProgress | None = Field(
        default=None, description="An import's download: bytes so far (step) of total_steps.", exclude_if=_is_empty
    )


class CreateCheckpointResponse(ApiModel):
    """The seed's example lists ``{upload_id, bucket, key}`` under ``s3PresignUrl``, with no URL a client
    could use; the WebUI extension indexes ``s3PresignUrl[<file name>]`` for the part URLs, which is what
    works. So ``s3PresignUrl`` is ``{file name: [part URLs]}``, and the seed's list (with the URLs added)
    is ``multipart_uploads``."""

    statusCode: int = 200
    checkpoint: CheckpointView
    s3PresignUrl: dict[str, list[str]] = Field(
        default_factory=dict, examples=[{"v1-5-pruned-emaonly.safetensors": ["https://..."]}]
    )
    multipart_uploads: list[MultipartUpload] = Field(default_factory=list)


class UpdateCheckpointResponse(ApiModel):
    statusCode: int = 200
    checkpoint: CheckpointView


class CheckpointListItem(ApiModel):
    """A checkpoint as ``GET /checkpoints`` lists it (note ``s3Location`` here)."""

    id: str = Field(examples=[_CHECKPOINT_ID_EXAMPLE])
    s3Location: str = Field(examples=["s3://S3_Location"])
    type: CheckpointType = Field(examples=["Stable-diffusion"])
    status: CheckpointStatus = Field(examples=["Active"])
    name: list[str] = Field(default_factory=list, examples=[["object_1", "object_2"]])
    created: int = Field(description="Seconds since the epoch.", examples=[12341234])
    #: Only a Failed checkpoint shows it, so other answers keep exactly the seed's keys.
    error: str = Field(default="", description="Why the checkpoint is Failed.", exclude_if=_is_empty)
    #: Only an import downloading shows it.
    progress: JobProgress | None = Field(
        default=None, description="An import's download: bytes so far (step) of total_steps.", exclude_if=_is_empty
    )


class ImportCheckpointRequest(ApiModel):
    """``POST /checkpoints/import``: fetch one file from a public http(s) URL into a new checkpoint."""

    checkpoint_type: CheckpointType = Field(examples=["Lora"])
    url: str = Field(min_length=1, max_length=4096, examples=["https://example.com/models/detail-tweaker.safetensors"])
    filename: ObjectName | None = Field(
        default=None, description="The file's name; the URL's last path segment when not given."
    )
    params: StoredParams = Field(default_factory=dict, description="Kept with the checkpoint.")


class RenameCheckpointRequest(ApiModel):
    """``PUT /checkpoints/{checkpoint_id}/name``: the name a one-file checkpoint's file (or a diffusers folder's
    ``new_model_name``) is known by; its S3 objects keep their keys."""

    name: ObjectName = Field(examples=["detail-tweaker-v2.safetensors"])


class DeleteCheckpointResponse(ApiModel):
    statusCode: int = 200
    id: str = Field(examples=[_CHECKPOINT_ID_EXAMPLE])
    deleted: bool = True


class ListCheckpointsResponse(ApiModel):
    statusCode: int = 200
    checkpoints: list[CheckpointListItem] = Field(default_factory=list)
    next_token: str | None = next_token_field()


# ---------------------------------------------------------------- routes 26-29


class DatasetContentItem(ApiModel):
    """One file of a new dataset.

    ``filename`` is the client's own path, accepted as sent; ``name`` is the
    stored object's name and is validated.
    """

    filename: ClientPath = Field(examples=["/path/to/a/file.png"])
    name: ObjectName = Field(examples=["another_name"])
    type: str = Field(min_length=1, max_length=128, examples=["png"])


class CreateDatasetRequest(ApiModel):
    """``POST /dataset``."""

    dataset_name: DatasetName = Field(examples=["test_dataset"])
    content: list[DatasetContentItem] = Field(min_length=1)
    params: StoredParams = Field(
        default_factory=dict, description="Kept with the dataset (``description``...); at most 200 KiB as JSON."
    )

    @model_validator(mode="after")
    def _unique_content(self) -> CreateDatasetRequest:
        check_unique((item.name for item in self.content), "content names")
        check_unique((item.filename for item in self.content), "content filenames")
        return self


class CreateDatasetResponse(ApiModel):
    """``s3PresignUrl``: ``{filename: presigned PUT URL}``, keyed by the ``filename`` the client sent.

    The seed's example shows a list of one-key objects; the WebUI extension reads
    ``s3PresignUrl.items()``, so one object it is."""

    statusCode: int = 200
    datasetName: str = Field(examples=["test_dataset"])
    s3PresignUrl: dict[str, str] = Field(default_factory=dict, examples=[{"/path/to/a/file.png": "https://..."}])


class UpdateDatasetRequest(ApiModel):
    """``PUT /dataset``."""

    dataset_name: DatasetName = Field(examples=["test_dataset"])
    status: DatasetUpdateStatus = Field(examples=["Enabled"])


class UpdateDatasetResponse(ApiModel):
    statusCode: int = 200
    datasetName: str = Field(examples=["test_dataset"])
    status: DatasetStatus = Field(examples=["Enabled"])


class DatasetListItem(ApiModel):
    """A dataset as ``GET /datasets`` lists it; its ``params`` (``description``...) are merged in, as the
    original system did and the WebUI extension reads."""

    model_config = ConfigDict(extra="allow")

    datasetName: str = Field(examples=["test_dataset"])
    s3: str = Field(examples=["s3://S3_Location"])
    status: DatasetStatus = Field(examples=["Enabled"])
    timestamp: int = Field(description="Seconds since the epoch.", examples=[1234124])


class ListDatasetsResponse(ApiModel):
    statusCode: int = 200
    datasets: list[DatasetListItem] = Field(default_factory=list)
    next_token: str | None = next_token_field()


class DeleteDatasetResponse(ApiModel):
    statusCode: int = 200
    datasetName: str = Field(examples=["test_dataset"])
    deleted: bool = True


class DatasetItemView(ApiModel):
    key: str = Field(examples=["key"])
    name: str = Field(examples=["another_name"])
    type: str = Field(examples=["image"])
    preview_url: str = Field(examples=["https://presigned_s3_url"])
    dataStatus: DatasetStatus = Field(examples=["Enabled"])


class DatasetDataResponse(ApiModel):
    statusCode: int = 200
    dataset_name: str = Field(examples=["test_dataset"])
    data: list[DatasetItemView] = Field(default_factory=list)
    next_token: str | None = next_token_field()
