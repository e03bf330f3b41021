"""What inference-dispatcher sends to sd-runtime through SageMaker async inference.

The dispatcher writes an ``InvocationRequest`` as JSON to S3 and calls
``InvokeEndpointAsync`` with that input location; SageMaker posts it to the
container's ``POST /invocations``. The runtime writes the job's final files
itself (``ResultFiles``: the images as JPEG and the parameter file, where the
seed's clients look) and answers a small ``InvocationResponse``, which
SageMaker writes to the endpoint config's S3 output path.

Models travel as S3 locations (``ModelSet``), resolved by the edge from its
read model when the request arrives, so the runtime never looks a name up.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sdmw_contracts.generation import GenerationParams, InterrogationParams

RuntimeTask = Literal["txt2img", "img2img", "merge", "interrogate_clip", "interrogate_deepbooru"]
MergeMethod = Literal["Weighted sum", "Add difference"]

_TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]+\]$")


def plain_model_name(title: str) -> str:
    """A1111 titles a model ``name.safetensors [6ce0161689]``; the hash is not part of its name."""
    return _TITLE_HASH.sub("", title)


def title_names_file(title: str, filename: str) -> bool:
    """Whether a model title names this file, by the one rule every service uses.

    A1111 titles checkpoints ``name.safetensors [hash]`` and ControlNet models
    by their stem, ``control_v11p_sd15_canny [hash]``: the hash is ignored, and
    the file's name with or without its extension names it.
    """
    name = plain_model_name(title)
    return bool(name) and name in names_of_file(filename)


def names_of_file(filename: str) -> tuple[str, ...]:
    """The names a model file answers to: its file name, and its stem when it has an extension."""
    stem = filename.rpartition(".")[0]
    return (filename, stem) if stem else (filename,)


class ModelRef(BaseModel):
    """One model file or folder in S3, as the user named it."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(description="The name the user used, e.g. v1-5-pruned-emaonly.safetensors.")
    s3_uri: str = Field(
        description="s3://bucket/key of a single file (.safetensors/.ckpt/.pt/.bin), "
        "or s3://bucket/prefix/ of a diffusers folder (ends with '/')."
    )


class ModelSet(BaseModel):
    """The models a generation job uses, each resolved to S3."""

    checkpoint: ModelRef | None = Field(default=None, description="The Stable-diffusion model.")
    loras: list[ModelRef] = Field(default_factory=list)
    embeddings: list[ModelRef] = Field(default_factory=list, description="Textual inversions.")
    hypernetworks: list[ModelRef] = Field(
        default_factory=list,
        description="A1111 hypernetworks (.pt), each applied at its prompt tag's <hypernet:name:multiplier>, "
        "or 1.0 when the prompt has no tag for it.",
    )
    controlnets: dict[str, ModelRef] = Field(
        default_factory=dict,
        description="ControlNet models by the title the request's units use (A1111's `` [hash]`` included).",
    )


class MergeSpec(BaseModel):
    """Checkpoint merge, as A1111's checkpoint merger does it."""

    primary: ModelRef
    secondary: ModelRef
    tertiary: ModelRef | None = Field(default=None, description="Required for 'Add difference'.")
    method: MergeMethod = "Weighted sum"
    multiplier: float = Field(default=0.3, ge=0, le=1)
    save_as_half: bool = False
    output_s3_uri: str = Field(description="Where the merged single-file safetensors checkpoint is written.")


class ResultFiles(BaseModel):
    """Where the runtime writes a job's final files: ``<prefix><image>`` for each image, then the
    parameter file ``<prefix><parameters>``. The runtime makes exactly ``len(images)`` images or fails."""

    prefix: str = Field(description="s3://bucket/out/<job id>/result/")
    images: list[str] = Field(default_factory=list, examples=[["image_0.jpg"]])
    parameters: str = Field(examples=["<job id>_param.json"])


class InvocationRequest(BaseModel):
    """One job for the runtime: exactly one of ``params``, ``interrogation`` and ``merge``, by ``task``."""

    model_config = ConfigDict(extra="ignore")

    inference_id: str
    task: RuntimeTask
    models: ModelSet = Field(default_factory=ModelSet)
    params: GenerationParams | None = Field(default=None, description="txt2img/img2img: the A1111 parameters.")
    interrogation: InterrogationParams | None = Field(default=None, description="interrogate_*: the image.")
    merge: MergeSpec | None = None
    results: ResultFiles


class InvocationResponse(BaseModel):
    """A1111's answer without the images, which are already in S3: the files written, the parameters
    used, info as a JSON string, and for an interrogation A1111's interrogate answer, ``caption``."""

    model_config = ConfigDict(extra="ignore")

    files: list[str] = Field(default_factory=list, description="s3:// URIs of the images written.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    info: str = ""
    caption: str | None = Field(default=None, description="What interrogate_* found in the image; None otherwise.")
