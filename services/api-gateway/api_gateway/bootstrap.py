"""The one place that wires real adapters in: the HTTP app and the read-model projector."""

from __future__ import annotations

from fastapi import FastAPI

from api_gateway import SERVICE
from api_gateway.app import create_app
from api_gateway.claims import ClaimCheck
from api_gateway.commands import CommandSender
from api_gateway.dependencies import EdgeDependencies
from api_gateway.presign import Presigner
from api_gateway.read_model import ReadModel, projection_router
from api_gateway.settings import EdgeSettings
from service_kit import aws
from service_kit.claims import EventClaims
from service_kit.config import ServiceConfig
from service_kit.consumer import Consumer
from service_kit.events import EventBridgePublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable


def http_app() -> FastAPI:
    config = ServiceConfig.from_env(SERVICE)
    settings = EdgeSettings.from_env()
    deps = EdgeDependencies(
        settings=settings,
        read_model=ReadModel(SnapshotTable(config.table_name)),
        # A dataset of thousands of items is over EventBridge's 256 KB: its command goes by claim check.
        commands=CommandSender(
            EventBridgePublisher(config.event_bus, config.source, claims=EventClaims(config.bucket))
        ),
        presigner=Presigner(config.bucket, settings.presign_expiry_s, settings.presign_max_expiry_s),
        claims=ClaimCheck(config.bucket, aws.client("s3")),
    )
    return create_app(deps)


def projector() -> tuple[ServiceConfig, Consumer]:
    config = ServiceConfig.from_env(SERVICE)
    logger = get_logger(SERVICE)
    router = projection_router(ReadModel(SnapshotTable(config.table_name)))
    # Projection is idempotent by version already; no idempotency records needed.
    # A dataset of thousands of items comes by claim check (its DatasetChanged is over EventBridge's 256 KB).
    return config, Consumer(router, logger, idempotency_store=None, claims=EventClaims())
