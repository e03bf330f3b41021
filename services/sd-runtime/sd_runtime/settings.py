"""Runtime settings, all from the environment (SageMaker passes a model's Environment to the container)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    #: Where models downloaded from S3 are kept between requests.
    cache_dir: Path
    #: How many loaded checkpoints stay in memory (least recently used goes first).
    pipeline_cache_size: int = 1
    #: How many loaded ControlNet models stay in memory.
    controlnet_cache_size: int = 1
    #: "cuda", "cpu", ... ; None picks CUDA when there is one.
    device: str | None = None
    #: "float16", "bfloat16" or "float32"; None means float16 on CUDA and float32 elsewhere.
    dtype: str | None = None
    #: A diffusers folder (local path or s3:// prefix) whose configs and tokenizer describe
    #: single-file checkpoints; see README ("Single-file checkpoints").
    single_file_config: str | None = None
    #: A saved BLIP captioning model (transformers ``BlipForConditionalGeneration`` and ``BlipProcessor``):
    #: an s3:// prefix or a local folder. ``interrogate_clip`` needs it; see README ("Interrogation").
    caption_model: str | None = None
    #: Put each loaded checkpoint's UNet and VAE in ``torch.channels_last`` memory format.
    channels_last: bool = False
    #: ``torch.compile`` mode for each loaded checkpoint's UNet ("max-autotune", ...); None leaves it eager.
    compile_unet: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        cache = os.environ.get("SD_RUNTIME_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "sd-runtime-cache")
        return cls(
            cache_dir=Path(cache),
            pipeline_cache_size=_positive_int("SD_RUNTIME_PIPELINE_CACHE", 1),
            controlnet_cache_size=_positive_int("SD_RUNTIME_CONTROLNET_CACHE", 1),
            device=os.environ.get("SD_RUNTIME_DEVICE") or None,
            dtype=os.environ.get("SD_RUNTIME_DTYPE") or None,
            single_file_config=os.environ.get("SD_RUNTIME_SINGLE_FILE_CONFIG") or None,
            caption_model=os.environ.get("SD_RUNTIME_CAPTION_MODEL") or None,
            channels_last=_flag("SD_RUNTIME_CHANNELS_LAST"),
            compile_unet=_compile_mode("SD_RUNTIME_COMPILE_UNET"),
        )


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
#: torch.compile's modes; "1"/"true" means the first.
COMPILE_MODES = ("max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead", "default")


def _flag(name: str) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise ValueError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {raw!r}")


def _compile_mode(name: str) -> str | None:
    """Unset or false: no compilation; true: "max-autotune"; or one of torch.compile's mode names."""
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw or raw in _FALSE:
        return None
    if raw in _TRUE:
        return COMPILE_MODES[0]
    if raw in COMPILE_MODES:
        return raw
    raise ValueError(
        f"{name} must be 0/false, 1/true or a torch.compile mode ({', '.join(COMPILE_MODES)}), got {raw!r}"
    )
