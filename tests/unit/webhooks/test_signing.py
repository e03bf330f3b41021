"""Signing: a Standard Webhooks receiver accepts what we sign, and only that."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from service_kit.webhook_secrets import subscription_secret
from tests.unit.webhooks.secrets import new_secret
from webhooks.signing import signed_headers, webhook_id

BODY = json.dumps({"type": "InferenceJobChanged", "data": {"id": "job-1", "status": "succeeded"}})


def test_a_subscriptions_secret_is_whsec_and_32_bytes_of_its_own():
    key = b"k" * 32
    secret = subscription_secret(key, "sub-1")
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert subscription_secret(key, "sub-1") == secret
    assert subscription_secret(key, "sub-2") != secret
    assert subscription_secret(b"j" * 32, "sub-1") != secret
    with pytest.raises(ValueError):
        subscription_secret(b"short", "sub-1")


def test_the_webhook_id_is_stable_per_event_and_subscription():
    assert webhook_id("evt-1", "sub-1") == webhook_id("evt-1", "sub-1")
    assert webhook_id("evt-1", "sub-1") != webhook_id("evt-1", "sub-2")
    assert webhook_id("evt-1", "sub-1") != webhook_id("evt-2", "sub-1")


def test_the_webhook_id_cannot_be_forged_by_moving_a_separator():
    assert webhook_id("a/b", "c") != webhook_id("a", "b/c")
    assert webhook_id("a:b", "c") != webhook_id("a", "b:c")


def test_a_receiver_accepts_a_signed_delivery():
    secret = new_secret()
    headers = signed_headers(secret, webhook_id("evt-1", "sub-1"), BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(secret).verify(BODY.encode(), headers) == json.loads(BODY)


def test_a_tampered_body_is_refused():
    secret = new_secret()
    headers = signed_headers(secret, webhook_id("evt-1", "sub-1"), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("succeeded", "failed"), headers)


def test_another_secret_or_id_is_refused():
    secret = new_secret()
    headers = signed_headers(secret, webhook_id("evt-1", "sub-1"), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": webhook_id("evt-1", "sub-2")})


def test_the_timestamp_is_the_signing_time_in_seconds():
    signed_at = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    headers = signed_headers(new_secret(), "msg_1", BODY, now=signed_at)
    assert headers["webhook-timestamp"] == str(int(signed_at.timestamp()))


def test_a_signature_made_long_ago_is_refused():
    secret = new_secret()
    headers = signed_headers(secret, "msg_1", BODY, now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)
