"""Checkpoint merge: the arithmetic on small tensors, and real tiny checkpoints merged and loaded back."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from sd_runtime.convert import pipeline_folder_to_ldm
from sd_runtime.errors import RequestError
from sd_runtime.testing import result_files
from tests.unit.sd_runtime.conftest import BUCKET, images_of, invocation, parameter_file, upload

W = "model.diffusion_model.w"
HALF = "first_stage_model.half"
ONLY_A = "model.diffusion_model.only_in_a"
POSITION_IDS = "cond_stage_model.transformer.text_model.embeddings.position_ids"
MISMATCH = "model.diffusion_model.mismatch"
INPAINT_IN = "model.diffusion_model.input_blocks.0.0.weight"


def small_checkpoints(tmp_path, s3):
    a = {
        W: torch.tensor([1.0, 2.0, 3.0, 4.0]),
        HALF: torch.tensor([1.0, -1.0], dtype=torch.float16),
        ONLY_A: torch.tensor([5.0]),
        POSITION_IDS: torch.arange(4),
        MISMATCH: torch.zeros(3),
        INPAINT_IN: torch.ones(2, 9, 1, 1),  # an inpainting UNet's first conv
    }
    b = {
        W: torch.tensor([3.0, 6.0, 9.0, 12.0]),
        HALF: torch.tensor([3.0, 1.0], dtype=torch.float16),
        POSITION_IDS: torch.arange(4) + 10,
        MISMATCH: torch.zeros(5),
        INPAINT_IN: torch.full((2, 4, 1, 1), 3.0),
    }
    c = {W: torch.tensor([1.0, 1.0, 1.0, 1.0]), INPAINT_IN: torch.full((2, 4, 1, 1), 2.0)}
    uris = {}
    for name, tensors in {"a": a, "b": b, "c": c}.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path))
        uris[name] = upload(s3, path, f"Stable-diffusion/small-{name}.safetensors")
    return uris


def merge_body(primary, secondary, tertiary=None, method="Weighted sum", multiplier=0.3, save_as_half=False):
    def ref(uri):
        return {"name": uri.rsplit("/", 1)[-1], "s3_uri": uri}

    return {
        "inference_id": "merge-1",
        "task": "merge",
        "merge": {
            "primary": ref(primary),
            "secondary": ref(secondary),
            "tertiary": ref(tertiary) if tertiary else None,
            "method": method,
            "multiplier": multiplier,
            "save_as_half": save_as_half,
            "output_s3_uri": f"s3://{BUCKET}/out/merge-1/merged.safetensors",
        },
        "results": result_files(BUCKET, "merge-1", 0).model_dump(),
    }


def merged_output(world, tmp_path):
    path = tmp_path / "merged-download.safetensors"
    world.s3.download_file(BUCKET, "out/merge-1/merged.safetensors", str(path))
    return load_file(str(path))


def test_weighted_sum_on_small_tensors(world, tmp_path):
    uris = small_checkpoints(tmp_path, world.s3)

    response = world.runtime.invoke(merge_body(uris["a"], uris["b"], multiplier=0.25))

    out = merged_output(world, tmp_path)
    assert torch.allclose(out[W], torch.tensor([1.5, 3.0, 4.5, 6.0]))  # 0.75 * A + 0.25 * B
    assert out[HALF].dtype == torch.float16  # A's dtype is kept
    assert torch.allclose(out[HALF].float(), torch.tensor([1.5, -0.5]))
    assert torch.equal(out[ONLY_A], torch.tensor([5.0]))  # only in A: kept
    assert torch.equal(out[POSITION_IDS], torch.arange(4))  # integers are not merged
    assert torch.equal(out[MISMATCH], torch.zeros(3))  # shapes differ: A's is kept
    assert torch.allclose(out[INPAINT_IN][:, :4], torch.full((2, 4, 1, 1), 1.5))  # shared channels merged
    assert torch.equal(out[INPAINT_IN][:, 4:], torch.ones(2, 5, 1, 1))
    assert response.files == []
    assert response.parameters["multiplier"] == 0.25
    # The parameter file is written as for any job; a merge makes no images.
    assert parameter_file(merge_body(uris["a"], uris["b"])["results"]) == {
        "parameters": response.parameters,
        "info": response.info,
    }
    info = json.loads(response.info)
    assert info["output_s3_uri"] == f"s3://{BUCKET}/out/merge-1/merged.safetensors"
    assert info["interp_method"] == "Weighted sum"
    assert info["keys_merged"] == 3
    assert info["keys_total"] == 6
    assert sorted(info["keys_kept_from_primary"]) == sorted([ONLY_A, POSITION_IDS, MISMATCH])


def test_add_difference_on_small_tensors_and_save_as_half(world, tmp_path):
    uris = small_checkpoints(tmp_path, world.s3)

    response = world.runtime.invoke(
        merge_body(uris["a"], uris["b"], uris["c"], method="Add difference", multiplier=0.5, save_as_half=True)
    )

    out = merged_output(world, tmp_path)
    assert out[W].dtype == torch.float16
    assert torch.allclose(out[W].float(), torch.tensor([2.0, 4.5, 7.0, 9.5]))  # A + 0.5 * (B - C)
    # HALF is in A and B but not C: as in A1111 it contributes no difference.
    assert torch.allclose(out[HALF].float(), torch.tensor([1.0, -1.0]))
    assert torch.allclose(out[INPAINT_IN][:, :4].float(), torch.full((2, 4, 1, 1), 1.5))
    assert json.loads(response.info)["save_as_half"] is True


def test_add_difference_needs_a_tertiary_model(world, tmp_path):
    uris = small_checkpoints(tmp_path, world.s3)

    with pytest.raises(RequestError, match="'Add difference' needs a tertiary model"):
        world.runtime.invoke(merge_body(uris["a"], uris["b"], method="Add difference"))


def test_merging_a_folder_with_a_single_file_gives_a_loadable_single_file(world, tiny_models, tmp_path):
    body = merge_body(world.uris["tiny-sd"], world.uris["tiny-sd-other.safetensors"], multiplier=0.3)

    info = json.loads(world.runtime.invoke(body).info)

    out = merged_output(world, tmp_path)
    a = pipeline_folder_to_ldm(tiny_models.pipeline_dir)
    b = load_file(str(tiny_models.other_single_file))
    assert set(out) == set(a)
    assert info["keys_merged"] == len(a)
    for key in list(a)[:50] + list(a)[-50:]:
        assert torch.allclose(out[key], 0.7 * a[key] + 0.3 * b[key], atol=1e-6), key
    merged_checkpoint = invocation(world)
    merged_checkpoint["models"]["checkpoint"] = {"name": "merged.safetensors", "s3_uri": info["output_s3_uri"]}
    assert images_of(world.runtime.invoke(merged_checkpoint))[0].shape == (32, 32, 3)


def test_add_difference_of_three_tiny_checkpoints(world, tiny_models, tmp_path):
    body = merge_body(
        world.uris["tiny-sd.safetensors"],
        world.uris["tiny-sd-other.safetensors"],
        world.uris["tiny-sd-third.safetensors"],
        method="Add difference",
        multiplier=1.0,
    )

    world.runtime.invoke(body)

    out = merged_output(world, tmp_path)
    a, b, c = (
        load_file(str(p))
        for p in (tiny_models.single_file, tiny_models.other_single_file, tiny_models.third_single_file)
    )
    key = "model.diffusion_model.input_blocks.0.0.weight"
    assert torch.allclose(out[key], a[key] + (b[key] - c[key]), atol=1e-6)


def test_missing_merge_input_is_named(world):
    body = merge_body(world.uris["tiny-sd"], f"s3://{BUCKET}/Stable-diffusion/gone.safetensors")

    with pytest.raises(RequestError, match=r"secondary model s3://models/Stable-diffusion/gone\.safetensors not found"):
        world.runtime.invoke(body)
