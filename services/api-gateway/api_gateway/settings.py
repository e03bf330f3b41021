"""The edge's settings: everything api-gateway reads from its environment (see service_kit.config)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import field_validator
from pydantic_settings import NoDecode

from api_gateway import SERVICE
from service_kit import aws
from service_kit.config import (
    ServiceSettings,
    imports_allow_loopback_field,
    webhook_signing_key_field,
    webhooks_allow_loopback_field,
)

#: A comma-separated list in the environment (``API_KEYS=one,two``), not JSON.
CommaList = Annotated[tuple[str, ...], NoDecode]


@dataclass(frozen=True)
class EdgeSettings:
    """What the HTTP app itself needs: its stage, its keys and its policies."""

    stage: str
    api_keys: tuple[str, ...]
    transition_wait_s: float
    presign_expiry_s: int
    presign_max_expiry_s: int
    upload_key_prefixes: tuple[str, ...]
    #: The instance type of a training job that names none.
    training_instance_type: str = "ml.g4dn.2xlarge"
    #: Webhook targets on loopback addresses are accepted (the local stack only; never on AWS).
    webhooks_allow_loopback: bool = False
    #: Checkpoint imports from loopback addresses are accepted (the local stack only; never on AWS).
    imports_allow_loopback: bool = False

    @property
    def prefix(self) -> str:
        return f"/{self.stage}" if self.stage else ""


class ApiGatewaySettings(ServiceSettings):
    service: ClassVar[str] = SERVICE

    api_stage: str = "prod"
    api_keys: CommaList = ()
    api_key: str = ""
    #: On AWS the keys live in Secrets Manager (comma-separated; this is the secret's name or ARN), read once
    #: when the function starts.
    api_keys_secret: str = ""
    transition_wait_s: float = 20
    presign_expiry_s: int = 3600
    presign_max_expiry_s: int = 12 * 3600
    upload_key_prefixes: CommaList = ("config/",)
    training_instance_type: str = "ml.g4dn.2xlarge"
    #: The Secrets Manager secret webhook signing secrets are derived from (the edge shows them).
    webhook_signing_key_secret: str = webhook_signing_key_field()
    #: Loopback webhook targets accepted (the local stack, so that a receiver on the same machine works).
    webhooks_allow_loopback: bool = webhooks_allow_loopback_field()
    #: Loopback import URLs accepted (the local stack, so that a file served on the same machine can be imported).
    imports_allow_loopback: bool = imports_allow_loopback_field()

    @field_validator("api_keys", "upload_key_prefixes", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any) -> Any:
        return _split(value) if isinstance(value, str) else value

    def edge(self) -> EdgeSettings:
        """The app's settings, with every key: API_KEYS, API_KEY and those in the secret API_KEYS_SECRET."""
        keys = [*self.api_keys, *([self.api_key] if self.api_key else [])]
        if self.api_keys_secret:
            keys.extend(_keys_from_secret(self.api_keys_secret))
        if not keys:
            raise RuntimeError("no API key configured: set API_KEY, API_KEYS or API_KEYS_SECRET")
        return EdgeSettings(
            stage=self.api_stage.strip("/"),
            api_keys=tuple(keys),
            transition_wait_s=self.transition_wait_s,
            presign_expiry_s=self.presign_expiry_s,
            presign_max_expiry_s=self.presign_max_expiry_s,
            upload_key_prefixes=self.upload_key_prefixes,
            training_instance_type=self.training_instance_type,
            webhooks_allow_loopback=self.webhooks_allow_loopback,
            imports_allow_loopback=self.imports_allow_loopback,
        )


def _split(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _keys_from_secret(secret_id: str) -> tuple[str, ...]:
    """Every key in the secret: comma-separated, or each string value of a JSON object (the AWS deployment's
    ``{"key": ...}``, with a rotation's next key beside it)."""
    text = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    try:
        document = json.loads(text)
    except ValueError:
        return _split(text)
    if not isinstance(document, dict):
        return _split(text)
    return tuple(key for value in document.values() if isinstance(value, str) for key in _split(value))
