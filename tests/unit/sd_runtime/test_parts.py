"""The runtime's parts on their own: seeds and noise, sampler mapping, image resizing, and the real server process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from sd_runtime.images import decode_image, resize_image
from sd_runtime.samplers import resolve_sampler
from sd_runtime.seeds import make_noise, plan_seeds, slerp
from sd_runtime.testing import SD15_SCHEDULER_CONFIG, result_files
from sdmw_contracts.generation import GenerationParams
from sdmw_contracts.runtime import InvocationRequest, ModelRef, ModelSet
from tests.conftest import free_port
from tests.unit.sd_runtime.conftest import BUCKET, gradient_image, png_b64, upload


def test_seed_plan_follows_a1111():
    plain = plan_seeds(100, 7, 0.0, 3)
    varied = plan_seeds(100, 7, 0.4, 3)
    random = plan_seeds(-1, -1, 0.0, 2)

    assert (plain.all_seeds, plain.all_subseeds) == ([100, 101, 102], [7, 8, 9])
    assert (varied.all_seeds, varied.all_subseeds) == ([100, 100, 100], [7, 8, 9])
    assert 0 <= random.seed < 4294967294
    assert random.all_seeds == [random.seed, random.seed + 1]


def test_noise_is_the_first_draw_of_a_cpu_generator_seeded_with_the_image_seed():
    noise = make_noise((4, 8, 8), [5, 6], [0, 0], 0.0)

    assert torch.equal(noise.latents[0], torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(5)))
    assert torch.equal(noise.latents[1], torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(6)))
    # The generators go on from there, for the sampler's own noise.
    expected_next = torch.Generator().manual_seed(5)
    torch.randn((4, 8, 8), generator=expected_next)
    assert torch.equal(torch.randn(3, generator=noise.generators[0]), torch.randn(3, generator=expected_next))


def test_variation_noise_is_a_slerp_between_seed_and_subseed():
    seed_noise = make_noise((4, 8, 8), [5], [9], 0.0).latents[0]
    subseed_noise = make_noise((4, 8, 8), [9], [0], 0.0).latents[0]

    half = make_noise((4, 8, 8), [5], [9], 0.5).latents[0]

    assert torch.allclose(half, slerp(0.5, seed_noise, subseed_noise))
    assert torch.allclose(slerp(1.0, seed_noise, subseed_noise), subseed_noise, atol=1e-5)
    assert torch.allclose(slerp(0.0, seed_noise, subseed_noise), seed_noise, atol=1e-5)


def test_resized_seed_noise_sits_in_the_middle():
    small = make_noise((4, 4, 4), [3], [0], 0.0).latents[0]

    big = make_noise((4, 8, 8), [3], [0], 0.0, seed_resize_from_w=32, seed_resize_from_h=32).latents[0]

    assert torch.equal(big[:, 2:6, 2:6], small)


@pytest.mark.parametrize(
    ("name", "scheduler", "options"),
    [
        ("Euler a", "EulerAncestralDiscreteScheduler", {"timestep_spacing": "linspace"}),
        (
            "DPM++ 2M Karras",
            "DPMSolverMultistepScheduler",
            {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++"},
        ),
        ("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
        ("DPM++ SDE Karras", "DPMSolverSDEScheduler", {"use_karras_sigmas": True, "noise_sampler_seed": 42}),
        ("DDIM", "DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1}),
        ("PLMS", "PNDMScheduler", {"skip_prk_steps": True}),
        ("UniPC", "UniPCMultistepScheduler", {"solver_type": "bh1", "solver_order": 3}),
        ("LMS", "LMSDiscreteScheduler", {"use_karras_sigmas": False}),
    ],
)
def test_samplers_keep_the_model_schedule_and_set_their_options(name, scheduler, options):
    built = resolve_sampler(name).build({**SD15_SCHEDULER_CONFIG, "use_karras_sigmas": True}, seeds=[42])

    assert type(built).__name__ == scheduler
    assert built.config.beta_schedule == "scaled_linear"
    assert built.config.beta_end == 0.012
    for key, value in options.items():
        assert built.config[key] == value, key
    if name == "LMS":
        assert built.config.use_karras_sigmas is False  # a switch left in the model's config is reset


def test_resize_modes_give_the_requested_size():
    wide = gradient_image(80, 40)

    for mode in (0, 1, 2, "Just Resize", "Crop and Resize", "Resize and Fill"):
        assert resize_image(wide, 32, 48, mode).size == (32, 48)
        assert resize_image(wide, 64, 16, mode).size == (64, 16)


def test_images_are_read_from_base64_or_a_data_url():
    encoded = png_b64(gradient_image(16, 16))

    assert decode_image(encoded).size == (16, 16)
    assert np.array_equal(
        np.asarray(decode_image(f"data:image/png;base64,{encoded}")), np.asarray(gradient_image(16, 16))
    )


def test_python_m_sd_runtime_serve_answers_ping_and_invocations(moto_server, tiny_models, tmp_path):
    """The real container entry point, against an S3 emulator reached through AWS_ENDPOINT_URL only."""
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    checkpoint = upload(s3, tiny_models.pipeline_dir, "Stable-diffusion/tiny-sd")
    port = free_port()
    env = {
        **os.environ,
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SD_RUNTIME_HOST": "127.0.0.1",
        "SD_RUNTIME_CACHE_DIR": str(tmp_path / "cache"),
        "SD_RUNTIME_DEVICE": "cpu",
    }
    started = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "sd_runtime", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() - started < 30, "no /ping answer within 30 s"
            time.sleep(0.1)
        params = GenerationParams(
            prompt="x", init_images=[png_b64(gradient_image(32, 32))], width=32, height=32, steps=4
        )
        request = InvocationRequest(
            inference_id="job-http",
            task="img2img",
            models=ModelSet(checkpoint=ModelRef(name="tiny-sd", s3_uri=checkpoint)),
            params=params,
            results=result_files(BUCKET, "job-http", 1),
        )
        response = httpx.post(f"{url}/invocations", content=request.model_dump_json(by_alias=True), timeout=120)

        assert response.status_code == 200, response.text
        assert response.json()["files"] == [f"s3://{BUCKET}/out/job-http/result/image_0.jpg"]
        written = s3.get_object(Bucket=BUCKET, Key="out/job-http/result/image_0.jpg")["Body"].read()
        assert Image.open(io.BytesIO(written)).size == (32, 32)
        assert json.loads(response.json()["info"])["sampler_name"] == "Euler a"
    finally:
        server.terminate()
        server.wait(10)
