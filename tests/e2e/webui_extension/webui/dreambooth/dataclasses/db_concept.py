"""The DreamBooth extension's training concept (the AWS extension replaces its ``load_params``)."""

from __future__ import annotations

from typing import Any


class Concept:
    instance_data_dir: str = ""
    class_data_dir: str = ""
    is_valid: bool = False

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        if params:
            self.load_params(params)

    def load_params(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            setattr(self, key, value)
