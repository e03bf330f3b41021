"""Secrets for tests, made the way subscriptions' are: derived from a random key (service_kit.webhook_secrets)."""

from __future__ import annotations

import secrets

from service_kit.webhook_secrets import subscription_secret


def new_secret() -> str:
    return subscription_secret(secrets.token_bytes(32), "test-subscription")
