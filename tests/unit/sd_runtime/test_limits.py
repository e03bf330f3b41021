"""The runtime refuses generation requests outside the WebUI's limits, before any model is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from sd_runtime.errors import RequestError
from sd_runtime.invocations import Runtime, check_limits
from sd_runtime.settings import Settings
from sdmw_contracts.api.inference import InferenceRequest

REF = {"name": "tiny.safetensors", "s3_uri": "s3://no-such-bucket/tiny.safetensors"}


def body(**payload: object) -> dict[str, object]:
    return {
        "inference_id": "job-limits",
        "task": "txt2img",
        "checkpoint": REF,
        "payload": {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2, **payload},
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"width": 100000}, "width"),
        ({"height": 4096}, "height"),
        ({"width": 70}, "width"),
        ({"steps": 100000}, "steps"),
        ({"steps": 151}, "steps"),
        ({"batch_size": 1000}, "batch_size"),
        ({"n_iter": 100000}, "n_iter"),
        ({"cfg_scale": 31}, "cfg_scale"),
        ({"denoising_strength": 1.5}, "denoising_strength"),
        ({"seed": 2**64}, "seed"),
        ({"hr_scale": 8, "enable_hr": True}, "hr_scale"),
        ({"enable_hr": True, "width": 2048, "height": 2048, "hr_scale": 4}, "hires fix"),
        ({"enable_hr": True, "width": 64, "height": 2048, "hr_resize_x": 2048}, "hires fix"),
        ({"hr_second_pass_steps": 1000}, "hr_second_pass_steps"),
    ],
)
def test_out_of_bounds_requests_fail_at_once_naming_the_parameter(tmp_path: Path, payload: dict, field: str):
    runtime = Runtime(Settings(cache_dir=tmp_path, device="cpu"))
    # The checkpoint's bucket does not exist: reaching for it would fail otherwise (not a 400 naming the field).
    with pytest.raises(RequestError) as caught:
        runtime.invoke(body(**payload))
    assert caught.value.status == 400
    assert field in caught.value.message


def _unchecked(**fields: object) -> InferenceRequest:
    """A request that skipped the contract's validation, as if it reached the runtime another way."""
    base = InferenceRequest.model_validate(
        {
            "sagemaker_endpoint_name": "sd-runtime",
            "task_type": "txt2img",
            "prompt": "x",
            "models": {"Stable-diffusion": ["m"]},
        }
    )
    return base.model_copy(update=fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"width": 4096}, "width must be 8..2048 in multiples of 8, got 4096"),
        ({"height": 20}, "height must be 8..2048 in multiples of 8, got 20"),
        ({"steps": 0}, "steps must be 1..150"),
        ({"batch_size": 9}, "batch_size must be 1..8"),
        ({"n_iter": 101}, "n_iter must be 1..100"),
        ({"cfg_scale": 0.5}, "cfg_scale must be 1..30"),
        ({"enable_hr": True, "hr_second_pass_steps": 151}, "hr_second_pass_steps must be 0..150"),
    ],
)
def test_the_runtime_checks_the_limits_itself(fields: dict, message: str):
    with pytest.raises(RequestError, match=message):
        check_limits(_unchecked(**fields))


def test_the_hires_size_is_checked_on_the_plan():
    with pytest.raises(RequestError, match="hires fix would upscale to 8192x512"):
        check_limits(_unchecked(enable_hr=True), (8192, 512))
    check_limits(_unchecked(enable_hr=True), (4096, 4096))


def test_the_webui_defaults_and_maximums_pass():
    check_limits(_unchecked())
    check_limits(_unchecked(width=2048, height=2048, steps=150, batch_size=8, n_iter=100, cfg_scale=30))
    check_limits(_unchecked(width=8, height=8, steps=1, batch_size=1, n_iter=1, cfg_scale=1))
