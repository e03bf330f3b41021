"""Judging a checkpoint's files from ranges of their bytes: formats, tensor names, architectures."""

from __future__ import annotations

import os
import struct

import pytest

from asset_registry.inspection import NotUsable, StoredFile, inspect_checkpoint
from tests.model_files import (
    CONTROLNET_SHAPES,
    DIFFUSERS_UNET_1024,
    EMBEDDING_SHAPES,
    LORA_SD1_SHAPES,
    LORA_SDXL_SHAPES,
    SD1_SHAPES,
    SD2_SHAPES,
    SDXL_SHAPES,
    VAE_SHAPES,
    pickled,
    safetensors,
    tar_of,
    torch_zip,
)


class Reads:
    """Files in memory, counting the bytes inspection asks for."""

    def __init__(self) -> None:
        self.bytes_read = 0

    def file(self, name: str, content: bytes) -> StoredFile:
        def read(start: int, length: int) -> bytes:
            self.bytes_read += length
            return content[start : start + length]

        return StoredFile(name=name, size=len(content), read=read)


def inspect(checkpoint_type: str, **files: bytes):
    reads = Reads()
    return inspect_checkpoint(
        checkpoint_type, [reads.file(name.replace("__", "."), body) for name, body in files.items()]
    )


@pytest.mark.parametrize(
    ("shapes", "architecture"),
    [(SD1_SHAPES, "sd1"), (SD2_SHAPES, "sd2"), (SDXL_SHAPES, "sdxl"), (DIFFUSERS_UNET_1024, "sd2")],
    ids=["sd1-clip", "sd2-openclip", "sdxl-conditioner", "unet-only-by-context-width"],
)
def test_a_stable_diffusion_file_tells_its_architecture(shapes, architecture):
    assert inspect("Stable-diffusion", model__safetensors=safetensors(shapes)).architecture == architecture


@pytest.mark.parametrize(
    ("shapes", "architecture"),
    [(LORA_SD1_SHAPES, "sd1"), (LORA_SDXL_SHAPES, "sdxl"), ({"lora_unet_x.alpha": ()}, None)],
)
def test_a_lora_tells_its_architecture_when_its_keys_do(shapes, architecture):
    assert inspect("Lora", lora__safetensors=safetensors(shapes)).architecture == architecture


@pytest.mark.parametrize(
    ("checkpoint_type", "shapes"),
    [("embeddings", EMBEDDING_SHAPES), ("ControlNet", CONTROLNET_SHAPES), ("VAE", VAE_SHAPES)],
)
def test_each_type_is_recognised_by_its_tensor_names(checkpoint_type, shapes):
    assert inspect(checkpoint_type, x__safetensors=safetensors(shapes)).architecture is None


def test_random_bytes_are_not_a_safetensors_file():
    with pytest.raises(NotUsable, match=r"^x.safetensors: not a safetensors file: its header length [\d,]+ is more"):
        inspect("Stable-diffusion", x__safetensors=os.urandom(4096))


def test_a_header_that_is_not_json_is_said():
    content = struct.pack("<Q", 10) + b"not json!!" + bytes(100)
    with pytest.raises(NotUsable, match=r"^x.safetensors: not a safetensors file: its header is not JSON$"):
        inspect("Lora", x__safetensors=content)


def test_weights_of_another_type_are_refused():
    with pytest.raises(NotUsable, match=r"^lora.safetensors: it holds no Stable-diffusion weights"):
        inspect("Stable-diffusion", lora__safetensors=safetensors(LORA_SD1_SHAPES))
    with pytest.raises(NotUsable, match="it holds no VAE weights"):
        inspect("VAE", emb__safetensors=safetensors(EMBEDDING_SHAPES))


def test_torch_files_must_be_a_zip_or_a_pickle():
    assert inspect("Stable-diffusion", a__ckpt=pickled(), b__pt=torch_zip()).architecture is None
    with pytest.raises(NotUsable, match=r"^c.pth: not a PyTorch file: it is neither a zip nor a pickle$"):
        inspect("hypernetworks", c__pth=b"hello world")


def test_a_checkpoint_with_no_model_file_is_refused():
    with pytest.raises(NotUsable, match="no model file"):
        inspect("Lora", notes__txt=b"hello")


def test_companion_files_are_not_judged():
    assert (
        inspect("Stable-diffusion", m__safetensors=safetensors(SD1_SHAPES), m__yaml=b"model: x").architecture == "sd1"
    )


def test_a_tar_named_like_the_model_is_judged_by_the_model_inside():
    tar = tar_of(
        {"models/Stable-diffusion/m.yaml": b"x", "models/Stable-diffusion/m.safetensors": safetensors(SDXL_SHAPES)}
    )
    assert inspect("Stable-diffusion", m__safetensors=tar).architecture == "sdxl"
    bad = tar_of({"models/Lora/l.safetensors": os.urandom(2000)})
    with pytest.raises(NotUsable, match=r"^l.safetensors \(models/Lora/l.safetensors in the tar\): not a safetensors"):
        inspect("Lora", l__safetensors=bad)


def test_a_plain_tar_is_read_by_ranges_not_whole():
    big = safetensors(SD1_SHAPES, size=8 * 2**20)
    reads = Reads()
    found = inspect_checkpoint("Stable-diffusion", [reads.file("m.safetensors", tar_of({"m.safetensors": big}))])
    assert found.architecture == "sd1"
    assert reads.bytes_read < 2**20


def test_a_compressed_tar_is_read_up_to_its_model():
    tar = tar_of({"emb.pt": pickled()}, mode="w:gz")
    assert inspect("embeddings", emb__pt=tar).architecture is None
    with pytest.raises(NotUsable, match="a tar with no model file"):
        inspect("embeddings", emb__pt=tar_of({"readme.txt": b"hi"}, mode="w:gz"))


def test_a_diffusers_folder_needs_a_json_index_and_well_formed_weights():
    folder = {
        "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}',
        "unet/config.json": b'{"cross_attention_dim": 768}',
        "unet/diffusion_pytorch_model.safetensors": safetensors(DIFFUSERS_UNET_1024),
    }
    reads = Reads()
    files = [reads.file(name, body) for name, body in folder.items()]
    assert inspect_checkpoint("Stable-diffusion", files).architecture == "sd1"
    broken = [*files[:2], reads.file("unet/diffusion_pytorch_model.safetensors", b"\x00" * 3)]
    with pytest.raises(NotUsable, match=r"^unet/diffusion_pytorch_model.safetensors: not a safetensors file"):
        inspect_checkpoint("Stable-diffusion", broken)
    with pytest.raises(NotUsable, match=r"^model_index.json: not JSON$"):
        inspect_checkpoint("Stable-diffusion", [reads.file("model_index.json", b"{oops")])


def test_the_runtimes_own_tiny_models_pass_as_their_types(tmp_path):
    """What the e2e tests upload and sd-runtime writes (tiny, random, real formats) is never refused."""
    pytest.importorskip("torch")
    from sd_runtime import testing

    reads = Reads()

    def files_of(path) -> list[StoredFile]:
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        root = path if path.is_dir() else path.parent
        return [reads.file(str(p.relative_to(root)), p.read_bytes()) for p in paths]

    pipeline = testing.build_tiny_pipeline_dir(tmp_path / "pipeline")
    made = {
        "Stable-diffusion": [pipeline, testing.write_tiny_single_file(pipeline, tmp_path / "single.safetensors")],
        "Lora": [testing.build_tiny_lora(pipeline, tmp_path / "lora.safetensors")],
        "embeddings": [testing.build_tiny_embedding(tmp_path / "emb.safetensors")],
        "hypernetworks": [testing.build_tiny_hypernetwork(tmp_path / "hyper.pt")],
        "ControlNet": [
            testing.build_tiny_controlnet(pipeline, tmp_path / "controlnet"),
            testing.build_tiny_controlnet(pipeline, tmp_path / "cn.safetensors", single_file=True),
        ],
    }
    for checkpoint_type, paths in made.items():
        for path in paths:
            inspect_checkpoint(checkpoint_type, files_of(path))
    assert inspect_checkpoint("Stable-diffusion", files_of(made["Stable-diffusion"][1])).architecture == "sd1"
