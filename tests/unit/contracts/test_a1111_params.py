"""A1111's generation parameters as the WebUI really sends them (defects 1 and 5 of the extension's issue).

``a1111/*.json`` are the parameter files the WebUI extension v1.1.0's own
``before_process`` wrote (tests/e2e/webui_extension, A1111 1.5.1's processing
values): ``s_tmax`` is ``Infinity`` (A1111's ``float('inf')``), fields A1111
leaves unset are ``null``, ControlNet units are the UI's objects with the image
as gradio's ``{image, mask}``.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from sdmw_contracts.generation import MAX_S_TMAX, ControlNetImage, ControlNetUnit, GenerationParams

SENT = Path(__file__).parent / "a1111"


def sent(name: str) -> dict:
    return json.loads((SENT / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["txt2img", "img2img", "txt2img-controlnet"])
def test_what_the_webui_sends_is_accepted(name):
    raw = (SENT / f"{name}.json").read_text()
    assert '"s_tmax": Infinity' in raw and "null" in raw
    params = GenerationParams.model_validate(json.loads(raw))
    assert params.s_tmax is None  # no limit, as A1111 means it; JSON-safe from here on
    assert params.denoising_strength == (None if name.startswith("txt2img") else 0.75)
    assert json.loads(params.model_dump_json())["s_tmax"] is None


def test_the_controlnet_uis_image_is_taken_with_its_mask():
    unit = GenerationParams.model_validate(sent("txt2img-controlnet")).alwayson_scripts.controlnet.args[0]
    assert unit.enabled and isinstance(unit.image, ControlNetImage)
    assert unit.image.image.startswith("data:image/png;base64,") and unit.image.mask.startswith("data:image/png;")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("restore_faces", False),
        ("tiling", False),
        ("hr_upscaler", "Latent"),
        ("steps", 28),
        ("sampler_name", "Euler a"),
    ],
)
def test_null_means_the_fields_default(field, value):
    assert getattr(GenerationParams.model_validate({"prompt": "x", field: None}), field) == value


def test_null_is_kept_where_it_means_something():
    params = GenerationParams.model_validate({"prompt": "x", "eta": None, "hr_sampler_name": None, "s_tmax": None})
    assert (params.eta, params.hr_sampler_name, params.s_tmax) == (None, None, None)


def test_a_required_field_stays_required():
    with pytest.raises(ValidationError, match="prompt"):
        GenerationParams.model_validate({"prompt": None})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("s_tmax", MAX_S_TMAX + 1),
        ("s_tmax", -math.inf),
        ("s_tmax", math.nan),
        ("cfg_scale", math.inf),
        ("cfg_scale", math.nan),
        ("eta", math.nan),
        ("steps", 151),
        ("cfg_scale", 31),
    ],
)
def test_every_real_bound_holds(field, value):
    with pytest.raises(ValidationError, match=field):
        GenerationParams.model_validate({"prompt": "x", field: value})


def png_data_url(mode: str = "RGB", size: int = 4) -> str:
    out = io.BytesIO()
    Image.new(mode, (size, size)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize(
    "image",
    [
        png_data_url(),
        {"image": png_data_url(), "mask": png_data_url("RGBA")},
        {"image": png_data_url()},
        {"image": [[[0, 0, 0], [255, 255, 255]]], "mask": [[[0, 0, 0, 0], [0, 0, 0, 255]]]},
        {"image": [[0, 128], [255, 7]]},
    ],
    ids=["base64", "ui-value", "no-mask", "arrays", "grey-rows"],
)
def test_a_units_image_may_be_base64_or_the_uis_value(image):
    assert ControlNetUnit.model_validate({"enabled": True, "image": image}).image


@pytest.mark.parametrize(
    "image",
    [{"image": [[[0, 0, 256]]]}, {"image": [[[-1]]]}, {"mask": png_data_url()}, {"image": "not base64!"}, 7],
    ids=["over-255", "negative", "no-image", "bad-base64", "number"],
)
def test_a_units_image_that_is_no_picture_is_refused(image):
    with pytest.raises(ValidationError):
        ControlNetUnit.model_validate({"enabled": True, "image": image})
