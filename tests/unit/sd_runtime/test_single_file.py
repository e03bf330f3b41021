"""Single-file checkpoints with no SD_RUNTIME_SINGLE_FILE_CONFIG: configs from SD 1.5's and the weights' shapes,
CLIP's tokenizer built offline, and the architectures that are refused by name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sd_runtime.__main__ import main
from sd_runtime.convert import CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX, clip_to_ldm, unet_to_ldm, vae_to_ldm
from sd_runtime.errors import RequestError
from sd_runtime.pipelines import ConfigurationError
from sd_runtime.single_file import (
    ARCHITECTURE_METADATA_KEY,
    SD15_TEXT_ENCODER_CONFIG,
    SD15_UNET_CONFIG,
    SD15_VAE_CONFIG,
    UnsupportedArchitecture,
    infer_architecture,
    read_shapes,
    write_config_folder,
)
from sd_runtime.tokenizer_files import CLIP_VOCAB_SIZE, load_clip_tokenizer
from tests.unit.sd_runtime.conftest import BUCKET, images_of, invocation, upload
from tests.unit.sd_runtime.test_merge import merge_body

# ----------------------------------------------------------------------------------------------- tokenizer

# Token ids of the real CLIP tokenizer (openai/clip-vit-*), as published in the test suites of
# elixir-nx/bumblebee (test/bumblebee/text/clip_tokenizer_test.exs) and huggingface/transformers
# (tests/models/clip/test_tokenization_clip.py, integration_expected_token_ids).
CLIP_IDS = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "a photo of a dog": [49406, 320, 1125, 539, 320, 1929, 49407],
}
TRANSFORMERS_TEXT = (
    "This is a test 😊\nI was born in 92000, and this is falsé.\n生活的真谛是\nHi  Hello\nHi   Hello\n\n \n  \n Hello\n"
    "<s>\nhi<s>there\nThe following string should be properly encoded: Hello.\nBut ird and ปี   ird   ด\n"
    "Hey how are you doing"
)
TRANSFORMERS_IDS = [
    589, 533, 320, 1628, 3020, 328, 739, 2683, 530, 280, 273, 271, 271, 271, 267, 537, 589, 533, 2778, 82, 4166,
    269, 33375, 162, 112, 119, 163, 248, 226, 41570, 164, 108, 249, 42891, 363, 1883, 3306, 1883, 3306, 3306, 283,
    338, 285, 1883, 283, 338, 285, 997, 518, 3473, 9696, 1535, 655, 12560, 524, 33703, 281, 3306, 269, 767, 2770,
    537, 1777, 505, 20278, 2770, 38825, 2189, 829, 631, 592, 1960,
]  # fmt: skip


def test_the_clip_tokenizer_built_offline_gives_clips_own_ids(tmp_path):
    tokenizer = load_clip_tokenizer(tmp_path / "cache")

    assert len(tokenizer) == CLIP_VOCAB_SIZE == 49408
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (49406, 49407, 49407)
    for prompt, ids in CLIP_IDS.items():
        assert tokenizer(prompt).input_ids == ids, prompt
    assert tokenizer(TRANSFORMERS_TEXT, add_special_tokens=False).input_ids == TRANSFORMERS_IDS
    padded = tokenizer("a photo of a cat", padding="max_length", max_length=77, truncation=True).input_ids
    assert len(padded) == 77 and padded[7:] == [49407] * 70
    assert sorted(p.name for p in (tmp_path / "cache" / "tokenizers" / "clip-bpe-49408").iterdir()) == [
        "merges.txt",
        "vocab.json",
    ]


# ----------------------------------------------------------------------------------------------- configs


def sd15_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor shape of a real SD 1.5 single file (LDM layout), from the models built on the meta device."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    def public(config):
        return {k: v for k, v in config.items() if not k.startswith("_") and k not in ("architectures", "model_type")}

    with torch.device("meta"):
        unet = UNet2DConditionModel(**public(SD15_UNET_CONFIG))
        vae = AutoencoderKL(**public(SD15_VAE_CONFIG))
        text = CLIPTextModel(CLIPTextConfig(**public(SD15_TEXT_ENCODER_CONFIG)))
    state = {UNET_PREFIX + k: v for k, v in unet_to_ldm(unet.state_dict(), dict(unet.config)).items()}
    state.update({VAE_PREFIX + k: v for k, v in vae_to_ldm(vae.state_dict(), dict(vae.config)).items()})
    state.update({CLIP_PREFIX + k: v for k, v in clip_to_ldm(text.state_dict()).items()})
    return {k: tuple(v.shape) for k, v in state.items()}


def test_a_real_sd15_file_needs_no_metadata_its_shapes_give_sd15s_configs_and_clips_tokenizer(tmp_path):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTokenizer

    shapes = sd15_shapes()
    assert sum(int(np.prod(s)) for s in shapes.values()) > 1_000_000_000  # the real thing: 1.07 B parameters

    architecture = infer_architecture(shapes, metadata={"format": "pt"})

    assert architecture.unet == SD15_UNET_CONFIG
    assert architecture.vae == SD15_VAE_CONFIG
    assert architecture.text_encoder == SD15_TEXT_ENCODER_CONFIG
    assert architecture.tokenizer == "clip"
    folder = write_config_folder(architecture, tmp_path / "config", tmp_path / "cache")
    assert UNet2DConditionModel.load_config(folder, subfolder="unet")["block_out_channels"] == [320, 640, 1280, 1280]
    assert CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder").num_attention_heads == 12
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
    assert tokenizer("a photo of a dog").input_ids == CLIP_IDS["a photo of a dog"]
    assert tokenizer.model_max_length == 77


def test_the_tiny_files_shapes_give_its_sizes_and_the_metadata_what_shapes_cannot_tell(tiny_models):
    shapes, metadata = read_shapes(tiny_models.single_file)
    folder_config = {
        part: json.loads((tiny_models.pipeline_dir / part / "config.json").read_text())
        for part in ("unet", "vae", "text_encoder")
    }

    with_metadata = infer_architecture(shapes, metadata)
    without = infer_architecture(shapes, {})

    for part, keys in {
        "unet": ("block_out_channels", "layers_per_block", "down_block_types", "up_block_types", "cross_attention_dim"),
        "vae": ("block_out_channels", "layers_per_block", "latent_channels"),
        "text_encoder": ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size"),
    }.items():
        for key in keys:
            assert getattr(without, part)[key] == folder_config[part][key], (part, key)
    assert with_metadata.tokenizer == without.tokenizer == "byte-level"  # 514 tokens, not CLIP's 49408
    # Heads and GroupNorm groups are not in any shape: SD 1.5's without the metadata, the tiny model's with it.
    assert (without.unet["attention_head_dim"], without.unet["norm_num_groups"]) == (8, 32)
    assert (with_metadata.unet["attention_head_dim"], with_metadata.unet["norm_num_groups"]) == (4, 8)
    assert with_metadata.text_encoder["num_attention_heads"] == 4
    assert json.loads(metadata[ARCHITECTURE_METADATA_KEY])["vae"]["norm_num_groups"] == 8


# ----------------------------------------------------------------------------------------------- inference


def test_a_single_file_without_the_setting_gives_the_folders_image(world):
    runtime = world.make_runtime(single_file_config=None)

    single = images_of(runtime.invoke(invocation(world, checkpoint="tiny-sd.safetensors", batch_size=2)))
    folder = images_of(world.runtime.invoke(invocation(world, checkpoint="tiny-sd", batch_size=2)))

    assert len(single) == len(folder) == 2
    assert all(np.array_equal(a, b) for a, b in zip(single, folder, strict=True))
    assert not np.array_equal(single[0], single[1])
    built = list((runtime.settings.cache_dir / "single-file-configs").iterdir())
    assert len(built) == 1 and (built[0] / "tokenizer" / "vocab.json").is_file()


def test_a_ckpt_single_file_loads_without_the_setting_too(world, tmp_path):
    # A torch file has no safetensors metadata: the tiny model's heads and groups are guessed, so it loads
    # (and generates) but is not the folder's exact network.
    state = {"state_dict": load_file(str(world.models.single_file))}
    torch.save(state, tmp_path / "tiny-sd.ckpt")
    uri = upload(world.s3, tmp_path / "tiny-sd.ckpt", "Stable-diffusion/tiny-sd.ckpt")
    body = invocation(world)
    body["models"]["checkpoint"] = {"name": "tiny-sd.ckpt", "s3_uri": uri}

    runtime = world.make_runtime(single_file_config=None)
    image = images_of(runtime.invoke(body))[0]

    assert image.shape == (32, 32, 3)
    pipe = runtime.pipelines.get(uri, "tiny-sd.ckpt")
    assert pipe.vae.config.norm_num_groups == 8  # SD 1.5's 32 does not divide the tiny VAE's 8 channels
    assert pipe.text_encoder.config.num_attention_heads == 1  # CLIP's width / 64, at least 1


def without_text_model_level(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An older SD 1.x file's layout: CLIP's keys without the ``text_model.`` level
    (``cond_stage_model.transformer.encoder.*`` instead of ``cond_stage_model.transformer.text_model.encoder.*``)."""
    level = CLIP_PREFIX + "text_model."
    return {CLIP_PREFIX + k[len(level) :] if k.startswith(level) else k: v for k, v in state.items()}


def test_an_older_file_whose_clip_keys_lack_the_text_model_level_gives_the_same_image(world, tmp_path):
    from safetensors import safe_open

    with safe_open(str(world.models.single_file), "pt") as handle:
        metadata = handle.metadata()
    old = without_text_model_level(load_file(str(world.models.single_file)))
    assert any(k.startswith(CLIP_PREFIX + "encoder.layers.") for k in old)
    assert not any(k.startswith(CLIP_PREFIX + "text_model.") for k in old)
    save_file(old, str(tmp_path / "old-clip.safetensors"), metadata=metadata)
    uri = upload(world.s3, tmp_path / "old-clip.safetensors", "Stable-diffusion/old-clip.safetensors")
    body = invocation(world, seed=99)
    body["models"]["checkpoint"] = {"name": "old-clip.safetensors", "s3_uri": uri}
    runtime = world.make_runtime(single_file_config=None)

    without_setting = images_of(runtime.invoke(body))[0]
    with_setting = images_of(world.runtime.invoke(body))[0]
    original = images_of(runtime.invoke(invocation(world, checkpoint="tiny-sd.safetensors", seed=99)))[0]

    assert np.array_equal(without_setting, original)
    assert np.array_equal(with_setting, original)
    shapes, _ = read_shapes(tmp_path / "old-clip.safetensors")
    assert infer_architecture(shapes, metadata) == infer_architecture(*read_shapes(world.models.single_file))
    # The copy with the level inserted is written once, in the cache.
    copies = list((runtime.settings.cache_dir / "single-file-text-model").rglob("old-clip.safetensors"))
    assert len(copies) == 1
    assert load_file(str(copies[0])).keys() == load_file(str(world.models.single_file)).keys()


def test_an_older_ckpt_whose_clip_keys_lack_the_text_model_level_loads_too(world, tmp_path):
    original = load_file(str(world.models.single_file))
    torch.save({"state_dict": without_text_model_level(original), "global_step": 1}, tmp_path / "old-clip.ckpt")
    uri = upload(world.s3, tmp_path / "old-clip.ckpt", "Stable-diffusion/old-clip.ckpt")
    body = invocation(world)
    body["models"]["checkpoint"] = {"name": "old-clip.ckpt", "s3_uri": uri}

    image = images_of(world.runtime.invoke(body))[0]  # the setting gives the tiny model's exact configs

    assert np.array_equal(image, images_of(world.runtime.invoke(invocation(world, checkpoint="tiny-sd")))[0])
    pipe = world.runtime.pipelines.get(uri, "old-clip.ckpt")
    text_encoder = pipe.text_encoder.state_dict()
    layer = next(k for k in text_encoder if k.endswith("layers.0.mlp.fc1.weight"))
    stored = CLIP_PREFIX + "text_model." + layer.removeprefix("text_model.")
    assert torch.equal(text_encoder[layer], original[stored])


def test_an_older_file_merges_as_the_file_with_the_text_model_level(world, tmp_path):
    from tests.unit.sd_runtime.test_merge import merged_output

    save_file(without_text_model_level(load_file(str(world.models.single_file))), str(tmp_path / "old.safetensors"))
    uri = upload(world.s3, tmp_path / "old.safetensors", "Stable-diffusion/old-merge.safetensors")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    world.runtime.invoke(merge_body(uri, world.uris["tiny-sd-other.safetensors"], multiplier=0.4))
    from_old = merged_output(world, tmp_path / "a")
    world.runtime.invoke(
        merge_body(world.uris["tiny-sd.safetensors"], world.uris["tiny-sd-other.safetensors"], multiplier=0.4)
    )
    from_new = merged_output(world, tmp_path / "b")

    assert from_old.keys() == from_new.keys()
    assert all(torch.equal(from_old[k], from_new[k]) for k in from_new)


def test_the_setting_wins_when_it_is_set(world, tmp_path):
    runtime = world.make_runtime(single_file_config=str(tmp_path / "no-such-config"))

    with pytest.raises(ConfigurationError, match=r"SD_RUNTIME_SINGLE_FILE_CONFIG .* is not a diffusers folder"):
        runtime.invoke(invocation(world, checkpoint="tiny-sd.safetensors"))


# Just the telltale keys of each architecture (tiny tensors: only the names and a few widths matter).
SDXL = {
    "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
    "conditioner.embedders.1.model.positional_embedding": (77, 8),
    "model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3),
    "model.diffusion_model.label_emb.0.0.weight": (8, 8),
}
SD2 = {
    "cond_stage_model.model.token_embedding.weight": (2, 1024),
    "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": (6, 2),
    "model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3),
    "model.diffusion_model.input_blocks.1.1.proj_in.weight": (8, 8),
}
INPAINTING = {
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (4, 8),
    "first_stage_model.encoder.conv_in.weight": (8, 3, 3, 3),
    "model.diffusion_model.input_blocks.0.0.weight": (8, 9, 3, 3),
}
REFUSED = [
    ("sdxl", SDXL, r"Stable Diffusion XL \(SDXL\)"),
    ("sd2", SD2, r"Stable Diffusion 2\.x checkpoint \(OpenCLIP ViT-H text encoder, cond_stage_model\.model\.\*, 1024"),
    ("inpainting", INPAINTING, r"inpainting checkpoint \(its UNet takes 9 input channels\)"),
]


def write_fake(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: torch.zeros(shape) for k, shape in shapes.items()}, str(path))
    return path


@pytest.mark.parametrize(("kind", "shapes", "named"), REFUSED, ids=[r[0] for r in REFUSED])
def test_other_architectures_are_refused_by_name_with_a_400(world, tmp_path, kind, shapes, named):
    uri = upload(world.s3, write_fake(tmp_path / f"{kind}.safetensors", shapes), f"Stable-diffusion/{kind}.safetensors")
    body = invocation(world)
    body["models"]["checkpoint"] = {"name": f"{kind}.safetensors", "s3_uri": uri}

    with pytest.raises(UnsupportedArchitecture) as refused:
        world.make_runtime(single_file_config=None).invoke(body)

    assert refused.value.status == 400
    assert refused.value.message.startswith(f"checkpoint {kind}.safetensors: it is ")
    assert re.search(named, refused.value.message), refused.value.message


def test_weights_that_are_not_a_whole_sd1_model_are_a_400_that_says_what_is_missing(world, tmp_path):
    no_vae = {k: v for k, v in load_file(str(world.models.single_file)).items() if not k.startswith(VAE_PREFIX)}
    save_file(no_vae, str(tmp_path / "no-vae.safetensors"))
    uri = upload(world.s3, tmp_path / "no-vae.safetensors", "Stable-diffusion/no-vae.safetensors")
    body = invocation(world)
    body["models"]["checkpoint"] = {"name": "no-vae.safetensors", "s3_uri": uri}

    with pytest.raises(RequestError, match=r"checkpoint no-vae.safetensors: it has no VAE") as refused:
        world.make_runtime(single_file_config=None).invoke(body)

    assert refused.value.status == 400


# ----------------------------------------------------------------------------------------------- merge


def test_merged_single_files_load_without_the_setting(world, tmp_path):
    runtime = world.make_runtime(single_file_config=None)
    merged = {"name": "merged.safetensors", "s3_uri": f"s3://{BUCKET}/out/merge-1/merged.safetensors"}

    # A folder merged with 0 x a single file is the folder, written as a single file with the folder's metadata.
    runtime.invoke(merge_body(world.uris["tiny-sd"], world.uris["tiny-sd-other.safetensors"], multiplier=0.0))
    as_folder = images_of(world.runtime.invoke(invocation(world, checkpoint="tiny-sd")))[0]
    body = invocation(world)
    body["models"]["checkpoint"] = merged
    assert np.array_equal(images_of(runtime.invoke(body))[0], as_folder)

    runtime.invoke(
        merge_body(world.uris["tiny-sd.safetensors"], world.uris["tiny-sd-other.safetensors"], multiplier=0.5)
    )
    fresh = world.make_runtime(single_file_config=None, cache_dir=tmp_path / "other-cache")
    image = images_of(fresh.invoke(body))[0]
    assert image.shape == (32, 32, 3) and not np.array_equal(image, as_folder)


# ----------------------------------------------------------------------------------------------- training


def test_create_model_from_a_single_file_without_the_setting(create_model_root, tiny_models, capsys):
    (create_model_root / "input" / "data" / "model" / "tiny-sd.safetensors").write_bytes(
        tiny_models.single_file.read_bytes()
    )

    code = main(["train"])

    log = capsys.readouterr().out
    failure = create_model_root / "output" / "failure"
    assert code == 0, failure.read_text() if failure.is_file() else log
    assert "converting tiny-sd.safetensors with configs built from its weights (Stable Diffusion 1.x" in log
    model = create_model_root / "model"
    for part, file in (
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ):
        ours = load_file(str(model / part / f"{file}.safetensors"))
        theirs = load_file(str(tiny_models.pipeline_dir / part / f"{file}.safetensors"))
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), part
    assert json.loads((model / "unet" / "config.json").read_text())["attention_head_dim"] == 4
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(model / "tokenizer")
    original = CLIPTokenizer.from_pretrained(tiny_models.pipeline_dir / "tokenizer")
    assert tokenizer("a zwx dog").input_ids == original("a zwx dog").input_ids


def test_create_model_from_an_older_file_whose_clip_keys_lack_the_text_model_level(
    create_model_root, tiny_models, capsys
):
    from safetensors import safe_open

    with safe_open(str(tiny_models.single_file), "pt") as handle:
        metadata = handle.metadata()
    old = without_text_model_level(load_file(str(tiny_models.single_file)))
    save_file(old, str(create_model_root / "input" / "data" / "model" / "old-clip.safetensors"), metadata=metadata)

    code = main(["train"])

    log = capsys.readouterr().out
    failure = create_model_root / "output" / "failure"
    assert code == 0, failure.read_text() if failure.is_file() else log
    assert "old-clip.safetensors: its text encoder's keys lack the text_model level" in log
    ours = load_file(str(create_model_root / "model" / "text_encoder" / "model.safetensors"))
    theirs = load_file(str(tiny_models.pipeline_dir / "text_encoder" / "model.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_create_model_refuses_an_sdxl_file_with_a_failure_naming_it(create_model_root, tmp_path):
    write_fake(create_model_root / "input" / "data" / "model" / "sdxl.safetensors", SDXL)

    code = main(["train"])

    assert code == 1
    failure = (create_model_root / "output" / "failure").read_text()
    assert "checkpoint sdxl.safetensors: it is a Stable Diffusion XL (SDXL) checkpoint" in failure
    assert not (create_model_root / "model").exists() or not any((create_model_root / "model").iterdir())
