"""The edge's own settings, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class EdgeSettings:
    stage: str
    api_keys: tuple[str, ...]
    transition_wait_s: float

    @classmethod
    def from_env(cls) -> EdgeSettings:
        keys = [k.strip() for k in os.environ.get("API_KEYS", "").split(",") if k.strip()]
        if os.environ.get("API_KEY"):
            keys.append(os.environ["API_KEY"])
        if not keys:
            raise RuntimeError("no API key configured: set API_KEY or API_KEYS")
        return cls(
            stage=os.environ.get("API_STAGE", "prod").strip("/"),
            api_keys=tuple(keys),
            transition_wait_s=float(os.environ.get("TRANSITION_WAIT_S", "20")),
        )

    @property
    def prefix(self) -> str:
        return f"/{self.stage}" if self.stage else ""
