"""DreamBooth: fine-tune the whole UNet (and the text encoder with ``train_text_encoder``).

The result is the whole model as a diffusers folder, the same layout as the
working model it started from: the trained parts are written anew
(safetensors, float32), the others are copied as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from sd_runtime.training.fine_tune import checkpoint_text_encoder, requires_grad
from sd_runtime.training.loop import Models, Precision
from sd_runtime.training.options import TrainOptions


class DreamBooth:
    name = "dreambooth"

    def __init__(self) -> None:
        self.trained: set[str] = set()

    def place(self, models: Models, options: TrainOptions, precision: Precision) -> None:
        device = precision.device
        models.vae.to(device, dtype=precision.frozen)
        requires_grad(models.vae, False)
        models.unet.to(device, dtype=torch.float32 if options.train_unet else precision.frozen)
        text_dtype = torch.float32 if options.train_text_encoder else precision.frozen
        models.text_encoder.to(device, dtype=text_dtype)

    def trainable(
        self, models: Models, options: TrainOptions
    ) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        requires_grad(models.unet, options.train_unet)
        requires_grad(models.text_encoder, options.train_text_encoder)
        if options.gradient_checkpointing:
            if options.train_unet:
                models.unet.enable_gradient_checkpointing()
            if options.train_text_encoder:
                checkpoint_text_encoder(models.text_encoder)
        self.trained = {
            name for name, on in (("unet", options.train_unet), ("text_encoder", options.train_text_encoder)) if on
        }
        unet = [p for p in models.unet.parameters() if p.requires_grad]
        text = [p for p in models.text_encoder.parameters() if p.requires_grad]
        return unet, text

    def save(self, models: Models, options: TrainOptions, source: Path, target: Path) -> None:
        write_model(source, {name: getattr(models, name) for name in self.trained}, target)


def write_model(source: Path, trained: dict[str, object], target: Path) -> None:
    """``source``'s diffusers folder in ``target``, with the ``trained`` components saved anew."""
    index = json.loads((source / "model_index.json").read_text())
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "model_index.json", target / "model_index.json")
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or not value or value[0] is None:
            continue
        destination = target / name
        if destination.exists():
            shutil.rmtree(destination)
        module = trained.get(name)
        if module is not None:
            module.save_pretrained(str(destination), safe_serialization=True)  # type: ignore[attr-defined]
        elif (source / name).is_dir():
            shutil.copytree(source / name, destination)
