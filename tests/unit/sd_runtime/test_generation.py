"""txt2img, img2img, seeds, samplers and hires fix on the tiny pipeline, loaded from (moto) S3."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sd_runtime.errors import RequestError
from sd_runtime.samplers import SUPPORTED_SAMPLERS
from tests.unit.sd_runtime.conftest import (
    BUCKET,
    gradient_image,
    images_of,
    invocation,
    parameter_file,
    pictures_of,
    png_b64,
)

# Equal up to float noise between batched and single runs (pixel values are 0-255).
CLOSE = 3


def run(world, **kwargs):
    return world.runtime.invoke(invocation(world, **kwargs))


def test_txt2img_writes_batch_size_times_n_iter_jpegs_of_the_requested_size_and_the_parameter_file(world):
    body = invocation(world, batch_size=2, n_iter=2, width=64, height=32)
    response = world.runtime.invoke(body)

    job = body["inference_id"]
    folder = f"out/{job}/result/"
    assert response.files == [f"s3://{BUCKET}/{folder}image_{i}.jpg" for i in range(4)]
    pictures = pictures_of(response)
    assert [(picture.mode, picture.size) for picture in pictures] == [("RGB", (64, 32))] * 4
    written = world.s3.list_objects_v2(Bucket=BUCKET, Prefix=folder)["Contents"]
    assert sorted(item["Key"] for item in written) == sorted(
        [*(f"{folder}image_{i}.jpg" for i in range(4)), f"{folder}{job}_param.json"]
    )
    head = world.s3.head_object(Bucket=BUCKET, Key=f"{folder}image_0.jpg")
    assert head["ContentType"] == "image/jpeg"
    assert parameter_file(body["results"]) == {"parameters": response.parameters, "info": response.info}
    info = json.loads(response.info)
    assert info["seed"] == 1234
    assert info["all_seeds"] == [1234, 1235, 1236, 1237]
    assert (info["width"], info["height"], info["steps"], info["sampler_name"]) == (64, 32, 2, "Euler a")
    assert len(info["infotexts"]) == 4
    assert info["infotexts"][1].startswith("a red cube\nSteps: 2, Sampler: Euler a, CFG scale: 7.0, Seed: 1235")
    assert "Size: 64x32, Model: tiny-sd" in info["infotexts"][1]
    assert response.parameters["seed"] == 1234
    assert response.parameters["batch_size"] == 2


def test_random_seed_is_resolved_and_reported(world):
    response = run(world, seed=-1, subseed=-1, batch_size=2)

    info = json.loads(response.info)
    assert info["seed"] >= 0
    assert info["all_seeds"] == [info["seed"], info["seed"] + 1]
    assert info["subseed"] >= 0
    assert info["all_subseeds"] == [info["subseed"], info["subseed"] + 1]
    assert response.parameters["seed"] == info["seed"]
    assert response.parameters["subseed"] == info["subseed"]


def test_same_seed_gives_the_same_image_and_another_seed_another(world):
    first = images_of(run(world, seed=7))[0]
    again = images_of(run(world, seed=7))[0]
    other = images_of(run(world, seed=8))[0]

    assert np.array_equal(first, again)
    assert np.abs(first - other).max() > 10


def test_image_i_of_a_batch_uses_seed_plus_i(world):
    # Per-image generators: the second image of a batch from seed 20 is the image of seed 21.
    batch = images_of(run(world, seed=20, batch_size=2))
    alone = images_of(run(world, seed=21))[0]

    assert np.abs(batch[1] - alone).max() <= CLOSE
    assert np.abs(batch[0] - alone).max() > 10


def test_subseed_variation_shares_the_seed_and_varies_the_subseed(world):
    # "Euler" is deterministic given the initial noise, so noise alone decides the image.
    plain = images_of(run(world, sampler_name="Euler", seed=5))[0]
    varied = run(world, sampler_name="Euler", seed=5, subseed=99, subseed_strength=0.5, batch_size=2)
    repeated = images_of(run(world, sampler_name="Euler", seed=5, subseed=99, subseed_strength=0.5))[0]
    full = images_of(run(world, sampler_name="Euler", seed=5, subseed=99, subseed_strength=1.0))[0]
    subseed_alone = images_of(run(world, sampler_name="Euler", seed=99))[0]

    info = json.loads(varied.info)
    assert info["all_seeds"] == [5, 5]
    assert info["all_subseeds"] == [99, 100]
    assert "Variation seed: 99, Variation seed strength: 0.5" in info["infotexts"][0]
    varied_images = images_of(varied)
    assert np.abs(varied_images[0] - plain).max() > 10
    assert np.abs(varied_images[0] - varied_images[1]).max() > 10
    assert np.abs(varied_images[0] - repeated).max() <= CLOSE
    # At strength 1 the slerp ends at the subseed's noise.
    assert np.abs(full - subseed_alone).max() <= CLOSE


def test_seed_resize_from_keeps_the_noise_of_the_other_size_in_the_middle(world):
    response = run(
        world, sampler_name="Euler", seed=3, width=64, height=64, seed_resize_from_w=32, seed_resize_from_h=32
    )

    assert images_of(response)[0].shape == (64, 64, 3)
    assert "Seed resize from: 32x32" in json.loads(response.info)["infotexts"][0]


def test_every_listed_sampler_runs_and_is_reproducible(world):
    failures = {}
    for name in SUPPORTED_SAMPLERS:
        try:
            first = images_of(run(world, sampler_name=name, steps=3))[0]
            second = images_of(run(world, sampler_name=name, steps=3))[0]
            assert np.array_equal(first, second), "same seed, different image"
            # NaN latents decode to one flat colour: a sampler that diverged.
            assert np.asarray(first).std() > 0, "a flat image: the sampler produced NaN"
            assert json.loads(run(world, sampler_name=name, steps=2).info)["sampler_name"] == name
        except Exception as error:  # collect all, so one run names every broken sampler
            failures[name] = repr(error)
    assert not failures
    for required in ("Euler a", "Euler", "DPM++ 2M Karras", "DPM++ SDE Karras", "DDIM", "LMS", "Heun", "UniPC"):
        assert required in SUPPORTED_SAMPLERS


def test_sampler_names_match_case_insensitively_and_by_a1111_alias(world):
    assert json.loads(run(world, sampler_name="k_dpmpp_2m_ka").info)["sampler_name"] == "DPM++ 2M Karras"
    assert json.loads(run(world, sampler_name="euler A").info)["sampler_name"] == "Euler a"
    # Older clients name the sampler in sampler_index only.
    assert json.loads(run(world, sampler_index="DDIM").info)["sampler_name"] == "DDIM"


def test_unknown_sampler_is_refused_with_the_supported_names(world):
    with pytest.raises(RequestError) as refused:
        run(world, sampler_name="Foo")

    assert refused.value.status == 400
    assert refused.value.message.startswith("unknown sampler_name 'Foo'; supported: Euler a, Euler, ")
    assert "DPM++ 2M Karras" in refused.value.message


def test_img2img_keeps_the_size_and_follows_denoising_strength(world):
    init = png_b64(gradient_image(64, 64), data_url=True)

    low = run(world, task="img2img", init_images=[init], width=64, height=64, steps=4, denoising_strength=0.5)
    high = images_of(
        run(world, task="img2img", init_images=[init], width=64, height=64, steps=4, denoising_strength=1.0)
    )[0]
    again = images_of(
        run(world, task="img2img", init_images=[init], width=64, height=64, steps=4, denoising_strength=0.5)
    )[0]

    low_image = images_of(low)[0]
    assert low_image.shape == (64, 64, 3)
    assert np.array_equal(low_image, again)
    assert np.abs(low_image - high).max() > 10
    info = json.loads(low.info)
    assert info["denoising_strength"] == 0.5
    assert "Denoising strength: 0.5" in info["infotexts"][0]
    assert low.parameters["init_images"] is None  # as A1111 answers unless asked for them


def test_img2img_resizes_init_images_and_batches_them(world):
    init = png_b64(gradient_image(48, 80))

    response = run(world, task="img2img", init_images=[init], width=32, height=64, batch_size=2, denoising_strength=1)

    images = images_of(response)
    assert [image.shape for image in images] == [(64, 32, 3), (64, 32, 3)]
    assert json.loads(response.info)["all_seeds"] == [1234, 1235]


def test_img2img_subseed_variation_changes_the_image(world):
    init = png_b64(gradient_image(32, 32))
    common = {"task": "img2img", "init_images": [init], "steps": 4, "denoising_strength": 1.0, "sampler_name": "Euler"}

    plain = images_of(run(world, **common))[0]
    varied = images_of(run(world, **common, subseed=42, subseed_strength=0.6))[0]

    assert np.abs(plain - varied).max() > 10


def test_img2img_needs_an_init_image_and_enough_steps(world):
    with pytest.raises(RequestError, match=r"img2img needs params\.init_images: at least one base64 image"):
        run(world, task="img2img")
    with pytest.raises(RequestError, match="leave no sampling step"):
        run(world, task="img2img", init_images=[png_b64(gradient_image())], steps=2, denoising_strength=0.2)
    with pytest.raises(RequestError, match="init_images"):
        run(world, task="img2img", init_images=["bm90IGFuIGltYWdl"])  # base64, but not an image


@pytest.mark.parametrize("upscaler", ["Latent", "Latent (bicubic antialiased)", "Lanczos"])
def test_hires_fix_upscales_by_hr_scale(world, upscaler):
    response = run(world, enable_hr=True, hr_scale=2, hr_upscaler=upscaler, denoising_strength=0.6, batch_size=2)

    images = images_of(response)
    assert [image.shape for image in images] == [(64, 64, 3), (64, 64, 3)]
    info = json.loads(response.info)
    assert (info["width"], info["height"]) == (32, 32)  # A1111 reports the first pass size
    assert (
        f"Hires upscale: 2.0, Hires resize: 64x64, Hires steps: 2, Hires upscaler: {upscaler}" in info["infotexts"][0]
    )


def test_hires_fix_resize_to_given_sizes(world):
    def size(**kwargs):
        return images_of(run(world, enable_hr=True, **kwargs))[0].shape[:2]

    assert size(hr_resize_x=64) == (64, 64)
    assert size(width=64, height=32, hr_resize_y=64) == (64, 128)
    # Both given with another aspect ratio: cover the box, then crop the middle (A1111's truncate).
    assert size(hr_resize_x=64, hr_resize_y=32) == (32, 64)
    assert size(hr_resize_x=64, hr_resize_y=32, hr_upscaler="Nearest") == (32, 64)


def test_hires_fix_uses_its_own_steps_sampler_and_prompt(world):
    base = {"enable_hr": True, "hr_scale": 2, "denoising_strength": 0.7, "sampler_name": "Euler"}
    plain = images_of(run(world, **base))[0]
    other = run(world, **base, hr_second_pass_steps=3, hr_sampler_name="DDIM", hr_prompt="a blue sphere")

    info = json.loads(other.info)
    assert "Hires steps: 3" in info["infotexts"][0]
    assert "Hires sampler: DDIM" in info["infotexts"][0]
    assert np.abs(images_of(other)[0] - plain).max() > 10


def test_hires_fix_refuses_upscalers_that_need_a_model(world):
    with pytest.raises(RequestError) as refused:
        run(world, enable_hr=True, hr_upscaler="R-ESRGAN 4x+")

    assert "hr_upscaler 'R-ESRGAN 4x+' needs an upscaler model" in refused.value.message
    assert "Latent (antialiased)" in refused.value.message


def test_clip_skip_and_tiling_change_the_image_and_leave_the_pipeline_as_it_was(world):
    plain = images_of(run(world, seed=11))[0]
    skipped = run(world, seed=11, override_settings={"CLIP_stop_at_last_layers": 2})
    tiled = images_of(run(world, seed=11, tiling=True))[0]
    plain_again = images_of(run(world, seed=11))[0]

    assert np.abs(images_of(skipped)[0] - plain).max() > 0
    assert "Clip skip: 2" in json.loads(skipped.info)["infotexts"][0]
    assert np.abs(tiled - plain).max() > 0
    assert np.array_equal(plain, plain_again)


def test_unsupported_inputs_are_refused_or_reported(world):
    with pytest.raises(RequestError, match="scripts are not supported"):
        run(world, script_name="x/y/z plot")
    response = run(world, restore_faces=True, styles=["cinematic"])
    assert len(json.loads(response.info)["warnings"]) == 2


def test_invalid_params_are_refused_with_the_field(world):
    body = invocation(world)
    body["params"]["width"] = 30

    with pytest.raises(RequestError, match=r"invalid invocation request: params\.width: .*multiple of 8"):
        world.runtime.invoke(body)


def test_the_runtime_does_not_answer_success_when_it_made_another_number_of_images(world, monkeypatch):
    from sd_runtime.generate import Generator

    run_plan = Generator.run
    monkeypatch.setattr(Generator, "run", lambda self, plan: run_plan(self, plan)[:-1])  # one image lost
    body = invocation(world, batch_size=2)

    with pytest.raises(RuntimeError, match=r"the job made 1 image\(s\) where results\.images names 2"):
        world.runtime.invoke(body)

    # Nothing is written: a client must not find a parameter file beside a missing picture.
    written = world.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"out/{body['inference_id']}/")
    assert written.get("KeyCount") == 0
