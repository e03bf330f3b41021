"""The sd-webui-controlnet extension's UI unit (1.1.2xx, the release the AWS extension's install script pins).

Each ControlNet unit of the txt2img/img2img tab reaches scripts as one
``UiControlNetUnit`` in ``p.script_args``: an object, with enums for its modes,
and the image the user dropped on it as gradio's sketch value, a dict of two
arrays (``image``: RGB, ``mask``: RGBA, transparent where nothing was drawn).
The AWS extension serialises it with ``json.dumps(..., default=...)``: enums as
their values, arrays as PNG data URLs, the unit as its ``__dict__``.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ResizeMode(Enum):
    RESIZE = "Just Resize"
    INNER_FIT = "Crop and Resize"
    OUTER_FIT = "Resize and Fill"


class ControlMode(Enum):
    BALANCED = "Balanced"
    PROMPT = "My prompt is more important"
    CONTROL = "ControlNet is more important"


class InputMode(Enum):
    SIMPLE = "simple"
    BATCH = "batch"


class UiControlNetUnit:
    def __init__(
        self,
        enabled: bool = False,
        module: str = "none",
        model: str = "None",
        weight: float = 1.0,
        image: dict[str, Any] | None = None,
        resize_mode: ResizeMode = ResizeMode.INNER_FIT,
        low_vram: bool = False,
        processor_res: int = -1,
        threshold_a: float = -1,
        threshold_b: float = -1,
        guidance_start: float = 0.0,
        guidance_end: float = 1.0,
        pixel_perfect: bool = False,
        control_mode: ControlMode = ControlMode.BALANCED,
    ) -> None:
        self.enabled = enabled
        self.module = module
        self.model = model
        self.weight = weight
        self.image = image
        self.resize_mode = resize_mode
        self.low_vram = low_vram
        self.processor_res = processor_res
        self.threshold_a = threshold_a
        self.threshold_b = threshold_b
        self.guidance_start = guidance_start
        self.guidance_end = guidance_end
        self.pixel_perfect = pixel_perfect
        self.control_mode = control_mode
        self.is_ui = True
        self.input_mode = InputMode.SIMPLE
        self.batch_images = ""
        self.output_dir = ""
        self.loopback = False
