"""The DreamBooth extension's config file: ``<models path>/<model name>/db_config.json``."""

from __future__ import annotations

import json
import os
from typing import Any

from dreambooth import shared


def config_path(model_name: str) -> str:
    return os.path.join(shared.dreambooth_models_path, model_name, "db_config.json")


def from_file(model_name: str) -> dict[str, Any] | None:
    try:
        with open(config_path(model_name)) as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def save_config(model_name: str, config: dict[str, Any]) -> None:
    """What the DreamBooth tab's "Save Settings" writes (the UI's values for the selected model)."""
    os.makedirs(os.path.dirname(config_path(model_name)), exist_ok=True)
    with open(config_path(model_name), "w") as file:
        json.dump(config, file)
