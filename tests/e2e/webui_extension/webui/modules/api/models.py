"""``modules.api.models``: the WebUI API's txt2img and img2img request models.

A1111 generates them from the processing classes: every ``__init__`` parameter
along the class's MRO, except those its API does not allow, becomes an
optional field with that parameter's default, plus a few API-only fields. The
extension builds one from a processing object (``Model(**p.__dict__)``), so
which attributes of ``p`` reach the cloud is decided here, as in the WebUI.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

from pydantic import ConfigDict, Field, create_model

from modules.processing import StableDiffusionProcessingImg2Img, StableDiffusionProcessingTxt2Img

API_NOT_ALLOWED = {
    "self",
    "kwargs",
    "sd_model",
    "outpath_samples",
    "outpath_grids",
    "sampler_index",
    "extra_generation_params",
    "overlay_images",
    "do_not_reload_embeddings",
    "seed_enable_extras",
    "prompt_for_display",
    "sampler_noise_scheduler_override",
    "ddim_discretize",
}


def _init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    parameters: dict[str, inspect.Parameter] = {}
    for klass in (c for c in inspect.getmro(cls) if c is not object):
        parameters = {**parameters, **inspect.signature(klass.__init__).parameters}
    return parameters


def _api_model(name: str, cls: type, additional: list[tuple[str, Any, Any]]) -> type:
    fields: dict[str, Any] = {
        key: (Optional[Any], Field(default=parameter.default))  # noqa: UP045 - the WebUI's own spelling
        for key, parameter in _init_parameters(cls).items()
        if key not in API_NOT_ALLOWED
    }
    for key, annotation, default in additional:
        fields[key] = (annotation, Field(default=default))
    return create_model(name, __config__=ConfigDict(extra="ignore", arbitrary_types_allowed=True), **fields)


_SCRIPT_FIELDS: list[tuple[str, Any, Any]] = [
    ("script_name", Optional[str], None),  # noqa: UP045
    ("script_args", list, []),
    ("send_images", bool, True),
    ("save_images", bool, False),
    ("alwayson_scripts", dict, {}),
]

StableDiffusionTxt2ImgProcessingAPI = _api_model(
    "StableDiffusionProcessingTxt2Img",
    StableDiffusionProcessingTxt2Img,
    [("sampler_index", str, "Euler"), *_SCRIPT_FIELDS],
)

StableDiffusionImg2ImgProcessingAPI = _api_model(
    "StableDiffusionProcessingImg2Img",
    StableDiffusionProcessingImg2Img,
    [
        ("sampler_index", str, "Euler"),
        ("init_images", Optional[list], None),  # noqa: UP045
        ("denoising_strength", float, 0.75),
        ("mask", Optional[str], None),  # noqa: UP045
        ("include_init_images", bool, False),
        *_SCRIPT_FIELDS,
    ],
)
