"""The one place that wires real adapters into the handlers; tests pass their own."""

from __future__ import annotations

from dataclasses import dataclass

from service_kit.claims import EventClaims
from service_kit.consumer import Consumer
from service_kit.events import EventBridgePublisher, EventPublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable
from service_kit.webhook_secrets import SigningKey
from webhooks import SERVICE
from webhooks.deliveries import Outbox, SqsOutbox
from webhooks.delivery import Deliverer, new_client
from webhooks.gate import TargetGate
from webhooks.handlers import Dependencies, router
from webhooks.settings import WebhooksSettings


@dataclass(frozen=True)
class App:
    settings: WebhooksSettings
    deps: Dependencies
    consumer: Consumer


def bootstrap(
    settings: WebhooksSettings | None = None,
    *,
    snapshots: SnapshotTable | None = None,
    publisher: EventPublisher | None = None,
    outbox: Outbox | None = None,
    deliverer: Deliverer | None = None,
    keys: SigningKey | None = None,
    gate: TargetGate | None = None,
) -> App:
    """The service as deployed; each adapter not given is the real one, made from ``settings``."""
    settings = settings or WebhooksSettings()
    logger = get_logger(SERVICE)
    # Facts over EventBridge's limit (a large dataset) come by claim check, and their deliveries go by one.
    claims = EventClaims(settings.bucket)
    allow_loopback = settings.webhooks_allow_loopback
    deps = Dependencies(
        snapshots=snapshots or SnapshotTable(settings.table_name),
        publisher=publisher or EventBridgePublisher(settings.event_bus, settings.source),
        outbox=outbox
        or SqsOutbox(
            _required(settings.queue_url, "SDMW_QUEUE_URL"), _required(settings.dlq_url, "SDMW_DLQ_URL"), claims
        ),
        deliverer=deliverer or Deliverer(new_client(allow_loopback=allow_loopback), allow_loopback=allow_loopback),
        keys=keys or SigningKey(settings.webhook_signing_key_secret),
        logger=logger,
        first_retry_s=settings.first_retry_s,
        gate=gate or TargetGate(),
    )
    # No idempotency records: a repeated message is harmless here (a subscription command finds its work
    # done, a repeated delivery carries the same webhook-id), and each delivery message is unique anyway,
    # so the records would only add two table writes to every attempt and every wait.
    consumer = Consumer(router(deps), logger, idempotency_store=None, claims=claims)
    return App(settings=settings, deps=deps, consumer=consumer)


def _required(value: str | None, variable: str) -> str:
    if not value:
        raise RuntimeError(f"environment variable {variable} is not set")
    return value
