"""The DreamBooth extension's ``load_model_params``: what its model panel shows of a model's config."""

from __future__ import annotations

from typing import Any

from dreambooth.dataclasses.db_config import from_file


def load_model_params(model_name: str) -> tuple[Any, ...]:
    config = from_file(model_name)
    if config is None:
        return ("", "", "", "", "", "", "", [], [], f"Can't load config for {model_name}")
    return (
        config.get("model_dir", ""),
        config.get("revision", ""),
        config.get("epoch", ""),
        "True" if config.get("v2") else "False",
        "True" if config.get("has_ema") else "False",
        config.get("src", ""),
        config.get("shared_diffusers_path", ""),
        [],
        [],
        "Loaded config.",
    )
