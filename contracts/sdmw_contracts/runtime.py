"""What inference-dispatcher sends to sd-runtime through SageMaker async inference.

The dispatcher writes an ``InvocationRequest`` as JSON to S3 and calls
``InvokeEndpointAsync`` with that input location; SageMaker posts it to the
container's ``POST /invocations``. The container answers an
``InvocationResponse`` in the A1111 shape, which SageMaker writes to the
endpoint config's S3 output path.

Models travel as S3 locations resolved by the dispatcher from the asset events,
so the runtime never looks a name up itself.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RuntimeTask = Literal["txt2img", "img2img", "merge", "interrogate_clip", "interrogate_deepbooru"]
MergeMethod = Literal["Weighted sum", "Add difference"]


_TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]+\]$")


def plain_model_name(title: str) -> str:
    """A1111 titles a model ``name.safetensors [6ce0161689]``; the hash is not part of its name."""
    return _TITLE_HASH.sub("", title)


class ModelRef(BaseModel):
    """One model file or folder in S3, as the user named it."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(description="The name the user used, e.g. v1-5-pruned-emaonly.safetensors.")
    s3_uri: str = Field(
        description="s3://bucket/key of a single file (.safetensors/.ckpt/.pt/.bin), "
        "or s3://bucket/prefix/ of a diffusers folder (ends with '/')."
    )


class MergeSpec(BaseModel):
    """Checkpoint merge, as A1111's checkpoint merger does it."""

    primary: ModelRef
    secondary: ModelRef
    tertiary: ModelRef | None = Field(default=None, description="Required for 'Add difference'.")
    method: MergeMethod = "Weighted sum"
    multiplier: float = Field(default=0.3, ge=0, le=1)
    output_s3_uri: str = Field(description="Where the merged single-file safetensors checkpoint is written.")


class InvocationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inference_id: str
    task: RuntimeTask
    checkpoint: ModelRef | None = Field(default=None, description="The Stable-diffusion model; None for merge.")
    loras: list[ModelRef] = Field(default_factory=list)
    embeddings: list[ModelRef] = Field(default_factory=list, description="Textual inversions.")
    controlnets: list[ModelRef] = Field(
        default_factory=list, description="ControlNet models named by alwayson_scripts.controlnet args."
    )
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description="The A1111 txt2img/img2img parameters: the seed's inference body, defaults filled in; "
        "for interrogate_* A1111's interrogate body: ``image`` (base64, a data URL is accepted).",
    )
    merge: MergeSpec | None = None


class InvocationResponse(BaseModel):
    """A1111's answer: base64 images, the parameters used, and info as a JSON string.

    An interrogation answers A1111's interrogate answer, ``caption``, with no images.
    """

    model_config = ConfigDict(extra="ignore")

    images: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    info: str = ""
    caption: str | None = Field(default=None, description="What interrogate_* found in the image; None otherwise.")
