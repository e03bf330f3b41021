"""Models by name, from the read model's checkpoints, by the rule every service uses.

A checkpoint holding ``model_index.json`` is a diffusers folder, named by its
params' ``new_model_name``; any other checkpoint names each of its files.
A1111 titles a model ``name.safetensors [hash]``: the hash is not part of the name.
"""

from __future__ import annotations

import re

from api_gateway.read_model import ReadModel
from sdmw_contracts.events import CheckpointChanged
from sdmw_contracts.runtime import ModelRef

DIFFUSERS_INDEX = "model_index.json"
_TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]+\]$")


def plain_name(title: str) -> str:
    """``v1-5-pruned-emaonly.safetensors [6ce0161689]`` -> ``v1-5-pruned-emaonly.safetensors``."""
    return _TITLE_HASH.sub("", title)


def model_in(checkpoint: CheckpointChanged, name: str) -> ModelRef | None:
    """The checkpoint's model called ``name``: the folder (by ``new_model_name``) or one of its files."""
    if not name:
        return None
    if DIFFUSERS_INDEX in checkpoint.filenames and checkpoint.params.get("new_model_name") == name:
        return ModelRef(name=name, s3_uri=checkpoint.s3_location)
    for file in checkpoint.files:
        if file.filename == name:
            return ModelRef(name=name, s3_uri=file.s3_uri)
    return None


def find_model(read_model: ReadModel, model_type: str, title: str) -> ModelRef | None:
    """The Active checkpoint of ``model_type`` that holds the model ``title`` names, if any."""
    name = plain_name(title)
    for checkpoint in read_model.list(CheckpointChanged):
        usable = checkpoint.status == "Active" and checkpoint.checkpoint_type == model_type
        if usable and (found := model_in(checkpoint, name)):
            return found
    return None
