"""``extensions-builtin/Lora/networks.py`` (A1111 1.5's built-in LoRA extension): the LoRAs on disk by alias.

The extension looks a ``<lora:alias:weight>`` tag up in ``available_network_aliases``
and sends the file's name; an alias is the file's stem.
"""

from __future__ import annotations

import os
from pathlib import Path

LORA_DIR = os.path.join("models", "Lora")
SUFFIXES = {".pt", ".ckpt", ".safetensors"}


class NetworkOnDisk:
    def __init__(self, name: str, filename: str) -> None:
        self.name = name
        self.alias = name
        self.filename = filename


available_networks: dict[str, NetworkOnDisk] = {}
available_network_aliases: dict[str, NetworkOnDisk] = {}


def list_available_networks() -> None:
    available_networks.clear()
    available_network_aliases.clear()
    folder = Path(LORA_DIR)
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.suffix in SUFFIXES:
            entry = NetworkOnDisk(path.stem, os.path.abspath(path))
            available_networks[entry.name] = entry
            available_network_aliases[entry.alias] = entry
