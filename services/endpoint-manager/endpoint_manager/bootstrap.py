"""The one place that wires real adapters into the handlers; tests pass their own."""

from __future__ import annotations

from dataclasses import dataclass

from endpoint_manager import SERVICE
from endpoint_manager.handlers import Dependencies, router
from endpoint_manager.sagemaker import EndpointGateway, SageMakerEndpoints
from endpoint_manager.settings import EndpointManagerSettings
from service_kit.consumer import Consumer, dynamodb_idempotency
from service_kit.events import EventBridgePublisher, EventPublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable


@dataclass(frozen=True)
class App:
    settings: EndpointManagerSettings
    deps: Dependencies
    consumer: Consumer


def bootstrap(
    settings: EndpointManagerSettings | None = None,
    *,
    jobs: SnapshotTable | None = None,
    endpoints: EndpointGateway | None = None,
    publisher: EventPublisher | None = None,
) -> App:
    """The service as deployed; each adapter not given is the real one, made from ``settings``."""
    settings = settings or EndpointManagerSettings()
    logger = get_logger(SERVICE)
    deps = Dependencies(
        jobs=jobs or SnapshotTable(settings.table_name),
        endpoints=endpoints or SageMakerEndpoints(settings.runtime()),
        publisher=publisher or EventBridgePublisher(settings.event_bus, settings.source),
        logger=logger,
        max_autoscaling_instances=settings.max_autoscaling_instances,
    )
    consumer = Consumer(router(deps), logger, dynamodb_idempotency(settings.table_name))
    return App(settings=settings, deps=deps, consumer=consumer)
