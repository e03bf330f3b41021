"""The deployment's two secrets live outside its stacks, made once by ``make deploy`` and kept.

Clients hold the API key, and webhook receivers hold secrets derived from the
signing key, so both must outlive any teardown and redeploy. A stack cannot
give that: a kept ``AWS::SecretsManager::Secret`` cannot be adopted by the
next deploy (``--import-existing-resources`` needs a writable primary
identifier, and a secret's is its read-only ``Id``), so the next create fails
on its name; and a deleted one is gone with its value. So ``make deploy``'s
preflight makes each secret if it is missing (a random value, as the stacks
made them), restores it if it was scheduled for deletion, and leaves its
value alone otherwise; the stacks read them by name. ``make destroy`` never
deletes them (README: "Tearing down and deploying again").
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

from infra.core import CORE
from service_kit.resources import physical_name

ALPHANUMERIC = string.ascii_letters + string.digits


#: The API key secret is a JSON object: ``key`` is the value API Gateway's key is deployed with (a dynamic
#: reference to that field), and the edge accepts every value in the object, so a rotation adds the next key
#: beside it (README: rotate the key) without changing what the next deploy gives API Gateway.
API_KEY_FIELD = "key"


@dataclass(frozen=True)
class KeptSecret:
    name: str
    description: str
    #: Letters and digits only: API Gateway takes the API key's value as it is (at least 20 characters).
    length: int
    #: The value goes in this field of a JSON object; None: the secret string is the value itself.
    field: str | None = None

    def new_value(self) -> str:
        value = "".join(secrets.choice(ALPHANUMERIC) for _ in range(self.length))
        return json.dumps({self.field: value}) if self.field else value


def api_key_secret_name(prefix: str) -> str:
    return f"{prefix}/api-key"


def deployment_secrets(prefix: str) -> tuple[KeptSecret, ...]:
    return (
        KeptSecret(
            api_key_secret_name(prefix),
            f"The API key clients send as x-api-key ({API_KEY_FIELD!r}; the edge accepts every value here).",
            40,
            API_KEY_FIELD,
        ),
        KeptSecret(
            physical_name(prefix, CORE.webhook_signing_key),
            "Webhook subscriptions' signing secrets are derived from this key.",
            64,
        ),
    )


def ensure(secretsmanager: Any, secret: KeptSecret) -> str:
    """Make the secret if it is missing, restore it if it is scheduled for deletion; what was done."""
    try:
        found = secretsmanager.describe_secret(SecretId=secret.name)
    except secretsmanager.exceptions.ResourceNotFoundException:
        secretsmanager.create_secret(
            Name=secret.name, Description=secret.description, SecretString=secret.new_value()
        )
        return "created"
    if found.get("DeletedDate"):
        secretsmanager.restore_secret(SecretId=secret.name)
        return "restored"
    return "kept"


def ensure_all(session: Any, prefix: str) -> dict[str, str]:
    """Every secret of the deployment, by name -> what was done to it."""
    client = session.client("secretsmanager")
    return {secret.name: ensure(client, secret) for secret in deployment_secrets(prefix)}
