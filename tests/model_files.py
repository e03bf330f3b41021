"""Small model files as the checkpoint types hold them: only their headers are real, as inspection reads them."""

from __future__ import annotations

import io
import json
import pickle
import struct
import tarfile
import zipfile

#: Tensor names (and shapes) each checkpoint type is recognised by.
SD1_SHAPES = {
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
    "first_stage_model.decoder.conv_in.weight": (512, 4, 3, 3),
}
SD2_SHAPES = {
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
    "cond_stage_model.model.token_embedding.weight": (49408, 1024),
}
SDXL_SHAPES = {
    "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
}
#: A diffusers-layout UNet of another width: only its cross-attention tells what it is.
DIFFUSERS_UNET_1024 = {"down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": (320, 1024)}
LORA_SD1_SHAPES = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (320, 4),
}
LORA_SDXL_SHAPES = {"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 1280)}
EMBEDDING_SHAPES = {"emb_params": (2, 768)}
CONTROLNET_SHAPES = {"control_model.input_hint_block.0.weight": (16, 3, 3, 3)}
VAE_SHAPES = {"encoder.conv_in.weight": (128, 3, 3, 3), "decoder.conv_out.weight": (3, 128, 3, 3)}
SHAPES_OF_TYPE = {
    "Stable-diffusion": SD1_SHAPES,
    "Lora": LORA_SD1_SHAPES,
    "embeddings": EMBEDDING_SHAPES,
    "ControlNet": CONTROLNET_SHAPES,
    "VAE": VAE_SHAPES,
    "hypernetworks": {"768": (2,)},
}


def safetensors(shapes: dict[str, tuple[int, ...]], size: int | None = None) -> bytes:
    """A safetensors file of these tensors (one byte of data each), zero-padded to ``size`` bytes."""
    header: dict[str, object] = {}
    for offset, (key, shape) in enumerate(shapes.items()):
        header[key] = {"dtype": "U8", "shape": list(shape), "data_offsets": [offset, offset + 1]}
    body = json.dumps(header).encode()
    content = struct.pack("<Q", len(body)) + body + bytes(len(shapes))
    return content if size is None else content + bytes(size - len(content))


def pickled(size: int | None = None) -> bytes:
    """An old (pickle) torch file."""
    content = pickle.dumps({"state_dict": {}}, protocol=2)
    return content if size is None else content + bytes(size - len(content))


def torch_zip() -> bytes:
    """A torch.save zip: ``archive/data.pkl`` inside."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
    return buffer.getvalue()


def tar_of(members: dict[str, bytes], mode: str = "w") -> bytes:
    """A tar (``w:gz`` for a compressed one) holding these files, as the WebUI extension uploads a model."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode, format=tarfile.PAX_FORMAT) as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def model_file(filename: str, checkpoint_type: str = "Stable-diffusion", size: int | None = None) -> bytes:
    """A file of ``filename``'s format that passes as ``checkpoint_type``."""
    if filename.endswith((".ckpt", ".pt", ".pth", ".bin")):
        return pickled(size)
    return safetensors(SHAPES_OF_TYPE[checkpoint_type], size)
