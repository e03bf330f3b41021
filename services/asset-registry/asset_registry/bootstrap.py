"""The one place that wires real adapters into the handlers; tests pass their own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from asset_registry import SERVICE
from asset_registry.handlers import Dependencies, router
from asset_registry.imports import ImportPolicy
from asset_registry.settings import AssetRegistrySettings
from asset_registry.storage import AssetStorage
from service_kit.claims import EventClaims
from service_kit.consumer import Consumer, dynamodb_idempotency
from service_kit.events import EventBridgePublisher, EventPublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable


@dataclass(frozen=True)
class App:
    settings: AssetRegistrySettings
    deps: Dependencies
    consumer: Consumer


def bootstrap(
    settings: AssetRegistrySettings | None = None,
    *,
    snapshots: SnapshotTable | None = None,
    storage: AssetStorage | None = None,
    publisher: EventPublisher | None = None,
) -> App:
    """The service as deployed; each adapter not given is the real one, made from ``settings``."""
    settings = settings or AssetRegistrySettings()
    logger = get_logger(SERVICE)
    deps = Dependencies(
        snapshots=snapshots or SnapshotTable(settings.table_name),
        storage=storage or AssetStorage(settings.bucket),
        # A dataset of thousands of items is over EventBridge's 256 KB: its DatasetChanged goes by claim check.
        publisher=publisher
        or EventBridgePublisher(settings.event_bus, settings.source, claims=EventClaims(settings.bucket)),
        logger=logger,
        imports=ImportPolicy(
            max_bytes=settings.import_max_bytes,
            part_bytes=settings.import_part_bytes,
            time_limit_s=settings.import_time_limit_s,
            allow_loopback=settings.imports_allow_loopback,
        ),
        unfinished_checkpoint_age=timedelta(seconds=settings.unfinished_checkpoint_age_s),
    )
    # The command creating a dataset of thousands of items comes by claim check.
    consumer = Consumer(router(deps), logger, dynamodb_idempotency(settings.table_name), claims=EventClaims())
    return App(settings=settings, deps=deps, consumer=consumer)
