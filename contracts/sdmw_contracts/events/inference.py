"""Inference: commands to inference-dispatcher and the inference job it owns.

The edge parses a request once, resolves every model it names from its read
model, and sends the typed parameters with the resolved models; the
dispatcher only adds where the results go and hands it to SageMaker. A
command too large for EventBridge (img2img images, ControlNet inputs) travels
by claim check like any event (``service_kit.claims``).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from sdmw_contracts.envelope import Command, EntityChanged
from sdmw_contracts.events.progress import JobProgress
from sdmw_contracts.events.webhooks import JobWebhook
from sdmw_contracts.generation import GenerationParams, InterrogationParams
from sdmw_contracts.runtime import MergeSpec, ModelSet

InferenceStatus = Literal["inprogress", "succeed", "failed", "cancelled"]
InferenceTask = Literal["txt2img", "img2img", "merge", "interrogate_clip", "interrogate_deepbooru"]
#: What InferenceRequested can ask for: generation, or A1111's interrogation of an image.
RequestedInferenceTask = Literal["txt2img", "img2img", "interrogate_clip", "interrogate_deepbooru"]


def result_prefix(job_id: str) -> str:
    """Where a job's images and parameter file land in the project bucket (the seed's layout)."""
    return f"out/{job_id}/result/"


def cancel_marker_key(job_id: str) -> str:
    """The object whose presence tells sd-runtime to stop the job (checked before it starts and between steps).

    SageMaker async inference has no cancel of its own; the dispatcher writes this marker, and the runtime,
    which may read the bucket with its execution role, looks for it at most about once a second.
    """
    return f"inference-input/{job_id}.cancelled"


def is_interrogation(task: str) -> bool:
    return task.startswith("interrogate")


class _StartsJob(Command):
    job_id: str
    endpoint_name: str
    requested_at: datetime
    models: dict[str, list[str]] = Field(
        default_factory=dict, description="Checkpoint type -> the model names the job uses, as named (for queries)."
    )
    webhook: JobWebhook | None = Field(default=None, description="Where this job's changes are also sent.")

    def task(self) -> InferenceTask:
        raise NotImplementedError

    def image_count(self) -> int:
        """How many images the job makes."""
        return 0

    def initial_snapshot(self, version: int) -> InferenceJobChanged:
        """The job as this command creates it: the edge's version 0, the dispatcher's version 1."""
        return InferenceJobChanged(
            id=self.job_id,
            version=version,
            task_type=self.task(),
            endpoint_name=self.endpoint_name,
            models=self.models,
            status="inprogress",
            start_time=self.requested_at,
            image_count=self.image_count(),
            webhook=self.webhook,
        )


class InferenceRequested(_StartsJob):
    """Run txt2img or img2img (``params``) or an interrogation (``interrogation``) on an endpoint.

    Version 2: typed parameters and resolved models (version 1 carried the request body untyped).
    """

    event_version: ClassVar[int] = 2

    task_type: RequestedInferenceTask
    resolved: ModelSet = Field(default_factory=ModelSet, description="Those models, resolved to S3 by the edge.")
    params: GenerationParams | None = None
    interrogation: InterrogationParams | None = None

    @model_validator(mode="after")
    def _inputs_match_task(self) -> InferenceRequested:
        if is_interrogation(self.task_type) != (self.interrogation is not None):
            raise ValueError("interrogation is given exactly when task_type is interrogate_*")
        if (self.params is None) == (self.interrogation is None):
            raise ValueError("exactly one of params and interrogation must be given")
        return self

    def task(self) -> InferenceTask:
        return self.task_type

    def image_count(self) -> int:
        return self.params.image_count() if self.params is not None else 0


class ModelMergeRequested(_StartsJob):
    """Merge checkpoints on an in-service endpoint, as ``merge`` says (models resolved by the edge).

    Version 2: the merge resolved (version 1 carried the request body untyped).
    """

    event_version: ClassVar[int] = 2

    merge: MergeSpec

    def task(self) -> InferenceTask:
        return "merge"


class InferenceJobChanged(EntityChanged):
    task_type: InferenceTask
    endpoint_name: str | None
    models: dict[str, list[str]] = Field(default_factory=dict, description="Checkpoint type -> model names used.")
    status: InferenceStatus
    start_time: datetime
    complete_time: datetime | None = None
    image_names: list[str] = Field(default_factory=list)
    param_name: str | None = Field(default=None, description="The parameter file's name under the result prefix.")
    image_count: int = Field(default=0, description="How many images the runtime was asked to make.")
    claimed_at: datetime | None = Field(default=None, description="When the dispatcher began sending the job.")
    sagemaker_raw: str = Field(default="", description="SageMaker's async notification, as the seed shows it.")
    sagemaker_output_uri: str | None = Field(
        default=None, description="Where SageMaker wrote its answer (output or failure), removed with the job."
    )
    error: str = ""
    deadline: datetime | None = Field(default=None, description="Failed as overdue if not finished by then.")
    merged_checkpoint_uri: str | None = Field(
        default=None, description="A merge's output file, registered with asset-registry as a checkpoint."
    )
    caption: str | None = Field(default=None, description="An interrogate_* job's answer, once it succeeded.")
    webhook: JobWebhook | None = Field(default=None, description="Where the job's changes are also sent.")
    progress: JobProgress | None = Field(default=None, description="The runtime's latest report while it ran.")
    progress_sequence: int = Field(default=-1, description="The sequence of that report (-1: none yet).")
    cancel_requested_at: datetime | None = Field(default=None, description="When a cancel was asked for.")

    def due_at(self) -> datetime | None:
        """The deadline while the job runs: the dispatcher's sweep fails it if no result came by then."""
        return self.deadline if self.status == "inprogress" else None


class InferenceCancelRequested(Command):
    """Stop an inference or merge job: one not started never runs, a running one stops between steps."""

    job_id: str
    requested_at: datetime


class InferenceDeletionRequested(Command):
    """Forget a finished inference job and remove its outputs (``out/<id>/``, its input and SageMaker's answer)."""

    job_id: str
    requested_at: datetime
