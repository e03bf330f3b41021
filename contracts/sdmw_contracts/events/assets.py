"""Assets: commands to asset-registry and the checkpoints and datasets it owns.

``CheckpointChanged`` carries each file's S3 URI, so other services (inference,
training) resolve a model name to its location from these events alone.

A command that may be refused carries a ``request_id``; a refusal is a new
snapshot whose ``rejection`` names that request and says why, with the entity
otherwise as it was. The edge waits for either outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from sdmw_contracts.envelope import Command, EntityChanged
from sdmw_contracts.events.progress import JobProgress
from sdmw_contracts.runtime import ModelRef, names_of_file, plain_model_name, title_names_file

#: A checkpoint holding this file is a diffusers folder.
DIFFUSERS_INDEX = "model_index.json"

CheckpointType = Literal["Stable-diffusion", "Lora", "embeddings", "hypernetworks", "ControlNet", "VAE"]
#: ``Failed``: the upload or import completed but its files are not what the type says (``error`` says why);
#: it never becomes Active.
CheckpointStatus = Literal["Initialed", "Active", "Disabled", "Failed"]
#: The architectures a Stable-diffusion checkpoint (and the add-ons made for one) is read as, into its params'
#: ``architecture``.
Architecture = Literal["sd1", "sd2", "sdxl", "unknown"]
DatasetStatus = Literal["Initialed", "Enabled", "Disabled"]

#: A checkpoint still Initialed this long after its creation is an upload (or import) that will never
#: complete: asset-registry's sweep deletes it and aborts its uploads (its setting may shorten the age).
UNFINISHED_CHECKPOINT_AGE = timedelta(days=1)


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

    @classmethod
    def under(cls, bucket: str, prefix: str, filename: str, parts_number: int = 1, **state: object) -> CheckpointFile:
        """The file ``filename`` under ``prefix`` in ``bucket``: its key and URI follow from them."""
        key = prefix + filename
        return cls(filename=filename, key=key, s3_uri=f"s3://{bucket}/{key}", parts_number=parts_number, **state)


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

    def initial_snapshot(
        self, bucket: str, version: int, upload_ids: Mapping[str, str] | None = None
    ) -> CheckpointChanged:
        """The checkpoint as this command creates it: the edge's version 0, the owner's version 1."""
        prefix = checkpoint_prefix(self.checkpoint_type, self.checkpoint_id)
        return CheckpointChanged(
            id=self.checkpoint_id,
            version=version,
            checkpoint_type=self.checkpoint_type,
            status="Initialed",
            s3_location=f"s3://{bucket}/{prefix}",
            files=[
                CheckpointFile.under(
                    bucket, prefix, f.filename, f.parts_number, upload_id=(upload_ids or {}).get(f.filename)
                )
                for f in self.files
            ],
            params=self.params,
            created_at=self.requested_at,
        )


class CheckpointUpdateRequested(Command):
    """Finish the uploads and activate (``Active``), or disable (``Disabled``)."""

    checkpoint_id: str
    request_id: str
    status: Literal["Active", "Disabled"]
    multi_parts_tags: dict[str, list[PartTag]] = Field(default_factory=dict)


class CheckpointImportRequested(Command):
    """Fetch one file from an https URL into a new checkpoint, streamed into S3 in parts, then verified."""

    checkpoint_id: str
    checkpoint_type: CheckpointType
    url: str
    filename: str
    params: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime

    def initial_snapshot(self, bucket: str, version: int) -> CheckpointChanged:
        """The checkpoint as this command creates it: one file, not there yet (the edge's version 0)."""
        prefix = checkpoint_prefix(self.checkpoint_type, self.checkpoint_id)
        return CheckpointChanged(
            id=self.checkpoint_id,
            version=version,
            checkpoint_type=self.checkpoint_type,
            status="Initialed",
            s3_location=f"s3://{bucket}/{prefix}",
            files=[CheckpointFile.under(bucket, prefix, self.filename)],
            params=self.params,
            created_at=self.requested_at,
            source_url=self.url,
        )


class CheckpointRenameRequested(Command):
    """Give a checkpoint's file (a single-file checkpoint) a new name; refused with a reason like any update."""

    checkpoint_id: str
    request_id: str
    new_name: str


class CheckpointDeletionRequested(Command):
    """Delete a checkpoint and its S3 objects; the edge has checked that no running job uses it."""

    checkpoint_id: str
    requested_at: datetime


class DatasetDeletionRequested(Command):
    """Delete a dataset and its S3 objects; the edge has checked that no running training reads it."""

    dataset_name: str
    requested_at: datetime


class CheckpointRegistrationRequested(Command):
    """Register files a service already wrote to S3 as an Active checkpoint.

    training-manager sends it for a finished train job's output and
    inference-dispatcher for a merged checkpoint. asset-registry checks that
    the files are there before the checkpoint becomes Active.
    """

    checkpoint_id: str
    checkpoint_type: CheckpointType
    s3_location: str = Field(description="s3://bucket/prefix/ holding the files.")
    filenames: list[str] = Field(
        default_factory=list, description="Names under the prefix; empty: every object under it."
    )
    params: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime


class CheckpointChanged(EntityChanged):
    checkpoint_type: CheckpointType
    status: CheckpointStatus
    s3_location: str = Field(description="s3://bucket/prefix/ holding the checkpoint's files.")
    files: list[CheckpointFile]
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    rejection: Rejection | None = None
    error: str = Field(default="", description="Why the checkpoint Failed: what its files are not.")
    source_url: str | None = Field(default=None, description="Imported: the https URL its file was fetched from.")
    progress: JobProgress | None = Field(default=None, description="Importing: the download's latest progress.")

    @property
    def filenames(self) -> list[str]:
        return [file.filename for file in self.files]

    def due_at(self) -> datetime | None:
        """While Initialed: when the sweep takes it for an upload that will never complete."""
        return self.created_at + UNFINISHED_CHECKPOINT_AGE if self.status == "Initialed" else None

    def model_named(self, title: str) -> ModelRef | None:
        """This checkpoint's model called ``title``, by the one rule every service uses.

        A checkpoint holding ``model_index.json`` is a diffusers folder: it is one model, named by its
        params' ``new_model_name`` and by any of its files (a client that lists the files offers those), and
        any of those names means the folder, never one file in it. Any other checkpoint names each of its
        files (``title_names_file``: the name with or without its extension; A1111's `` [hash]`` suffix
        ignored).
        """
        name = plain_model_name(title)
        if not name:
            return None
        if DIFFUSERS_INDEX in self.filenames:
            folder_name = str(self.params.get("new_model_name") or "")
            if name == folder_name or any(title_names_file(title, file.filename) for file in self.files):
                return ModelRef(name=folder_name or name, s3_uri=self.s3_location)
            return None
        for file in self.files:
            if title_names_file(title, file.filename):
                return ModelRef(name=file.filename, s3_uri=file.s3_uri)
        return None

    def lookup_names(self) -> list[str]:
        """Every name ``model_named`` answers to, under the checkpoint's type: what ``model_lookup_name`` asks for."""
        names = {name for file in self.files for name in names_of_file(file.filename) if name}
        if DIFFUSERS_INDEX in self.filenames and self.params.get("new_model_name"):
            names.add(str(self.params["new_model_name"]))
        return sorted(f"{self.checkpoint_type}/{name}" for name in names)


def model_lookup_name(checkpoint_type: str, title: str) -> str:
    """The lookup name of the checkpoints of ``checkpoint_type`` that may hold the model ``title`` names."""
    return f"{checkpoint_type}/{plain_model_name(title)}"


class DatasetItemSpec(BaseModel):
    name: str
    type: str
    original_filename: str = Field(description="The client's own path, as it sent it.")


class DatasetCreationRequested(Command):
    dataset_name: str
    items: list[DatasetItemSpec] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime

    def initial_snapshot(self, bucket: str, version: int) -> DatasetChanged:
        """The dataset, its items included, as this command creates it (edge: version 0, owner: 1)."""
        prefix = dataset_prefix(self.dataset_name)
        return DatasetChanged(
            id=self.dataset_name,
            version=version,
            status="Initialed",
            s3_location=f"s3://{bucket}/{prefix}",
            item_count=len(self.items),
            items=[
                DatasetItem(
                    name=spec.name,
                    type=spec.type,
                    key=prefix + spec.name,
                    s3_uri=f"s3://{bucket}/{prefix}{spec.name}",
                    original_filename=spec.original_filename,
                    status="Initialed",
                )
                for spec in self.items
            ],
            params=self.params,
            created_at=self.requested_at,
        )


class DatasetUpdateRequested(Command):
    dataset_name: str
    request_id: str
    status: Literal["Enabled", "Disabled"]


class DatasetItem(BaseModel):
    """One file of a dataset; it moves with its dataset."""

    name: str
    type: str
    key: str
    s3_uri: str
    original_filename: str
    status: DatasetStatus


class DatasetChanged(EntityChanged):
    """``id`` is the dataset name. One fact carries the dataset and all its items (versioned with it).

    A dataset of thousands of items is over EventBridge's 256 KB: the event then
    travels by claim check (``data_s3_uri`` in the detail, see ``EventEnvelope``).
    Events published before ``items`` existed have it empty and carry each item
    in a ``DatasetItemChanged``.
    """

    status: DatasetStatus
    s3_location: str
    item_count: int = Field(ge=0)
    items: list[DatasetItem] = Field(default_factory=list, description="Every item, in the dataset's status.")
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    rejection: Rejection | None = None


class DatasetItemChanged(EntityChanged):
    """``id`` is ``<dataset name>/<item name>``.

    No longer published: ``DatasetChanged`` carries its items. Still projected, for events already on the way.
    """

    dataset_name: str
    name: str
    type: str
    key: str
    s3_uri: str
    original_filename: str
    status: DatasetStatus
