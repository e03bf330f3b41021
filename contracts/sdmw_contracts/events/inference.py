"""Inference: commands to inference-dispatcher and the inference job it owns.

A request's parameters travel inline when small, and as an S3 URI (claim
check) when they would make the event too large for EventBridge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from sdmw_contracts.envelope import Command, EntityChanged

InferenceStatus = Literal["inprogress", "succeed", "failed"]
InferenceTask = Literal["txt2img", "img2img", "merge", "interrogate_clip", "interrogate_deepbooru"]
#: What InferenceRequested can ask for: generation, or A1111's interrogation of an image.
RequestedInferenceTask = Literal["txt2img", "img2img", "interrogate_clip", "interrogate_deepbooru"]


def result_prefix(job_id: str) -> str:
    """Where a job's images and parameter file land in the project bucket (the seed's layout)."""
    return f"out/{job_id}/result/"


class _Claimable(Command):
    models: dict[str, list[str]] = Field(
        default_factory=dict, description="Checkpoint type -> the model names the job uses (for queries)."
    )
    payload: dict[str, Any] | None = Field(default=None, description="The request body, when it fits the event.")
    payload_s3_uri: str | None = Field(default=None, description="s3:// URI of the request body, when it did not.")

    @model_validator(mode="after")
    def _one_payload(self) -> _Claimable:
        if (self.payload is None) == (self.payload_s3_uri is None):
            raise ValueError("exactly one of payload and payload_s3_uri must be given")
        return self


class InferenceRequested(_Claimable):
    """Run txt2img or img2img on an endpoint. ``payload`` is the seed's inference body.

    For ``interrogate_*`` the payload is A1111's interrogate body (``image``, base64) and ``models`` is empty.
    """

    job_id: str
    endpoint_name: str
    task_type: RequestedInferenceTask
    requested_at: datetime


class ModelMergeRequested(_Claimable):
    """Merge checkpoints on an endpoint (any in-service one when ``endpoint_name`` is None).

    ``payload`` is the seed's run-model-merge body.
    """

    job_id: str
    endpoint_name: str | None = None
    requested_at: datetime


class InferenceJobChanged(EntityChanged):
    task_type: InferenceTask
    endpoint_name: str | None
    models: dict[str, list[str]] = Field(default_factory=dict, description="Checkpoint type -> model names used.")
    status: InferenceStatus
    start_time: datetime
    complete_time: datetime | None = None
    image_names: list[str] = Field(default_factory=list)
    param_name: str | None = Field(default=None, description="The parameter file's name under the result prefix.")
    output_location: str | None = Field(default=None, description="Where SageMaker writes the raw async output.")
    dispatched_at: datetime | None = Field(default=None, description="When InvokeEndpointAsync accepted the job.")
    sagemaker_raw: str = Field(default="", description="SageMaker's async notification, as the seed shows it.")
    error: str = ""
    deadline: datetime | None = Field(default=None, description="Failed as overdue if not finished by then.")
    merged_checkpoint_uri: str | None = Field(
        default=None, description="A merge's output file, registered with asset-registry as a checkpoint."
    )
    caption: str | None = Field(default=None, description="An interrogate_* job's answer, once it succeeded.")
