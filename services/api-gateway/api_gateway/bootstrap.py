"""The one place that wires real adapters in: the HTTP app and the read-model projector; tests pass their own."""

from __future__ import annotations

from fastapi import FastAPI

from api_gateway import SERVICE
from api_gateway.app import create_app
from api_gateway.claims import ClaimCheck
from api_gateway.commands import CommandSender
from api_gateway.dependencies import EdgeDependencies
from api_gateway.presign import Presigner
from api_gateway.read_model import ReadModel, projection_router
from api_gateway.settings import ApiGatewaySettings
from service_kit import aws
from service_kit.claims import EventClaims
from service_kit.consumer import Consumer
from service_kit.events import EventBridgePublisher, EventPublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable
from service_kit.webhook_secrets import SigningKey


def http_app(
    settings: ApiGatewaySettings | None = None,
    *,
    read_model: ReadModel | None = None,
    publisher: EventPublisher | None = None,
    presigner: Presigner | None = None,
    claims: ClaimCheck | None = None,
    webhook_keys: SigningKey | None = None,
) -> FastAPI:
    """The edge as deployed; each adapter not given is the real one, made from ``settings``."""
    settings = settings or ApiGatewaySettings()
    edge = settings.edge()
    deps = EdgeDependencies(
        settings=edge,
        read_model=read_model or ReadModel(SnapshotTable(settings.table_name)),
        # A dataset of thousands of items is over EventBridge's 256 KB: its command goes by claim check.
        commands=CommandSender(
            publisher or EventBridgePublisher(settings.event_bus, settings.source, claims=EventClaims(settings.bucket))
        ),
        presigner=presigner or Presigner(settings.bucket, edge.presign_expiry_s, edge.presign_max_expiry_s),
        claims=claims or ClaimCheck(settings.bucket, aws.client("s3")),
        # Read from Secrets Manager when a secret is first shown, not when the edge starts.
        webhook_keys=webhook_keys or SigningKey(settings.webhook_signing_key_secret),
    )
    return create_app(deps)


def projector(
    settings: ApiGatewaySettings | None = None, *, read_model: ReadModel | None = None
) -> tuple[ApiGatewaySettings, Consumer]:
    """The read model's projector; its settings name the queue a local worker polls."""
    settings = settings or ApiGatewaySettings()
    router = projection_router(read_model or ReadModel(SnapshotTable(settings.table_name)))
    # Projection is idempotent by version already; no idempotency records needed.
    # A dataset of thousands of items comes by claim check (its DatasetChanged is over EventBridge's 256 KB).
    return settings, Consumer(router, get_logger(SERVICE), idempotency_store=None, claims=EventClaims())
