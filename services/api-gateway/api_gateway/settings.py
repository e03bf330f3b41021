"""The edge's own settings, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class EdgeSettings:
    stage: str
    api_keys: tuple[str, ...]
    transition_wait_s: float
    presign_expiry_s: int
    presign_max_expiry_s: int
    upload_key_prefixes: tuple[str, ...]
    #: The instance type of a training job that names none.
    training_instance_type: str = "ml.g4dn.2xlarge"

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
            presign_expiry_s=int(os.environ.get("PRESIGN_EXPIRY_S", "3600")),
            presign_max_expiry_s=int(os.environ.get("PRESIGN_MAX_EXPIRY_S", str(12 * 3600))),
            upload_key_prefixes=tuple(
                p.strip() for p in os.environ.get("UPLOAD_KEY_PREFIXES", "config/").split(",") if p.strip()
            ),
            training_instance_type=os.environ.get("TRAINING_INSTANCE_TYPE", "ml.g4dn.2xlarge"),
        )

    @property
    def prefix(self) -> str:
        return f"/{self.stage}" if self.stage else ""
