"""Single-file Stable Diffusion 1.x checkpoints without a config folder: the architecture read from the weights.

An A1111/Civitai ``.safetensors`` (or ``.ckpt``) holds the weights in the
original (LDM) key layout but none of the diffusers configs or the tokenizer
that ``from_single_file`` needs. This module supplies them offline:

- **Configs.** Stable Diffusion 1.5's configs (``SD15_*`` below, written from
  the published architecture: UNet 320/640/1280/1280 with 8 attention heads
  and CLIP ViT-L/14's 768-wide, 12-layer text model, the KL VAE with
  128/256/512/512 channels, the scaled-linear PNDM schedule) are the base.
- **Shapes.** Whatever the weights' shapes tell overrides the base (only the
  shapes are read, not the tensors): UNet ``in_channels``/``out_channels``,
  ``block_out_channels``, ``layers_per_block``, which levels have attention,
  ``cross_attention_dim``, conv or linear attention projections, transformer
  depth; VAE channels, ``layers_per_block``, latent channels, quant convs;
  text encoder width, depth, MLP width, vocabulary and positions. So a
  non-standard SD 1.x-shaped network (the tests' tiny model) loads too.
- **What shapes cannot tell**: the UNet's attention heads and GroupNorm groups,
  the VAE's groups, the text encoder's heads (CLIP's rule, width / 64, is
  used), activation and epsilons. SD 1.5's values are used (for a network
  whose widths SD 1.5's heads or groups do not divide, never a real SD 1.x
  one, the largest smaller number that divides them, so that it loads),
  unless the file's safetensors metadata has ``sd_runtime_architecture``
  (JSON: the diffusers config values of those keys only, per component),
  which this runtime writes when it makes a single file from a diffusers
  folder (merges, the tests' ``write_tiny_single_file``). Real checkpoints
  do not need it.
- **Tokenizer**, by the text encoder's vocabulary size: 49408 (or more) is
  CLIP's BPE (``sd_runtime.tokenizer_files``); a smaller vocabulary is a
  byte-level tokenizer of that size (the tests' tiny models).

Older SD 1.x files store CLIP's keys without transformers' ``text_model.``
level (``cond_stage_model.transformer.embeddings.*``, ``.encoder.*``,
``.final_layer_norm.*``); A1111 inserts it when it loads them, and so does
this module: ``infer_architecture`` reads their shapes as if it were there,
and ``text_model_level_inserted`` gives ``from_single_file`` (which does not
know that layout) a copy of the file with the level inserted, written once
under the cache folder (a safetensors file's header is rewritten and its
tensor bytes copied as they are; a torch file is loaded and saved again).

Architectures this cannot build are refused with their name: SD 2.x
(OpenCLIP text encoder, ``cond_stage_model.model.*``), SDXL
(``conditioner.embedders.*``), SD 3 / FLUX, inpainting (9-channel UNet) and
other UNets whose input is not 4 latent channels.

The configs are written as a diffusers config folder (no weights) under the
runtime's cache folder, one per distinct architecture, and passed to
``from_single_file(config=...)``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sd_runtime.convert import CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX
from sd_runtime.errors import UnsupportedFeature
from sd_runtime.tokenizer_files import (
    BYTE_LEVEL_MIN_VOCAB,
    CLIP_VOCAB_SIZE,
    write_byte_level_tokenizer,
    write_clip_tokenizer,
)

#: safetensors metadata key holding the config values the weights' shapes cannot tell (JSON).
ARCHITECTURE_METADATA_KEY = "sd_runtime_architecture"

SD15_MODEL_INDEX: dict[str, Any] = {
    "_class_name": "StableDiffusionPipeline",
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
SD15_UNET_CONFIG: dict[str, Any] = {
    "_class_name": "UNet2DConditionModel",
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-05,
    "cross_attention_dim": 768,
    "transformer_layers_per_block": 1,
    # diffusers' historical name: for SD 1.x this is the number of heads (8), each 1/8 of the block's width.
    "attention_head_dim": 8,
    "use_linear_projection": False,
    "upcast_attention": False,
}
SD15_VAE_CONFIG: dict[str, Any] = {
    "_class_name": "AutoencoderKL",
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "use_quant_conv": True,
    "use_post_quant_conv": True,
    "mid_block_add_attention": True,
}
#: CLIP ViT-L/14's text model, SD 1.x's text encoder.
SD15_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "vocab_size": CLIP_VOCAB_SIZE,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "projection_dim": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "initializer_factor": 1.0,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 1,
}
#: Stable Diffusion 1.5's noise schedule (PNDM, scaled-linear betas 0.00085 to 0.012 over 1000 steps).
SD15_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
}

#: Per component, the config keys the weights' shapes cannot tell; only these are taken from the metadata.
UNREADABLE_KEYS: dict[str, tuple[str, ...]] = {
    "unet": (
        "attention_head_dim",
        "num_attention_heads",
        "norm_num_groups",
        "norm_eps",
        "act_fn",
        "flip_sin_to_cos",
        "freq_shift",
        "upcast_attention",
        "sample_size",
    ),
    "vae": ("norm_num_groups", "act_fn", "sample_size", "scaling_factor", "shift_factor", "force_upcast"),
    "text_encoder": ("num_attention_heads", "hidden_act", "layer_norm_eps"),
}
_CONFIG_FILES = {"unet": "unet/config.json", "vae": "vae/config.json", "text_encoder": "text_encoder/config.json"}
_TEXT_MODEL = CLIP_PREFIX + "text_model."
#: The old SD 1.x layout of CLIP's keys, without the ``text_model.`` level (A1111 inserts it when loading).
_LEVELLESS_CLIP = tuple(CLIP_PREFIX + part for part in ("embeddings.", "encoder.", "final_layer_norm."))


class UnsupportedArchitecture(UnsupportedFeature):
    """A single file of an architecture the runtime cannot build without SD_RUNTIME_SINGLE_FILE_CONFIG."""


@dataclass(frozen=True)
class Architecture:
    """The diffusers configs of one single-file checkpoint, and which tokenizer goes with it."""

    unet: dict[str, Any]
    vae: dict[str, Any]
    text_encoder: dict[str, Any]
    scheduler: dict[str, Any]
    #: "clip" (CLIP's BPE, 49408 tokens or more) or "byte-level" (the tests' tiny models).
    tokenizer: str

    def key(self) -> str:
        """A short digest naming this architecture's config folder in the cache."""
        body = json.dumps(
            [self.unet, self.vae, self.text_encoder, self.scheduler, self.tokenizer, SD15_MODEL_INDEX], sort_keys=True
        )
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def describe(self) -> str:
        unet, vae, text = self.unet, self.vae, self.text_encoder
        return (
            f"Stable Diffusion 1.x: UNet {unet['block_out_channels']} x{unet['layers_per_block']}, "
            f"VAE {vae['block_out_channels']}, text encoder {text['hidden_size']} wide x{text['num_hidden_layers']} "
            f"layers, {'CLIP BPE' if self.tokenizer == 'clip' else 'byte-level'} tokenizer of "
            f"{text['vocab_size']} tokens"
        )


# ----------------------------------------------------------------------------------------------- reading


def read_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Every tensor's shape by key, and the safetensors metadata; a safetensors file's tensors are not read."""
    path = Path(path)
    if path.name.lower().endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
            return shapes, dict(handle.metadata() or {})
    import torch

    loaded = _torch_state(path)
    return {k: tuple(v.shape) for k, v in loaded.items() if isinstance(v, torch.Tensor)}, {}


# ----------------------------------------------------------------------------------------------- old CLIP keys


def with_text_model_level(key: str) -> str:
    """``key`` with the ``text_model.`` level A1111 inserts into older SD 1.x files' CLIP keys (others as they are):
    ``cond_stage_model.transformer.encoder.x`` -> ``cond_stage_model.transformer.text_model.encoder.x``."""
    return _TEXT_MODEL + key[len(CLIP_PREFIX) :] if key.startswith(_LEVELLESS_CLIP) else key


def lacks_text_model_level(keys: Iterable[str]) -> bool:
    """Whether a checkpoint's keys have CLIP's weights in the old layout, without the ``text_model.`` level."""
    return any(key.startswith(_LEVELLESS_CLIP) for key in keys)


def text_model_level_keys(keys: Iterable[str]) -> dict[str, str]:
    """Each key as it is once the ``text_model.`` level is in (new key -> key in the file); a ``ValueError`` when
    the file has a weight in both layouts (two keys that would become one)."""
    renamed: dict[str, str] = {}
    for key in keys:
        new = with_text_model_level(key)
        if new in renamed:
            raise ValueError(
                f"its text encoder has {new!r} both with and without the text_model level; it is not a "
                "checkpoint that can be loaded"
            )
        renamed[new] = key
    return renamed


def _safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """A safetensors file's header (JSON) and where its tensor bytes begin."""
    with open(path, "rb") as file:
        raw = file.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path.name} is not a safetensors file: it is too short")
        (length,) = struct.unpack("<Q", raw)
        if length > 100 * 2**20:
            raise ValueError(f"{path.name} is not a safetensors file: its header would be {length} bytes")
        try:
            header = json.loads(file.read(length))
        except ValueError:
            raise ValueError(f"{path.name} is not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path.name} is not a safetensors file: its header is not a JSON object")
    return header, 8 + length


def _write_safetensors_renamed(source: Path, header: dict[str, Any], start: int, target: Path) -> None:
    """``source`` with the CLIP keys of its header renamed; the tensor bytes are copied as they are (their offsets
    are relative to the end of the header, so they still hold)."""
    renamed = text_model_level_keys(k for k in header if k != "__metadata__")
    new_header = {new: header[old] for new, old in renamed.items()}
    if "__metadata__" in header:
        new_header["__metadata__"] = header["__metadata__"]
    body = json.dumps(new_header, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)  # the format allows trailing spaces; writers keep the tensors 8-byte aligned
    with open(source, "rb") as src, open(target, "wb") as dst:
        dst.write(struct.pack("<Q", len(body)))
        dst.write(body)
        src.seek(start)
        shutil.copyfileobj(src, dst, 16 * 2**20)


def _torch_state(path: Path) -> dict[str, Any]:
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # an old (non-zip) torch file cannot be memory-mapped
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    while isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ValueError(f"{path.name} does not hold a state dict")
    return loaded


def _fixed_copy_path(path: Path, cache_dir: Path) -> Path:
    """Where the copy of ``path`` with the text_model level goes: by the file's place, then by its size and
    modification time (a file downloaded anew gets a new copy), under its own name (its suffix says its format)."""
    stat = path.stat()
    place = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    version = hashlib.sha256(f"{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return Path(cache_dir) / "single-file-text-model" / place / version / path.name


def _write_once(target: Path, write: Callable[[Path], None]) -> Path:
    """``write`` a scratch file beside ``target`` and rename it into place; older versions of it are removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".writing-{os.getpid()}-{target.name}")
    try:
        write(scratch)
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)
    for other in target.parent.parent.iterdir():
        if other != target.parent:
            shutil.rmtree(other, ignore_errors=True)
    return target


def text_model_level_inserted(path: Path, cache_dir: Path, note: Callable[[str], None] | None = None) -> Path:
    """``path`` itself, or for an older SD 1.x file whose CLIP keys lack the ``text_model.`` level, a copy of it
    with the level inserted (as A1111 does when it loads one), written once under ``cache_dir``; ``note`` is told
    when a copy is used. diffusers' ``from_single_file`` only knows the layout with the level."""
    path = Path(path)
    target = _fixed_copy_path(path, cache_dir)
    if path.name.lower().endswith(".safetensors"):
        header, start = _safetensors_header(path)
        if not lacks_text_model_level(header):
            return path
        if not target.is_file():
            _write_once(target, lambda scratch: _write_safetensors_renamed(path, header, start, scratch))
    elif not target.is_file():
        state = _torch_state(path)
        if not lacks_text_model_level(state):
            return path
        import torch

        renamed = {new: state[old] for new, old in text_model_level_keys(state).items()}
        _write_once(target, lambda scratch: torch.save(renamed, scratch))
    if note is not None:
        note(
            f"{path.name}: its text encoder's keys lack the text_model level (an older SD 1.x layout); loading a "
            f"copy with it inserted, as A1111 does ({target})"
        )
    return target


def architecture_metadata(folder: Path) -> dict[str, str]:
    """The safetensors metadata that lets a single file made from diffusers ``folder`` load as the folder does.

    Only the config values the weights' shapes cannot tell are recorded
    (``UNREADABLE_KEYS``); a folder without configs gives nothing.
    """
    recorded: dict[str, dict[str, Any]] = {}
    for component, relative in _CONFIG_FILES.items():
        file = Path(folder) / relative
        if not file.is_file():
            continue
        config = json.loads(file.read_text())
        values = {k: config[k] for k in UNREADABLE_KEYS[component] if config.get(k) is not None}
        if values:
            recorded[component] = values
    return {ARCHITECTURE_METADATA_KEY: json.dumps(recorded, sort_keys=True)} if recorded else {}


def _recorded(metadata: dict[str, str] | None) -> dict[str, dict[str, Any]]:
    raw = (metadata or {}).get(ARCHITECTURE_METADATA_KEY)
    if not raw:
        return {}
    try:
        recorded = json.loads(raw)
    except ValueError:
        raise ValueError(f"its safetensors metadata {ARCHITECTURE_METADATA_KEY} is not JSON") from None
    if not isinstance(recorded, dict):
        return {}
    return {
        component: {k: v for k, v in values.items() if k in UNREADABLE_KEYS[component]}
        for component, values in recorded.items()
        if component in UNREADABLE_KEYS and isinstance(values, dict)
    }


# ----------------------------------------------------------------------------------------------- inference


def _indices(shapes: dict[str, Any], prefix: str) -> list[int]:
    """The numbers that follow ``prefix`` in the keys (``prefix`` ends with a dot)."""
    found = set()
    for key in shapes:
        if key.startswith(prefix):
            head = key[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def _shape(shapes: dict[str, tuple[int, ...]], key: str, what: str) -> tuple[int, ...]:
    if key not in shapes:
        raise ValueError(f"it has no {what} ({key}): it is not a Stable Diffusion 1.x checkpoint")
    return shapes[key]


def refuse_unsupported(shapes: dict[str, tuple[int, ...]]) -> None:
    """An UnsupportedArchitecture naming what the checkpoint is, when it is not something this module builds."""
    keys = shapes.keys()

    def having(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if having("conditioner.embedders."):
        raise UnsupportedArchitecture(
            "it is a Stable Diffusion XL (SDXL) checkpoint (conditioner.embedders.*); the runtime generates "
            "with Stable Diffusion 1.x checkpoints"
        )
    if having("cond_stage_model.model."):
        width = shapes.get("cond_stage_model.model.token_embedding.weight", (0, 0))[-1]
        raise UnsupportedArchitecture(
            "it is a Stable Diffusion 2.x checkpoint (OpenCLIP ViT-H text encoder, cond_stage_model.model.*"
            + (f", {width} wide" if width else "")
            + "); without SD_RUNTIME_SINGLE_FILE_CONFIG naming SD 2.x's configs the runtime loads Stable "
            "Diffusion 1.x single files only"
        )
    if having("text_encoders.") or having(UNET_PREFIX + "joint_blocks."):
        raise UnsupportedArchitecture("it is a Stable Diffusion 3 checkpoint; the runtime generates with SD 1.x")
    if having(UNET_PREFIX + "double_blocks.") or having("double_blocks."):
        raise UnsupportedArchitecture("it is a FLUX checkpoint; the runtime generates with Stable Diffusion 1.x")
    if not having(UNET_PREFIX + "input_blocks."):
        raise UnsupportedArchitecture(
            "it has no Stable Diffusion UNet weights (model.diffusion_model.input_blocks.*): it is not a Stable "
            "Diffusion 1.x checkpoint (a LoRA, an embedding, a VAE or a diffusers-layout file?)"
        )
    conv_in = shapes.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if conv_in is not None and len(conv_in) == 4 and conv_in[1] != 4:
        if conv_in[1] == 9:
            raise UnsupportedArchitecture(
                "it is an inpainting checkpoint (its UNet takes 9 input channels); the runtime generates with "
                "text-to-image Stable Diffusion 1.x checkpoints (4 channels)"
            )
        raise UnsupportedArchitecture(
            f"its UNet takes {conv_in[1]} input channels (an instruct-pix2pix or other special model); the "
            "runtime generates with text-to-image Stable Diffusion 1.x checkpoints (4 channels)"
        )
    if having(UNET_PREFIX + "label_emb."):
        raise UnsupportedArchitecture(
            "its UNet is class-conditioned (label_emb: an SD 2.x unCLIP/upscaler or SDXL-style UNet); the runtime "
            "generates with Stable Diffusion 1.x checkpoints"
        )
    if not having(CLIP_PREFIX):
        raise UnsupportedArchitecture(
            "it has no CLIP text encoder (cond_stage_model.transformer.*): the runtime needs the whole Stable "
            "Diffusion 1.x model in one file"
        )
    if not having(VAE_PREFIX):
        raise UnsupportedArchitecture(
            "it has no VAE (first_stage_model.*): the runtime needs the whole Stable Diffusion 1.x model in one file"
        )


def _dividing(preferred: int, widths: list[int]) -> int:
    """``preferred`` if it divides every width, else the largest smaller number that does."""
    return next(n for n in range(preferred, 0, -1) if all(width % n == 0 for width in widths))


def _transformer_depth(shapes: dict[str, Any], prefix: str) -> int:
    return len(_indices(shapes, prefix + "transformer_blocks."))


def infer_unet(shapes: dict[str, tuple[int, ...]], recorded: dict[str, Any]) -> dict[str, Any]:
    """The UNet2DConditionModel config: SD 1.5's, with what the LDM UNet's shapes tell."""
    p = UNET_PREFIX
    config = copy.deepcopy(SD15_UNET_CONFIG)
    input_ids = _indices(shapes, p + "input_blocks.")
    down_ids = [i for i in input_ids if p + f"input_blocks.{i}.0.op.weight" in shapes]
    levels = len(down_ids) + 1
    blocks = max(input_ids)  # input_blocks.0 is conv_in; then per level its layers, and a downsampler between levels
    layers, rest = divmod(blocks - (levels - 1), levels)
    if rest or layers < 1:
        raise ValueError(f"its UNet's {blocks} input blocks do not form {levels} levels of equal depth")
    channels: list[int] = []
    down_types: list[str] = []
    depths: list[int] = []
    for level in range(levels):
        first = 1 + level * (layers + 1)
        channels.append(_shape(shapes, p + f"input_blocks.{first}.0.out_layers.3.weight", "UNet ResNet conv")[0])
        attention = p + f"input_blocks.{first}.1."
        has_attention = p + f"input_blocks.{first}.1.proj_in.weight" in shapes
        down_types.append("CrossAttnDownBlock2D" if has_attention else "DownBlock2D")
        depths.append(_transformer_depth(shapes, attention) if has_attention else 1)
    up_types = []
    for level in range(levels):
        has_attention = p + f"output_blocks.{level * (layers + 1)}.1.proj_in.weight" in shapes
        up_types.append("CrossAttnUpBlock2D" if has_attention else "UpBlock2D")
    if p + "middle_block.1.proj_in.weight" not in shapes:
        raise ValueError("its UNet has no attention in the middle block: it is not a Stable Diffusion 1.x UNet")
    cross = next((v for k, v in sorted(shapes.items()) if k.startswith(p) and k.endswith(".attn2.to_k.weight")), None)
    if cross is None:
        raise ValueError("its UNet has no cross-attention (attn2): it is not a Stable Diffusion 1.x UNet")
    proj_in = shapes[p + "middle_block.1.proj_in.weight"]
    config.update(
        in_channels=_shape(shapes, p + "input_blocks.0.0.weight", "UNet conv_in")[1],
        out_channels=_shape(shapes, p + "out.2.weight", "UNet conv_out")[0],
        block_out_channels=channels,
        layers_per_block=layers,
        down_block_types=down_types,
        up_block_types=up_types,
        cross_attention_dim=cross[1],
        use_linear_projection=len(proj_in) == 2,
        transformer_layers_per_block=depths[0] if len(set(depths)) == 1 else depths,
    )
    time_embed = shapes.get(p + "time_embed.0.weight")
    if time_embed is not None and time_embed[0] != 4 * channels[0]:
        config["time_embedding_dim"] = time_embed[0]
    # Neither heads nor groups are in any shape: SD 1.5's, or for a network whose widths they do not divide
    # (never a real SD 1.x one), the largest number below them that divides every width, so that it loads.
    config["norm_num_groups"] = _dividing(SD15_UNET_CONFIG["norm_num_groups"], channels)
    widths = [c for c, t in zip(channels, down_types, strict=True) if t.startswith("CrossAttn")]
    config["attention_head_dim"] = _dividing(SD15_UNET_CONFIG["attention_head_dim"], widths)
    config.update(recorded)
    return config


def infer_vae(shapes: dict[str, tuple[int, ...]], recorded: dict[str, Any]) -> dict[str, Any]:
    """The AutoencoderKL config: SD 1.5's, with what the LDM VAE's shapes tell."""
    p = VAE_PREFIX
    config = copy.deepcopy(SD15_VAE_CONFIG)
    levels = _indices(shapes, p + "encoder.down.")
    if not levels:
        raise ValueError("its VAE has no encoder blocks (first_stage_model.encoder.down.*)")
    channels = [_shape(shapes, p + f"encoder.down.{i}.block.0.conv1.weight", "VAE ResNet conv")[0] for i in levels]
    conv_in = _shape(shapes, p + "encoder.conv_in.weight", "VAE encoder conv_in")
    config.update(
        in_channels=conv_in[1],
        out_channels=_shape(shapes, p + "decoder.conv_out.weight", "VAE decoder conv_out")[0],
        block_out_channels=channels,
        down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels),
        layers_per_block=len(_indices(shapes, p + "encoder.down.0.block.")),
        latent_channels=_shape(shapes, p + "decoder.conv_in.weight", "VAE decoder conv_in")[1],
        use_quant_conv=p + "quant_conv.weight" in shapes,
        use_post_quant_conv=p + "post_quant_conv.weight" in shapes,
        mid_block_add_attention=any(k.startswith(p + "encoder.mid.attn_1.") for k in shapes),
        norm_num_groups=_dividing(SD15_VAE_CONFIG["norm_num_groups"], channels),
    )
    config.update(recorded)
    return config


def infer_text_encoder(shapes: dict[str, tuple[int, ...]], recorded: dict[str, Any]) -> dict[str, Any]:
    """The CLIPTextConfig: CLIP ViT-L/14's, with what the text encoder's shapes tell."""
    p = _TEXT_MODEL  # infer_architecture put the text_model level into an older file's keys
    vocab, hidden = _shape(shapes, p + "embeddings.token_embedding.weight", "text encoder token embedding")
    positions = _shape(shapes, p + "embeddings.position_embedding.weight", "text encoder position embedding")[0]
    config = copy.deepcopy(SD15_TEXT_ENCODER_CONFIG)
    config.update(
        vocab_size=vocab,
        hidden_size=hidden,
        projection_dim=hidden,
        num_hidden_layers=len(_indices(shapes, p + "encoder.layers.")),
        intermediate_size=_shape(shapes, p + "encoder.layers.0.mlp.fc1.weight", "text encoder MLP")[0],
        max_position_embeddings=positions,
        # CLIP's rule (its text transformer's heads are its width / 64): ViT-L/14's 768 gives 12.
        num_attention_heads=_dividing(max(hidden // 64, 1), [hidden]),
    )
    if vocab < CLIP_VOCAB_SIZE:
        # A byte-level tokenizer's special tokens are its last two ids.
        config.update(bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
    config.update(recorded)
    return config


def infer_architecture(shapes: dict[str, tuple[int, ...]], metadata: dict[str, str] | None = None) -> Architecture:
    """The configs of an SD 1.x single file from its tensors' shapes (``UnsupportedArchitecture`` if it is not one)."""
    refuse_unsupported(shapes)
    if lacks_text_model_level(shapes):  # an older SD 1.x layout: read it as A1111 loads it
        shapes = {new: shapes[old] for new, old in text_model_level_keys(shapes).items()}
    recorded = _recorded(metadata)
    unet = infer_unet(shapes, recorded.get("unet", {}))
    vae = infer_vae(shapes, recorded.get("vae", {}))
    text = infer_text_encoder(shapes, recorded.get("text_encoder", {}))
    if unet["cross_attention_dim"] != text["hidden_size"]:
        raise ValueError(
            f"its UNet attends to {unet['cross_attention_dim']}-wide text features but its text encoder is "
            f"{text['hidden_size']} wide"
        )
    if text["vocab_size"] < BYTE_LEVEL_MIN_VOCAB:
        raise ValueError(f"its text encoder's vocabulary of {text['vocab_size']} tokens fits no known tokenizer")
    tokenizer = "clip" if text["vocab_size"] >= CLIP_VOCAB_SIZE else "byte-level"
    return Architecture(unet, vae, text, copy.deepcopy(SD15_SCHEDULER_CONFIG), tokenizer)


# ----------------------------------------------------------------------------------------------- config folder


def write_config_folder(architecture: Architecture, folder: Path, cache_dir: Path) -> Path:
    """A diffusers config folder (no weights) for ``from_single_file(config=folder)``."""
    folder = Path(folder)
    for name, body in (
        ("model_index.json", SD15_MODEL_INDEX),
        ("unet/config.json", architecture.unet),
        ("vae/config.json", architecture.vae),
        ("text_encoder/config.json", architecture.text_encoder),
        ("scheduler/scheduler_config.json", {"_class_name": "PNDMScheduler", **architecture.scheduler}),
    ):
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(body, indent=2, sort_keys=True))
    text = architecture.text_encoder
    if architecture.tokenizer == "clip":
        write_clip_tokenizer(folder / "tokenizer", cache_dir, text["vocab_size"], text["max_position_embeddings"])
    else:
        write_byte_level_tokenizer(folder / "tokenizer", text["vocab_size"], text["max_position_embeddings"])
    return folder


def config_folder(architecture: Architecture, cache_dir: Path) -> Path:
    """The architecture's config folder under ``cache_dir``, written once (atomically) and reused."""
    root = Path(cache_dir) / "single-file-configs"
    target = root / architecture.key()
    if (target / "model_index.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=".writing-"))
    try:
        write_config_folder(architecture, scratch, cache_dir)
        try:
            os.replace(scratch, target)
        except OSError:
            if not (target / "model_index.json").is_file():  # not a concurrent writer's finished copy
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def prepare(path: Path, name: str, cache_dir: Path) -> tuple[Path, Architecture]:
    """The config folder for single file ``path`` (called ``name`` in messages), and its architecture.

    An architecture this module cannot build raises ``UnsupportedArchitecture``
    (400); weights that do not form an SD 1.x model raise ``ValueError``.
    """
    shapes, metadata = read_shapes(path)
    try:
        architecture = infer_architecture(shapes, metadata)
    except UnsupportedArchitecture as error:
        raise UnsupportedArchitecture(f"checkpoint {name}: {error.message}") from None
    return config_folder(architecture, cache_dir), architecture
