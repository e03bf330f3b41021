"""Checkpoint merge, as A1111's checkpoint merger does it.

- "Weighted sum": ``(1 - m) * A + m * B``
- "Add difference": ``A + m * (B - C)``

Weights are compared in the original (LDM) key layout, which single-file
checkpoints already use; diffusers folders are converted to it first, so any
mix of folders and files can be merged and the result is always a single
``.safetensors`` file A1111 and this runtime can load. As in A1111, only keys
present in every input are merged (others are kept from A), arithmetic is
done in float32, and the result keeps A's dtype unless
``MergeSpec.save_as_half`` asks for float16. An inpainting A with a normal B
merges B into A's first four input channels. The result keeps A's
architecture metadata (``sd_runtime.single_file``: the config values the
weights cannot tell, recorded for a file made from a diffusers folder), so it
loads as A does. Older SD 1.x files whose CLIP keys lack the ``text_model.``
level are read with it inserted (as A1111's merger reads them), so they merge
with any other SD 1.x checkpoint. An input uploaded as a tar (the WebUI's AWS
extension's way) is unpacked by ``ModelStore.fetch``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sd_runtime.convert import pipeline_folder_to_ldm
from sd_runtime.errors import RequestError, load_errors
from sd_runtime.models import ModelStore
from sd_runtime.single_file import ARCHITECTURE_METADATA_KEY, architecture_metadata, text_model_level_keys
from sdmw_contracts.runtime import MergeSpec


class Weights:
    """A checkpoint's tensors by LDM key (CLIP's with the ``text_model.`` level); safetensors files are read one
    tensor at a time."""

    def __init__(self, path: Path) -> None:
        self._handle: Any = None
        self._tensors: dict[str, torch.Tensor] = {}
        #: The architecture metadata a single file of these weights should carry (see sd_runtime.single_file).
        self.architecture: dict[str, str] = {}
        if path.is_dir():
            self._tensors = pipeline_folder_to_ldm(path)
            self.architecture = architecture_metadata(path)
        elif path.name.lower().endswith(".safetensors"):
            from safetensors import safe_open

            self._handle = safe_open(str(path), framework="pt", device="cpu")
            recorded = (self._handle.metadata() or {}).get(ARCHITECTURE_METADATA_KEY)
            self.architecture = {ARCHITECTURE_METADATA_KEY: recorded} if recorded else {}
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            loaded = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
            if not isinstance(loaded, dict):
                raise RequestError(f"{path.name} does not hold a state dict")
            self._tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        stored = list(self._handle.keys()) if self._handle is not None else list(self._tensors)
        #: Each key as merged -> the key in the file (they differ for older files' CLIP keys).
        self._stored = text_model_level_keys(stored)

    def keys(self) -> list[str]:
        return list(self._stored)

    def __contains__(self, key: str) -> bool:
        return key in self._stored

    def __getitem__(self, key: str) -> torch.Tensor:
        stored = self._stored[key]
        return self._handle.get_tensor(stored) if self._handle is not None else self._tensors[stored]


def merge_tensors(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None, method: str, multiplier: float
) -> torch.Tensor:
    """One merged tensor in float32."""
    a32, b32 = a.float(), b.float()
    if method == "Add difference":
        return a32 + multiplier * (b32 - (c.float() if c is not None else b32))
    return (1 - multiplier) * a32 + multiplier * b32


def merge_weights(
    primary: Weights,
    secondary: Weights,
    tertiary: Weights | None,
    method: str,
    multiplier: float,
    save_as_half: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The merged state dict and a summary (counts and the keys that could not be merged)."""
    if method == "Add difference" and tertiary is None:
        raise RequestError("merge method 'Add difference' needs a tertiary model")
    merged: dict[str, torch.Tensor] = {}
    merged_count = 0
    kept: list[str] = []
    for key in primary.keys():  # noqa: SIM118 (Weights is not a dict)
        a = primary[key]
        result = a
        if "model" in key and key in secondary and a.is_floating_point():
            b = secondary[key]
            # A1111: in "Add difference" a key missing from C contributes no difference.
            c = tertiary[key] if tertiary is not None and key in tertiary else None
            if method == "Add difference" and c is None:
                c = b
            if a.shape == b.shape and (c is None or c.shape == b.shape):
                result = merge_tensors(a, b, c, method, multiplier).to(a.dtype)
                merged_count += 1
            elif a.ndim == 4 and a.shape[1] == 9 and b.shape[1] == 4 and a.shape[0] == b.shape[0]:
                # Inpainting A, normal B: the first four input channels are the ones they share.
                result = a.clone()
                c4 = c if c is None or c.shape == b.shape else None
                result[:, :4] = merge_tensors(a[:, :4], b, c4, method, multiplier).to(a.dtype)
                merged_count += 1
            else:
                kept.append(key)
        else:
            kept.append(key)
        if save_as_half and result.is_floating_point():
            result = result.half()
        merged[key] = result.contiguous()
    if merged_count == 0:
        raise RequestError("the models share no weights that can be merged: are they all Stable Diffusion checkpoints?")
    return merged, {"keys_total": len(merged), "keys_merged": merged_count, "keys_kept_from_primary": kept}


def _open(store: ModelStore, ref: Any, what: str) -> Weights:
    path = store.fetch(ref.s3_uri, what=what)
    try:
        return Weights(path)
    except load_errors() as error:
        raise RequestError(f"{what} {ref.name} ({ref.s3_uri}) cannot be read as a checkpoint: {error}") from None


def run_merge(store: ModelStore, spec: MergeSpec, work_dir: Path, job_id: str) -> dict[str, Any]:
    """Fetch the inputs, merge, write the result to ``spec.output_s3_uri``; returns the ``info`` object."""
    from safetensors.torch import save_file

    save_as_half = spec.save_as_half

    if spec.method == "Add difference" and spec.tertiary is None:
        raise RequestError("merge method 'Add difference' needs a tertiary model")
    primary = _open(store, spec.primary, "primary model")
    secondary = _open(store, spec.secondary, "secondary model")
    tertiary = _open(store, spec.tertiary, "tertiary model") if spec.method == "Add difference" else None
    merged, summary = merge_weights(primary, secondary, tertiary, spec.method, spec.multiplier, save_as_half)
    recipe = {
        "type": "webui",
        "primary_model": spec.primary.name,
        "secondary_model": spec.secondary.name,
        "tertiary_model": spec.tertiary.name if tertiary is not None and spec.tertiary else None,
        "interp_method": spec.method,
        "multiplier": spec.multiplier,
        "save_as_half": save_as_half,
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    output = work_dir / f"{job_id}.safetensors"
    try:
        metadata = {"format": "pt", "sd_merge_recipe": json.dumps(recipe), **primary.architecture}
        save_file(merged, str(output), metadata=metadata)
        del merged
        store.upload(output, spec.output_s3_uri)
    finally:
        output.unlink(missing_ok=True)
    return {"output_s3_uri": spec.output_s3_uri, **recipe, **summary}
