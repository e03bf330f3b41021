"""LoRA, textual inversion and ControlNet on the tiny pipeline; the cached pipeline stays clean after each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sd_runtime.addons import LoadedFile, extract_lora_tags, lora_weights
from sd_runtime.controlnet import source_image
from sd_runtime.errors import RequestError
from sdmw_contracts.generation import ControlNetUnit
from tests.unit.sd_runtime.conftest import gradient_image, images_of, invocation, png_b64


def image(world, body):
    return images_of(world.runtime.invoke(body))[0]


def test_lora_tags_are_parsed_and_removed_from_the_prompt():
    prompt, weights = extract_lora_tags("a cat, <lora:tinylora:0.6>, sitting <lora:other> <LORA:third:0.5:0.2>")

    assert prompt == "a cat, sitting"
    assert weights == {"tinylora": 0.6, "other": 1.0, "third": 0.5}
    assert lora_weights(
        [LoadedFile("tinylora.safetensors", None), LoadedFile("untagged.safetensors", None)], weights
    ) == [
        0.6,
        1.0,
    ]
    with pytest.raises(RequestError, match="is not a number"):
        extract_lora_tags("<lora:x:heavy>")


def test_lora_changes_the_output_by_its_tag_weight_and_is_unloaded_afterwards(world):
    lora = ("tinylora.safetensors",)
    baseline = image(world, invocation(world, prompt="a red cube"))

    full = world.runtime.invoke(invocation(world, prompt="a red cube <lora:tinylora:1>", loras=lora))
    untagged = image(world, invocation(world, prompt="a red cube", loras=lora))
    zero = image(world, invocation(world, prompt="a red cube <lora:tinylora:0>", loras=lora))
    after = image(world, invocation(world, prompt="a red cube"))

    full_image = images_of(full)[0]
    assert np.abs(full_image - baseline).max() > 10
    assert np.array_equal(untagged, full_image)  # no tag: weight 1.0
    assert np.abs(zero - baseline).max() <= 1  # the tag's weight is used, and 0 switches it off
    assert np.array_equal(after, baseline)  # the cached pipeline has no LoRA left in it
    info = json.loads(full.info)
    assert info["prompt"] == "a red cube <lora:tinylora:1>"  # as A1111 reports it
    assert 'Lora weights: "tinylora: 1"' in info["infotexts"][0]


def test_lora_on_a_single_file_checkpoint(world):
    body = invocation(
        world, checkpoint="tiny-sd.safetensors", prompt="x <lora:tinylora:0.8>", loras=("tinylora.safetensors",)
    )
    baseline = image(world, invocation(world, checkpoint="tiny-sd.safetensors", prompt="x"))

    assert np.abs(image(world, body) - baseline).max() > 10


def test_textual_inversion_changes_the_output_where_its_name_is_used_and_is_removed_afterwards(world):
    embeddings = ("tinyemb.safetensors",)
    baseline = image(world, invocation(world, prompt="a photo of tinyemb"))
    plain = image(world, invocation(world, prompt="a photo"))

    used = image(world, invocation(world, prompt="a photo of tinyemb", embeddings=embeddings))
    unused = image(world, invocation(world, prompt="a photo", embeddings=embeddings))
    with_clip_skip = image(
        world,
        invocation(
            world,
            prompt="a photo of tinyemb",
            override_settings={"CLIP_stop_at_last_layers": 2},
            embeddings=embeddings,
        ),
    )
    after = image(world, invocation(world, prompt="a photo of tinyemb"))

    assert np.abs(used - baseline).max() > 10
    assert np.array_equal(unused, plain)
    assert np.abs(with_clip_skip - used).max() > 0
    assert np.array_equal(after, baseline)
    pipe = world.runtime.pipelines.get(world.uris["tiny-sd"], "tiny-sd")
    assert "tinyemb" not in pipe.tokenizer.get_vocab()
    assert pipe.text_encoder.get_input_embeddings().weight.shape[0] == len(pipe.tokenizer)


def test_lora_and_embedding_together_in_img2img(world):
    body = invocation(
        world,
        task="img2img",
        prompt="tinyemb <lora:tinylora:0.7>",
        init_images=[png_b64(gradient_image(32, 32))],
        steps=4,
        loras=("tinylora.safetensors",),
        embeddings=("tinyemb.safetensors",),
    )

    assert image(world, body).shape == (32, 32, 3)


def controlnet_unit(model: str, module: str = "canny", **extra):
    return {"enabled": True, "module": module, "model": model, "image": png_b64(gradient_image(64, 64)), **extra}


def with_controlnet(world, *units, controlnets=None, **params):
    """A request whose units use ``units``; ``controlnets`` maps their titles to models, as the edge resolved
    them (by default each unit's title to the tiny ControlNet folder)."""
    if controlnets is None:
        controlnets = {unit["model"]: "tiny-controlnet" for unit in units}
    return invocation(world, alwayson_scripts={"controlnet": {"args": list(units)}}, controlnets=controlnets, **params)


def test_controlnet_canny_and_none_steer_the_image(world):
    baseline = image(world, invocation(world, width=64, height=64))

    canny = world.runtime.invoke(
        with_controlnet(world, controlnet_unit("tiny-controlnet [0f1e2d3c]"), width=64, height=64)
    )
    none = image(
        world,
        with_controlnet(
            world,
            controlnet_unit("tiny_control_canny", module="none", weight=0.8, guidance_end=0.5),
            controlnets={"tiny_control_canny": "tiny_control_canny.safetensors"},
            width=64,
            height=64,
        ),
    )
    disabled = image(
        world, with_controlnet(world, controlnet_unit("tiny-controlnet", enabled=False), width=64, height=64)
    )

    assert np.abs(images_of(canny)[0] - baseline).max() > 10
    assert np.abs(none - baseline).max() > 10
    assert np.array_equal(disabled, baseline)
    extra = json.loads(canny.info)["extra_generation_params"]
    assert extra["ControlNet 0"].startswith("Module: canny, Model: tiny-controlnet [0f1e2d3c], Weight: 1")
    assert canny.parameters["alwayson_scripts"]["controlnet"]["args"][0]["image"] is None


def test_the_controlnet_uis_value_is_its_image_with_the_strokes_drawn_in(world):
    """ControlNet's UI hands a unit's image over as gradio's sketch value, ``{image, mask}`` (base64, or pixel
    arrays): the control image is the picture, with the strokes drawn on it (the mask's opaque pixels)
    painted white; the request runs with it."""
    picture = gradient_image(64, 64)
    nothing_drawn = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    strokes = nothing_drawn.copy()
    strokes.paste((255, 255, 255, 255), (8, 8, 40, 24))
    painted = np.asarray(picture).copy()
    painted[8:24, 8:40] = 255

    def control_image(value) -> np.ndarray:
        unit = ControlNetUnit.model_validate({"enabled": True, "image": value})
        return np.asarray(source_image(0, unit, None))

    as_base64 = {"image": png_b64(picture, data_url=True), "mask": png_b64(nothing_drawn, data_url=True)}
    as_arrays = {"image": np.asarray(picture).tolist(), "mask": np.asarray(nothing_drawn).tolist()}
    assert np.array_equal(control_image(as_base64), np.asarray(picture))
    assert np.array_equal(control_image(as_arrays), np.asarray(picture))
    drawn_on = {"image": png_b64(picture, data_url=True), "mask": png_b64(strokes, data_url=True)}
    assert np.array_equal(control_image(drawn_on), painted)
    assert np.array_equal(control_image({"image": as_arrays["image"], "mask": np.asarray(strokes).tolist()}), painted)

    unit = controlnet_unit("tiny-controlnet", module="none", image=drawn_on)
    assert image(world, with_controlnet(world, unit, width=64, height=64)).shape == (64, 64, 3)


def test_a_ui_mask_of_another_size_is_refused_naming_the_unit():
    picture = png_b64(gradient_image(64, 64), data_url=True)
    mask = png_b64(Image.new("RGBA", (32, 32)), data_url=True)
    unit = ControlNetUnit.model_validate({"enabled": True, "image": {"image": picture, "mask": mask}})
    with pytest.raises(RequestError, match="ControlNet unit 1 image mask is 32x32, its image 64x64"):
        source_image(1, unit, None)


def test_controlnet_folder_and_single_file_give_the_same_image(world):
    folder = image(world, with_controlnet(world, controlnet_unit("tiny-controlnet")))
    single = image(
        world,
        with_controlnet(
            world,
            controlnet_unit("tiny_control_canny"),
            controlnets={"tiny_control_canny": "tiny_control_canny.safetensors"},
        ),
    )

    assert np.abs(folder - single).max() <= 1


def test_two_controlnet_units_in_img2img_with_hires_and_guess_mode(world):
    init = png_b64(gradient_image(32, 32))
    txt = with_controlnet(
        world,
        controlnet_unit("tiny-controlnet", threshold_a=50, threshold_b=150),
        controlnet_unit("tiny_control_canny", module="none", control_mode="ControlNet is more important"),
        controlnets={"tiny-controlnet": "tiny-controlnet", "tiny_control_canny": "tiny_control_canny.safetensors"},
        enable_hr=True,
        hr_scale=2,
    )
    unit_without_image = {"enabled": True, "module": "canny", "model": "tiny-controlnet"}  # uses the init image
    img = with_controlnet(world, unit_without_image, task="img2img", init_images=[init], steps=4)

    assert image(world, txt).shape == (64, 64, 3)
    assert image(world, img).shape == (32, 32, 3)


def test_controlnet_errors_name_the_unit(world):
    with pytest.raises(RequestError, match="preprocessor 'openpose' is not supported; supported: none, canny"):
        world.runtime.invoke(with_controlnet(world, controlnet_unit("tiny-controlnet", "openpose")))
    no_image = {"enabled": True, "module": "canny", "model": "tiny-controlnet"}
    with pytest.raises(RequestError, match="ControlNet unit 0 is enabled but has no image"):
        world.runtime.invoke(with_controlnet(world, no_image))


def test_a_unit_whose_model_the_request_does_not_map_is_refused_naming_it_before_any_model_is_fetched(world):
    # The edge resolved "tiny-controlnet [0f1e2d3c]"; the runtime does not match the second unit's
    # "tiny-controlnet" to it by any name rule of its own.
    body = with_controlnet(
        world,
        controlnet_unit("tiny-controlnet [0f1e2d3c]"),
        controlnet_unit("tiny-controlnet"),
        controlnets={"tiny-controlnet [0f1e2d3c]": "tiny-controlnet"},
    )

    with pytest.raises(RequestError) as refused:
        world.runtime.invoke(body)

    assert refused.value.status == 400
    assert refused.value.message == (
        "ControlNet unit 1: model 'tiny-controlnet' is not among the request's controlnets "
        "('tiny-controlnet [0f1e2d3c]')"
    )
    assert world.runtime._pipelines is None  # nothing was loaded
    assert not (world.runtime.settings.cache_dir / "s3").exists()  # nothing was fetched
