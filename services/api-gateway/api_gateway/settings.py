"""The edge's own settings, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from service_kit import aws


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
        keys = _split(os.environ.get("API_KEYS", ""))
        if os.environ.get("API_KEY"):
            keys.append(os.environ["API_KEY"])
        if os.environ.get("API_KEYS_SECRET_ARN"):
            keys.extend(_keys_from_secret(os.environ["API_KEYS_SECRET_ARN"]))
        if not keys:
            raise RuntimeError("no API key configured: set API_KEY, API_KEYS or API_KEYS_SECRET_ARN")
        return cls(
            stage=os.environ.get("API_STAGE", "prod").strip("/"),
            api_keys=tuple(keys),
            transition_wait_s=float(os.environ.get("TRANSITION_WAIT_S", "20")),
            presign_expiry_s=int(os.environ.get("PRESIGN_EXPIRY_S", "3600")),
            presign_max_expiry_s=int(os.environ.get("PRESIGN_MAX_EXPIRY_S", str(12 * 3600))),
            upload_key_prefixes=tuple(_split(os.environ.get("UPLOAD_KEY_PREFIXES", "config/"))),
            training_instance_type=os.environ.get("TRAINING_INSTANCE_TYPE", "ml.g4dn.2xlarge"),
        )

    @property
    def prefix(self) -> str:
        return f"/{self.stage}" if self.stage else ""


def _split(keys: str) -> list[str]:
    return [k.strip() for k in keys.split(",") if k.strip()]


def _keys_from_secret(secret_arn: str) -> list[str]:
    """On AWS the keys live in Secrets Manager (comma-separated), read once when the function starts."""
    return _split(aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
