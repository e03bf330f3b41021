"""LoRA and textual inversion, applied to a cached pipeline for one request and removed after it.

The cached pipeline is shared by every request for its checkpoint, so
whatever a request adds must be gone when it ends, also when it fails:

- LoRAs go in with diffusers' ``load_lora_weights`` (kohya/A1111 files are
  converted by diffusers) and ``set_adapters`` with each LoRA's weight, and
  ``unload_lora_weights`` puts the original layers back.
- Textual inversions are loaded into a *copy* of the tokenizer, and the text
  encoder's embedding table is swapped back to the original afterwards.
  (diffusers' ``unload_textual_inversion`` edits tokenizer internals that
  change between transformers releases; keeping the original objects is
  simpler and exact.)

A1111 picks a LoRA's weight from a prompt tag ``<lora:name:weight>``, and a
hypernetwork's strength from ``<hypernet:name:multiplier>``; the tags are
removed from the text the model sees. (Hypernetworks themselves are applied in
``sd_runtime.hypernetworks``.)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sd_runtime.errors import RequestError, is_out_of_memory, load_errors

# <lora:name>, <lora:name:0.8>, <lora:name:0.8:0.5> (A1111's te/unet split: the first number is used).
_LORA_TAG = re.compile(r"<(?:lora|lyco):([^:>]+)(?::([^:>]*))?(?::[^>]*)?>", re.IGNORECASE)
# <hypernet:name>, <hypernet:name:0.8>.
_HYPERNET_TAG = re.compile(r"<hypernet:([^:>]+)(?::([^:>]*))?(?::[^>]*)?>", re.IGNORECASE)


def model_stem(name: str) -> str:
    """``dir/raiden-000009.safetensors`` -> ``raiden-000009``: the name A1111 uses in prompts."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def extract_lora_tags(prompt: str) -> tuple[str, dict[str, float]]:
    """The prompt without LoRA tags, and each tagged LoRA's weight by name."""
    return _extract_tags(_LORA_TAG, prompt, "LoRA", "weight")


def extract_hypernet_tags(prompt: str) -> tuple[str, dict[str, float]]:
    """The prompt without hypernetwork tags, and each tagged hypernetwork's multiplier by name."""
    return _extract_tags(_HYPERNET_TAG, prompt, "hypernetwork", "multiplier")


def _extract_tags(pattern: re.Pattern[str], prompt: str, what: str, number: str) -> tuple[str, dict[str, float]]:
    values: dict[str, float] = {}
    for match in pattern.finditer(prompt):
        name, raw = match.group(1).strip(), (match.group(2) or "").strip()
        try:
            values[name] = float(raw) if raw else 1.0
        except ValueError:
            raise RequestError(f"{what} tag {match.group(0)!r} has {number} {raw!r}, which is not a number") from None
    cleaned = pattern.sub("", prompt)
    return re.sub(r"\s*,(\s*,)+", ",", re.sub(r"[ \t]{2,}", " ", cleaned)).strip(" ,"), values


@dataclass(frozen=True)
class LoadedFile:
    name: str  # the name the user used (ModelRef.name)
    path: Path  # local file, or folder


def lora_weights(loras: list[LoadedFile], tagged: dict[str, float]) -> list[float]:
    """Each LoRA's weight: from its prompt tag (by file name or stem), else 1.0."""
    weights = []
    for lora in loras:
        weight = tagged.get(lora.name, tagged.get(model_stem(lora.name)))
        weights.append(1.0 if weight is None else weight)
    return weights


def hypernetwork_strengths(names: list[str], tagged: dict[str, float]) -> list[float]:
    """Each hypernetwork's strength: from its prompt tag (by file name or stem), else 1.0.

    A tag that names none of ``names`` (the request's ``models.hypernetworks``) is refused: the runtime
    applies only what the request sent, and a tag it cannot honour must not be dropped silently.
    """
    known = {alias for name in names for alias in (name, model_stem(name))}
    unknown = [tag for tag in tagged if tag not in known]
    if unknown:
        listed = ", ".join(names) if names else "none"
        raise RequestError(
            f"the prompt's <hypernet:{unknown[0]}> names a hypernetwork the request does not include "
            f"(models.hypernetworks: {listed})"
        )
    strengths = []
    for name in names:
        strength = tagged.get(name, tagged.get(model_stem(name)))
        strengths.append(1.0 if strength is None else strength)
    return strengths


@contextmanager
def applied(pipe: Any, loras: list[LoadedFile], weights: list[float], embeddings: list[LoadedFile]) -> Iterator[Any]:
    """Apply LoRAs and embeddings to ``pipe`` for the ``with`` block; yields the tokenizer to use."""
    tokenizer = pipe.tokenizer
    encoder = pipe.text_encoder
    # transformers resizes the embedding table either by swapping the module or, in recent releases,
    # by swapping the weight's data in place: keep both, to put back whichever changed.
    original_module = encoder.get_input_embeddings()
    original_weights = original_module.weight.data
    original_rows = original_module.num_embeddings
    original_vocab_size = encoder.config.vocab_size
    lora_loaded = False
    try:
        if loras:
            lora_loaded = True
            _load_loras(pipe, loras, weights)
        if embeddings:
            tokenizer = copy.deepcopy(pipe.tokenizer)
            _load_embeddings(pipe, tokenizer, embeddings)
        yield tokenizer
    finally:
        if lora_loaded:
            pipe.unload_lora_weights()
        if embeddings:
            encoder.set_input_embeddings(original_module)
            original_module.weight.data = original_weights
            original_module.num_embeddings = original_rows
            encoder.config.vocab_size = original_vocab_size


def _load_loras(pipe: Any, loras: list[LoadedFile], weights: list[float]) -> None:
    # Adapter names become module keys, which may not contain dots: use positions, not file names.
    names = [f"lora_{i}" for i in range(len(loras))]
    for adapter, lora in zip(names, loras, strict=True):
        location, weight_name = (lora.path, None) if lora.path.is_dir() else (lora.path.parent, lora.path.name)
        try:
            pipe.load_lora_weights(str(location), weight_name=weight_name, adapter_name=adapter)
        except load_errors() as error:
            if is_out_of_memory(error):
                raise
            raise RequestError(f"LoRA {lora.name} could not be applied to this checkpoint: {error}") from None
    pipe.set_adapters(names, adapter_weights=weights)


def _load_embeddings(pipe: Any, tokenizer: Any, embeddings: list[LoadedFile]) -> None:
    tokens = [model_stem(e.name) for e in embeddings]
    duplicates = sorted({t for t in tokens if tokens.count(t) > 1})
    if duplicates:
        raise RequestError(f"two embeddings share the prompt name {duplicates[0]!r}")
    for token, embedding in zip(tokens, embeddings, strict=True):
        try:
            pipe.load_textual_inversion(
                str(embedding.path), token=token, tokenizer=tokenizer, text_encoder=pipe.text_encoder
            )
        except load_errors() as error:
            if is_out_of_memory(error):
                raise
            raise RequestError(f"embedding {embedding.name} could not be loaded: {error}") from None
