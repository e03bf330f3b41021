"""Whether a checkpoint's files are what its type says, read from S3 in small ranges, never whole.

A file is judged by its first bytes and, for ``.safetensors``, by its header (an 8-byte little-endian
length, then JSON naming every tensor with its shape): the tensor names tell a UNet from a LoRA, an
embedding, a ControlNet or a VAE, and a Stable-diffusion checkpoint's text encoder and cross-attention
width tell SD 1.x, 2.x and SDXL apart. Torch files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) are only
checked to be a zip (PyTorch's format) or a pickle: reading their tensor names means unpickling, which
this service never does (nor imports torch). The WebUI extension uploads each model as a plain tar named
like the model (``x.safetensors``), so a tar is recognised by its content and the model files in it are
judged the same way, at their offsets in the object. A diffusers folder is recognised by its
``model_index.json``.

Everything here is pure over ``ReadRange`` (bytes of an object by offset), so tests need no S3.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sdmw_contracts.events.assets import DIFFUSERS_INDEX

#: ``read(start, length)``: up to ``length`` bytes of an object from ``start``.
ReadRange = Callable[[int, int], bytes]

WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
#: The safetensors format caps its header at 100 MB; an SD checkpoint's is a few hundred KB.
MAX_HEADER_BYTES = 100_000_000
#: How much of a compressed tar may be read looking for the model in it (it cannot be read by ranges).
MAX_STREAMED_BYTES = 512 * 2**20
#: A JSON config of a diffusers folder larger than this is no config.
MAX_CONFIG_BYTES = 2**20
#: What a range request fetches at least, so that walking a tar's member headers costs few requests.
READ_AHEAD_BYTES = 256 * 1024

#: Tensor-name markers of each checkpoint type; hypernetworks have no common naming, so any tensors do.
TYPE_MARKERS: dict[str, tuple[str, ...]] = {
    "Stable-diffusion": ("model.diffusion_model.", "down_blocks."),
    "Lora": ("lora_", ".hada_w", ".lokr_w"),
    "embeddings": ("emb_params", "string_to_param", "clip_l", "clip_g"),
    "ControlNet": ("control_model.", "controlnet_", "input_hint_block"),
    "VAE": ("encoder.", "decoder.", "first_stage_model."),
}
#: The first bytes of gzip, bzip2 and xz: a compressed tar, if anything.
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
#: Cross-attention context width -> architecture (the text encoder's output: CLIP-L, OpenCLIP-H, both of SDXL's).
CONTEXT_WIDTHS = {768: "sd1", 1024: "sd2", 2048: "sdxl"}


class NotUsable(ValueError):
    """The file is not what the checkpoint's type says; the message names the file and says why."""


@dataclass(frozen=True)
class StoredFile:
    """``name`` tells the format (its suffix); ``label`` is how errors name it (a tar's member: with its tar)."""

    name: str
    size: int
    read: ReadRange
    shown_as: str | None = None

    @property
    def label(self) -> str:
        return self.shown_as or self.name


@dataclass(frozen=True)
class Inspection:
    """What the files turned out to be: the architecture when the tensors tell it."""

    architecture: str | None = None


# ---------------------------------------------------------------- the checkpoint


def inspect_checkpoint(checkpoint_type: str, files: list[StoredFile]) -> Inspection:
    """The checkpoint's files judged for ``checkpoint_type``; NotUsable naming the first bad one."""
    if any(file.name == DIFFUSERS_INDEX for file in files):
        return _inspect_diffusers_folder(checkpoint_type, files)
    architectures: list[str] = []
    weights = 0
    for file in files:
        for found in _inspect_file(checkpoint_type, file):
            weights += 1
            if found:
                architectures.append(found)
    if weights == 0:
        names = ", ".join(file.label for file in files)
        raise NotUsable(f"{names}: no model file (.safetensors, .ckpt, .pt, .pth, .bin or a tar holding one)")
    return Inspection(architecture=_one_architecture(architectures))


def _one_architecture(found: list[str]) -> str | None:
    known = sorted(set(found) - {"unknown"})
    if len(known) == 1:
        return known[0]
    return "unknown" if found else None


def _inspect_file(checkpoint_type: str, file: StoredFile) -> list[str | None]:
    """One entry per model file found (the file itself, or those in a tar): its architecture, if told."""
    start = file.read(0, 512)
    if _is_plain_tar(start):
        return _inspect_plain_tar(checkpoint_type, file)
    if start.startswith(COMPRESSED_MAGIC):
        return _inspect_compressed_tar(checkpoint_type, file)
    name = file.name.lower()
    if name.endswith(".safetensors"):
        return [_inspect_safetensors(checkpoint_type, file)]
    if name.endswith(TORCH_SUFFIXES):
        _check_torch_file(file.label, start)
        return [None]
    return []  # a companion file (a .yaml config, a preview image): not weights, not judged


# ---------------------------------------------------------------- safetensors


def safetensors_header(name: str, size: int, read: ReadRange) -> dict[str, Any]:
    """The file's header (tensor name -> dtype, shape, offsets); NotUsable saying why it is none."""
    prefix = f"{name}: not a safetensors file"
    raw = read(0, 8)
    if len(raw) < 8:
        raise NotUsable(f"{prefix}: it is {size} bytes, shorter than a header length")
    (length,) = struct.unpack("<Q", raw)
    if length > MAX_HEADER_BYTES or 8 + length > size:
        raise NotUsable(
            f"{prefix}: its header length {length:,} is more than "
            + (f"the format's {MAX_HEADER_BYTES:,} bytes" if length > MAX_HEADER_BYTES else f"its {size:,} bytes")
        )
    try:
        header = json.loads(read(8, length))
    except ValueError:
        raise NotUsable(f"{prefix}: its header is not JSON") from None
    if not isinstance(header, dict) or not all(
        isinstance(entry, dict) and "shape" in entry for key, entry in header.items() if key != "__metadata__"
    ):
        raise NotUsable(f"{prefix}: its header does not describe tensors")
    return header


def _inspect_safetensors(checkpoint_type: str, file: StoredFile) -> str | None:
    header = safetensors_header(file.label, file.size, file.read)
    shapes = {key: tuple(entry["shape"]) for key, entry in header.items() if key != "__metadata__"}
    if not shapes:
        raise NotUsable(f"{file.label}: it holds no tensors")
    markers = TYPE_MARKERS.get(checkpoint_type)
    if markers and not _has_markers(checkpoint_type, shapes, markers):
        raise NotUsable(
            f"{file.label}: it holds no {checkpoint_type} weights (no tensor named like {' or '.join(markers)})"
        )
    if checkpoint_type == "Stable-diffusion":
        return architecture_of(shapes)
    if checkpoint_type == "Lora":
        found = lora_architecture_of(shapes)
        return found if found != "unknown" else None
    return None


def _has_markers(checkpoint_type: str, shapes: dict[str, tuple[int, ...]], markers: tuple[str, ...]) -> bool:
    if checkpoint_type == "VAE":  # a VAE's own names begin with its halves; elsewhere they are inside a UNet's
        return any(key.startswith(markers) for key in shapes)
    return any(marker in key for key in shapes for marker in markers)


def architecture_of(shapes: dict[str, tuple[int, ...]]) -> str:
    """SD 1.x, 2.x or SDXL, from the text encoder's names, else from the UNet's cross-attention width."""
    if _any_prefix(shapes, "conditioner.embedders."):
        return "sdxl"
    if _any_prefix(shapes, "cond_stage_model.model."):
        return "sd2"
    if _any_prefix(shapes, "cond_stage_model.transformer."):
        return "sd1"
    return CONTEXT_WIDTHS.get(_context_width(shapes, ("attn2.to_k.weight",)), "unknown")


def lora_architecture_of(shapes: dict[str, tuple[int, ...]]) -> str:
    """SDXL LoRAs train two text encoders (``lora_te1_``/``lora_te2_``); else the width of ``attn2``'s key input."""
    if _any_prefix(shapes, "lora_te1_") or _any_prefix(shapes, "lora_te2_"):
        return "sdxl"
    return CONTEXT_WIDTHS.get(_context_width(shapes, ("lora_down.weight", "lora_A.weight")), "unknown")


def _context_width(shapes: dict[str, tuple[int, ...]], endings: tuple[str, ...]) -> int:
    """The input width of a cross-attention key projection (its weight is [out, context])."""
    for key, shape in shapes.items():
        if "attn2" in key and "to_k" in key and key.endswith(endings) and len(shape) == 2:
            return shape[-1]
    return 0


def _any_prefix(shapes: dict[str, Any], prefix: str) -> bool:
    return any(key.startswith(prefix) for key in shapes)


# ---------------------------------------------------------------- torch files


def _check_torch_file(name: str, start: bytes) -> None:
    """PyTorch writes a zip (``torch.save`` since 1.6) or, before that, a pickle (protocol 2 or later)."""
    if start.startswith(b"PK\x03\x04"):
        return
    if len(start) >= 2 and start[0] == 0x80 and 2 <= start[1] <= 5:
        return
    raise NotUsable(f"{name}: not a PyTorch file: it is neither a zip nor a pickle")


# ---------------------------------------------------------------- tar archives


def _is_plain_tar(start: bytes) -> bool:
    """POSIX and GNU tars say ``ustar`` at offset 257 of their first header."""
    return len(start) >= 262 and start[257:262] == b"ustar"


def _inspect_plain_tar(checkpoint_type: str, file: StoredFile) -> list[str | None]:
    """Each model file in the tar, read at its offset in the object; only member headers are read besides."""
    try:
        with tarfile.open(fileobj=RangedFile(file.read, file.size), mode="r:") as archive:
            members = [member for member in archive if member.isfile() and _is_weights(member.name)]
    except tarfile.TarError as error:
        raise NotUsable(f"{file.label}: a tar that cannot be read: {error}") from None
    if not members:
        raise NotUsable(f"{file.label}: a tar with no model file in it")
    return [
        found
        for member in members
        for found in _inspect_file(checkpoint_type, _member_file(file, member.name, member.offset_data, member.size))
    ]


def _member_file(archive: StoredFile, name: str, offset: int, size: int) -> StoredFile:
    def read(start: int, length: int) -> bytes:
        return archive.read(offset + start, max(0, min(length, size - start)))

    return StoredFile(name=name, size=size, read=read, shown_as=_in_tar(archive, name))


def _in_tar(archive: StoredFile, name: str) -> str:
    return f"{archive.label} ({name} in the tar)"


def _inspect_compressed_tar(checkpoint_type: str, file: StoredFile) -> list[str | None]:
    """A compressed tar is read from its start until the first model file's header (at most MAX_STREAMED_BYTES)."""
    source = RangedFile(file.read, file.size, budget=MAX_STREAMED_BYTES)
    try:
        with tarfile.open(fileobj=source, mode="r|*") as archive:
            for member in archive:
                if member.isfile() and _is_weights(member.name):
                    stream = archive.extractfile(member)
                    assert stream is not None  # a regular file always has a stream
                    head = _stream_head(stream, member.name, member.size, _in_tar(file, member.name))
                    return _inspect_file(checkpoint_type, head)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise NotUsable(f"{file.label}: a compressed tar that cannot be read: {error}") from None
    except ReadBudgetSpent:
        raise NotUsable(
            f"{file.label}: a compressed tar with no model file in its first {MAX_STREAMED_BYTES // 2**20} MiB"
        ) from None
    raise NotUsable(f"{file.label}: a tar with no model file in it")


def _stream_head(stream: Any, name: str, size: int, shown_as: str) -> StoredFile:
    """The start of a member read from a stream: enough for its safetensors header, or its magic bytes."""
    head = stream.read(512)
    if name.lower().endswith(".safetensors") and len(head) >= 8:
        (length,) = struct.unpack("<Q", head[:8])
        if length <= MAX_HEADER_BYTES and 8 + length <= size:
            head += stream.read(8 + length - len(head))
    return StoredFile(name=name, size=size, read=lambda start, length: head[start : start + length], shown_as=shown_as)


def _is_weights(name: str) -> bool:
    return name.lower().endswith(WEIGHT_SUFFIXES)


# ---------------------------------------------------------------- diffusers folders


def _inspect_diffusers_folder(checkpoint_type: str, files: list[StoredFile]) -> Inspection:
    """``model_index.json`` must be a JSON object and each weight file of the right format; the UNet's config
    tells the architecture."""
    by_name = {file.name: file for file in files}
    index = _json_file(by_name[DIFFUSERS_INDEX])
    for file in files:
        if file.name.lower().endswith(".safetensors"):
            safetensors_header(file.name, file.size, file.read)
        elif file.name.lower().endswith(TORCH_SUFFIXES):
            _check_torch_file(file.name, file.read(0, 8))
    if checkpoint_type != "Stable-diffusion":
        return Inspection()
    if "XL" in str(index.get("_class_name", "")):
        return Inspection(architecture="sdxl")
    unet_config = by_name.get("unet/config.json")
    width = _json_file(unet_config).get("cross_attention_dim") if unet_config else None
    return Inspection(architecture=CONTEXT_WIDTHS.get(width, "unknown") if isinstance(width, int) else "unknown")


def _json_file(file: StoredFile) -> dict[str, Any]:
    if file.size > MAX_CONFIG_BYTES:
        raise NotUsable(f"{file.name}: {file.size:,} bytes is too large for a diffusers config")
    try:
        document = json.loads(file.read(0, file.size))
    except ValueError:
        raise NotUsable(f"{file.name}: not JSON") from None
    if not isinstance(document, dict):
        raise NotUsable(f"{file.name}: not a JSON object")
    return document


# ---------------------------------------------------------------- an object as a file


class ReadBudgetSpent(Exception):
    """More of an object was asked for than its inspection may read."""


class RangedFile(io.RawIOBase):
    """A seekable, read-only file over ``read`` (range requests), fetching at least READ_AHEAD_BYTES at a time.

    ``tarfile`` and friends read it as any file; only what they ask for (and the read-ahead) is fetched.
    """

    def __init__(self, read: ReadRange, size: int, budget: int | None = None) -> None:
        super().__init__()
        self._read, self._size, self._budget = read, size, budget
        self._position = 0
        self._block_start, self._block = 0, b""
        self.fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        data = self._bytes(self._position, wanted)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def _bytes(self, start: int, length: int) -> bytes:
        offset = start - self._block_start
        if offset >= 0 and offset + length <= len(self._block):
            return self._block[offset : offset + length]
        fetch = min(max(length, READ_AHEAD_BYTES), self._size - start)
        if self._budget is not None and self.fetched + fetch > self._budget:
            raise ReadBudgetSpent
        self._block_start, self._block = start, self._read(start, fetch)
        self.fetched += len(self._block)
        return self._block[:length]
