"""Pieces of ``sd_runtime.training`` on their own: captions, tars, the db_config mapping, the LoRA file layout."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from sd_runtime.addons import LoadedFile, applied
from sd_runtime.testing import build_tiny_pipeline, write_training_images
from sd_runtime.training.contract import MLPaths, TrainingError, read_hyperparameters
from sd_runtime.training.data import prompt_for, safe_extract
from sd_runtime.training.dbconfig import apply_db_config, epochs_to_steps, tar_key
from sd_runtime.training.inputs import gather
from sd_runtime.training.lora import TEXT_TARGETS, UNET_TARGETS, Lora, kohya_state
from sd_runtime.training.options import options_from_hyperparameters
from sdmw_contracts.training import TrainingHyperparameters


def hyperparameters(tmp_path: Path, **values) -> MLPaths:
    paths = MLPaths(tmp_path / "ml")
    paths.hyperparameters.parent.mkdir(parents=True)
    hp = TrainingHyperparameters(**{"task": "dreambooth", "model_name": "m", **values})
    paths.hyperparameters.write_text(json.dumps(hp.to_sagemaker()))
    return paths


def test_captions_come_from_txt_files_else_the_prompt_and_fill_filewords(tmp_path):
    with_txt, without = write_training_images(tmp_path, 2, captions=["a zwx dog on grass", None])
    named = tmp_path / "red_car (2).png"
    named.write_bytes(without.read_bytes())

    assert prompt_for(with_txt, "a photo of zwx") == "a zwx dog on grass"
    assert prompt_for(without, "a photo of zwx") == "a photo of zwx"
    assert prompt_for(with_txt, "photo of zwx, [filewords]") == "photo of zwx, a zwx dog on grass"
    assert prompt_for(named, "[filewords]") == "red car"
    assert prompt_for(named, "[filewords]", instance_token="zwx", class_token="car") == "red zwx car"


def test_gather_uses_captions_and_refuses_images_without_a_prompt(tmp_path):
    paths = hyperparameters(tmp_path, instance_prompt="a photo of zwx")
    write_training_images(paths.root / "input/data/instance/sub", 3, captions=["first caption", None, "third"])
    options = options_from_hyperparameters(read_hyperparameters(paths).values)

    prompts = sorted(e.prompt for e in gather(options, paths, tmp_path / "scratch").instances)

    assert prompts == ["a photo of zwx", "first caption", "third"]
    options.concepts[0].instance_prompt = ""
    with pytest.raises(TrainingError, match=r"1 concept image\(s\) have no prompt \(image-01.png\).*instance_prompt"):
        gather(options, paths, tmp_path / "scratch")


def test_hyperparameters_left_at_their_default_count_as_not_sent(tmp_path):
    paths = hyperparameters(tmp_path, learning_rate=1e-4, resolution=512)

    read = read_hyperparameters(paths)

    assert read.explicit == {"task", "model_name", "learning_rate"}  # resolution 512 is the default


def tar_with(path: Path, name: str, kind: bytes = tarfile.REGTYPE) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
        else:
            info.size = 2
        tar.addfile(info, io.BytesIO(b"hi") if kind != tarfile.SYMTYPE else None)
    return path


@pytest.mark.parametrize("name", ["../escape.txt", "/abs/file.txt", "a/../../escape.txt"])
def test_tars_with_unsafe_paths_are_refused(tmp_path, name):
    with pytest.raises(TrainingError, match=r"unsafe path|would leave"):
        safe_extract(tar_with(tmp_path / "bad.tar", name), tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_links_in_tars_are_skipped(tmp_path):
    safe_extract(tar_with(tmp_path / "link.tar", "models/link", tarfile.SYMTYPE), tmp_path / "out")

    assert not (tmp_path / "out/models/link").exists()


def test_db_config_settings_map_onto_the_run_and_the_rest_is_named(tmp_path):
    paths = hyperparameters(tmp_path, task="lora", learning_rate=3e-4)
    read = read_hyperparameters(paths)
    options = options_from_hyperparameters(read.values)
    config = {
        "learning_rate": 5e-6,
        "lora_learning_rate": 1e-3,
        "lora_txt_learning_rate": 5e-5,
        "lora_unet_rank": 8,
        "lora_txt_rank": 2,
        "train_batch_size": 2,
        "resolution": 64,
        "num_train_epochs": 3,
        "stop_text_encoder": 0.5,
        "prior_loss_weight": 0.75,
        "mixed_precision": "fp16",
        "use_lora": True,
        "use_ema": True,
        "optimizer": "8bit AdamW",
        "attention": "xformers",
        "lr_scheduler": "rex",
        "model_dir": "models/dreambooth/x",
        "concepts_list": [
            {
                "instance_data_dir": "/home/me/cat",
                "instance_prompt": "zwx [filewords]",
                "class_data_dir": "/home/me/cats",
                "class_prompt": "a cat",
                "num_class_images_per": 5,
                "n_save_sample": 1,
                "save_sample_prompt": "",
            },
            {"instance_data_dir": "/home/me/missing", "instance_prompt": "other"},
        ],
    }

    result = apply_db_config(options, config, read.explicit, {"data-home-me-cat.tar", "class-data-home-me-cats.tar"})

    assert options.learning_rate == 3e-4  # sent explicitly: the hyperparameter wins
    assert options.text_encoder_learning_rate == 5e-5
    assert (options.lora_rank, options.text_rank, options.train_batch_size, options.resolution) == (8, 2, 2, 64)
    assert options.num_train_epochs == 3 and options.max_train_steps == 400
    assert options.train_text_encoder and options.text_encoder_fraction == 0.5
    assert options.mixed_precision == "fp16" and options.prior_loss_weight == 0.75
    assert options.with_prior_preservation  # a concept asks for class images
    first, channel = options.concepts
    assert (first.instance_dir, first.class_dir, first.num_class_images) == (
        "data-home-me-cat.tar",
        "class-data-home-me-cats.tar",
        5,
    )
    assert channel.instance_dir is None and channel.instance_prompt == "other"  # no tar: the instance channel
    assert sorted(result.not_applied) == [
        "concepts_list[].n_save_sample",
        "lr_scheduler='rex'",
        "optimizer",
        "use_ema",
    ]
    assert result.bookkeeping == ["model_dir"]
    assert any("learning_rate from the hyperparameters" in note for note in result.notes)


def test_db_config_values_of_the_wrong_kind_name_the_setting(tmp_path):
    paths = hyperparameters(tmp_path)
    read = read_hyperparameters(paths)
    for config, message in (
        ({"train_batch_size": "two"}, "train_batch_size must be a int"),
        ({"resolution": 500}, "resolution must be a multiple of 8"),
        ({"learning_rate": -1}, "learning_rate must be at least"),
        ({"concepts_list": "x"}, "concepts_list must be a list"),
    ):
        with pytest.raises(TrainingError, match=message):
            apply_db_config(options_from_hyperparameters(read.values), config, read.explicit, set())


def test_epochs_become_steps_and_dirs_become_tar_names():
    assert epochs_to_steps(epochs=10, images=5, batch_size=2, accumulation=1) == 30
    assert epochs_to_steps(epochs=10, images=5, batch_size=2, accumulation=2) == 20
    assert tar_key("/home/me/pics/") == "home-me-pics"
    assert tar_key("s3://bucket/data") == "bucket-data"


def test_the_lora_file_reproduces_the_trained_adapters_through_the_runtimes_lora_loading(tmp_path):
    """alpha != rank, different UNet and text ranks: the file's scale must match PEFT's exactly."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    trained = build_tiny_pipeline(seed=0)
    Lora._inject(trained.unet, rank=4, alpha=8, targets=UNET_TARGETS)
    Lora._inject(trained.text_encoder, rank=2, alpha=3, targets=TEXT_TARGETS)
    with torch.no_grad():
        for name, parameter in [*trained.unet.named_parameters(), *trained.text_encoder.named_parameters()]:
            if "lora_B" in name:
                parameter.normal_(0, 0.2)  # a trained LoRA's up-weights are not zero
    state = {
        **kohya_state(trained.unet, "lora_unet", 8),
        **kohya_state(trained.text_encoder, "lora_te", 3, "text_model."),
    }
    save_file(state, str(tmp_path / "t.safetensors"))
    ids = trained.tokenizer(["a zwx dog"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    latents, timestep = torch.randn(1, 4, 8, 8), torch.tensor([500])

    def predict(pipe):
        with torch.no_grad():
            return pipe.unet(latents, timestep, pipe.text_encoder(ids)[0]).sample

    trained.unet.eval(), trained.text_encoder.eval()
    expected = predict(trained)
    base = build_tiny_pipeline(seed=0)
    before = predict(base)
    with applied(base, [LoadedFile("t.safetensors", tmp_path / "t.safetensors")], [1.0], []):
        loaded = predict(base)

    assert all(
        k.startswith(("lora_unet_down_blocks_", "lora_unet_mid_", "lora_unet_up_", "lora_te_text_model_"))
        for k in state
    )
    assert (expected - before).abs().max() > 0.05
    torch.testing.assert_close(loaded, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(predict(base), before)  # unloaded again


def test_every_dataset_channel_and_plain_uploads_are_instance_images(tmp_path):
    # training-manager gives each dataset its own channel (instance, instance-1, ...); the seed's POST /train
    # uploads files such as images.tar with no db_config: those are instance images too, class tars are not.
    paths = hyperparameters(tmp_path, instance_prompt="a photo of zwx")
    data = paths.root / "input/data"
    write_training_images(data / "instance", 2, seed=1)
    write_training_images(data / "instance-1", 1, seed=2)
    write_training_images(data / "instance-2", 1, seed=3)
    tarred = write_training_images(tmp_path / "tarred", 2, seed=4)
    upload = data / "upload"
    upload.mkdir(parents=True)
    for name in ("images.tar", "class-data-dogs.tar"):
        with tarfile.open(upload / name, "w") as archive:
            for image in tarred:
                archive.add(image, arcname=image.name)
    (upload / "loose.png").write_bytes(tarred[0].read_bytes())
    options = options_from_hyperparameters(read_hyperparameters(paths).values)

    instances = gather(options, paths, tmp_path / "scratch").instances

    folders = sorted(e.image.parent.name for e in instances)
    assert folders == ["images", "images", "instance", "instance", "instance-1", "instance-2", "upload"]
