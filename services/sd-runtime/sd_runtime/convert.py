"""Diffusers-format weights to the original (LDM / A1111) single-file layout.

A1111 checkpoints, and everything that loads them (``from_single_file``, the
checkpoint merger, other UIs), use the CompVis key layout:
``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and
``cond_stage_model.transformer.*`` (CLIP text encoder). Diffusers folders use
other names. The merger and DreamBooth training need this direction so that
a merge of folder checkpoints and a trained model are written as a single file
the runtime (and A1111) can load, and the test support uses it to make
single-file checkpoints of tiny models.

This is the inverse of diffusers' ``convert_ldm_*_checkpoint`` functions. The
block numbering is derived from each model's config rather than hard-coded
for SD 1.5, so it holds for any SD 1.x/2.x-shaped UNet (and the tiny test
models). It does not cover SDXL (different text encoders and embeddings).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
CONTROLNET_PREFIX = "control_model."

_UNET_TOP_LEVEL = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_UNET_RESNET_PARTS = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
)
_VAE_ATTENTION_PARTS = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)
# ControlNet's conditioning embedding is a fixed stack in the original code:
# conv_in, six convs with SiLU between them (even indices), conv_out at 14.
_HINT_CONV_IN = "input_hint_block.0."
_HINT_CONV_OUT = "input_hint_block.14."


class ConversionError(ValueError):
    """The weights do not have the shape of a Stable Diffusion 1.x/2.x model."""


def _layers_per_block(config: dict[str, Any]) -> int:
    layers = config["layers_per_block"]
    if not isinstance(layers, int):
        raise ConversionError(f"layers_per_block {layers!r} per block is not supported; only one number for all")
    return layers


def _down_block_prefixes(config: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(diffusers prefix, LDM prefix, is_resnet) for the encoder half shared by UNet and ControlNet."""
    layers = _layers_per_block(config)
    down_types = config["down_block_types"]
    pairs: list[tuple[str, str, bool]] = []
    for i, block_type in enumerate(down_types):
        for j in range(layers):
            ldm_index = 1 + i * (layers + 1) + j
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{ldm_index}.0.", True))
            if "CrossAttn" in block_type:
                pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{ldm_index}.1.", False))
        if i < len(down_types) - 1:
            pairs.append(
                (f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (layers + 1)}.0.op.", False)
            )
    pairs += [
        ("mid_block.resnets.0.", "middle_block.0.", True),
        ("mid_block.attentions.0.", "middle_block.1.", False),
        ("mid_block.resnets.1.", "middle_block.2.", True),
    ]
    return pairs


def _up_block_prefixes(config: dict[str, Any]) -> list[tuple[str, str, bool]]:
    layers = _layers_per_block(config)
    up_types = config["up_block_types"]
    pairs: list[tuple[str, str, bool]] = []
    for i, block_type in enumerate(up_types):
        has_attention = "CrossAttn" in block_type
        for j in range(layers + 1):
            ldm_index = i * (layers + 1) + j
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{ldm_index}.0.", True))
            if has_attention:
                pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{ldm_index}.1.", False))
        if i < len(up_types) - 1:
            # The upsampler follows the block's last layer: after its attention when it has one.
            ldm_index = i * (layers + 1) + layers
            pairs.append(
                (f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{ldm_index}.{2 if has_attention else 1}.", False)
            )
    return pairs


def _rename(key: str, prefixes: list[tuple[str, str, bool]], top_level: dict[str, str]) -> str | None:
    for hf, ldm in top_level.items():
        if key.startswith(hf):
            return ldm + key[len(hf) :]
    for hf, ldm, is_resnet in prefixes:
        if key.startswith(hf):
            rest = key[len(hf) :]
            if is_resnet:
                for hf_part, ldm_part in _UNET_RESNET_PARTS:
                    if rest.startswith(hf_part):
                        rest = ldm_part + rest[len(hf_part) :]
                        break
            return ldm + rest
    return None


def _renamed_all(
    state_dict: dict[str, Any], rename: Callable[[str], str | None], unknown_message: str
) -> dict[str, Any]:
    """Every weight under its new name; a ConversionError naming the first few that have none."""
    out: dict[str, Any] = {}
    unknown = []
    for key, value in state_dict.items():
        new_key = rename(key)
        if new_key is None:
            unknown.append(key)
        else:
            out[new_key] = value
    if unknown:
        raise ConversionError(f"{unknown_message}: {', '.join(unknown[:5])}")
    return out


def unet_to_ldm(state_dict: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers UNet2DConditionModel state dict, with keys as under ``model.diffusion_model.``."""
    prefixes = _down_block_prefixes(config) + _up_block_prefixes(config)
    return _renamed_all(
        state_dict,
        lambda key: _rename(key, prefixes, _UNET_TOP_LEVEL),
        "UNet weights with no Stable Diffusion 1.x/2.x counterpart",
    )


def controlnet_to_ldm(state_dict: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ControlNetModel state dict in the layout of the original ControlNet files."""
    top_level = {
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "conv_in.": "input_blocks.0.0.",
        "controlnet_cond_embedding.conv_in.": _HINT_CONV_IN,
        "controlnet_cond_embedding.conv_out.": _HINT_CONV_OUT,
        "controlnet_mid_block.": "middle_block_out.0.",
    }
    prefixes = _down_block_prefixes(config)

    def rename(key: str) -> str | None:
        parts = key.split(".")
        if key.startswith("controlnet_down_blocks."):
            return f"zero_convs.{parts[1]}.0.{'.'.join(parts[2:])}"
        if key.startswith("controlnet_cond_embedding.blocks."):
            return f"input_hint_block.{2 * (int(parts[2]) + 1)}.{'.'.join(parts[3:])}"
        return _rename(key, prefixes, top_level)

    return _renamed_all(state_dict, rename, "ControlNet weights with no original counterpart")


def vae_to_ldm(state_dict: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers AutoencoderKL state dict, with keys as under ``first_stage_model.``."""
    blocks = len(config["down_block_types"])
    renames: list[tuple[str, str]] = [
        ("encoder.conv_norm_out.", "encoder.norm_out."),
        ("decoder.conv_norm_out.", "decoder.norm_out."),
    ]
    for i in range(blocks):
        renames.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        renames.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        # Decoder blocks run from the lowest resolution up in diffusers, and are numbered the other way in LDM.
        renames.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{blocks - 1 - i}.block."))
        renames.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{blocks - 1 - i}.upsample."))
    for side in ("encoder", "decoder"):
        renames.append((f"{side}.mid_block.resnets.0.", f"{side}.mid.block_1."))
        renames.append((f"{side}.mid_block.resnets.1.", f"{side}.mid.block_2."))
        renames.append((f"{side}.mid_block.attentions.0.", f"{side}.mid.attn_1."))
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        new_key = key
        for hf, ldm in renames:
            if key.startswith(hf):
                new_key = ldm + key[len(hf) :]
                break
        new_key = new_key.replace("conv_shortcut.", "nin_shortcut.")
        if ".mid.attn_1." in new_key:
            head, rest = new_key.split(".mid.attn_1.", 1)
            for hf_part, ldm_part in _VAE_ATTENTION_PARTS:
                if rest.startswith(hf_part):
                    rest = ldm_part + rest[len(hf_part) :]
                    break
            new_key = f"{head}.mid.attn_1.{rest}"
            # LDM's VAE attention uses 1x1 convolutions where diffusers uses linear layers.
            if rest.endswith("weight") and not rest.startswith("norm.") and value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)
        out[new_key] = value
    return out


def clip_to_ldm(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A transformers CLIPTextModel state dict, with keys as under ``cond_stage_model.transformer.``.

    SD 1.x stores the Hugging Face CLIP keys as they are (``text_model.*``);
    recent transformers releases drop the ``text_model.`` level, so it is put
    back. SD 2.x's OpenCLIP layout is a different format and is refused.
    """
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if key.endswith("position_ids"):
            continue
        if key.startswith("text_projection"):
            raise ConversionError("CLIP text encoders with a projection (SD 2.x / SDXL) are not supported here")
        out[key if key.startswith("text_model.") else f"text_model.{key}"] = value
    return out


def read_weights(folder: Path) -> dict[str, Any]:
    """The weights of one diffusers/transformers component folder, from safetensors or a torch .bin file."""
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if files:
        weights: dict[str, Any] = {}
        for file in files:
            weights.update(load_file(str(file)))
        return weights
    bins = sorted(folder.glob("*.bin"))
    if bins:
        import torch

        weights = {}
        for file in bins:
            weights.update(torch.load(file, map_location="cpu", weights_only=True))
        return weights
    raise ConversionError(f"no weights (*.safetensors or *.bin) in {folder}")


def _read_config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "config.json").read_text())


def pipeline_folder_to_ldm(folder: Path) -> dict[str, Any]:
    """A diffusers Stable Diffusion folder (unet, vae, text_encoder) as one LDM state dict."""
    folder = Path(folder)
    missing = [part for part in ("unet", "vae", "text_encoder") if not (folder / part / "config.json").is_file()]
    if missing:
        raise ConversionError(f"{folder} is not a Stable Diffusion diffusers folder: no {', '.join(missing)}")
    return components_to_ldm(
        read_weights(folder / "unet"),
        _read_config(folder / "unet"),
        read_weights(folder / "vae"),
        _read_config(folder / "vae"),
        read_weights(folder / "text_encoder"),
    )


def components_to_ldm(
    unet: dict[str, Any],
    unet_config: dict[str, Any],
    vae: dict[str, Any],
    vae_config: dict[str, Any],
    text: dict[str, Any],
) -> dict[str, Any]:
    """The UNet's, VAE's and text encoder's diffusers/transformers state dicts as one LDM state dict.

    That is a whole A1111 single-file checkpoint (a merge of folders, a trained DreamBooth model).
    """
    unet = unet_to_ldm(unet, unet_config)
    vae = vae_to_ldm(vae, vae_config)
    clip = clip_to_ldm(text)
    return {
        **{UNET_PREFIX + k: v for k, v in unet.items()},
        **{VAE_PREFIX + k: v for k, v in vae.items()},
        **{CLIP_PREFIX + k: v for k, v in clip.items()},
    }


def controlnet_folder_to_ldm(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    return controlnet_to_ldm(read_weights(folder), _read_config(folder))
