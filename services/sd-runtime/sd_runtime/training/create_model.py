"""create-model: the base checkpoint as the diffusers working model that DreamBooth and LoRA jobs start from."""

from __future__ import annotations

from pathlib import Path

from sd_runtime.training.checkpoint import load_model, locate_model, save_pipeline
from sd_runtime.training.contract import MLPaths, TrainingError, log, log_written
from sd_runtime.training.options import TrainOptions
from sdmw_contracts.training import MODEL_CHANNEL


def create_model(options: TrainOptions, paths: MLPaths, scratch: Path) -> None:
    source = locate_model(paths.channel(MODEL_CHANNEL), scratch)
    log(f"model channel: {source.describe()}")
    if source.kind == "folder" and options.extract_ema:
        log("extract_ema is not applied: it picks the EMA weights of a single-file checkpoint, and this is a folder")
    pipe = load_model(source, options.extract_ema)
    channels = pipe.unet.config.in_channels
    if channels != 4:
        raise TrainingError(
            f"{source.path.name} has a UNet with {channels} input channels (an inpainting or other special "
            "model); the runtime trains and generates with Stable Diffusion 1.x/2.x text-to-image models (4)"
        )
    parameters = {
        name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in ("unet", "vae", "text_encoder")
    }
    log(
        "loaded "
        + ", ".join(f"{name} {count / 1e6:.1f}M parameters" for name, count in parameters.items())
        + f", {str(pipe.unet.dtype).removeprefix('torch.')}; scheduler {type(pipe.scheduler).__name__}"
    )
    save_pipeline(pipe, paths.model)
    log_written(paths.model)
