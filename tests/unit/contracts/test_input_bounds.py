"""The contracts' own rules for what no service can store or run: lone surrogates, oversized params,
and the WebUI's generation limits, shared by the edge and sd-runtime."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from sdmw_contracts.api.assets import CreateCheckpointRequest, CreateDatasetRequest
from sdmw_contracts.api.common import MAX_PARAMS_BYTES, lone_surrogates, printable
from sdmw_contracts.api.inference import InferenceRequest, ModelMergeRequest
from sdmw_contracts.api.training import CreateTrainJobRequest
from sdmw_contracts.generation import (
    MAX_BATCH_COUNT,
    MAX_BATCH_SIZE,
    MAX_IMAGE_SIDE,
    MAX_STEPS,
    GenerationParams,
    hires_upscale_size,
)

INFERENCE = {
    "sagemaker_endpoint_name": "infer-endpoint-cb821ea",
    "task_type": "txt2img",
    "prompt": "a cute panda",
    "models": {"Stable-diffusion": ["v1-5-pruned-emaonly.safetensors"]},
}
LONE = json.loads('"\\ud800"')


def test_lone_surrogates_are_found_with_their_path():
    data = {"a": [1, "ok", f"x{LONE}"], "b": {"c": LONE, LONE: 1}, "d": "\U0001f43c"}
    assert list(lone_surrogates(data)) == [("a", 2), ("b", "c"), ("b", "\\ud800")]
    assert printable(f"x{LONE}y") == "x\\ud800y"


@pytest.mark.parametrize(
    ("model", "body", "loc"),
    [
        (InferenceRequest, {**INFERENCE, "prompt": LONE}, ("prompt",)),
        (InferenceRequest, {**INFERENCE, "negative_prompt": f"a{LONE}"}, ("negative_prompt",)),
        (
            InferenceRequest,
            {**INFERENCE, "alwayson_scripts": {"x": {"args": [LONE]}}},
            ("alwayson_scripts", "x", "args", 0),
        ),
        (
            ModelMergeRequest,
            {"primary_model_name": "a", "secondary_model_name": "b", "custom_name": LONE},
            ("custom_name",),
        ),
        (
            CreateCheckpointRequest,
            {"checkpoint_type": "Lora", "filenames": [{"filename": "a", "parts_number": 1}], "params": {"n": LONE}},
            ("params", "n"),
        ),
        (CreateTrainJobRequest, {"train_type": "lora", "model_id": "m", "params": {"x": [LONE]}}, ("params", "x", 0)),
    ],
)
def test_a_lone_surrogate_anywhere_is_refused_naming_it(model, body, loc):
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    [error] = caught.value.errors()
    assert (error["type"], error["loc"]) == ("lone_surrogate", loc)


def test_params_must_fit_an_item():
    files = [{"filename": "a", "parts_number": 1}]
    CreateCheckpointRequest(checkpoint_type="Lora", filenames=files, params={"x": "y" * (MAX_PARAMS_BYTES - 100)})
    with pytest.raises(ValidationError, match="at most 204800 bytes"):
        CreateCheckpointRequest(checkpoint_type="Lora", filenames=files, params={"x": "y" * MAX_PARAMS_BYTES})
    content = [{"filename": "/a.png", "name": "a.png", "type": "png"}]
    with pytest.raises(ValidationError, match="at most 204800 bytes"):
        # Non-ASCII counts as it is stored (escaped: 6 bytes a character).
        CreateDatasetRequest(dataset_name="d", content=content, params={"x": "é" * (MAX_PARAMS_BYTES // 5)})


def test_the_seed_sample_and_the_webui_defaults_fit_the_limits():
    seed_sample = {
        **INFERENCE,
        "denoising_strength": None,
        "hr_scale": 2.0,
        "seed": -1,
        "subseed": -1,
        "batch_size": 1,
        "n_iter": 1,
        "steps": 28,
        "cfg_scale": 7.0,
        "width": 512,
        "height": 512,
        "eta": None,
        "s_min_uncond": 0.0,
        "s_churn": 0.0,
        "s_tmax": 1.0,
        "s_tmin": 0.0,
        "s_noise": 1.0,
    }
    request = InferenceRequest.model_validate(seed_sample)
    assert request.generation_params() == GenerationParams.model_validate(seed_sample)


def test_the_limits_name_each_parameter():
    with pytest.raises(ValidationError) as raised:
        GenerationParams(prompt="p", width=4096, height=12, steps=0, batch_size=9, n_iter=101, cfg_scale=0.5)
    fields = [error["loc"][0] for error in raised.value.errors()]
    assert fields == ["batch_size", "n_iter", "steps", "cfg_scale", "width", "height"]
    assert (MAX_IMAGE_SIDE, MAX_STEPS, MAX_BATCH_SIZE, MAX_BATCH_COUNT) == (2048, 150, 8, 100)


@pytest.mark.parametrize(
    ("args", "size"),
    [
        ((512, 512, 2.0, 0, 0), (1024, 1024)),
        ((512, 256, 2.0, 1024, 0), (1024, 512)),
        ((512, 256, 2.0, 0, 1024), (2048, 1024)),
        ((512, 512, 2.0, 1024, 512), (1024, 1024)),
    ],
)
def test_hires_upscale_size_is_a1111s(args, size):
    assert hires_upscale_size(*args) == size
