"""SD_RUNTIME_CHANNELS_LAST and SD_RUNTIME_COMPILE_UNET are read from the environment and applied once,
when PipelineCache loads a checkpoint; SDPA attention is set on every loaded pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sd_runtime.generate import Generator, Plan
from sd_runtime.pipelines import PipelineCache
from sd_runtime.samplers import resolve_sampler
from sd_runtime.seeds import plan_seeds
from sd_runtime.settings import Settings
from sd_runtime.testing import build_tiny_pipeline_dir

URI = "s3://models/Stable-diffusion/tiny-sd/"


class LocalStore:
    """A ModelStore whose only model is a local folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fetched: list[str] = []

    def fetch(self, uri: str, what: str = "model") -> Path:
        self.fetched.append(uri)
        return self.path


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline_dir(tmp_path_factory.mktemp("speed") / "tiny-sd")


@pytest.fixture
def compile_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """torch.compile replaced by a stub that records its calls and returns what it was given, uncompiled."""
    calls: list[tuple[Any, dict[str, Any]]] = []

    def recording_compile(model: Any, **options: Any) -> Any:
        calls.append((model, options))
        return model

    monkeypatch.setattr(torch, "compile", recording_compile)
    return calls


def load(pipeline_dir: Path, tmp_path: Path, **settings: Any) -> tuple[Any, PipelineCache, LocalStore]:
    store = LocalStore(pipeline_dir)
    cache = PipelineCache(store, Settings(cache_dir=tmp_path / "cache", device="cpu", **settings))  # type: ignore[arg-type]
    return cache.get(URI, "tiny-sd"), cache, store


def spatial_convs(pipe: Any) -> list[torch.nn.Conv2d]:
    """Conv weights whose layouts differ between the two memory formats (more than one channel and pixel)."""
    return [
        m
        for model in (pipe.unet, pipe.vae)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1 and m.kernel_size != (1, 1)
    ]


def attention_processors(pipe: Any) -> set[str]:
    return {type(p).__name__ for model in (pipe.unet, pipe.vae) for p in model.attn_processors.values()}


def generate(pipe: Any) -> np.ndarray:
    plan = Plan(
        task="txt2img",
        prompt="a red square",
        negative_prompt="",
        width=32,
        height=32,
        steps=2,
        cfg_scale=7.0,
        sampler=resolve_sampler("Euler a"),
        batch_size=1,
        n_iter=1,
        seeds=plan_seeds(42, -1, 0.0, 1),
    )
    (image,) = Generator(pipe, pipe.tokenizer, []).run(plan)
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize(
    ("env", "channels_last", "compile_unet"),
    [
        ({}, False, None),
        ({"SD_RUNTIME_CHANNELS_LAST": "0", "SD_RUNTIME_COMPILE_UNET": "false"}, False, None),
        ({"SD_RUNTIME_CHANNELS_LAST": "1", "SD_RUNTIME_COMPILE_UNET": "1"}, True, "max-autotune"),
        ({"SD_RUNTIME_CHANNELS_LAST": "true", "SD_RUNTIME_COMPILE_UNET": "True"}, True, "max-autotune"),
        ({"SD_RUNTIME_COMPILE_UNET": "reduce-overhead"}, False, "reduce-overhead"),
        ({"SD_RUNTIME_COMPILE_UNET": "max-autotune-no-cudagraphs"}, False, "max-autotune-no-cudagraphs"),
    ],
)
def test_settings_read_from_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], channels_last: bool, compile_unet: str | None
) -> None:
    monkeypatch.delenv("SD_RUNTIME_CHANNELS_LAST", raising=False)
    monkeypatch.delenv("SD_RUNTIME_COMPILE_UNET", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.channels_last is channels_last
    assert settings.compile_unet == compile_unet


@pytest.mark.parametrize(
    ("name", "value"), [("SD_RUNTIME_CHANNELS_LAST", "maybe"), ("SD_RUNTIME_COMPILE_UNET", "fast")]
)
def test_bad_values_are_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Settings.from_env()


def test_defaults_leave_the_pipeline_eager_and_contiguous_with_sdpa(
    pipeline_dir: Path, tmp_path: Path, compile_calls: list
) -> None:
    pipe, _, _ = load(pipeline_dir, tmp_path)
    convs = spatial_convs(pipe)
    assert convs
    assert all(conv.weight.is_contiguous() for conv in convs)
    assert not any(conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in convs)
    assert attention_processors(pipe) == {"AttnProcessor2_0"}
    assert compile_calls == []


def test_channels_last_and_compile_are_applied_once_at_load(
    pipeline_dir: Path, tmp_path: Path, compile_calls: list
) -> None:
    pipe, cache, store = load(pipeline_dir, tmp_path, channels_last=True, compile_unet="max-autotune")
    assert all(conv.weight.is_contiguous(memory_format=torch.channels_last) for conv in spatial_convs(pipe))
    assert attention_processors(pipe) == {"AttnProcessor2_0"}
    # Compiled in place (nn.Module.compile: torch.compile of the module's call), so pipe.unet stays a diffusers model.
    assert len(compile_calls) == 1
    compiled, options = compile_calls[0]
    assert compiled.__self__ is pipe.unet
    assert compiled.__func__ is torch.nn.Module._call_impl
    assert options == {"mode": "max-autotune"}
    assert pipe.unet._compiled_call_impl is compiled
    assert type(pipe.unet).__name__ == "UNet2DConditionModel"

    # Served from the cache afterwards: not loaded, converted or compiled again.
    assert cache.get(URI, "tiny-sd") is pipe
    assert store.fetched == [URI]
    assert len(compile_calls) == 1


def test_channels_last_pipeline_generates_the_same_image(pipeline_dir: Path, tmp_path: Path) -> None:
    default, _, _ = load(pipeline_dir, tmp_path / "default")
    channels_last, _, _ = load(pipeline_dir, tmp_path / "channels-last", channels_last=True)
    assert np.abs(generate(default) - generate(channels_last)).max() <= 2
