"""Assets: commands to asset-registry and the checkpoints and datasets it owns.

``CheckpointChanged`` carries each file's S3 URI, so other services (inference,
training) resolve a model name to its location from these events alone.

A command that may be refused carries a ``request_id``; a refusal is a new
snapshot whose ``rejection`` names that request and says why, with the entity
otherwise as it was. The edge waits for either outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from sdmw_contracts.envelope import Command, EntityChanged

CheckpointType = Literal["Stable-diffusion", "Lora", "embeddings", "hypernetworks", "ControlNet", "VAE"]
CheckpointStatus = Literal["Initialed", "Active", "Disabled"]
DatasetStatus = Literal["Initialed", "Enabled", "Disabled"]


# Where asset files live in the project bucket. Part of the contract: the edge
# presigns uploads into these keys and asset-registry completes and verifies them.


def checkpoint_prefix(checkpoint_type: str, checkpoint_id: str) -> str:
    return f"checkpoint/{checkpoint_type}/{checkpoint_id}/"


def dataset_prefix(dataset_name: str) -> str:
    return f"dataset/{dataset_name}/"


def dataset_item_id(dataset_name: str, item_name: str) -> str:
    return f"{dataset_name}/{item_name}"


class Rejection(BaseModel):
    """Why the request ``request_id`` changed nothing."""

    request_id: str
    reason: str


class CheckpointFile(BaseModel):
    filename: str
    key: str
    s3_uri: str
    parts_number: int = Field(ge=1)
    upload_id: str | None = Field(default=None, description="The open multipart upload; None once completed.")
    size: int | None = Field(default=None, description="Bytes, once the upload is complete and verified.")


class FileParts(BaseModel):
    filename: str
    parts_number: int = Field(ge=1)


class PartTag(BaseModel):
    ETag: str
    PartNumber: int = Field(ge=1)


class CheckpointCreationRequested(Command):
    checkpoint_id: str
    checkpoint_type: CheckpointType
    files: list[FileParts] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime


class CheckpointUpdateRequested(Command):
    """Finish the uploads and activate (``Active``), or disable (``Disabled``)."""

    checkpoint_id: str
    request_id: str
    status: Literal["Active", "Disabled"]
    multi_parts_tags: dict[str, list[PartTag]] = Field(default_factory=dict)


class CheckpointChanged(EntityChanged):
    checkpoint_type: CheckpointType
    status: CheckpointStatus
    s3_location: str = Field(description="s3://bucket/prefix/ holding the checkpoint's files.")
    files: list[CheckpointFile]
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    rejection: Rejection | None = None

    @property
    def filenames(self) -> list[str]:
        return [file.filename for file in self.files]


class DatasetItemSpec(BaseModel):
    name: str
    type: str
    original_filename: str = Field(description="The client's own path, as it sent it.")


class DatasetCreationRequested(Command):
    dataset_name: str
    items: list[DatasetItemSpec] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime


class DatasetUpdateRequested(Command):
    dataset_name: str
    request_id: str
    status: Literal["Enabled", "Disabled"]


class DatasetChanged(EntityChanged):
    """``id`` is the dataset name."""

    status: DatasetStatus
    s3_location: str
    item_count: int = Field(ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    rejection: Rejection | None = None


class DatasetItemChanged(EntityChanged):
    """``id`` is ``<dataset name>/<item name>``."""

    dataset_name: str
    name: str
    type: str
    key: str
    s3_uri: str
    original_filename: str
    status: DatasetStatus
