"""Tiny Stable Diffusion models in a moto S3, and a Runtime that loads them from there.

The models are built once per session (a few seconds); each test uploads
them to its own in-process moto S3 and gets a Runtime with an empty cache, so
every test exercises the real download, loading and generation code.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from PIL import Image

from sd_runtime.invocations import Runtime
from sd_runtime.models import ModelStore
from sd_runtime.settings import Settings
from sd_runtime.testing import (
    build_tiny_controlnet,
    build_tiny_embedding,
    build_tiny_lora,
    build_tiny_pipeline_dir,
    result_files,
    write_tiny_single_file,
)
from sdmw_contracts.generation import GenerationParams
from sdmw_contracts.runtime import InvocationRequest, ModelRef, ModelSet
from sdmw_contracts.s3 import split_s3_uri
from sdmw_contracts.training import TrainingHyperparameters

BUCKET = "models"


@dataclass(frozen=True)
class TinyModels:
    pipeline_dir: Path
    single_file: Path
    other_pipeline_dir: Path
    other_single_file: Path
    third_single_file: Path
    lora: Path
    embedding: Path
    controlnet_dir: Path
    controlnet_file: Path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    root = tmp_path_factory.mktemp("tiny-models")
    pipeline_dir = build_tiny_pipeline_dir(root / "tiny-sd", seed=0)
    other_dir = build_tiny_pipeline_dir(root / "tiny-sd-other", seed=1)
    third_dir = build_tiny_pipeline_dir(root / "tiny-sd-third", seed=2)
    return TinyModels(
        pipeline_dir=pipeline_dir,
        single_file=write_tiny_single_file(pipeline_dir, root / "tiny-sd.safetensors"),
        other_pipeline_dir=other_dir,
        other_single_file=write_tiny_single_file(other_dir, root / "tiny-sd-other.safetensors"),
        third_single_file=write_tiny_single_file(third_dir, root / "tiny-sd-third.safetensors"),
        lora=build_tiny_lora(pipeline_dir, root / "tinylora.safetensors"),
        embedding=build_tiny_embedding(root / "tinyemb.safetensors"),
        controlnet_dir=build_tiny_controlnet(pipeline_dir, root / "tiny-controlnet"),
        controlnet_file=build_tiny_controlnet(pipeline_dir, root / "tiny_control_canny.safetensors", single_file=True),
    )


def upload(client: Any, path: Path, key: str) -> str:
    """A file, or every file of a folder under ``key/``; returns the s3:// URI (ending in '/' for a folder)."""
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            client.upload_file(str(file), BUCKET, f"{key}/{file.relative_to(path).as_posix()}")
        return f"s3://{BUCKET}/{key}/"
    client.upload_file(str(path), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


@dataclass
class World:
    models: TinyModels
    s3: Any
    uris: dict[str, str]
    runtime: Runtime
    make_runtime: Callable[..., Runtime]

    def ref(self, name: str, key: str | None = None) -> ModelRef:
        return ModelRef(name=name, s3_uri=self.uris[key or name])


@pytest.fixture
def world(mocked_aws: None, tiny_models: TinyModels, tmp_path: Path) -> Iterator[World]:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    uris = {
        "tiny-sd": upload(s3, tiny_models.pipeline_dir, "Stable-diffusion/tiny-sd"),
        "tiny-sd.safetensors": upload(s3, tiny_models.single_file, "Stable-diffusion/tiny-sd.safetensors"),
        "tiny-sd-other": upload(s3, tiny_models.other_pipeline_dir, "Stable-diffusion/tiny-sd-other"),
        "tiny-sd-other.safetensors": upload(
            s3, tiny_models.other_single_file, "Stable-diffusion/tiny-sd-other.safetensors"
        ),
        "tiny-sd-third.safetensors": upload(
            s3, tiny_models.third_single_file, "Stable-diffusion/tiny-sd-third.safetensors"
        ),
        "tinylora.safetensors": upload(s3, tiny_models.lora, "Lora/tinylora.safetensors"),
        "tinyemb.safetensors": upload(s3, tiny_models.embedding, "embeddings/tinyemb.safetensors"),
        "tiny-controlnet": upload(s3, tiny_models.controlnet_dir, "ControlNet/tiny-controlnet"),
        "tiny_control_canny.safetensors": upload(
            s3, tiny_models.controlnet_file, "ControlNet/tiny_control_canny.safetensors"
        ),
    }

    def make_runtime(**overrides: Any) -> Runtime:
        options: dict[str, Any] = {
            "cache_dir": tmp_path / "cache",
            "device": "cpu",
            "single_file_config": str(tiny_models.pipeline_dir),
        }
        options.update(overrides)
        return Runtime(Settings(**options))

    yield World(tiny_models, s3, uris, make_runtime(), make_runtime)


_job_numbers = itertools.count(1)


def invocation(
    world: World,
    task: str = "txt2img",
    checkpoint: str = "tiny-sd",
    *,
    loras: tuple[str, ...] = (),
    embeddings: tuple[str, ...] = (),
    controlnets: dict[str, str] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """An InvocationRequest body with small, fast defaults (32x32, 2 steps, a fixed seed), its files in the
    moto bucket. Each body is a job of its own (``job-<n>``), so its files are not overwritten by the next.
    ``controlnets`` maps the titles the units use to the uploaded models' names."""
    job_id = f"job-{next(_job_numbers)}"
    generation = GenerationParams(
        **{"prompt": "a red cube", "width": 32, "height": 32, "steps": 2, "seed": 1234, **params}
    )
    models = ModelSet(
        checkpoint=world.ref(checkpoint),
        loras=[world.ref(name) for name in loras],
        embeddings=[world.ref(name) for name in embeddings],
        controlnets={title: world.ref(name) for title, name in (controlnets or {}).items()},
    )
    request = InvocationRequest(
        inference_id=job_id,
        task=task,
        models=models,
        params=generation,
        results=result_files(BUCKET, job_id, generation.image_count()),
    )
    return request.model_dump(mode="json", by_alias=True)


def read_object(uri: str) -> bytes:
    bucket, key = split_s3_uri(uri)
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def pictures_of(response: Any) -> list[Image.Image]:
    """The images the job wrote to S3, each checked to be a JPEG."""
    pictures = []
    for uri in response.files:
        picture = Image.open(io.BytesIO(read_object(uri)))
        assert picture.format == "JPEG", uri
        pictures.append(picture)
    return pictures


def images_of(response: Any) -> list[np.ndarray]:
    return [np.asarray(picture.convert("RGB"), dtype=np.int16) for picture in pictures_of(response)]


def parameter_file(results: dict[str, Any]) -> dict[str, Any]:
    """The job's parameter file, as the seed's clients download it."""
    return json.loads(read_object(results["prefix"] + results["parameters"]))


def png_b64(image: Image.Image, data_url: bool = False) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"data:image/png;base64,{encoded}" if data_url else encoded


def gradient_image(width: int = 64, height: int = 64) -> Image.Image:
    """A picture with edges in it (for Canny) and colour (so img2img has something to keep)."""
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = x[None, :]
    pixels[..., 1] = y[:, None]
    pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4, 2] = 255
    return Image.fromarray(pixels)


def counting_store(cache_dir: Path) -> tuple[ModelStore, list[str]]:
    """A ModelStore whose S3 downloads are recorded (the keys, in order): what a cache test counts."""
    calls: list[str] = []
    store = ModelStore(cache_dir)
    real_factory = store.client_factory

    def counting_client() -> Any:
        client = real_factory()
        original = client.download_file

        def download_file(bucket, key, path, *args, **kwargs):
            calls.append(key)
            return original(bucket, key, path, *args, **kwargs)

        client.download_file = download_file
        return client

    store.client_factory = counting_client
    return store, calls


@pytest.fixture
def create_model_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``/opt/ml`` tree for a create-model training job (the model channel left empty), on the CPU."""
    root = tmp_path / "ml"
    monkeypatch.setenv("SD_RUNTIME_ML_ROOT", str(root))
    monkeypatch.setenv("SD_RUNTIME_DEVICE", "cpu")
    monkeypatch.setenv("SD_RUNTIME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SD_RUNTIME_SINGLE_FILE_CONFIG", raising=False)
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps(TrainingHyperparameters(task="create-model", model_name="base").to_sagemaker())
    )
    (root / "input" / "data" / "model").mkdir(parents=True)
    return root
