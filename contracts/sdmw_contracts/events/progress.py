"""What the GPU reports while a job runs: sd-runtime puts these on the bus itself.

SageMaker async inference and training jobs have no progress channel of their
own, so the container publishes ``*ProgressReported`` events to the project's
bus with its execution role (``SDMW_EVENT_BUS`` in its environment), at most
about one a second per job. The job's owner turns each into the job's next
``*Changed`` snapshot (``progress`` holds the latest report), so the read
model, webhooks and ``sdmw events tail`` see progress as they see every other
change. ``sequence`` orders the reports of one job: an owner applies a report
only when it is newer than the one it holds, so a late or repeated report
changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from sdmw_contracts.envelope import Event

#: Where a job is: loading its models, a sampling pass (``txt2img``/``img2img``, then ``hires`` for hires
#: fix), writing its results; a training's ``training`` steps and ``saving`` a checkpoint; an import's
#: ``download``.
ProgressPhase = Literal["queued", "loading", "txt2img", "img2img", "hires", "saving", "training", "download"]

#: The producer (EventBridge source suffix) of the runtime's events.
RUNTIME_PRODUCER = "sd-runtime"


class JobProgress(BaseModel):
    """How far a running job is, as last reported."""

    phase: ProgressPhase
    step: int = Field(ge=0, description="Steps done in this phase (bytes, for a download).")
    total_steps: int = Field(ge=0, description="Steps in this phase (bytes, for a download); 0 when unknown.")
    image: int | None = Field(default=None, ge=1, description="The batch (1-based) being made, for inference.")
    images: int | None = Field(default=None, ge=1, description="How many batches the job makes.")
    fraction: float = Field(ge=0, le=1, description="How much of the whole job is done.")
    elapsed_s: float = Field(ge=0, description="Seconds since the job started on the GPU.")
    eta_s: float | None = Field(default=None, ge=0, description="Estimated seconds left; None before it can be told.")
    loss: float | None = Field(default=None, description="Training: the last step's loss.")
    learning_rate: float | None = None
    epoch: int | None = Field(default=None, ge=0)
    saved_checkpoints: list[str] = Field(default_factory=list, description="Training: the checkpoints saved so far.")
    message: str = ""
    reported_at: datetime


class InferenceProgressReported(Event):
    """sd-runtime, while it runs an inference job (to inference-dispatcher)."""

    job_id: str
    sequence: int = Field(ge=0, description="Grows with each report of one job.")
    progress: JobProgress


class TrainingProgressReported(Event):
    """sd-runtime's training container, while it trains (to training-manager)."""

    job_id: str = Field(description="The train job id (SDMW_JOB_ID in the container's environment).")
    sequence: int = Field(ge=0, description="Grows with each report of one job.")
    progress: JobProgress
