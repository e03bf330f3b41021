"""The one place that wires real adapters into the handlers."""

from __future__ import annotations

import os
from dataclasses import dataclass

from inference_dispatcher import SERVICE
from inference_dispatcher.adapters import S3Storage, SageMakerAsync
from inference_dispatcher.handlers import Dependencies, router
from inference_dispatcher.lookups import Lookups
from service_kit.claims import EventClaims
from service_kit.config import ServiceConfig
from service_kit.consumer import Consumer, dynamodb_idempotency
from service_kit.events import EventBridgePublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable


@dataclass(frozen=True)
class App:
    config: ServiceConfig
    deps: Dependencies
    consumer: Consumer


def bootstrap() -> App:
    config = ServiceConfig.from_env(SERVICE)
    logger = get_logger(SERVICE)
    table = SnapshotTable(config.table_name)
    deps = Dependencies(
        jobs=table,
        lookups=Lookups(table),
        storage=S3Storage(config.bucket),
        endpoints=SageMakerAsync(
            queue_ttl_s=int(os.environ.get("INFERENCE_QUEUE_TTL_S", "3600")),
            invocation_timeout_s=int(os.environ.get("INFERENCE_TIMEOUT_S", "900")),
        ),
        # Facts and commands over EventBridge's 256 KB travel by claim check (service_kit.claims), both ways.
        publisher=EventBridgePublisher(config.event_bus, config.source, claims=EventClaims(config.bucket)),
        logger=logger,
        grace_s=int(os.environ.get("INFERENCE_DEADLINE_GRACE_S", "60")),
        model_arrival_grace_s=int(os.environ.get("INFERENCE_MODEL_ARRIVAL_GRACE_S", "15")),
    )
    consumer = Consumer(router(deps), logger, dynamodb_idempotency(config.table_name), claims=EventClaims())
    return App(config=config, deps=deps, consumer=consumer)
