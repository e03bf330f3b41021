"""``modules.sd_models``: the local checkpoints (``models/Stable-diffusion``) and the selected one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from modules import shared

model_path = os.path.abspath(os.path.join("models", "Stable-diffusion"))
EXTENSIONS = (".ckpt", ".safetensors")


class CheckpointInfo:
    """One local checkpoint: ``name`` is its path under the models folder, ``title`` adds A1111's short hash."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.name = os.path.relpath(filename, model_path)
        self.name_for_extra = os.path.splitext(os.path.basename(filename))[0]
        self.model_name = os.path.splitext(self.name.replace("/", "_").replace("\\", "_"))[0]
        self.sha256 = hashlib.sha256(Path(filename).read_bytes()).hexdigest()
        self.shorthash = self.sha256[:10]
        self.hash = self.sha256[:8]
        self.title = f"{self.name} [{self.shorthash}]"


checkpoints_list: dict[str, CheckpointInfo] = {}


def list_models() -> None:
    checkpoints_list.clear()
    folder = Path(model_path)
    files = sorted(p for p in folder.rglob("*") if p.suffix in EXTENSIONS) if folder.is_dir() else []
    for path in files:
        info = CheckpointInfo(str(path))
        checkpoints_list[info.title] = info


def select_checkpoint() -> CheckpointInfo | None:
    """The checkpoint selected in the WebUI's top dropdown (``opts.sd_model_checkpoint``), else the first."""
    list_models()
    chosen = checkpoints_list.get(shared.opts.sd_model_checkpoint or "")
    if chosen is None:
        for info in checkpoints_list.values():
            if shared.opts.sd_model_checkpoint in {info.name, info.name_for_extra}:
                return info
    return chosen or next(iter(checkpoints_list.values()), None)
