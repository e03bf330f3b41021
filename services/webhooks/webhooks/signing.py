"""Signing a delivery as the Standard Webhooks specification says (https://www.standardwebhooks.com/).

A receiver checks a delivery with any Standard Webhooks library and the subscription's secret:
``standardwebhooks.Webhook(secret).verify(body, headers)``, which is what every test of this service
does. The signature itself is the specification's HMAC-SHA256 of ``<id>.<timestamp>.<body>`` with the
secret's bytes, written here rather than taken from the ``standardwebhooks`` package: that package is
published only as source, with four dependencies, and the Lambda layer is built from wheels alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime

from service_kit.webhook_secrets import SECRET_PREFIX


def webhook_id(event_id: str, subscription_id: str) -> str:
    """The ``webhook-id`` of one event sent to one subscription.

    The same on every attempt, so a receiver can drop a repeat; different per subscription, so one
    receiver holding two subscriptions sees two messages. The pair is JSON-encoded before hashing so
    that no two different pairs can spell the same key.
    """
    key = json.dumps([event_id, subscription_id])
    return "msg_" + uuid.uuid5(uuid.NAMESPACE_URL, key).hex


def signed_headers(secret: str, message_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``, signed with ``secret`` at ``now``.

    The timestamp is part of what is signed; a retry signs again with its own time, because receivers
    refuse timestamps more than a few minutes away from their clock.
    """
    signed_at = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": sign(secret, message_id, int(signed_at.timestamp()), body),
    }


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``<id>.<timestamp>.<body>``, keyed with the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
