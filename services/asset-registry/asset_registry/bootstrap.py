"""The one place that wires real adapters into the handlers."""

from __future__ import annotations

from dataclasses import dataclass

from asset_registry import SERVICE
from asset_registry.handlers import Dependencies, router
from service_kit.claims import EventClaims
from service_kit.config import ServiceConfig
from service_kit.consumer import Consumer, dynamodb_idempotency
from service_kit.events import EventBridgePublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable
from service_kit.storage import S3Storage


@dataclass(frozen=True)
class App:
    config: ServiceConfig
    deps: Dependencies
    consumer: Consumer


def bootstrap() -> App:
    config = ServiceConfig.from_env(SERVICE)
    logger = get_logger(SERVICE)
    deps = Dependencies(
        snapshots=SnapshotTable(config.table_name),
        storage=S3Storage(config.bucket),
        # A dataset of thousands of items is over EventBridge's 256 KB: its DatasetChanged goes by claim check.
        publisher=EventBridgePublisher(config.event_bus, config.source, claims=EventClaims(config.bucket)),
        logger=logger,
    )
    # The command creating a dataset of thousands of items comes by claim check.
    consumer = Consumer(router(deps), logger, dynamodb_idempotency(config.table_name), claims=EventClaims())
    return App(config=config, deps=deps, consumer=consumer)
