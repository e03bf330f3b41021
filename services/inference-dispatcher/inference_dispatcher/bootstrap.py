"""The one place that wires real adapters into the handlers; tests pass their own."""

from __future__ import annotations

from dataclasses import dataclass

from inference_dispatcher import SERVICE
from inference_dispatcher.adapters import Endpoints, S3Storage, SageMakerAsync, Storage
from inference_dispatcher.handlers import Dependencies, router
from inference_dispatcher.settings import InferenceDispatcherSettings
from service_kit.claims import EventClaims
from service_kit.consumer import Consumer
from service_kit.events import EventBridgePublisher, EventPublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable


@dataclass(frozen=True)
class App:
    settings: InferenceDispatcherSettings
    deps: Dependencies
    consumer: Consumer


def bootstrap(
    settings: InferenceDispatcherSettings | None = None,
    *,
    jobs: SnapshotTable | None = None,
    storage: Storage | None = None,
    endpoints: Endpoints | None = None,
    publisher: EventPublisher | None = None,
) -> App:
    """The service as deployed; each adapter not given is the real one, made from ``settings``."""
    settings = settings or InferenceDispatcherSettings()
    logger = get_logger(SERVICE)
    deps = Dependencies(
        jobs=jobs or SnapshotTable(settings.table_name),
        storage=storage or S3Storage(settings.bucket),
        endpoints=endpoints or SageMakerAsync(settings.queue_ttl_s, settings.invocation_timeout_s),
        # Facts and commands over EventBridge's 256 KB travel by claim check (service_kit.claims), both ways.
        publisher=publisher
        or EventBridgePublisher(settings.event_bus, settings.source, claims=EventClaims(settings.bucket)),
        logger=logger,
        grace_s=settings.deadline_grace_s,
    )
    # No idempotency records: every handler is idempotent by its conditional writes (see handlers).
    consumer = Consumer(router(deps), logger, idempotency_store=None, claims=EventClaims())
    return App(settings=settings, deps=deps, consumer=consumer)
