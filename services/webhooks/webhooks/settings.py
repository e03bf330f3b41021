"""webhooks' settings: everything it reads from its environment (see service_kit.config)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from service_kit.config import ServiceSettings, webhook_signing_key_field, webhooks_allow_loopback_field
from webhooks import SERVICE


class WebhooksSettings(ServiceSettings):
    service: ClassVar[str] = SERVICE

    #: The Secrets Manager secret every subscription's signing secret is derived from.
    webhook_signing_key_secret: str = webhook_signing_key_field()
    #: Loopback targets accepted (the local stack, so that a receiver on the same machine works).
    webhooks_allow_loopback: bool = webhooks_allow_loopback_field()
    #: The service's dead-letter queue: where a delivery that will not succeed ends, with its last error.
    dlq_url: str | None = Field(default=None, validation_alias="SDMW_DLQ_URL")
    #: The wait after a first failed attempt (doubling after each next one, up to an hour); tests shorten it.
    first_retry_s: float = Field(30.0, gt=0, le=3600, validation_alias="WEBHOOKS_FIRST_RETRY_S")
    #: Local stack only: how many deliveries run at once (Lambda runs one invocation per message instead).
    concurrent_deliveries: int = Field(8, ge=1, le=64, validation_alias="WEBHOOKS_CONCURRENT_DELIVERIES")
