"""The one place that wires real adapters into the handlers; tests pass their own."""

from __future__ import annotations

from dataclasses import dataclass

from service_kit.claims import EventClaims
from service_kit.consumer import Consumer, dynamodb_idempotency
from service_kit.events import EventBridgePublisher, EventPublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable
from service_kit.storage import S3Storage, Storage
from training_manager import SERVICE
from training_manager.files import JobFiles, S3JobFiles
from training_manager.handlers import Dependencies, router
from training_manager.sagemaker import SageMakerTraining, TrainingGateway
from training_manager.settings import TrainingManagerSettings


@dataclass(frozen=True)
class App:
    settings: TrainingManagerSettings
    deps: Dependencies
    consumer: Consumer


def bootstrap(
    settings: TrainingManagerSettings | None = None,
    *,
    snapshots: SnapshotTable | None = None,
    storage: Storage | None = None,
    training: TrainingGateway | None = None,
    publisher: EventPublisher | None = None,
    files: JobFiles | None = None,
) -> App:
    """The service as deployed; each adapter not given is the real one, made from ``settings``."""
    settings = settings or TrainingManagerSettings()
    logger = get_logger(SERVICE)
    training_settings = settings.training()
    deps = Dependencies(
        snapshots=snapshots or SnapshotTable(settings.table_name),
        storage=storage or S3Storage(settings.bucket),
        training=training or SageMakerTraining(training_settings),
        settings=training_settings,
        # Facts and commands over EventBridge's 256 KB travel by claim check (service_kit.claims), both ways.
        publisher=publisher
        or EventBridgePublisher(settings.event_bus, settings.source, claims=EventClaims(settings.bucket)),
        logger=logger,
        files=files or S3JobFiles(settings.bucket),
    )
    consumer = Consumer(router(deps), logger, dynamodb_idempotency(settings.table_name), claims=EventClaims())
    return App(settings=settings, deps=deps, consumer=consumer)
