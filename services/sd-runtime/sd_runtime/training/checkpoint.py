"""The model channel: a diffusers folder, a single-file checkpoint, or a tar of either; loaded for training.

Single files are converted with the inference path's own loading
(``from_single_file`` with the configs found by
``sd_runtime.pipelines.PipelineCache.single_file_config``: those of
``SD_RUNTIME_SINGLE_FILE_CONFIG`` when it is set, else built from SD 1.5's
configs and the file's own tensor shapes), so a checkpoint trains exactly as
it would generate.

A tar is recognised by its content, not its name: the WebUI's AWS extension
uploads a checkpoint as a tar named like the checkpoint itself
(``x.safetensors`` holding ``models/Stable-diffusion/x.safetensors`` and
perhaps ``x.yaml``). It is unpacked (``sd_runtime.archives.safe_extract``:
no absolute paths, ``..`` or links pointing outside) into the scratch folder,
and the model inside is used: the file named like the archive, else a
diffusers folder, else its one model file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sd_runtime.archives import ArchiveError, is_tar, model_file_in, named_files, safe_extract
from sd_runtime.errors import RequestError, is_out_of_memory, load_errors
from sd_runtime.pipelines import SINGLE_FILE_SUFFIXES
from sd_runtime.training.contract import TrainingError, log

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
MODEL_INDEX = "model_index.json"
#: How deep a diffusers folder or checkpoint may sit in the channel (the extension's tar: models/Stable-diffusion/x).
MAX_DEPTH = 4


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "folder" or "file"
    path: Path

    def describe(self) -> str:
        return (
            f"diffusers folder {self.path.name}"
            if self.kind == "folder"
            else f"single-file checkpoint {self.path.name}"
        )


def _depth(path: Path, root: Path) -> int:
    return len(path.relative_to(root).parts)


def _folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(MODEL_INDEX) if _depth(p, root) <= MAX_DEPTH)


def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes) and _depth(p, root) <= MAX_DEPTH
    )


def locate_model(channel: Path | None, scratch: Path, folder_only: bool = False) -> ModelSource:
    """What the model channel holds; a tar is unpacked (safely) into ``scratch`` first."""
    if channel is None:
        raise TrainingError(
            "the training job has no 'model' input channel: it must name the base checkpoint (create-model) "
            "or the working model to train (dreambooth, lora)"
        )
    source = _find(channel)
    if source is not None and source.kind == "file" and is_tar(source.path):
        log(
            f"{source.path.name} in the model channel is a tar archive (as the WebUI extension uploads models); "
            "unpacking it"
        )
        source = _from_archive(source.path, scratch / "model-archive")
    if source is None:
        archives = _files(channel, ARCHIVE_SUFFIXES)
        if len(archives) > 1:
            raise TrainingError(f"the model channel holds several archives ({_names(archives)}); send one")
        if archives:
            log(f"unpacking {archives[0].name} from the model channel")
            source = _find(_extract(archives[0], scratch / "model-archive"))
    if source is None:
        present = _names(sorted(p for p in channel.rglob("*") if p.is_file())) or "nothing"
        raise TrainingError(
            "the model channel holds neither a diffusers folder (with model_index.json), nor a single-file "
            f"checkpoint ({', '.join(SINGLE_FILE_SUFFIXES)}), nor a tar of one; it holds: {present}"
        )
    if folder_only and source.kind != "folder":
        raise TrainingError(f"the model channel holds {source.describe()}, but a diffusers folder is needed")
    return source


def _extract(archive: Path, target: Path) -> Path:
    try:
        return safe_extract(archive, target, outside_links="refuse", note=log)
    except ArchiveError as error:
        raise TrainingError(f"the model channel's {error.message}") from None


def _from_archive(archive: Path, target: Path) -> ModelSource:
    """The model in a tar named like a model file: the file of the archive's own name, else a diffusers folder,
    else its one model file (a TrainingError saying what it holds when there is none, or several)."""
    root = _extract(archive, target)
    if len(named_files(root, archive.name)) != 1:
        folders = _folders(root)
        if len(folders) > 1:
            raise TrainingError(
                f"{archive.name} in the model channel holds several diffusers folders ({_names(folders)})"
            )
        if folders:
            return ModelSource("folder", folders[0])
    try:
        return ModelSource("file", model_file_in(root, archive.name, f"{archive.name} in the model channel"))
    except ArchiveError as error:
        raise TrainingError(error.message) from None


def _find(root: Path) -> ModelSource | None:
    folders = _folders(root)
    if len(folders) > 1:
        raise TrainingError(f"the model channel holds several diffusers folders ({_names(folders)}); send one")
    if folders:
        return ModelSource("folder", folders[0])
    files = _files(root, SINGLE_FILE_SUFFIXES)
    if len(files) > 1:
        raise TrainingError(f"the model channel holds several checkpoint files ({_names(files)}); send one")
    if files:
        return ModelSource("file", files[0])
    return None


def _names(paths: list[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:8])
    return shown + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")


def quiet_libraries() -> None:
    """No progress bars or info chatter from diffusers and transformers in the job's log."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


@contextmanager
def _loading(what: str) -> Iterator[None]:
    """Turns a loader's failure on a user's file into a TrainingError that says which file."""
    try:
        yield
    except TrainingError:
        raise
    except RequestError as error:  # e.g. an SDXL or inpainting single file, refused by the inference code
        raise TrainingError(error.message) from None
    except load_errors() as error:
        if is_out_of_memory(error):
            raise
        raise TrainingError(f"{what} could not be loaded as a Stable Diffusion 1.x/2.x model: {error}") from None


def load_folder(folder: Path) -> Any:
    """The StableDiffusionPipeline of a diffusers folder, in float32 on the CPU."""
    import torch
    from diffusers import StableDiffusionPipeline

    with _loading(f"the model channel's folder {folder.name}"):
        return StableDiffusionPipeline.from_pretrained(
            str(folder),
            dtype=torch.float32,
            local_files_only=True,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )


def load_single_file(path: Path, extract_ema: bool) -> Any:
    """A single-file checkpoint converted to a StableDiffusionPipeline (float32, CPU), as inference loads it."""
    import torch

    from sd_runtime.models import ModelStore
    from sd_runtime.pipelines import PipelineCache, pipeline_from_single_file
    from sd_runtime.settings import Settings

    settings = Settings.from_env()
    with _loading(f"checkpoint {path.name}"):
        config, how = PipelineCache(ModelStore(settings.cache_dir), settings).single_file_config(
            path.name, path, path.name
        )
    log(f"converting {path.name} with {how}")
    ema_keys = _ema_key_count(path)
    if extract_ema:
        if ema_keys is None:
            log("extract_ema: the EMA weights are taken if the checkpoint has them (a .ckpt is not inspected first)")
        elif ema_keys > 100:
            log(f"extract_ema: taking the UNet's EMA weights ({ema_keys} model_ema tensors)")
        else:
            log("extract_ema: the checkpoint has no EMA weights; its UNet weights are used as they are")
    elif ema_keys and ema_keys > 100:
        log("the checkpoint also has EMA weights; they are not used (set extract_ema to take them)")
    with _loading(f"checkpoint {path.name}"):
        return pipeline_from_single_file(
            path, config, torch.float32, cache_dir=settings.cache_dir, note=log, extract_ema=extract_ema
        )


def _ema_key_count(path: Path) -> int | None:
    if not path.name.lower().endswith(".safetensors"):
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return sum(1 for key in handle.keys() if key.startswith("model_ema."))  # noqa: SIM118
    except Exception:  # the loader reports an unreadable file with a better message
        return None


def load_model(source: ModelSource, extract_ema: bool = False) -> Any:
    if source.kind == "folder":
        return load_folder(source.path)
    return load_single_file(source.path, extract_ema)


def save_pipeline(pipe: Any, target: Path) -> None:
    """A diffusers folder of ``pipe`` (safetensors), loadable by ``StableDiffusionPipeline.from_pretrained``."""
    pipe.save_pretrained(str(target), safe_serialization=True)
