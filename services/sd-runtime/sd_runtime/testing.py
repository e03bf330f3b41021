"""Test support: tiny, randomly initialised Stable Diffusion models built offline.

Tests must never download weights, so they build the models they need here:
a Stable Diffusion pipeline with the real SD 1.x architecture shrunk to about
1.5 million parameters (UNet with cross-attention and two layers per block,
4-level VAE with the real 8x downscale, CLIP text encoder, byte-level BPE
tokenizer), and the
add-ons the runtime loads on top of it (a kohya-style LoRA, an A1111
textual-inversion embedding, an A1111 hypernetwork, a ControlNet). Other teams' end-to-end tests can
upload these to their emulated S3 and run real inference on the CPU;
``result_files`` says where a job's files go, as inference-dispatcher names them.

Everything here is deterministic for a given ``seed``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sd_runtime.convert import CONTROLNET_PREFIX, controlnet_folder_to_ldm, pipeline_folder_to_ldm, read_weights
from sd_runtime.single_file import SD15_SCHEDULER_CONFIG, architecture_metadata
from sd_runtime.tokenizer_files import bytes_to_unicode, write_byte_level_tokenizer  # noqa: F401 (re-exported)
from sdmw_contracts.runtime import ResultFiles

#: The text encoder's width: the UNet's cross-attention dim and embeddings' vector size.
TINY_HIDDEN = 32

TINY_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [32, 32, 64],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": TINY_HIDDEN,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
}
TINY_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [8, 8, 16, 16],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "norm_num_groups": 8,
    "sample_size": 64,
    "scaling_factor": 0.18215,
}


def write_tiny_tokenizer(path: Path, vocab_size: int | None = None) -> Path:
    """A CLIP tokenizer folder: every byte as a token and as a word end, and CLIP's two special tokens.

    With no merges, every word is spelled out byte by byte; that is enough to
    tokenize any prompt. ``vocab_size`` pads the vocabulary with unused
    tokens (e.g. 49408 to match the real CLIP embedding table). The runtime
    gives single-file checkpoints whose text encoder has a vocabulary other
    than CLIP's the same tokenizer (``sd_runtime.tokenizer_files``).
    """
    return write_byte_level_tokenizer(path, vocab_size)


def build_tiny_pipeline(seed: int = 0):
    """A StableDiffusionPipeline with tiny random weights (float32, CPU)."""
    import tempfile

    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**TINY_UNET_CONFIG)
    vae = AutoencoderKL(**TINY_VAE_CONFIG)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = CLIPTokenizer.from_pretrained(write_tiny_tokenizer(Path(scratch)))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TINY_HIDDEN,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    return assemble_pipeline(unet, vae, text_encoder, tokenizer)


def assemble_pipeline(unet: Any, vae: Any, text_encoder: Any, tokenizer: Any) -> Any:
    """A Stable Diffusion pipeline from its parts, with SD 1.5's scheduler and no safety checker."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_tiny_pipeline_dir(path: Path, seed: int = 0) -> Path:
    """A diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)."""
    path = Path(path)
    build_tiny_pipeline(seed).save_pretrained(path, safe_serialization=True)
    return path


def write_tiny_single_file(pipeline_dir: Path, path: Path) -> Path:
    """The folder's weights as one A1111-style ``.safetensors`` checkpoint (LDM key layout).

    Its metadata records the config values the weights' shapes cannot tell
    (``sd_runtime.single_file.architecture_metadata``: the tiny model's 4
    attention heads and 8 GroupNorm groups), so it loads with no
    ``SD_RUNTIME_SINGLE_FILE_CONFIG`` exactly as the folder does; a real SD
    1.x checkpoint needs no such metadata (SD 1.5's values are the defaults).
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in pipeline_folder_to_ldm(Path(pipeline_dir)).items()}
    save_file(state, str(path), metadata={"format": "pt", **architecture_metadata(Path(pipeline_dir))})
    return path


def _kohya_name(prefix: str, module: str) -> str:
    return f"{prefix}_{module.replace('.', '_')}"


def build_tiny_lora(pipeline_dir: Path, path: Path, seed: int = 1, rank: int = 4, scale: float = 0.5) -> Path:
    """A kohya/A1111-format LoRA for the tiny pipeline: attention projections of the UNet and text encoder.

    Both halves are random (a trained LoRA's up-weights start at zero), so the
    LoRA visibly changes the output.
    """
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    pipeline_dir = Path(pipeline_dir)
    targets: list[tuple[str, tuple[int, int]]] = []
    for key, value in read_weights(pipeline_dir / "unet").items():
        if key.endswith((".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight")):
            targets.append((_kohya_name("lora_unet", key[: -len(".weight")]), tuple(value.shape)))
    for key, value in read_weights(pipeline_dir / "text_encoder").items():
        if key.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight")):
            module = key[: -len(".weight")]
            module = module if module.startswith("text_model.") else f"text_model.{module}"
            targets.append((_kohya_name("lora_te", module), tuple(value.shape)))
    state: dict[str, Any] = {}
    for name, (out_features, in_features) in targets:
        state[f"{name}.lora_down.weight"] = torch.randn(rank, in_features, generator=generator) * scale
        state[f"{name}.lora_up.weight"] = torch.randn(out_features, rank, generator=generator) * scale
        state[f"{name}.alpha"] = torch.tensor(float(rank))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def build_tiny_embedding(path: Path, vectors: int = 2, seed: int = 2, scale: float = 1.0) -> Path:
    """An A1111 textual-inversion embedding (``emb_params``, one row per vector) for the tiny text encoder."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(vectors, TINY_HIDDEN, generator=generator) * scale}, str(path))
    return path


#: The context widths of the tiny UNet's attention layers: the text context and the self-attention of its
#: 32-channel levels (both 32), and its 64-channel middle block.
TINY_ATTENTION_DIMS = (TINY_HIDDEN, 64)


def build_tiny_hypernetwork(
    path: Path,
    dims: tuple[int, ...] = TINY_ATTENTION_DIMS,
    seed: int = 5,
    scale: float = 0.3,
    layer_structure: tuple[float, ...] = (1, 2, 1),
    activation_func: str | None = "relu",
    is_layer_norm: bool = False,
    activate_output: bool = False,
    dropout_structure: tuple[float, ...] | None = None,
    metadata: dict[str, Any] | None = None,
    without: tuple[str, ...] = (),
) -> Path:
    """An A1111 hypernetwork file for the tiny pipeline: ``torch.save`` of the dict A1111's
    ``Hypernetwork.save`` writes (``{dim: (k_state, v_state)}`` and its metadata), each module's
    ``linear`` Sequential laid out as A1111's ``HypernetworkModule`` lays it out (Linear, then the
    activation unless it is the last layer and ``activate_output`` is off, then LayerNorm, then Dropout
    where ``dropout_structure`` says).

    The weights are random with std ``scale`` (A1111 starts from std 0.01 and zero biases, which would
    barely change a picture), so the hypernetwork visibly changes the output. ``metadata`` is merged
    last and the keys in ``without`` are left out, so a test can make a file declare what its weights do
    not have, or be as old files are.
    """
    import torch

    activation_modules = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "mish": torch.nn.Mish}
    generator = torch.Generator().manual_seed(seed)
    structure = list(layer_structure)
    dropout = list(dropout_structure) if dropout_structure is not None else [0.0] * len(structure)

    def module_state(dim: int) -> dict[str, Any]:
        layers: list[torch.nn.Module] = []
        for i in range(len(structure) - 1):
            layers.append(torch.nn.Linear(int(dim * structure[i]), int(dim * structure[i + 1])))
            if activation_func not in (None, "linear") and (i < len(structure) - 2 or activate_output):
                layers.append(activation_modules[activation_func]())
            if is_layer_norm:
                layers.append(torch.nn.LayerNorm(int(dim * structure[i + 1])))
            if dropout[i + 1] > 0:
                layers.append(torch.nn.Dropout(p=dropout[i + 1]))
        holder = torch.nn.Module()
        holder.linear = torch.nn.Sequential(*layers)
        return {
            key: torch.randn(value.shape, generator=generator) * scale for key, value in holder.state_dict().items()
        }

    data: dict[Any, Any] = {dim: (module_state(dim), module_state(dim)) for dim in dims}
    data.update(
        {
            "step": 0,
            "name": Path(path).stem,
            "layer_structure": structure,
            "activation_func": activation_func,
            "is_layer_norm": is_layer_norm,
            "weight_initialization": "Normal",
            "sd_checkpoint": None,
            "sd_checkpoint_name": None,
            "activate_output": activate_output,
            "use_dropout": any(p > 0 for p in dropout),
            "dropout_structure": dropout,
            "last_layer_dropout": False,
            "optional_info": None,
            **(metadata or {}),
        }
    )
    for key in without:
        data.pop(key, None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path


def build_tiny_controlnet(pipeline_dir: Path, path: Path, seed: int = 3, single_file: bool = False) -> Path:
    """A ControlNet for the tiny UNet: a diffusers folder, or with ``single_file`` an original-layout file.

    The zero convolutions that a fresh ControlNet starts with are given random
    weights, so the control image really steers the output.
    """
    import tempfile

    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(Path(pipeline_dir) / "unet")
    controlnet = ControlNetModel.from_unet(unet)
    with torch.no_grad():
        for block in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            block.weight.normal_(0, 0.2)
    path = Path(path)
    if not single_file:
        controlnet.save_pretrained(path, safe_serialization=True)
        return path
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as scratch:
        controlnet.save_pretrained(scratch, safe_serialization=True)
        state = controlnet_folder_to_ldm(Path(scratch))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({CONTROLNET_PREFIX + k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def write_training_images(
    folder: Path, count: int = 4, size: int = 48, seed: int = 4, captions: list[str | None] | None = None
) -> list[Path]:
    """``count`` small PNGs (coloured squares on noise) for training jobs, each with ``<stem>.txt`` when
    ``captions`` gives it one; deterministic for a given ``seed``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(count):
        pixels = rng.integers(0, 64, size=(size, size + 8 * (index % 2), 3), dtype=np.uint8)
        colour = rng.integers(128, 256, size=3, dtype=np.uint8)
        pixels[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = colour
        path = folder / f"image-{index:02d}.png"
        Image.fromarray(pixels).save(path)
        caption = captions[index] if captions is not None and index < len(captions) else None
        if caption is not None:
            path.with_suffix(".txt").write_text(caption)
        written.append(path)
    return written


def write_extension_upload(
    folder: Path,
    model_name: str,
    db_config: dict[str, Any],
    data: dict[str, Path],
    class_data: dict[str, Path] | None = None,
) -> Path:
    """What the WebUI's AWS extension uploads with a training job: ``db_config.tar`` (holding
    ``models/sagemaker_dreambooth/<model_name>/db_config_cloud.json``), a ``data-<dir>.tar`` of each
    concept's image folder in ``data`` and a ``class-data-<dir>.tar`` of each in ``class_data``,
    keyed by the ``<dir>`` the db_config's concepts name."""
    import io
    import tarfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    body = json.dumps(db_config).encode()
    with tarfile.open(folder / "db_config.tar", "w") as tar:
        info = tarfile.TarInfo(f"models/sagemaker_dreambooth/{model_name}/db_config_cloud.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    for prefix, sources in (("data", data), ("class-data", class_data or {})):
        for key, images in sources.items():
            with tarfile.open(folder / f"{prefix}-{key}.tar", "w") as tar:
                tar.add(images, arcname=key.replace("-", "/"))
    return folder


#: The tiny BLIP's WordPiece vocabulary: BERT's special tokens, BLIP's decoder start token, some words,
#: and every letter and digit (alone and as a word piece), so any text tokenizes without [UNK].
_BLIP_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")
_BLIP_WORDS = (
    "a an the of on in with and next to at by cat dog panda bird man woman girl boy people car house tree "
    "flower table chair grass water sky sea mountain city street room red blue green white black small big "
    "photo painting picture drawing sitting standing lying holding wearing near front"
)
_BLIP_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789"
TINY_BLIP_IMAGE_SIZE = 32


def build_tiny_blip(path: Path, seed: int = 0) -> Path:
    """A saved BLIP captioning model (``BlipForConditionalGeneration``) and its ``BlipProcessor``, tiny and
    random, built offline: what ``SD_RUNTIME_CAPTION_MODEL`` names. Its captions are gibberish made of
    real words from its vocabulary."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipProcessor
    from transformers.models.blip import BlipImageProcessor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokens = list(
        dict.fromkeys(
            [*_BLIP_SPECIAL, *_BLIP_WORDS.split(), *_BLIP_CHARACTERS, ".", ",", *("##" + c for c in _BLIP_CHARACTERS)]
        )
    )
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=64)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    image_processor = BlipImageProcessor(size={"height": TINY_BLIP_IMAGE_SIZE, "width": TINY_BLIP_IMAGE_SIZE})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = BlipConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": TINY_BLIP_IMAGE_SIZE,
            "patch_size": 8,
        },
        text_config={
            "vocab_size": len(tokens),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "encoder_hidden_size": 32,
            "max_position_embeddings": 64,
            "pad_token_id": vocab["[PAD]"],
            "bos_token_id": vocab["[DEC]"],
            "sep_token_id": vocab["[SEP]"],
            "eos_token_id": vocab["[SEP]"],
        },
        projection_dim=32,
        image_text_hidden_size=32,
    )
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).eval().save_pretrained(path, safe_serialization=True)
    processor.save_pretrained(path)
    return path


def result_files(bucket: str, job_id: str, image_count: int) -> ResultFiles:
    """Where a job's files go, named as inference-dispatcher names them: ``s3://<bucket>/out/<id>/result/``
    holding ``image_<n>.jpg`` and ``<id>_param.json``."""
    return ResultFiles(
        prefix=f"s3://{bucket}/out/{job_id}/result/",
        images=[f"image_{index}.jpg" for index in range(image_count)],
        parameters=f"{job_id}_param.json",
    )
