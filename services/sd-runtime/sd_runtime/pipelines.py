"""Checkpoints loaded into diffusers pipelines, kept in a small LRU cache between requests.

Loading SD 1.5 takes seconds and several GB, so the last
``SD_RUNTIME_PIPELINE_CACHE`` checkpoints (default 1) stay loaded, keyed by
their S3 URI. When a new one is needed and the cache is full, the least
recently used is dropped *before* loading, so two never need memory at once.

Folders are diffusers models (``from_pretrained``). Single files (A1111
``.safetensors``/``.ckpt``) are converted by ``from_single_file``, which
needs the diffusers configs and tokenizer of the architecture, never taken
from the Hugging Face Hub: ``SD_RUNTIME_SINGLE_FILE_CONFIG`` names them when
it is set; otherwise ``sd_runtime.single_file`` builds them from SD 1.5's
configs and the file's own tensor shapes (SD 1.x checkpoints).

A single file whose text encoder's keys lack the ``text_model.`` level (older
SD 1.x checkpoints) is loaded from a copy with the level inserted, as A1111
loads it (``sd_runtime.single_file.text_model_level_inserted``). A checkpoint
uploaded as a tar (the WebUI's AWS extension's way) is unpacked by
``ModelStore.fetch``, which answers the model file inside.

Every loaded pipeline gets PyTorch's scaled-dot-product attention
(``AttnProcessor2_0``) in its UNet and VAE, and, when the settings ask for
them, channels-last UNet and VAE (``SD_RUNTIME_CHANNELS_LAST``) and a
``torch.compile``d UNet (``SD_RUNTIME_COMPILE_UNET``); see ``prepare_for_speed``.
"""

from __future__ import annotations

import gc
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from sd_runtime.archives import MODEL_FILE_SUFFIXES
from sd_runtime.errors import RequestError, is_out_of_memory, load_errors
from sd_runtime.models import ModelStore, is_folder_uri
from sd_runtime.settings import Settings

SINGLE_FILE_SUFFIXES = MODEL_FILE_SUFFIXES
logger = logging.getLogger("sd_runtime")

K = TypeVar("K")
V = TypeVar("V")


class ConfigurationError(RequestError):
    """The runtime is not set up for this request (a deployment problem, not the user's input)."""

    status = 500


def pipeline_from_single_file(
    path: Path,
    config: Path,
    dtype: Any,
    *,
    cache_dir: Path,
    note: Callable[[str], None] | None = None,
    **options: Any,
) -> Any:
    """A StableDiffusionPipeline converted from one A1111 file with the configs in ``config``:
    offline, and without a safety checker (inference and training load single files the same way).

    An older SD 1.x file whose CLIP keys lack the ``text_model.`` level is loaded from a copy with it
    inserted, written once under ``cache_dir`` (``note`` is told)."""
    from diffusers import StableDiffusionPipeline

    from sd_runtime.single_file import text_model_level_inserted

    path = text_model_level_inserted(path, cache_dir, note)
    return StableDiffusionPipeline.from_single_file(
        str(path),
        config=str(config),
        local_files_only=True,
        dtype=dtype,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **options,
    )


def prepare_for_speed(pipe: Any, *, channels_last: bool = False, compile_mode: str | None = None) -> Any:
    """Set ``pipe`` up once, after it is loaded and on its device: SDPA attention always, then
    channels-last UNet and VAE and a compiled UNet when asked. Returns ``pipe``.

    SDPA is diffusers' default on torch 2; setting it here keeps it so whatever a checkpoint's
    loading did. The UNet is compiled in place (``unet.compile(mode=...)``, i.e.
    ``torch.compile`` of its call): ``pipe.unet`` stays a diffusers model, which diffusers'
    LoRA loading and unloading require (``unload_lora_weights`` skips a ``torch.compile``
    wrapper, so a LoRA would stay in the cached pipeline). No ``fullgraph``: a graph break (a
    layer a request adds) then runs eagerly instead of failing the request; with no break the
    compiled code is the same. Compilation itself happens on the first call for each shape
    (size, batch), so that request is slow.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor2_0())
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compile_mode and getattr(pipe.unet, "_compiled_call_impl", None) is None:
        pipe.unet.compile(mode=compile_mode)
    return pipe


class LRUCache(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        while len(self._items) >= self.size:
            self._items.popitem(last=False)
            release_memory()
        value = load()
        self._items[key] = value
        return value

    def keys(self) -> list[K]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()
        release_memory()


def release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def resolve_device(settings: Settings) -> tuple[torch.device, torch.dtype]:
    device = torch.device(settings.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if settings.dtype:
        dtype = getattr(torch, settings.dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"SD_RUNTIME_DTYPE {settings.dtype!r} is not a torch dtype (float16, bfloat16, float32)")
    else:
        # Half precision is the norm for SD on GPUs; CPUs are slow or wrong in float16.
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    return device, dtype


def _quiet_diffusers() -> None:
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()


class PipelineCache:
    def __init__(self, store: ModelStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.device, self.dtype = resolve_device(settings)
        self._cache: LRUCache[str, Any] = LRUCache(settings.pipeline_cache_size)
        _quiet_diffusers()

    def get(self, uri: str, name: str) -> Any:
        """The StableDiffusionPipeline of the checkpoint at ``uri`` (``name`` is what the user called it)."""
        return self._cache.get_or_load(uri, lambda: self._load(uri, name))

    def loaded(self) -> list[str]:
        return self._cache.keys()

    def _load(self, uri: str, name: str) -> Any:
        path = self.store.fetch(uri, what="checkpoint")
        try:
            pipe = self._load_folder(path, uri) if is_folder_uri(uri) else self._load_single_file(path, uri, name)
        except RequestError:
            raise
        except load_errors() as error:
            if is_out_of_memory(error):
                raise
            raise RequestError(
                f"checkpoint {name} ({uri}) could not be loaded as a Stable Diffusion model: {error}"
            ) from None
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return prepare_for_speed(
            pipe, channels_last=self.settings.channels_last, compile_mode=self.settings.compile_unet
        )

    def _load_folder(self, path: Path, uri: str) -> Any:
        from diffusers import StableDiffusionPipeline

        if not (path / "model_index.json").is_file():
            raise RequestError(f"checkpoint {uri} is not a diffusers folder: it has no model_index.json")
        return StableDiffusionPipeline.from_pretrained(
            str(path),
            dtype=self.dtype,
            local_files_only=True,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )

    def _load_single_file(self, path: Path, uri: str, name: str) -> Any:

        if not path.name.lower().endswith(SINGLE_FILE_SUFFIXES):
            raise RequestError(
                f"checkpoint {uri} is neither a folder (URI ending in '/') nor a single file "
                f"({', '.join(SINGLE_FILE_SUFFIXES)})"
            )
        config, _ = self.single_file_config(uri, path, name)
        return pipeline_from_single_file(path, config, self.dtype, cache_dir=self.settings.cache_dir, note=logger.info)

    def single_file_config(self, uri: str, path: Path, name: str | None = None) -> tuple[Path, str]:
        """The diffusers folder describing single file ``path`` (configs and tokenizer, no weights), and how it
        was found, for logs.

        ``SD_RUNTIME_SINGLE_FILE_CONFIG`` wins when it is set; otherwise the
        folder is built from SD 1.5's configs and the file's tensor shapes
        (``sd_runtime.single_file``), which refuses architectures other than SD 1.x.
        """
        source = self.settings.single_file_config
        if not source:
            folder, architecture = built_single_file_config(path, name or uri, self.settings.cache_dir)
            return folder, f"configs built from its weights ({architecture.describe()})"
        if source.startswith("s3://"):
            folder = self.store.fetch(source if source.endswith("/") else source + "/", what="single-file config")
            return folder, f"the configs of SD_RUNTIME_SINGLE_FILE_CONFIG {source}"
        folder = Path(source)
        if not (folder / "model_index.json").is_file():
            raise ConfigurationError(f"SD_RUNTIME_SINGLE_FILE_CONFIG {source} is not a diffusers folder")
        return folder, f"the configs of SD_RUNTIME_SINGLE_FILE_CONFIG {source}"


def built_single_file_config(path: Path, name: str, cache_dir: Path) -> tuple[Path, Any]:
    """``sd_runtime.single_file.prepare``, with a missing CLIP tokenizer reported as the deployment problem it is."""
    from sd_runtime.single_file import prepare
    from sd_runtime.tokenizer_files import TokenizerUnavailable

    try:
        return prepare(path, name, cache_dir)
    except TokenizerUnavailable as error:
        raise ConfigurationError(f"checkpoint {name} needs CLIP's tokenizer: {error}") from None
