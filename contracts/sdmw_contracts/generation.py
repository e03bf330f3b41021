"""The A1111 generation parameters: one model, parsed once at the edge and carried typed to the runtime.

``GenerationParams`` is the seed's txt2img/img2img body without the routing
fields (endpoint, task, models): ``api.inference.InferenceRequest`` adds them,
``events.inference.InferenceRequested`` carries the parameters to
inference-dispatcher, and ``runtime.InvocationRequest`` to sd-runtime, which
parses them with this same model. Every bound is a field constraint here, so
the edge and the runtime cannot disagree on what may run.
"""

from __future__ import annotations

import math
import typing
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from sdmw_contracts.api.common import ApiModel, JsonArray, JsonObject, check_json_numbers
from sdmw_contracts.api.names import Base64Data

# ---------------------------------------------------------------- generation limits
#
# The bounds of every numeric generation parameter, as the A1111 WebUI's sliders set them, enforced by
# ``GenerationParams`` wherever it is parsed: at the edge (a 422 naming the field) and in the runtime.

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


ControlNetResizeMode = Literal["Just Resize", "Crop and Resize", "Resize and Fill"]
ControlNetControlMode = Literal["Balanced", "My prompt is more important", "ControlNet is more important"]
#: ControlNet's API also takes these two enums by position (0, 1, 2).
_RESIZE_MODES: tuple[str, ...] = ("Just Resize", "Crop and Resize", "Resize and Fill")
_CONTROL_MODES: tuple[str, ...] = ("Balanced", "My prompt is more important", "ControlNet is more important")


# ---------------------------------------------------------------- what A1111 sends


class A1111Params(ApiModel):
    """Parameters as the A1111 WebUI sends them: ``null`` for a field that has a default means that default.

    A1111's processing objects hold None where "the setting's value" is meant (``hr_sampler_name``,
    ``eta``, ``denoising_strength`` without hires fix, ControlNet's unset options), and clients such as the
    WebUI's AWS extension send an object's attributes as they are. A required field stays required, and
    no bound is loosened: a number outside its range, and NaN or infinity anywhere (except where a field
    says otherwise), is refused.
    """

    model_config = ConfigDict(allow_inf_nan=False)
    _defaulted_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        keys: set[str] = set()
        for name, info in cls.model_fields.items():
            if info.is_required() or type(None) in typing.get_args(info.annotation):
                continue
            keys.update(k for k in (name, info.alias) if k)
        cls._defaulted_keys = frozenset(keys)

    @model_validator(mode="before")
    @classmethod
    def _null_is_the_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k not in cls._defaulted_keys}
        return data


def _unbounded_is_none(value: Any) -> Any:
    """A1111's "no limit" is ``float('inf')`` (JSON ``Infinity``): kept as None, which JSON can carry."""
    return None if isinstance(value, float) and math.isinf(value) and value > 0 else value


#: A picture as an array of rows of pixels (``[[[r, g, b], ...], ...]``, or rows of grey values), 0-255.
PixelArray = Annotated[
    list[list[list[Annotated[int, Field(ge=0, le=255)]]]] | list[list[Annotated[int, Field(ge=0, le=255)]]],
    Field(description="An image as rows of pixels: [[[r, g, b], ...], ...] (or [r, g, b, a]; or grey values)."),
]


class ControlNetImage(ApiModel):
    """What ControlNet's UI hands over for a unit's image (gradio's sketch value): the picture, and the
    strokes drawn on it (``mask``, transparent where nothing was drawn), each base64 or pixel arrays."""

    image: Base64Data | PixelArray
    mask: Base64Data | PixelArray | None = None


# ---------------------------------------------------------------- ControlNet and other scripts


class ControlNetUnit(A1111Params):
    """One entry of ``alwayson_scripts.controlnet.args``; defaults as the seed lists them."""

    enabled: bool = False
    module: str = Field(default="none", examples=["none", "canny", "openpose"])
    model: str = Field(default="None", examples=["None", "control_v11p_sd15_canny"])
    weight: float = Field(default=1, ge=0, le=MAX_CONTROLNET_WEIGHT)
    image: Base64Data | ControlNetImage | None = Field(
        default=None,
        description="Control image: base64 (a data URL is accepted), or ControlNet's UI value "
        "{image, mask} (each base64 or pixel arrays; strokes in the mask are drawn white into the image).",
    )
    resize_mode: ControlNetResizeMode = "Crop and Resize"
    low_vram: bool = False
    processor_res: int = Field(default=-1, ge=-1, le=MAX_CONTROLNET_PROCESSOR_RES)
    threshold_a: float = Field(default=-1, ge=-1, le=MAX_CONTROLNET_THRESHOLD)
    threshold_b: float = Field(default=-1, ge=-1, le=MAX_CONTROLNET_THRESHOLD)
    guidance_start: float = Field(default=0, ge=0, le=1)
    guidance_end: float = Field(default=1, ge=0, le=1)
    pixel_perfect: bool = False
    control_mode: ControlNetControlMode = "Balanced"
    is_ui: bool = True
    input_mode: str = Field(default="simple", examples=["simple", "batch"])
    batch_images: str = ""
    output_dir: str = ""
    loopback: bool = False

    @field_validator("resize_mode", mode="before")
    @classmethod
    def _resize_mode_by_position(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_RESIZE_MODES):
            return _RESIZE_MODES[value]
        return value

    @field_validator("control_mode", mode="before")
    @classmethod
    def _control_mode_by_position(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_CONTROL_MODES):
            return _CONTROL_MODES[value]
        return value

    @field_validator("processor_res")
    @classmethod
    def _processor_res(cls, value: int) -> int:
        if value == 0:
            raise ValueError("processor_res must be -1 (the module's default) or a positive resolution")
        return value

    @model_validator(mode="after")
    def _guidance_order(self) -> ControlNetUnit:
        if self.guidance_start > self.guidance_end:
            raise ValueError(
                f"guidance_start ({self.guidance_start}) must not be greater than guidance_end ({self.guidance_end})"
            )
        return self


def _default_controlnet_args() -> list[ControlNetUnit]:
    return [ControlNetUnit()]


class ControlNetScript(ApiModel):
    args: list[ControlNetUnit] = Field(default_factory=_default_controlnet_args, max_length=MAX_CONTROLNET_UNITS)


class ScriptArgs(ApiModel):
    """An always-on script's arguments, passed through as given."""

    args: JsonArray = Field(default_factory=list)


class AlwaysOnScripts(ApiModel):
    """``alwayson_scripts``: ControlNet is modelled; other scripts are kept as sent.

    The seed's key ``"extra options"`` has a space, so the field is
    ``extra_options`` with that alias: dump with ``by_alias=True``.
    """

    model_config = ConfigDict(extra="allow")

    controlnet: ControlNetScript = Field(default_factory=ControlNetScript)
    extra_options: ScriptArgs = Field(default_factory=ScriptArgs, alias="extra options")

    @model_validator(mode="after")
    def _other_scripts_hold_json_numbers(self) -> AlwaysOnScripts:
        check_json_numbers(self.model_extra or {})
        return self


# ---------------------------------------------------------------- the parameters


#: img2img's ``resize_mode`` (A1111's API takes its position).
IMG2IMG_RESIZE_MODES: tuple[str, ...] = ("Just resize", "Crop and resize", "Resize and fill")


class GenerationParams(A1111Params):
    """txt2img/img2img parameters with the defaults the seed documents; ``null`` means the default."""

    prompt: str = Field(examples=["a cute panda"])
    init_images: list[Base64Data] = Field(
        default_factory=list,
        max_length=MAX_INIT_IMAGES,
        description="img2img input images, base64; required when task_type is img2img.",
    )
    enable_hr: bool = False
    denoising_strength: float | None = Field(default=None, ge=0, le=1, examples=[0.75])
    firstphase_width: int = Field(default=0, ge=0, le=MAX_IMAGE_SIDE)
    firstphase_height: int = Field(default=0, ge=0, le=MAX_IMAGE_SIDE)
    hr_scale: float = Field(
        default=2.0,
        ge=MIN_HR_SCALE,
        le=MAX_HR_SCALE,
        description=f"Hires fix upscale factor; the upscaled image's sides may be at most {MAX_HIRES_SIDE}.",
    )
    hr_upscaler: str = Field(default="Latent", max_length=128, examples=["Latent"])
    hr_second_pass_steps: int = Field(default=0, ge=0, le=MAX_STEPS, description="0: as many as steps.")
    hr_resize_x: int = Field(default=0, ge=0, le=MAX_IMAGE_SIDE)
    hr_resize_y: int = Field(default=0, ge=0, le=MAX_IMAGE_SIDE)
    hr_sampler_name: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    styles: list[str] = Field(default_factory=list)
    seed: int = Field(default=-1, ge=-1, le=MAX_SEED, description="-1 picks a random seed.")
    subseed: int = Field(default=-1, ge=-1, le=MAX_SEED)
    subseed_strength: float = Field(default=0.0, ge=0, le=1)
    seed_resize_from_h: int = Field(default=0, ge=-1, le=MAX_SEED_RESIZE_SIDE)
    seed_resize_from_w: int = Field(default=0, ge=-1, le=MAX_SEED_RESIZE_SIDE)
    sampler_name: str = Field(default="Euler a", max_length=128, examples=["Euler a", "DPM++ 2M Karras"])
    batch_size: int = Field(default=1, ge=1, le=MAX_BATCH_SIZE)
    n_iter: int = Field(default=1, ge=1, le=MAX_BATCH_COUNT, description="A1111's batch count.")
    steps: int = Field(default=28, ge=1, le=MAX_STEPS)
    cfg_scale: float = Field(default=7.0, ge=MIN_CFG_SCALE, le=MAX_CFG_SCALE)
    width: int = Field(default=512, ge=MIN_IMAGE_SIDE, le=MAX_IMAGE_SIDE, multiple_of=IMAGE_SIDE_MULTIPLE)
    height: int = Field(default=512, ge=MIN_IMAGE_SIDE, le=MAX_IMAGE_SIDE, multiple_of=IMAGE_SIDE_MULTIPLE)
    restore_faces: bool = False
    tiling: bool = False
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    negative_prompt: str = ""
    eta: float | None = Field(default=None, ge=0, le=MAX_ETA)
    s_min_uncond: float = Field(default=0.0, ge=0, le=MAX_S_MIN_UNCOND)
    s_churn: float = Field(default=0.0, ge=0, le=MAX_S_CHURN)
    s_tmax: float | None = Field(
        default=1.0,
        ge=0,
        le=MAX_S_TMAX,
        description="null or Infinity (A1111's default, JSON's non-standard literal): no limit.",
    )
    s_tmin: float = Field(default=0.0, ge=0, le=MAX_S_TMIN)
    s_noise: float = Field(default=1.0, ge=0, le=MAX_S_NOISE)
    override_settings: JsonObject = Field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    script_args: JsonArray = Field(default_factory=list)
    sampler_index: str = Field(default="Euler a", examples=["Euler a"])
    script_name: str | None = None
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: AlwaysOnScripts = Field(default_factory=AlwaysOnScripts)
    resize_mode: int = Field(
        default=0,
        ge=0,
        le=len(IMG2IMG_RESIZE_MODES) - 1,
        description="img2img: how init images are fitted (0 just resize, 1 crop and resize, 2 resize and fill).",
    )

    @field_validator("s_tmax", mode="before")
    @classmethod
    def _s_tmax_unbounded(cls, value: Any) -> Any:
        return _unbounded_is_none(value)

    def hires_problem(self) -> str | None:
        """Why hires fix cannot run as asked (its upscaled size is too large); None when it can or is off."""
        if not self.enable_hr:
            return None
        size = hires_upscale_size(self.width, self.height, self.hr_scale, self.hr_resize_x, self.hr_resize_y)
        if max(size) <= MAX_HIRES_SIDE:
            return None
        return (
            f"hires fix would upscale to {size[0]}x{size[1]}; each side may be at most {MAX_HIRES_SIDE} "
            "(lower hr_scale, hr_resize_x or hr_resize_y)"
        )

    def image_count(self) -> int:
        """How many images the job makes: ``batch_size`` per batch, ``n_iter`` batches."""
        return self.batch_size * self.n_iter

    def controlnet_titles(self) -> list[str]:
        """The ControlNet models the enabled units name, as written (A1111's `` [hash]`` included)."""
        titles = [unit.model for unit in self.alwayson_scripts.controlnet.args if unit.enabled]
        return list(dict.fromkeys(title for title in titles if title and title != "None"))


class InterrogationParams(ApiModel):
    """A1111's interrogate body: the image, and which interrogator (``clip`` or ``deepbooru``)."""

    image: Base64Data = Field(description="The image to caption, base64 (a data URL is accepted).")
    model: Literal["clip", "deepbooru"] = "clip"
