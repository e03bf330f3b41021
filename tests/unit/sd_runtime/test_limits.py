"""The runtime refuses requests it cannot run before any model is fetched: params outside the contract's
bounds (the one parse), hires fix's size, and a task without its inputs or with the wrong number of files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sd_runtime.errors import RequestError
from sd_runtime.invocations import Runtime
from sd_runtime.models import ModelStore
from sd_runtime.settings import Settings
from sd_runtime.testing import result_files
from tests.unit.sd_runtime.conftest import gradient_image, png_b64

REF = {"name": "tiny.safetensors", "s3_uri": "s3://models/tiny.safetensors"}


class ReachedS3(Exception):
    """Raised by the store's client factory: the request passed every check and went for a model."""


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    def no_s3() -> Any:
        raise ReachedS3()

    settings = Settings(cache_dir=tmp_path, device="cpu")
    return Runtime(settings, ModelStore(tmp_path, client_factory=no_s3))


def body(task: str = "txt2img", images: int = 1, **params: Any) -> dict[str, Any]:
    """Params as a client could send them, not validated here: the runtime's parse is what is tested."""
    return {
        "inference_id": "job-limits",
        "task": task,
        "models": {"checkpoint": REF},
        "params": {"prompt": "a red cube", "width": 64, "height": 64, "steps": 2, **params},
        "results": result_files("models", "job-limits", images).model_dump(),
    }


def refusal(runtime: Runtime, request: dict[str, Any]) -> str:
    with pytest.raises(RequestError) as caught:
        runtime.invoke(request)
    assert caught.value.status == 400
    return caught.value.message


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"width": 100000}, "params.width"),
        ({"height": 4096}, "params.height"),
        ({"width": 70}, "params.width"),
        ({"steps": 0}, "params.steps"),
        ({"steps": 151}, "params.steps"),
        ({"batch_size": 9}, "params.batch_size"),
        ({"n_iter": 101}, "params.n_iter"),
        ({"cfg_scale": 31}, "params.cfg_scale"),
        ({"denoising_strength": 1.5}, "params.denoising_strength"),
        ({"seed": 2**64}, "params.seed"),
        ({"hr_scale": 8, "enable_hr": True}, "params.hr_scale"),
        ({"hr_second_pass_steps": 1000}, "params.hr_second_pass_steps"),
        ({"resize_mode": 3}, "params.resize_mode"),
        ({"alwayson_scripts": {"controlnet": {"args": [{"weight": 3}]}}}, "params.alwayson_scripts.controlnet"),
    ],
)
def test_params_outside_the_bounds_are_refused_by_the_parse_naming_the_field(runtime, params, field):
    message = refusal(runtime, body(**params))

    assert message.startswith(f"invalid invocation request: {field}")


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"width": 2048, "height": 2048, "hr_scale": 4}, "8192x8192"),
        ({"width": 64, "height": 2048, "hr_resize_x": 2048}, "2048x65536"),
    ],
)
def test_hires_fix_beyond_its_largest_side_is_refused(runtime, params, size):
    message = refusal(runtime, body(enable_hr=True, **params))

    assert message.startswith(f"hires fix would upscale to {size}; each side may be at most 4096")


def test_hires_size_is_checked_only_where_hires_fix_runs(runtime):
    # img2img has no hires fix: its enable_hr is ignored, so the size does not stop it.
    request = body(
        "img2img", enable_hr=True, width=2048, height=2048, hr_scale=4, init_images=[png_b64(gradient_image())]
    )

    with pytest.raises(ReachedS3):
        runtime.invoke(request)


def test_the_webui_maximums_pass_the_checks(runtime):
    request = body(images=800, width=2048, height=2048, steps=150, batch_size=8, n_iter=100, cfg_scale=30)

    with pytest.raises(ReachedS3):
        runtime.invoke(request)


def test_a_job_that_would_make_another_number_of_images_than_its_files_is_refused(runtime):
    message = refusal(runtime, body(images=3, batch_size=2, n_iter=2))

    assert message == "task 'txt2img' makes 4 image(s) but results.images names 3"


def test_results_must_be_somewhere_in_s3(runtime):
    request = body()
    request["results"]["prefix"] = "/tmp/out/"

    assert "results.prefix: not an s3:// URI" in refusal(runtime, request)


def test_each_task_needs_its_inputs(runtime):
    no_params = body()
    del no_params["params"]
    no_checkpoint = body()
    del no_checkpoint["models"]
    no_image = body("img2img")
    interrogation = {**body("interrogate_clip", images=0), "params": None}
    merge = {**body("merge", images=0), "params": None}

    assert refusal(runtime, no_params).startswith("task 'txt2img' needs 'params'")
    assert refusal(runtime, no_checkpoint) == "task 'txt2img' needs a checkpoint (models.checkpoint)"
    assert refusal(runtime, no_image) == "img2img needs params.init_images: at least one base64 image"
    assert refusal(runtime, interrogation) == "task 'interrogate_clip' needs 'interrogation' (the image, base64)"
    assert refusal(runtime, merge).startswith("task 'merge' needs 'merge'")
