"""Training: commands to training-manager and the two jobs it owns.

A **model** (``ModelChanged``) is a model-creation job: it turns a base
checkpoint into the diffusers working model that training starts from. A
**train job** (``TrainJobChanged``) fine-tunes a Complete model on images
(DreamBooth) or trains a LoRA on it. Both run as SageMaker training jobs of
the sd-runtime image; a finished train job's output is registered with
asset-registry as a new checkpoint (``CheckpointRegistrationRequested``).

Commands that may be refused carry a ``request_id``; a refusal is a new
snapshot whose ``rejection`` names that request, as for assets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from sdmw_contracts.envelope import Command, EntityChanged
from sdmw_contracts.events.assets import CheckpointFile, FileParts, PartTag, Rejection
from sdmw_contracts.events.progress import JobProgress
from sdmw_contracts.events.webhooks import JobWebhook
from sdmw_contracts.runtime import ModelRef
from sdmw_contracts.training import TrainingHyperparameters

ModelStatus = Literal["Initialed", "Creating", "Complete", "Fail"]
TrainJobStatus = Literal["Initialed", "Training", "Complete", "Fail"]
TrainType = Literal["dreambooth", "lora"]

#: The checkpoint type a finished train job's output is registered as.
CHECKPOINT_TYPE_OF: dict[str, str] = {"dreambooth": "Stable-diffusion", "lora": "Lora"}


# Where training files live in the project bucket: uploads under ``input/``,
# SageMaker's output under ``<job name>/output/`` beside it.


def model_prefix(model_id: str) -> str:
    return f"model/{model_id}/"


def train_prefix(train_job_id: str) -> str:
    return f"train/{train_job_id}/"


def input_prefix(prefix: str) -> str:
    return f"{prefix}input/"


def model_job_name(model_id: str) -> str:
    """The SageMaker training job that creates a model: one per model, so a retry finds it."""
    return f"model-{model_id}"


def train_job_name(train_job_id: str) -> str:
    return f"train-{train_job_id}"


class DataRef(BaseModel):
    """A dataset the job reads, as a prefix in S3."""

    name: str
    s3_uri: str = Field(description="s3://bucket/prefix/ holding the dataset's files.")


# ---------------------------------------------------------------- models


class ModelCreationRequested(Command):
    """Create a model from ``base_checkpoint``, or from the files uploaded with this request."""

    model_id: str
    model_type: str
    name: str
    files: list[FileParts] = Field(default_factory=list)
    base_checkpoint: ModelRef | None = Field(default=None, description="None: the base is the uploaded file.")
    extract_ema: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime

    def initial_snapshot(self, bucket: str, version: int, upload_ids: Mapping[str, str] | None = None) -> ModelChanged:
        """The model as this command creates it: the edge's version 0, the owner's version 1."""
        prefix = model_prefix(self.model_id)
        uploads = input_prefix(prefix)
        files = [
            CheckpointFile.under(
                bucket, uploads, f.filename, f.parts_number, upload_id=(upload_ids or {}).get(f.filename)
            )
            for f in self.files
        ]
        base = self.base_checkpoint
        if base is None and files:
            base = ModelRef(name=files[0].filename, s3_uri=files[0].s3_uri)
        return ModelChanged(
            id=self.model_id,
            version=version,
            model_type=self.model_type,
            name=self.name,
            status="Initialed",
            s3_base=f"s3://{bucket}/{prefix}",
            files=files,
            base_checkpoint=base,
            extract_ema=self.extract_ema,
            params=self.params,
            created_at=self.requested_at,
        )


class ModelUpdateRequested(Command):
    """``Creating``: the files are uploaded (``multi_parts_tags``), start creating. ``Fail``: give up."""

    model_id: str
    request_id: str
    status: Literal["Creating", "Fail"]
    multi_parts_tags: dict[str, list[PartTag]] = Field(default_factory=dict)


class ModelChanged(EntityChanged):
    """A model-creation job (``id`` is the model id)."""

    model_type: str
    name: str
    status: ModelStatus
    s3_base: str = Field(description="s3://bucket/model/<id>/: uploads under input/, SageMaker's output beside.")
    files: list[CheckpointFile] = Field(default_factory=list, description="Files uploaded with the request.")
    base_checkpoint: ModelRef | None = None
    extract_ema: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    sagemaker_job_name: str | None = None
    output_s3_location: str | None = Field(default=None, description="The diffusers working model, once Complete.")
    error: str = ""
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rejection: Rejection | None = None

    def due_at(self) -> datetime | None:
        """The training sweep asks SageMaker about a running job from the time it started."""
        return (self.started_at or self.created_at) if self.status == "Creating" else None


# ---------------------------------------------------------------- train jobs


class TrainJobRequested(Command):
    """Train ``model_id``'s working model; the images come from datasets and/or uploaded files."""

    train_job_id: str
    train_type: TrainType
    model_id: str
    model_name: str
    base_model_uri: str = Field(description="The Complete model's output_s3_location.")
    instance_type: str
    hyperparameters: TrainingHyperparameters
    instance_datasets: list[DataRef] = Field(default_factory=list)
    class_datasets: list[DataRef] = Field(default_factory=list)
    filenames: list[str] = Field(default_factory=list, description="Files the client uploads with the job.")
    params: dict[str, Any] = Field(default_factory=dict)
    requested_at: datetime
    webhook: JobWebhook | None = Field(default=None, description="Where this job's changes are also sent.")

    def initial_snapshot(self, bucket: str, version: int) -> TrainJobChanged:
        """The train job as this command creates it: the edge's version 0, the owner's version 1."""
        prefix = train_prefix(self.train_job_id)
        return TrainJobChanged(
            id=self.train_job_id,
            version=version,
            train_type=self.train_type,
            model_id=self.model_id,
            model_name=self.model_name,
            status="Initialed",
            base_model_uri=self.base_model_uri,
            instance_type=self.instance_type,
            hyperparameters=self.hyperparameters,
            instance_datasets=self.instance_datasets,
            class_datasets=self.class_datasets,
            filenames=self.filenames,
            input_location=f"s3://{bucket}/{input_prefix(prefix)}",
            output_path=f"s3://{bucket}/{prefix}",
            params=self.params,
            created_at=self.requested_at,
            webhook=self.webhook,
        )


class TrainJobUpdateRequested(Command):
    """``Training``: the files are uploaded, start training. ``Fail``: give up (stops a running job)."""

    train_job_id: str
    request_id: str
    status: Literal["Training", "Fail"]


class TrainJobChanged(EntityChanged):
    """A training job (``id`` is the train job id)."""

    train_type: TrainType
    model_id: str
    model_name: str
    status: TrainJobStatus
    base_model_uri: str
    instance_type: str
    hyperparameters: TrainingHyperparameters
    instance_datasets: list[DataRef] = Field(default_factory=list)
    class_datasets: list[DataRef] = Field(default_factory=list)
    filenames: list[str] = Field(default_factory=list)
    input_location: str = Field(description="s3://bucket/train/<id>/input/: where the client's files go.")
    output_path: str = Field(description="SageMaker's S3OutputPath for the job.")
    params: dict[str, Any] = Field(default_factory=dict)
    sagemaker_job_name: str | None = None
    output_s3_location: str | None = Field(default=None, description="The trained files, once Complete.")
    checkpoint_id: str | None = Field(default=None, description="The checkpoint the output is registered as.")
    error: str = ""
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rejection: Rejection | None = None
    webhook: JobWebhook | None = Field(default=None, description="Where the job's changes are also sent.")
    progress: JobProgress | None = Field(default=None, description="The training container's latest report.")
    progress_sequence: int = Field(default=-1, description="The sequence of that report (-1: none yet).")
    cancel_requested_at: datetime | None = Field(default=None, description="When a cancel was asked for.")

    @property
    def output_name(self) -> str:
        return self.hyperparameters.model_name

    def due_at(self) -> datetime | None:
        """The training sweep asks SageMaker about a running job from the time it started."""
        return (self.started_at or self.created_at) if self.status == "Training" else None


class TrainJobCancelRequested(Command):
    """Stop a training job (``StopTrainingJob``); it ends ``Fail`` with the reason ``cancelled``."""

    train_job_id: str
    requested_at: datetime


class TrainJobDeletionRequested(Command):
    """Forget a finished training job and remove its input and output files (not the checkpoint it produced)."""

    train_job_id: str
    requested_at: datetime


class ModelDeletionRequested(Command):
    """Forget a model (a ``/model`` creation job) that no running training uses, with its files."""

    model_id: str
    requested_at: datetime
