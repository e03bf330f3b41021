"""The one place that wires real adapters into the handlers."""

from __future__ import annotations

import os
from dataclasses import dataclass

from service_kit.claims import EventClaims
from service_kit.config import ServiceConfig
from service_kit.consumer import Consumer, dynamodb_idempotency
from service_kit.events import EventBridgePublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable
from service_kit.storage import S3Storage
from training_manager import SERVICE
from training_manager.handlers import Dependencies, router
from training_manager.sagemaker import SageMakerTraining, TrainingSettings


@dataclass(frozen=True)
class App:
    config: ServiceConfig
    deps: Dependencies
    consumer: Consumer


def training_settings(config: ServiceConfig) -> TrainingSettings:
    return TrainingSettings(
        image_uri=os.environ["SD_RUNTIME_IMAGE"],
        execution_role_arn=os.environ["SAGEMAKER_ROLE_ARN"],
        model_creation_instance_type=os.environ.get("MODEL_CREATION_INSTANCE_TYPE", "ml.g4dn.xlarge"),
        max_runtime_s=int(os.environ.get("TRAINING_MAX_RUNTIME_S", str(24 * 3600))),
        volume_size_gb=int(os.environ.get("TRAINING_VOLUME_SIZE_GB", "100")),
        container_environment={"SDMW_BUCKET": config.bucket},
    )


def bootstrap() -> App:
    config = ServiceConfig.from_env(SERVICE)
    logger = get_logger(SERVICE)
    settings = training_settings(config)
    deps = Dependencies(
        snapshots=SnapshotTable(config.table_name),
        storage=S3Storage(config.bucket),
        training=SageMakerTraining(settings),
        settings=settings,
        # Facts and commands over EventBridge's 256 KB travel by claim check (service_kit.claims), both ways.
        publisher=EventBridgePublisher(config.event_bus, config.source, claims=EventClaims(config.bucket)),
        logger=logger,
    )
    consumer = Consumer(router(deps), logger, dynamodb_idempotency(config.table_name), claims=EventClaims())
    return App(config=config, deps=deps, consumer=consumer)
