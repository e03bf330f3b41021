"""DreamBooth: fine-tune the whole UNet (and the text encoder with ``train_text_encoder``).

The result is one A1111 single-file checkpoint, ``<model_name>.safetensors``:
the whole model (UNet, VAE, text encoder) in the original LDM key layout
(``sd_runtime.convert``), float32 as trained, which A1111 and this runtime's
single-file loading take. The trained parts are the trained weights; the
others are the working model's, as they were. Its metadata records what the
weights' shapes cannot tell (``sd_runtime.single_file.architecture_metadata``),
so the runtime loads it exactly as it would the diffusers folder. No diffusers
folder is kept: nothing resumes from one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        trained = {name: getattr(models, name) for name in self.trained}
        write_single_file(source, trained, target / f"{options.model_name}.safetensors")


#: The weighted components of a Stable Diffusion folder, all of them in a single file.
COMPONENTS = ("unet", "vae", "text_encoder")


def write_single_file(source: Path, trained: dict[str, Any], path: Path) -> Path:
    """``source``'s diffusers model with the ``trained`` modules' weights, as one A1111 ``.safetensors`` (float32).

    The untrained components are read from ``source``'s files; the configs are ``source``'s (training changes
    no architecture).
    """
    from safetensors.torch import save_file

    from sd_runtime.convert import components_to_ldm, read_weights
    from sd_runtime.single_file import architecture_metadata

    weights = {
        name: trained[name].state_dict() if name in trained else read_weights(source / name) for name in COMPONENTS
    }
    configs = {name: json.loads((source / name / "config.json").read_text()) for name in ("unet", "vae")}
    state = components_to_ldm(weights["unet"], configs["unet"], weights["vae"], configs["vae"], weights["text_encoder"])
    state = {
        key: (value.to("cpu", torch.float32) if value.is_floating_point() else value.to("cpu")).contiguous()
        for key, value in state.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "pt", **architecture_metadata(source)})
    return path
