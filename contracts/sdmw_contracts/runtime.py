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

# ---------------------------------------------------------------- generation limits
#
# The bounds of every numeric generation parameter, as the A1111 WebUI's sliders set them. The edge
# refuses a request outside them (422, ``sdmw_contracts.api.inference.InferenceRequest``) and the runtime
# checks them again on what it is about to run (``sd_runtime.invocations``), hires fix's size included.

#: Width and height: up to 2048 pixels, in multiples of 8. The WebUI's sliders start at 64, its API at
#: any multiple of 8; the smallest sizes cost nothing and the tiny test pipelines run at 32, so 8 it is.
MIN_IMAGE_SIDE = 8
MAX_IMAGE_SIDE = 2048
IMAGE_SIDE_MULTIPLE = 8
#: Sampling steps (and hires fix's second-pass steps, where 0 means "as many as the first pass").
MAX_STEPS = 150
#: Images per batch, and batches per job (A1111's "batch count", ``n_iter``).
MAX_BATCH_SIZE = 8
MAX_BATCH_COUNT = 100
#: Classifier-free guidance scale.
MIN_CFG_SCALE = 1.0
MAX_CFG_SCALE = 30.0
#: Seeds and subseeds: -1 (a random one) or an unsigned 32-bit number, as A1111 draws them.
MAX_SEED = 2**32 - 1
#: Hires fix: the upscale factor, and the largest side of its target (``hr_resize_x``/``_y`` or the scaled size).
MIN_HR_SCALE = 1.0
MAX_HR_SCALE = 4.0
MAX_HIRES_SIDE = 4096
#: ``seed_resize_from_w``/``_h`` and the hires-fix first pass size (0 or -1: unused).
MAX_SEED_RESIZE_SIDE = MAX_IMAGE_SIDE
#: Sampler parameters (A1111's settings sliders).
MAX_ETA = 1.0
MAX_S_CHURN = 100.0
MAX_S_TMIN = 10.0
MAX_S_TMAX = 999.0
MAX_S_NOISE = 1.1
MAX_S_MIN_UNCOND = 15.0
#: ControlNet: unit weight, preprocessor resolution, preprocessor thresholds.
MAX_CONTROLNET_WEIGHT = 2.0
MAX_CONTROLNET_PROCESSOR_RES = MAX_IMAGE_SIDE
MAX_CONTROLNET_THRESHOLD = 2048.0
#: ControlNet units per request (the WebUI offers up to 10 in its settings).
MAX_CONTROLNET_UNITS = 10
#: Images a request may carry (img2img ``init_images``).
MAX_INIT_IMAGES = MAX_BATCH_SIZE


def generation_limit_problems(
    *, width: int, height: int, steps: int, batch_size: int, n_iter: int, cfg_scale: float
) -> list[str]:
    """What is outside the limits above, one message per parameter; empty when everything fits."""
    problems = []
    for name, side in (("width", width), ("height", height)):
        if not MIN_IMAGE_SIDE <= side <= MAX_IMAGE_SIDE or side % IMAGE_SIDE_MULTIPLE:
            problems.append(
                f"{name} must be {MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE} in multiples of {IMAGE_SIDE_MULTIPLE}, got {side}"
            )
    if not 1 <= steps <= MAX_STEPS:
        problems.append(f"steps must be 1..{MAX_STEPS}, got {steps}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        problems.append(f"batch_size must be 1..{MAX_BATCH_SIZE}, got {batch_size}")
    if not 1 <= n_iter <= MAX_BATCH_COUNT:
        problems.append(f"n_iter must be 1..{MAX_BATCH_COUNT}, got {n_iter}")
    if not MIN_CFG_SCALE <= cfg_scale <= MAX_CFG_SCALE:
        problems.append(f"cfg_scale must be {MIN_CFG_SCALE:g}..{MAX_CFG_SCALE:g}, got {cfg_scale:g}")
    return problems


def hires_upscale_size(width: int, height: int, hr_scale: float, resize_x: int, resize_y: int) -> tuple[int, int]:
    """The size hires fix upscales to before any crop, as A1111's ``init_hr`` computes it."""
    if resize_x <= 0 and resize_y <= 0:
        return int(width * hr_scale), int(height * hr_scale)
    if resize_y <= 0:
        return resize_x, resize_x * height // width
    if resize_x <= 0:
        return resize_y * width // height, resize_y
    if width / height < resize_x / resize_y:
        return resize_x, resize_x * height // width
    return resize_y * width // height, resize_y


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
