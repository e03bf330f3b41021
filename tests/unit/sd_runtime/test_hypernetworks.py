"""A1111 hypernetworks on the tiny pipeline: read as A1111 writes them, applied to one request's attention,
and gone from the cached pipeline after it, also when the request fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from sd_runtime.addons import LoadedFile, extract_hypernet_tags, hypernetwork_strengths
from sd_runtime.errors import RequestError
from sd_runtime.hypernetworks import HypernetworkAttnProcessor, load_hypernetwork
from sd_runtime.testing import build_tiny_hypernetwork
from tests.unit.sd_runtime.conftest import gradient_image, images_of, invocation, png_b64, upload

HYPERNET = "tinyhyper.pt"


@pytest.fixture(scope="module")
def hypernet_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hypernetworks")
    return {
        HYPERNET: build_tiny_hypernetwork(root / HYPERNET),
        "other.pt": build_tiny_hypernetwork(root / "other.pt", seed=6, activation_func="tanh", is_layer_norm=True),
        "wide.pt": build_tiny_hypernetwork(root / "wide.pt", dims=(48, 96)),
        "liar.pt": build_tiny_hypernetwork(root / "liar.pt", metadata={"is_layer_norm": True}),
    }


#: A ControlNet unit (the tiny ControlNet folder, Canny) as request parameters.
CONTROL = {
    "alwayson_scripts": {
        "controlnet": {
            "args": [
                {
                    "enabled": True,
                    "module": "canny",
                    "model": "tiny-controlnet",
                    "image": png_b64(gradient_image(32, 32)),
                }
            ]
        }
    },
    "controlnets": {"tiny-controlnet": "tiny-controlnet"},
}


def with_hypernetworks(world, hypernet_files, *names: str, **params) -> dict:
    """An invocation whose models.hypernetworks are ``names``, uploaded to the world's bucket."""
    body = invocation(world, **params)
    body["models"]["hypernetworks"] = [
        {"name": name, "s3_uri": upload(world.s3, hypernet_files[name], f"hypernetworks/{name}")} for name in names
    ]
    return body


def image(world, body):
    return images_of(world.runtime.invoke(body))[0]


def unet_processors(world):
    pipe = world.runtime.pipelines.get(world.uris["tiny-sd"], "tiny-sd")
    return {type(p) for p in pipe.unet.attn_processors.values()}


# ----------------------------------------------------------------- tags


def test_hypernet_tags_are_parsed_and_removed_from_the_prompt():
    prompt, tagged = extract_hypernet_tags("a cat, <hypernet:tinyhyper:0.6>, sitting <HYPERNET:other> <lora:x:1>")

    assert prompt == "a cat, sitting <lora:x:1>"  # LoRA tags are the LoRA parser's
    assert tagged == {"tinyhyper": 0.6, "other": 1.0}
    assert hypernetwork_strengths(["tinyhyper.pt", "other.pt", "untagged.pt"], tagged) == [0.6, 1.0, 1.0]
    with pytest.raises(RequestError, match="is not a number"):
        extract_hypernet_tags("<hypernet:x:strong>")
    with pytest.raises(RequestError, match=r"<hypernet:ghost> names a hypernetwork the request does not include"):
        hypernetwork_strengths(["tinyhyper.pt"], {"ghost": 1.0})


# ---------------------------------------------------------------- reading files


def test_a_file_is_read_as_a1111_lays_its_modules_out(tmp_path):
    plain = load_hypernetwork(LoadedFile("a.pt", build_tiny_hypernetwork(tmp_path / "a.pt")), 0.5)
    normed = load_hypernetwork(
        LoadedFile(
            "b.pt",
            build_tiny_hypernetwork(
                tmp_path / "b.pt",
                layer_structure=(1, 2, 2, 1),
                activation_func="mish",
                is_layer_norm=True,
                activate_output=True,
                dropout_structure=(0, 0.3, 0.3, 0),
            ),
        ),
        1.0,
    )

    assert sorted(plain.layers) == [32, 64]
    k, v = plain.layers[64]
    assert [type(m).__name__ for m in k.linear] == ["Linear", "ReLU", "Linear"]
    assert k.multiplier == 0.5 and not k.training and not any(p.requires_grad for p in k.parameters())
    assert not torch.equal(k.linear[0].weight, v.linear[0].weight)  # k and v are the file's two modules
    assert [type(m).__name__ for m in normed.layers[32][0].linear] == [
        *("Linear", "Mish", "LayerNorm", "Dropout"),
        *("Linear", "Mish", "LayerNorm", "Dropout"),
        *("Linear", "Mish", "LayerNorm"),
    ]
    x = torch.randn(2, 5, 64)
    expected = x + (k.linear[2](torch.relu(k.linear[0](x)))) * 0.5
    assert torch.allclose(k(x), expected, atol=1e-6)


def test_a_file_written_before_activate_output_existed_is_read_as_its_weights_say(tmp_path):
    # A1111 reads a missing activate_output as on; this file's LayerNorm indices say it was off.
    old = build_tiny_hypernetwork(tmp_path / "old.pt", is_layer_norm=True, without=("activate_output",))

    loaded = load_hypernetwork(LoadedFile("old.pt", old), 1.0)

    assert [type(m).__name__ for m in loaded.layers[32][0].linear] == [
        "Linear",
        "ReLU",
        "LayerNorm",
        "Linear",
        "LayerNorm",
    ]
    assert not loaded.layout.activate_output


def test_a_file_that_does_not_match_its_declared_layout_is_refused(hypernet_files, tmp_path):
    with pytest.raises(RequestError) as refused:
        load_hypernetwork(LoadedFile("liar.pt", hypernet_files["liar.pt"]), 1.0)
    assert refused.value.status == 400
    assert "hypernetwork liar.pt: its weights do not match the layout it declares" in refused.value.message
    assert "layer norm on" in refused.value.message and "its k-module for width 32" in refused.value.message

    narrow = build_tiny_hypernetwork(tmp_path / "narrow.pt", metadata={"layer_structure": [1, 4, 1]})
    with pytest.raises(RequestError, match=r"linear.0.weight of shape \[64, 32\] where the layout needs \[128, 32\]"):
        load_hypernetwork(LoadedFile("narrow.pt", narrow), 1.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"layer_structure": [1, 2, 1]}, "it has no layers"),
        ({32: {"linear.0.weight": torch.zeros(1)}}, "are not a pair of state dicts"),
        ({32: ({}, {}), "layer_structure": [2, 1]}, "starting and ending with 1"),
        ({32: ({}, {}), "activation_func": "wiggle"}, "activation function 'wiggle', which A1111 does not have"),
        ({32: ({}, {}), "dropout_structure": [0, 2, 0]}, "is not one probability in"),
        ([1, 2, 3], "the file holds a list"),
    ],
)
def test_what_is_not_an_a1111_hypernetwork_is_refused(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    torch.save(content, path)
    with pytest.raises(RequestError, match=message):
        load_hypernetwork(LoadedFile("bad.pt", path), 1.0)


class Pickled:
    """Something only full unpickling could rebuild."""


def test_a_file_that_needs_arbitrary_unpickling_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({32: (Pickled(), Pickled())}, path)
    with pytest.raises(RequestError, match="could not be read as an A1111 hypernetwork"):
        load_hypernetwork(LoadedFile("evil.pt", path), 1.0)


# --------------------------------------------------------------- where it applies


@pytest.mark.parametrize("cross", [True, False])
def test_keys_and_values_come_from_the_hypernetwork_and_queries_do_not(tmp_path, cross):
    torch.manual_seed(0)
    attn = Attention(query_dim=64, cross_attention_dim=32 if cross else None, heads=4, dim_head=16).eval()
    hypernet = load_hypernetwork(LoadedFile("a.pt", build_tiny_hypernetwork(tmp_path / "a.pt")), 0.7)
    hidden = torch.randn(2, 6, 64)
    context = torch.randn(2, 5, 32) if cross else None

    attn.set_processor(HypernetworkAttnProcessor(AttnProcessor2_0(), [hypernet]))
    with torch.no_grad():
        got = attn(hidden, encoder_hidden_states=context)
        source = context if cross else hidden  # self-attention: A1111's context = default(context, x)
        k_module, v_module = hypernet.layers[source.shape[-1]]
        q, k, v = attn.to_q(hidden), attn.to_k(k_module(source)), attn.to_v(v_module(source))
        heads = [t.view(2, -1, 4, 16).transpose(1, 2) for t in (q, k, v)]
        expected = attn.to_out[0](F.scaled_dot_product_attention(*heads).transpose(1, 2).reshape(2, -1, 64))

    assert torch.allclose(got, expected, atol=1e-5)


# --------------------------------------------------------------------- requests


def test_a_hypernetwork_changes_the_output_by_its_tag_and_leaves_the_pipeline_as_it_was(world, hypernet_files):
    baseline = image(world, invocation(world, prompt="a red cube"))
    original_processors = unet_processors(world)

    full = world.runtime.invoke(with_hypernetworks(world, hypernet_files, HYPERNET, prompt="a red cube"))
    tagged = image(
        world, with_hypernetworks(world, hypernet_files, HYPERNET, prompt="a red cube <hypernet:tinyhyper:1>")
    )
    half = image(
        world, with_hypernetworks(world, hypernet_files, HYPERNET, prompt="<hypernet:tinyhyper.pt:0.5> a red cube")
    )
    zero = image(
        world, with_hypernetworks(world, hypernet_files, HYPERNET, prompt="a red cube, <hypernet:tinyhyper:0>")
    )
    after = image(world, invocation(world, prompt="a red cube"))

    full_image = images_of(full)[0]
    assert np.abs(full_image - baseline).max() > 10
    assert np.array_equal(tagged, full_image)  # untagged: strength 1.0
    assert np.abs(half - full_image).max() > 0 and np.abs(half - baseline).max() > 0
    assert np.array_equal(zero, baseline)  # strength 0 is no change, and the tag is not in the prompt the model sees
    assert np.array_equal(after, baseline)
    assert unet_processors(world) == original_processors == {AttnProcessor2_0}
    info = json.loads(full.info)
    assert "Hypernet: tinyhyper, Hypernet strength: 1" in info["infotexts"][0]
    assert info["extra_generation_params"]["Hypernet strength"] == "1"


def test_a_request_that_fails_midway_leaves_no_hypernetwork_behind(world, hypernet_files, monkeypatch):
    from sd_runtime.generate import Generator

    baseline = image(world, invocation(world))
    seen = []

    def fail(self, plan):
        for model in (self.base.unet, *self.controlnets):
            seen.append({type(p) for p in model.attn_processors.values()})
        raise RuntimeError("the GPU fell over")

    monkeypatch.setattr(Generator, "run", fail)
    with pytest.raises(RuntimeError, match="fell over"):
        world.runtime.invoke(with_hypernetworks(world, hypernet_files, HYPERNET, **CONTROL))
    monkeypatch.undo()

    assert seen == [{HypernetworkAttnProcessor}] * 2  # the UNet's attention and the ControlNet's, as in A1111
    assert unet_processors(world) == {AttnProcessor2_0}
    controlnet = world.runtime.controlnets.get(world.ref("tiny-controlnet"), {})
    assert {type(p) for p in controlnet.attn_processors.values()} == {AttnProcessor2_0}
    assert np.array_equal(image(world, invocation(world)), baseline)


def test_two_hypernetworks_apply_in_turn_and_the_hires_prompt_tags_count(world, hypernet_files):
    plain = image(world, invocation(world, enable_hr=True, hr_scale=1.5, hr_prompt="a red cube"))
    one = image(world, with_hypernetworks(world, hypernet_files, HYPERNET))
    both = world.runtime.invoke(
        with_hypernetworks(world, hypernet_files, HYPERNET, "other.pt", prompt="a <hypernet:other:0.8> red cube")
    )
    off_in_hires_prompt = image(
        world,
        with_hypernetworks(
            world, hypernet_files, HYPERNET, enable_hr=True, hr_scale=1.5, hr_prompt="a red cube <hypernet:tinyhyper:0>"
        ),
    )

    assert np.abs(images_of(both)[0] - one).max() > 0
    assert 'Hypernet: "tinyhyper, other", Hypernet strength: "1, 0.8"' in json.loads(both.info)["infotexts"][0]
    assert np.array_equal(off_in_hires_prompt, plain)


def test_a_tag_for_a_hypernetwork_the_request_does_not_include_is_refused_before_anything_loads(world, hypernet_files):
    body = with_hypernetworks(world, hypernet_files, HYPERNET, prompt="a red cube <hypernet:other:0.5>")

    with pytest.raises(RequestError) as refused:
        world.runtime.invoke(body)
    assert refused.value.message == (
        "the prompt's <hypernet:other> names a hypernetwork the request does not include "
        "(models.hypernetworks: tinyhyper.pt)"
    )
    assert world.runtime._pipelines is None


def test_a_hypernetwork_that_fits_no_attention_layer_is_refused_before_generating(world, hypernet_files):
    with pytest.raises(RequestError) as refused:
        world.runtime.invoke(with_hypernetworks(world, hypernet_files, "wide.pt"))

    assert refused.value.status == 400
    assert refused.value.message == (
        "hypernetwork wide.pt does not fit this checkpoint: it has layers for context widths [48, 96], "
        "and the checkpoint's attention layers take [32, 64]"
    )
    assert unet_processors(world) == {AttnProcessor2_0}


def test_a_file_whose_weights_do_not_match_its_layout_fails_the_request(world, hypernet_files):
    with pytest.raises(RequestError, match=r"liar\.pt: its weights do not match the layout it declares"):
        world.runtime.invoke(with_hypernetworks(world, hypernet_files, "liar.pt"))


def test_a_hypernetwork_with_a_lora_and_a_controlnet_in_one_request(world, hypernet_files):
    lora = ("tinylora.safetensors",)
    control = CONTROL
    baseline = image(world, invocation(world))
    lora_only = image(world, invocation(world, prompt="a red cube <lora:tinylora:0.8>", loras=lora))
    hypernet_only = image(world, with_hypernetworks(world, hypernet_files, HYPERNET))
    control_only = image(world, invocation(world, **control))

    both = image(
        world, with_hypernetworks(world, hypernet_files, HYPERNET, prompt="a red cube <lora:tinylora:0.8>", loras=lora)
    )
    with_control = image(world, with_hypernetworks(world, hypernet_files, HYPERNET, **control))

    assert np.abs(both - lora_only).max() > 10 and np.abs(both - hypernet_only).max() > 10
    assert np.abs(with_control - control_only).max() > 10 and np.abs(with_control - hypernet_only).max() > 0
    assert np.array_equal(image(world, invocation(world)), baseline)
    controlnet = world.runtime.controlnets.get(world.ref("tiny-controlnet"), {})
    assert not any(isinstance(p, HypernetworkAttnProcessor) for p in controlnet.attn_processors.values())
    assert unet_processors(world) == {AttnProcessor2_0}


def test_a_hypernetwork_in_img2img(world, hypernet_files):
    init = {"task": "img2img", "init_images": [png_b64(gradient_image(32, 32))], "steps": 4}
    without = image(world, invocation(world, **init))
    applied = image(world, with_hypernetworks(world, hypernet_files, HYPERNET, **init))

    assert np.abs(applied - without).max() > 10
