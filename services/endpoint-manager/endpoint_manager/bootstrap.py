"""The one place that wires real adapters into the handlers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from endpoint_manager import SERVICE
from endpoint_manager.handlers import Dependencies, router
from endpoint_manager.sagemaker import RuntimeSettings, SageMakerEndpoints
from service_kit.config import ServiceConfig, topic_arn
from service_kit.consumer import Consumer, dynamodb_idempotency
from service_kit.events import EventBridgePublisher
from service_kit.logging import get_logger
from service_kit.snapshots import SnapshotTable


@dataclass(frozen=True)
class App:
    config: ServiceConfig
    deps: Dependencies
    consumer: Consumer


#: sd-runtime's settings that the deployment chooses; passed on to every endpoint's container when set.
RUNTIME_SETTINGS_PASSED_ON = ("SD_RUNTIME_CAPTION_MODEL", "SD_RUNTIME_SINGLE_FILE_CONFIG", "SD_RUNTIME_PIPELINE_CACHE")


def container_environment(config: ServiceConfig, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """What the container sees: SageMaker gives a container only its model's Environment, nothing else."""
    passed = {name: environ[name] for name in RUNTIME_SETTINGS_PASSED_ON if environ.get(name)}
    return {"SDMW_BUCKET": config.bucket, **passed}


def runtime_settings(config: ServiceConfig) -> RuntimeSettings:
    return RuntimeSettings(
        image_uri=os.environ["SD_RUNTIME_IMAGE"],
        execution_role_arn=os.environ["SAGEMAKER_ROLE_ARN"],
        output_s3_uri=f"s3://{config.bucket}/sagemaker_output/",
        failure_s3_uri=f"s3://{config.bucket}/sagemaker_failure/",
        success_topic_arn=topic_arn("async-success"),
        error_topic_arn=topic_arn("async-error"),
        container_environment=container_environment(config),
    )


def bootstrap() -> App:
    config = ServiceConfig.from_env(SERVICE)
    logger = get_logger(SERVICE)
    deps = Dependencies(
        jobs=SnapshotTable(config.table_name),
        endpoints=SageMakerEndpoints(runtime_settings(config)),
        publisher=EventBridgePublisher(config.event_bus, config.source),
        logger=logger,
        max_autoscaling_instances=int(os.environ.get("MAX_AUTOSCALING_INSTANCES", "4")),
    )
    consumer = Consumer(router(deps), logger, dynamodb_idempotency(config.table_name))
    return App(config=config, deps=deps, consumer=consumer)
