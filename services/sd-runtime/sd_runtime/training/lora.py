"""LoRA: the model stays frozen; PEFT LoRA adapters on the attention projections are trained.

UNet: ``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of every attention block;
text encoder (with ``train_text_encoder``): ``q_proj``, ``k_proj``,
``v_proj``, ``out_proj``. The result is one ``<model_name>.safetensors`` in
the kohya/A1111 layout (``lora_unet_*`` / ``lora_te_*`` modules with
``lora_down``, ``lora_up`` and ``alpha``), which A1111, ComfyUI and this
runtime (diffusers' ``load_lora_weights``) all load; the scale is
``alpha / rank``, so the file reproduces the trained adapters exactly.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sd_runtime.training.fine_tune import checkpoint_text_encoder, requires_grad
from sd_runtime.training.loop import Models, Precision
from sd_runtime.training.options import TrainOptions

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
ADAPTER = "default"


class Lora:
    name = "lora"

    def place(self, models: Models, options: TrainOptions, precision: Precision) -> None:
        for module in (models.vae, models.unet, models.text_encoder):
            module.to(precision.device, dtype=precision.frozen)
            requires_grad(module, False)

    def trainable(
        self, models: Models, options: TrainOptions
    ) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        unet = (
            self._inject(models.unet, options.lora_rank, options.unet_alpha, UNET_TARGETS) if options.train_unet else []
        )
        text = (
            self._inject(models.text_encoder, options.text_rank, options.text_alpha, TEXT_TARGETS)
            if options.train_text_encoder
            else []
        )
        if options.gradient_checkpointing:
            if unet:
                models.unet.enable_gradient_checkpointing()
            if text:
                checkpoint_text_encoder(models.text_encoder)
        return unet, text

    @staticmethod
    def _inject(module: torch.nn.Module, rank: int, alpha: int, targets: list[str]) -> list[torch.nn.Parameter]:
        from peft import LoraConfig, inject_adapter_in_model

        config = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=targets)
        inject_adapter_in_model(config, module, adapter_name=ADAPTER)
        parameters = []
        for name, parameter in module.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                # The adapters train in float32 even when the frozen weights are half precision.
                parameter.data = parameter.data.float()
                parameter.requires_grad_(True)
                parameters.append(parameter)
        module.train()
        return parameters

    def save(self, models: Models, options: TrainOptions, source: Path, target: Path) -> None:
        from safetensors.torch import save_file

        state: dict[str, torch.Tensor] = {}
        if options.train_unet:
            state.update(kohya_state(models.unet, "lora_unet", options.unet_alpha))
        if options.train_text_encoder:
            state.update(kohya_state(models.text_encoder, "lora_te", options.text_alpha, module_prefix="text_model."))
        target.mkdir(parents=True, exist_ok=True)
        metadata = {
            "format": "pt",
            "ss_network_module": "networks.lora",
            "ss_network_dim": str(options.lora_rank),
            "ss_network_alpha": str(options.unet_alpha),
            "ss_output_name": options.model_name,
            "ss_resolution": str(options.resolution),
            "ss_training_comment": "trained by sd-runtime",
        }
        save_file(state, str(target / f"{options.model_name}.safetensors"), metadata=metadata)


def kohya_state(module: torch.nn.Module, prefix: str, alpha: int, module_prefix: str = "") -> dict[str, torch.Tensor]:
    """The PEFT adapters of ``module`` as kohya keys: ``<prefix>_<module path with _>.lora_down/lora_up/alpha``."""
    state: dict[str, torch.Tensor] = {}
    for name, parameter in module.named_parameters():
        for marker, kind in ((".lora_A.", "lora_down"), (".lora_B.", "lora_up")):
            if marker not in name:
                continue
            path = name.split(marker)[0]
            if module_prefix and not path.startswith(module_prefix):
                path = module_prefix + path
            key = f"{prefix}_{path.replace('.', '_')}"
            state[f"{key}.{kind}.weight"] = parameter.detach().to("cpu", torch.float32).contiguous()
            state[f"{key}.alpha"] = torch.tensor(float(alpha))
    return state
