"""Signing secrets of webhook subscriptions, derived from one deployment key so that none travels on the bus.

The edge shows a subscription's secret once, in its answer to the creation; the webhooks service signs
every delivery with it. Both derive it from the deployment's signing key and the subscription's id
(HMAC-SHA256), so the secret is never in an event, a table or a log, and one subscription's secret tells
nothing about another's or about the key. The key is a Secrets Manager secret the core stack makes
(``CoreResources.webhook_signing_key``) and only the services that declare ``signs_webhooks`` may read.

A job's own webhook (``JobWebhook``) has no subscription: it is signed with the default secret, which
the API shows on request, as Replicate's ``GET /webhooks/default/secret`` does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from typing import Any

from service_kit import aws

SECRET_PREFIX = "whsec_"
#: The subscription id jobs' own webhooks are signed as.
DEFAULT_SUBSCRIPTION = "default"
#: A shorter key would make every derived secret weaker than the 24 random bytes Standard Webhooks asks for.
MIN_KEY_BYTES = 32


def subscription_secret(signing_key: bytes, subscription_id: str) -> str:
    """The Standard Webhooks secret (``whsec_`` + base64) of one subscription."""
    if len(signing_key) < MIN_KEY_BYTES:
        raise ValueError(f"the webhook signing key must be at least {MIN_KEY_BYTES} bytes")
    digest = hmac.new(signing_key, b"webhook-subscription:" + subscription_id.encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode("ascii")


class SigningKey:
    """The deployment's signing key, read from Secrets Manager once per process."""

    def __init__(self, secret_id: str, client: Any | None = None) -> None:
        if not secret_id:
            raise ValueError("no webhook signing key configured (SDMW_WEBHOOK_SIGNING_KEY_SECRET)")
        self._secret_id = secret_id
        self._client = client
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        with self._lock:
            if self._key is None:
                client = self._client or aws.client("secretsmanager")
                self._key = client.get_secret_value(SecretId=self._secret_id)["SecretString"].encode()
            return self._key

    def secret_for(self, subscription_id: str) -> str:
        return subscription_secret(self.key(), subscription_id)


class StaticSigningKey(SigningKey):
    """A key given directly: for tests, which then need no Secrets Manager."""

    def __init__(self, key: bytes) -> None:
        super().__init__("static")
        self._key = key
