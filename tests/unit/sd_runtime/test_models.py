"""Checkpoints from S3: folders and single files, the download cache, the pipeline LRU, and what fails clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from safetensors.torch import load_file

from sd_runtime.convert import UNET_PREFIX, VAE_PREFIX, pipeline_folder_to_ldm
from sd_runtime.errors import ModelNotFound, RequestError
from tests.unit.sd_runtime.conftest import BUCKET, counting_store, images_of, invocation, upload


def test_folder_and_single_file_checkpoints_load_the_same_weights(world):
    folder = images_of(world.runtime.invoke(invocation(world, checkpoint="tiny-sd")))[0]
    single = images_of(world.runtime.invoke(invocation(world, checkpoint="tiny-sd.safetensors")))[0]

    assert np.array_equal(folder, single)


def test_the_single_file_layout_converts_back_to_the_same_diffusers_weights(tiny_models):
    ldm = pipeline_folder_to_ldm(tiny_models.pipeline_dir)
    unet_config = json.loads((tiny_models.pipeline_dir / "unet" / "config.json").read_text())
    vae_config = json.loads((tiny_models.pipeline_dir / "vae" / "config.json").read_text())
    unet = load_file(str(tiny_models.pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    vae = load_file(str(tiny_models.pipeline_dir / "vae" / "diffusion_pytorch_model.safetensors"))

    unet_back = convert_ldm_unet_checkpoint(ldm, unet_config)
    vae_back = convert_ldm_vae_checkpoint(ldm, vae_config)

    assert set(unet_back) == set(unet)
    assert all(torch.equal(unet_back[k], unet[k]) for k in unet)
    assert set(vae_back) == set(vae)
    assert all(torch.equal(vae_back[k].reshape(vae[k].shape), vae[k]) for k in vae)
    assert any(k.startswith(UNET_PREFIX + "output_blocks.") and ".2.conv." in k for k in ldm)  # attention + upsampler
    assert VAE_PREFIX + "encoder.mid.attn_1.q.weight" in ldm


def test_missing_checkpoints_are_reported_with_their_uri(world):
    missing_file = invocation(world)
    missing_file["models"]["checkpoint"] = {
        "name": "nope.safetensors",
        "s3_uri": f"s3://{BUCKET}/Stable-diffusion/nope.safetensors",
    }
    missing_folder = invocation(world)
    missing_folder["models"]["checkpoint"] = {"name": "nope", "s3_uri": f"s3://{BUCKET}/Stable-diffusion/nope/"}
    missing_bucket = invocation(world)
    missing_bucket["models"]["checkpoint"] = {"name": "x", "s3_uri": "s3://no-such-bucket/x.safetensors"}

    with pytest.raises(ModelNotFound) as file_error:
        world.runtime.invoke(missing_file)
    with pytest.raises(ModelNotFound) as folder_error:
        world.runtime.invoke(missing_folder)
    with pytest.raises(ModelNotFound, match=r"checkpoint s3://no-such-bucket/x\.safetensors not found"):
        world.runtime.invoke(missing_bucket)

    assert file_error.value.status == 404
    assert file_error.value.message == f"checkpoint s3://{BUCKET}/Stable-diffusion/nope.safetensors not found"
    assert "no objects under that prefix" in folder_error.value.message


def test_missing_lora_is_reported_before_any_generation(world):
    body = invocation(world)
    body["models"]["loras"] = [{"name": "gone.safetensors", "s3_uri": f"s3://{BUCKET}/Lora/gone.safetensors"}]

    with pytest.raises(ModelNotFound, match=f"LoRA s3://{BUCKET}/Lora/gone.safetensors not found"):
        world.runtime.invoke(body)


def test_a_file_that_is_not_a_checkpoint_is_refused_with_a_reason(world):
    world.s3.put_object(Bucket=BUCKET, Key="Stable-diffusion/broken.safetensors", Body=b"not a safetensors file")
    body = invocation(world)
    body["models"]["checkpoint"] = {
        "name": "broken.safetensors",
        "s3_uri": f"s3://{BUCKET}/Stable-diffusion/broken.safetensors",
    }

    with pytest.raises(RequestError, match=r"checkpoint broken.safetensors \(s3://.*\) could not be loaded"):
        world.runtime.invoke(body)


def test_the_single_file_config_can_come_from_s3_without_weights(world, tiny_models, tmp_path):
    config_only = tmp_path / "sd-config"
    for file in tiny_models.pipeline_dir.rglob("*"):
        if file.is_file() and file.suffix in {".json", ".txt"}:
            target = config_only / file.relative_to(tiny_models.pipeline_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
    config_uri = upload(world.s3, config_only, "configs/sd15")
    runtime = world.make_runtime(single_file_config=config_uri.rstrip("/"))

    single = images_of(runtime.invoke(invocation(world, checkpoint="tiny-sd.safetensors")))[0]
    folder = images_of(world.runtime.invoke(invocation(world, checkpoint="tiny-sd")))[0]

    assert np.array_equal(single, folder)


def test_downloads_are_cached_until_the_object_changes(world, tmp_path):
    store, calls = counting_store(tmp_path / "cache")
    uri = world.uris["tinyemb.safetensors"]

    first = store.fetch(uri)
    store.fetch(uri)
    assert calls == ["embeddings/tinyemb.safetensors"]
    world.s3.put_object(Bucket=BUCKET, Key="embeddings/tinyemb.safetensors", Body=b"changed")
    assert store.fetch(uri).read_bytes() == b"changed"
    assert first == store.fetch(uri)
    assert len(calls) == 2

    folder = store.fetch(world.uris["tiny-sd"])
    assert (folder / "model_index.json").is_file()
    assert (folder / "unet" / "config.json").is_file()


def test_pipelines_are_cached_by_uri_in_a_small_lru(world):
    one = world.make_runtime(pipeline_cache_size=1)
    two = world.make_runtime(pipeline_cache_size=2)

    for runtime in (one, two):
        runtime.invoke(invocation(world, checkpoint="tiny-sd"))
        runtime.invoke(invocation(world, checkpoint="tiny-sd-other"))
        runtime.invoke(invocation(world, checkpoint="tiny-sd-other"))

    assert one.pipelines.loaded() == [world.uris["tiny-sd-other"]]
    assert two.pipelines.loaded() == [world.uris["tiny-sd"], world.uris["tiny-sd-other"]]
    first = two.pipelines.get(world.uris["tiny-sd"], "tiny-sd")
    assert two.pipelines.get(world.uris["tiny-sd"], "tiny-sd") is first
