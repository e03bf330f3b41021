"""``python -m sd_runtime train`` run as SageMaker runs it: an /opt/ml tree, hyperparameters.json of strings.

Every job trains the tiny random model on the CPU for a few steps at 32x32;
the checks are on what SageMaker would upload (``model/``), what it would
report (``output/failure``) and what the log says.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sd_runtime.__main__ import main
from sd_runtime.addons import LoadedFile, applied
from sd_runtime.convert import CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX
from sd_runtime.single_file import ARCHITECTURE_METADATA_KEY
from sd_runtime.testing import (
    build_tiny_pipeline_dir,
    write_extension_upload,
    write_tiny_single_file,
    write_training_images,
)
from sd_runtime.training.checkpoint import load_folder, load_single_file
from sd_runtime.training.dreambooth import DreamBooth
from sd_runtime.training.loop import Models
from sd_runtime.training.options import options_from_hyperparameters
from sdmw_contracts.training import LOSS_METRIC_REGEX, TrainingHyperparameters
from tests.unit.sd_runtime.conftest import images_of, invocation, upload

UNET_FILE = "unet/diffusion_pytorch_model.safetensors"
VAE_FILE = "vae/diffusion_pytorch_model.safetensors"
#: Small and fast: what every training job here shares unless it says otherwise.
FAST = {"resolution": 32, "max_train_steps": 3, "learning_rate": 1e-3, "seed": 7}


@dataclass(frozen=True)
class Base:
    folder: Path
    single_file: Path


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    root = tmp_path_factory.mktemp("train-base")
    folder = build_tiny_pipeline_dir(root / "tiny-sd", seed=0)
    return Base(folder, write_tiny_single_file(folder, root / "tiny-sd.safetensors"))


@dataclass
class Job:
    root: Path
    capsys: pytest.CaptureFixture[str]

    def channel(self, name: str) -> Path:
        path = self.root / "input" / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def hyperparameters(self, **values) -> None:
        """As training-manager sends them: every field, each value as JSON text."""
        self.raw_hyperparameters(TrainingHyperparameters(**values).to_sagemaker())

    def raw_hyperparameters(self, raw: dict[str, str]) -> None:
        path = self.root / "input" / "config" / "hyperparameters.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(raw))

    def run(self) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main(["train"])
        return code, self.capsys.readouterr().out

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> str | None:
        path = self.root / "output" / "failure"
        return path.read_text() if path.is_file() else None

    def with_base(self, base: Base) -> None:
        shutil.copytree(base.folder, self.channel("model") / "tiny-sd")


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Job:
    monkeypatch.setenv("SD_RUNTIME_ML_ROOT", str(tmp_path / "ml"))
    monkeypatch.setenv("SD_RUNTIME_DEVICE", "cpu")
    monkeypatch.delenv("SD_RUNTIME_SINGLE_FILE_CONFIG", raising=False)
    return Job(tmp_path / "ml", capsys)


def losses(log: str) -> list[float]:
    return [float(m) for m in re.findall(LOSS_METRIC_REGEX, log)]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensors_equal(a: Path, b: Path) -> bool:
    left, right = load_file(str(a)), load_file(str(b))
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def generate(folder: Path, **kwargs) -> np.ndarray:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)
    return sample(pipe, **kwargs)


def sample(pipe, prompt: str = "a zwx dog") -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        prompt, num_inference_steps=2, height=32, width=32, output_type="np", generator=torch.Generator().manual_seed(1)
    ).images[0]


# ----------------------------------------------------------------------------------------------- create-model


def test_create_model_from_a_folder_nested_one_level(job, base):
    job.with_base(base)
    job.hyperparameters(task="create-model", model_name="base")

    code, log = job.run()

    assert code == 0, job.failure
    assert (job.model / "model_index.json").is_file()
    assert tensors_equal(job.model / UNET_FILE, base.folder / UNET_FILE)
    assert generate(job.model).shape == (32, 32, 3)
    assert "model channel: diffusers folder tiny-sd" in log and "wrote 10 files" in log


def test_create_model_from_a_single_file_takes_the_ema_weights_when_asked(job, base, monkeypatch, tmp_path):
    other = build_tiny_pipeline_dir(tmp_path / "other", seed=1)
    state = load_file(str(base.single_file))
    other_state = load_file(str(write_tiny_single_file(other, tmp_path / "other.safetensors")))
    for key, value in other_state.items():  # the original checkpoints' EMA layout: model_ema.<key without dots>
        if key.startswith("model.diffusion_model."):
            state["model_ema." + "".join(key.split(".")[1:])] = value
    save_file(state, str(job.channel("model") / "with-ema.safetensors"))
    monkeypatch.setenv("SD_RUNTIME_SINGLE_FILE_CONFIG", str(base.folder))

    job.hyperparameters(task="create-model", model_name="base")
    plain_code, plain_log = job.run()
    plain_unet = load_file(str(job.model / UNET_FILE))
    shutil.rmtree(job.model)
    job.hyperparameters(task="create-model", model_name="base", extract_ema=True)
    ema_code, ema_log = job.run()

    assert plain_code == ema_code == 0, job.failure
    assert all(torch.equal(v, load_file(str(base.folder / UNET_FILE))[k]) for k, v in plain_unet.items())
    assert "the checkpoint also has EMA weights; they are not used" in plain_log
    assert tensors_equal(job.model / UNET_FILE, other / UNET_FILE)
    assert "extract_ema: taking the UNet's EMA weights" in ema_log
    assert tensors_equal(job.model / VAE_FILE, base.folder / VAE_FILE)


def test_create_model_from_the_extensions_tar(job, base, monkeypatch):
    with tarfile.open(job.channel("model") / "tiny-sd.tar", "w") as tar:
        tar.add(base.single_file, arcname="models/Stable-diffusion/tiny-sd.safetensors")
    monkeypatch.setenv("SD_RUNTIME_SINGLE_FILE_CONFIG", str(base.folder))
    job.hyperparameters(task="create-model", model_name="base")

    code, log = job.run()

    assert code == 0, job.failure
    assert "unpacking tiny-sd.tar" in log and "single-file checkpoint tiny-sd.safetensors" in log
    assert tensors_equal(job.model / UNET_FILE, base.folder / UNET_FILE)
    assert generate(job.model).shape == (32, 32, 3)


# ----------------------------------------------------------------------------------------------- dreambooth


def test_dreambooth_fine_tunes_the_unet_and_text_encoder_into_one_a1111_single_file(job, base, tmp_path, monkeypatch):
    job.with_base(base)
    write_training_images(job.channel("instance"), 3, captions=["a zwx dog on grass", None, None])
    job.hyperparameters(
        task="dreambooth", model_name="dog", instance_prompt="a photo of zwx dog", train_text_encoder=True, **FAST
    )

    code, log = job.run()

    assert code == 0, job.failure
    assert len(losses(log)) == 3 and all(math.isfinite(x) for x in losses(log))
    assert (
        "step=3/3 loss=" in log
        and "3 instance images from the instance channels and plain uploads (1 captioned by a .txt)" in log
    )
    assert "wrote 1 files" in log and "dog.safetensors" in log
    assert sorted(p.name for p in job.model.rglob("*")) == ["dog.safetensors"]  # no diffusers folder is kept
    trained, before = load_file(str(job.model / "dog.safetensors")), load_file(str(base.single_file))
    assert trained.keys() == before.keys()  # the whole model, in the LDM layout of an A1111 checkpoint
    assert {k.split(".")[0] for k in trained} == {"model", "first_stage_model", "cond_stage_model"}
    assert all(v.dtype == torch.float32 for v in trained.values())

    def changed(prefix: str) -> bool:
        return any(not torch.equal(v, before[k]) for k, v in trained.items() if k.startswith(prefix))

    assert changed(UNET_PREFIX) and changed(CLIP_PREFIX)
    assert not changed(VAE_PREFIX)  # the frozen VAE is the working model's, as it was
    with safe_open(str(job.model / "dog.safetensors"), framework="pt") as handle:
        assert ARCHITECTURE_METADATA_KEY in handle.metadata()

    # The runtime's own single-file loading (no SD_RUNTIME_SINGLE_FILE_CONFIG) takes it back.
    monkeypatch.setenv("SD_RUNTIME_CACHE_DIR", str(tmp_path / "cache"))
    pipe = load_single_file(job.model / "dog.safetensors", extract_ema=False)
    assert pipe.unet.config.attention_head_dim == 4 and pipe.vae.config.norm_num_groups == 8
    image = sample(pipe)
    assert image.shape == (32, 32, 3) and np.isfinite(image).all()


def test_a_trained_models_single_file_generates_the_images_its_diffusers_folder_did(world, tmp_path):
    """DreamBooth's file is the trained model exactly: the runtime gives it the folder's images, seed for seed."""
    pipe = load_folder(world.models.pipeline_dir)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():  # "training": the UNet and the text encoder move away from the working model
        for parameter in [*pipe.unet.parameters(), *pipe.text_encoder.parameters()]:
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    folder = tmp_path / "trained-folder"
    pipe.save_pretrained(folder, safe_serialization=True)  # what a DreamBooth job used to write
    task = DreamBooth()
    task.trained = {"unet", "text_encoder"}
    models = Models(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, None)
    options = options_from_hyperparameters(TrainingHyperparameters(task="dreambooth", model_name="trained"))
    task.save(models, options, world.models.pipeline_dir, tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["trained.safetensors"]
    world.uris["trained"] = upload(world.s3, folder, "Stable-diffusion/trained")
    world.uris["trained.safetensors"] = upload(
        world.s3, tmp_path / "model" / "trained.safetensors", "Stable-diffusion/trained.safetensors"
    )
    runtime = world.make_runtime(single_file_config=None)

    single = images_of(runtime.invoke(invocation(world, checkpoint="trained.safetensors", batch_size=2)))
    as_folder = images_of(world.runtime.invoke(invocation(world, checkpoint="trained", batch_size=2)))
    untrained = images_of(world.runtime.invoke(invocation(world, checkpoint="tiny-sd", batch_size=2)))

    assert len(single) == len(as_folder) == 2
    assert all(np.array_equal(a, b) for a, b in zip(single, as_folder, strict=True))
    assert not np.array_equal(single[0], untrained[0])


def test_prior_preservation_generates_the_missing_class_images(job, base):
    job.with_base(base)
    write_training_images(job.channel("instance"), 2)
    write_training_images(job.channel("class"), 1, seed=9)
    job.hyperparameters(
        task="dreambooth",
        model_name="dog",
        instance_prompt="a photo of zwx dog",
        with_prior_preservation=True,
        class_prompt="a photo of a dog",
        num_class_images=3,
        prior_loss_weight=0.5,
        **{**FAST, "max_train_steps": 2},
    )

    code, log = job.run()

    assert code == 0, job.failure
    assert "1 class images from the class channels, 2 to generate" in log
    assert "generating 2 class images of 'a photo of a dog'" in log and "generated 2 class images" in log
    assert "prior preservation (weight 0.5)" in log
    assert all(math.isfinite(x) for x in losses(log))


def test_dreambooth_accepts_the_model_as_a_tar_gz(job, base):
    with tarfile.open(job.channel("model") / "model.tar.gz", "w:gz") as tar:
        for path in sorted(base.folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(base.folder)), recursive=False)
    write_training_images(job.channel("instance"), 1)
    job.hyperparameters(
        task="dreambooth", model_name="dog", instance_prompt="a zwx dog", **{**FAST, "max_train_steps": 1}
    )

    code, log = job.run()

    assert code == 0, job.failure
    assert "unpacking model.tar.gz" in log and "step=1/1 loss=" in log
    assert sorted(p.name for p in job.model.iterdir()) == ["dog.safetensors"]
    trained, before = load_file(str(job.model / "dog.safetensors")), load_file(str(base.single_file))
    assert all(torch.equal(v, before[k]) for k, v in trained.items() if k.startswith(VAE_PREFIX))


# ----------------------------------------------------------------------------------------------------- lora


def test_lora_writes_one_file_the_runtime_loads_and_leaves_the_model_untouched(job, base):
    job.with_base(base)
    write_training_images(job.channel("instance"), 2)
    before = {p.name: sha(p) for p in job.channel("model").rglob("*") if p.is_file()}
    job.hyperparameters(
        task="lora",
        model_name="zwx-style",
        instance_prompt="a zwx dog",
        train_text_encoder=True,
        lora_rank=2,
        lora_alpha=4,
        **{**FAST, "learning_rate": 5e-2, "max_train_steps": 4},
    )

    code, log = job.run()

    assert code == 0, job.failure
    assert sorted(p.name for p in job.model.iterdir()) == ["zwx-style.safetensors"]
    state = load_file(str(job.model / "zwx-style.safetensors"))
    assert {k.split("_")[1] for k in state} == {"unet", "te"}
    downs = [v for k, v in state.items() if k.endswith(".lora_down.weight")]
    assert downs and all(v.shape[0] == 2 for v in downs)
    assert all(float(v) == 4.0 for k, v in state.items() if k.endswith(".alpha"))
    assert {p.name: sha(p) for p in job.channel("model").rglob("*") if p.is_file()} == before

    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(base.folder), safety_checker=None, requires_safety_checker=False)
    baseline = sample(pipe)
    with applied(pipe, [LoadedFile("zwx-style.safetensors", job.model / "zwx-style.safetensors")], [1.0], []):
        with_lora = sample(pipe)
    assert np.abs(with_lora - baseline).max() > 1e-3
    assert np.array_equal(sample(pipe), baseline)


# ------------------------------------------------------------------------------------ the extension's upload


def test_the_extensions_upload_channel_drives_training_and_unsupported_settings_are_named(job, base, tmp_path):
    job.with_base(base)
    images = tmp_path / "home" / "me" / "cat"
    write_training_images(images, 3, captions=["a cat on a sofa", "a cat in the sun", None])
    db_config = {
        "model_name": "cat",
        "model_dir": "models/dreambooth/cat",
        "resolution": 32,
        "train_batch_size": 2,
        "num_train_epochs": 5,
        "lora_learning_rate": 1e-3,
        "learning_rate": 5e-6,
        "lora_unet_rank": 2,
        "lora_txt_rank": 2,
        "stop_text_encoder": 1.0,
        "use_lora": True,
        "save_lora_for_extra_net": True,
        "mixed_precision": "fp16",
        "use_ema": True,
        "optimizer": "8bit AdamW",
        "attention": "xformers",
        "cache_latents": True,
        "prior_loss_weight": 0.75,
        "concepts_list": [
            {
                "instance_data_dir": "home-me-cat",
                "instance_prompt": "zwx [filewords]",
                "class_data_dir": "home-me-cats",
                "class_prompt": "a photo of a cat",
                "num_class_images_per": 2,
                "n_save_sample": 1,
            }
        ],
    }
    class_images = tmp_path / "home" / "me" / "cats"
    write_training_images(class_images, 2, seed=11)
    write_extension_upload(
        job.channel("upload"), "cat", db_config, {"home-me-cat": images}, {"home-me-cats": class_images}
    )
    # config_params (sent through the API) win over the uploaded file
    job.hyperparameters(task="lora", model_name="cat", config_params={"num_train_epochs": 1})

    code, log = job.run()

    assert code == 0, job.failure
    assert "concept 1 (home-me-cat): 3 instance images from data-home-me-cat.tar (upload channel)" in log
    assert "2 class images from class-data-home-me-cats.tar (upload channel)" in log and "to generate" not in log
    assert "prior preservation (weight 0.75)" in log  # the extension's default prior_loss_weight
    assert "step=2/2 loss=" in log  # 1 epoch of 3 images at batch size 2
    not_applied = next(line for line in log.splitlines() if line.startswith("db_config settings not applied:"))
    for name in ("use_ema", "optimizer", "cache_latents", "concepts_list[].n_save_sample"):
        assert name in not_applied
    assert "attention" not in not_applied and "model_dir" not in not_applied
    assert "model_dir" in log  # named as bookkeeping
    assert "mixed_precision=fp16 is not applied on the cpu" in log
    state = load_file(str(job.model / "cat.safetensors"))
    assert any(k.startswith("lora_te_") for k in state)  # stop_text_encoder > 0 trains the text encoder
    assert all(v.shape[0] == 2 for k, v in state.items() if k.endswith("lora_down.weight"))


# ------------------------------------------------------------------------------------------------ failures


def test_a_bad_hyperparameter_fails_the_real_entry_point_naming_it(tmp_path):
    root = tmp_path / "ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"task": "dreambooth", "model_name": "m", "max_train_steps": "0"})
    )
    env = {**os.environ, "SD_RUNTIME_ML_ROOT": str(root)}

    done = subprocess.run(
        [sys.executable, "-m", "sd_runtime", "train"], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 1
    failure = (root / "output" / "failure").read_text()
    assert "invalid hyperparameter max_train_steps" in failure and "'0'" in failure
    assert not (root / "model").exists() or not any((root / "model").iterdir())


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("unknown-key", r"unknown hyperparameter 'foo'"),
        ("no-model", r"no 'model' input channel"),
        ("no-images", r"there are no instance images"),
        ("no-prompt", r"have no prompt \(image-00.png, image-01.png\).*instance_prompt"),
        ("sd2-single-file", r"sd2\.safetensors: it is a Stable Diffusion 2\.x checkpoint"),
        ("not-a-model", r"neither a diffusers folder.*it holds: notes.txt"),
        ("bad-model-name", r"invalid hyperparameter model_name"),
        ("bad-db-config", r"db_config setting train_batch_size must be"),
    ],
)
def test_failures_write_a_reason_and_exit_non_zero(job, base, setup, expected):
    values = {"task": "dreambooth", "model_name": "m", "instance_prompt": "a zwx dog", **FAST}
    if setup != "no-model":
        job.with_base(base)
    if setup not in ("no-images",):
        write_training_images(job.channel("instance"), 2)
    if setup == "no-prompt":
        values["instance_prompt"] = ""
    if setup == "sd2-single-file":  # single files load without SD_RUNTIME_SINGLE_FILE_CONFIG, but SD 1.x only
        shutil.rmtree(job.channel("model"))
        sd2 = {"cond_stage_model.model.token_embedding.weight": torch.zeros(2, 1024)}
        save_file(
            {**sd2, "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3)},
            str(job.channel("model") / "sd2.safetensors"),
        )
        values["task"] = "create-model"
    if setup == "not-a-model":
        shutil.rmtree(job.channel("model"))
        (job.channel("model") / "notes.txt").write_text("hello")
    if setup == "bad-model-name":
        values["model_name"] = "../up"
    if setup == "bad-db-config":
        values["config_params"] = {"train_batch_size": "many"}
    job.hyperparameters(**values)
    if setup == "unknown-key":
        job.raw_hyperparameters({**TrainingHyperparameters(**values).to_sagemaker(), "foo": "1"})

    code, _ = job.run()

    assert code == 1
    assert job.failure is not None and re.search(expected, job.failure), job.failure
    assert not job.model.exists() or not any(job.model.iterdir())
