"""ControlNet units from ``alwayson_scripts.controlnet.args``.

Each enabled unit names a model by its title, exactly as the request's
``models.controlnets`` maps it (the edge resolved the titles by the one name
rule, ``sdmw_contracts.runtime.title_names_file``), a preprocessor
(``module``) and a control image (the init image in img2img when the unit has
none). Preprocessors: "none" and "canny" (OpenCV's Canny, as
A1111's ControlNet extension uses, with threshold_a/threshold_b as the low and
high thresholds, default 100/200).

ControlNet models are loaded from a diffusers folder, or from a single
original-format file (``control_v11p_sd15_canny.pth``): its architecture is
the base UNet's, so its config is derived from the checkpoint being used
rather than fetched from anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sd_runtime.errors import RequestError, UnsupportedFeature, is_out_of_memory, load_errors
from sd_runtime.images import decode_any_image, decode_image, resize_image, with_strokes
from sd_runtime.models import ModelStore, is_folder_uri
from sd_runtime.pipelines import LRUCache
from sdmw_contracts.generation import ControlNetUnit
from sdmw_contracts.runtime import ModelRef

PREPROCESSORS = ("none", "canny")


def _canny(image: Image.Image, low: float, high: float) -> Image.Image:
    import cv2

    edges = cv2.Canny(np.asarray(image.convert("RGB")), low, high)
    return Image.fromarray(edges).convert("RGB")


@dataclass
class ControlUnit:
    index: int
    model_name: str
    model_ref: ModelRef
    module: str
    source: Image.Image
    resize_mode: str
    weight: float
    guidance_start: float
    guidance_end: float
    threshold_a: float
    threshold_b: float
    control_mode: str

    def control_image(self, width: int, height: int) -> Image.Image:
        """The control image for a pass at width x height: resized first, then preprocessed at that size."""
        image = resize_image(self.source, width, height, self.resize_mode)
        if self.module == "canny":
            low = 100 if self.threshold_a < 0 else self.threshold_a
            high = 200 if self.threshold_b < 0 else self.threshold_b
            return _canny(image, low, high)
        return image


def parse_units(
    units: list[ControlNetUnit], refs: dict[str, ModelRef], init_image: Image.Image | None
) -> tuple[list[ControlUnit], list[str]]:
    """The enabled units that will run, and warnings about what was ignored.

    ``refs`` maps each title the units use to its model, as the edge resolved it; the runtime
    looks nothing up by name itself, so a title missing from it is the request's mistake.
    """
    control_units: list[ControlUnit] = []
    warnings: list[str] = []
    for index, unit in enumerate(units):
        if not unit.enabled:
            continue
        if not unit.model or unit.model == "None":
            warnings.append(f"ControlNet unit {index} is enabled but names no model; it was skipped")
            continue
        module = (unit.module or "none").casefold()
        if module not in PREPROCESSORS:
            raise UnsupportedFeature(
                f"ControlNet unit {index}: preprocessor {unit.module!r} is not supported; supported: "
                f"{', '.join(PREPROCESSORS)} (send an already preprocessed image with 'none')"
            )
        ref = _model_ref(index, unit.model, refs)
        source = source_image(index, unit, init_image)
        if unit.control_mode == "My prompt is more important":
            warnings.append(f"ControlNet unit {index}: control_mode {unit.control_mode!r} runs as 'Balanced'")
        control_units.append(
            ControlUnit(
                index=index,
                model_name=unit.model,
                model_ref=ref,
                module=module,
                source=source,
                resize_mode=unit.resize_mode,
                # diffusers checks for floats; defaults come through as ints.
                weight=float(unit.weight),
                guidance_start=float(unit.guidance_start),
                guidance_end=float(unit.guidance_end),
                threshold_a=float(unit.threshold_a),
                threshold_b=float(unit.threshold_b),
                control_mode=unit.control_mode,
            )
        )
    return control_units, warnings


def _model_ref(index: int, title: str, refs: dict[str, ModelRef]) -> ModelRef:
    ref = refs.get(title)
    if ref is None:
        known = ", ".join(repr(known_title) for known_title in refs) or "none"
        raise RequestError(f"ControlNet unit {index}: model {title!r} is not among the request's controlnets ({known})")
    return ref


def source_image(index: int, unit: ControlNetUnit, init_image: Image.Image | None) -> Image.Image:
    """The unit's own image, else (img2img) the init image."""
    what = f"ControlNet unit {index} image"
    if isinstance(unit.image, str) and unit.image:
        return decode_image(unit.image, what)
    if unit.image is not None:  # ControlNet's UI value: the picture and the strokes drawn on it
        return with_strokes(decode_any_image(unit.image.image, what), unit.image.mask, what)
    if init_image is not None:
        return init_image
    raise RequestError(f"ControlNet unit {index} is enabled but has no image")


class ControlNetCache:
    """Loaded ControlNetModels by S3 URI; a small LRU like the pipelines'."""

    def __init__(self, store: ModelStore, size: int, device: Any, dtype: Any) -> None:
        self.store = store
        self.device = device
        self.dtype = dtype
        self._cache: LRUCache[str, Any] = LRUCache(size)

    def get(self, ref: ModelRef, unet_config: dict[str, Any]) -> Any:
        # A single-file model's config comes from the UNet it runs with, so the key includes that shape.
        key = ref.s3_uri if is_folder_uri(ref.s3_uri) else f"{ref.s3_uri}|{_config_key(unet_config)}"
        return self._cache.get_or_load(key, lambda: self._load(ref, unet_config))

    def _load(self, ref: ModelRef, unet_config: dict[str, Any]) -> Any:
        from diffusers import ControlNetModel

        path = self.store.fetch(ref.s3_uri, what="ControlNet model")
        try:
            if path.is_dir():
                model = ControlNetModel.from_pretrained(str(path), dtype=self.dtype, local_files_only=True)
            else:
                config_dir = path.with_name(path.name + ".config")
                _write_controlnet_config(config_dir, unet_config)
                model = ControlNetModel.from_single_file(
                    str(path), config=str(config_dir), local_files_only=True, dtype=self.dtype
                )
        except load_errors() as error:
            if is_out_of_memory(error):
                raise
            raise RequestError(f"ControlNet model {ref.name} ({ref.s3_uri}) could not be loaded: {error}") from None
        return model.to(self.device)


def _config_key(unet_config: dict[str, Any]) -> str:
    return json.dumps(
        {k: unet_config.get(k) for k in ("block_out_channels", "cross_attention_dim", "layers_per_block")},
        sort_keys=True,
    )


def _write_controlnet_config(folder: Path, unet_config: dict[str, Any]) -> None:
    """A ControlNetModel config.json with the UNet's architecture (what ``ControlNetModel.from_unet`` does)."""
    import inspect

    from diffusers import ControlNetModel

    accepted = set(inspect.signature(ControlNetModel.__init__).parameters) - {"self"}
    config = {k: v for k, v in dict(unet_config).items() if k in accepted}
    config["_class_name"] = "ControlNetModel"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
