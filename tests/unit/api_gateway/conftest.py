"""The edge in-process, over moto: one way to build it for every test file here."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from api_gateway.app import create_app
from api_gateway.claims import ClaimCheck
from api_gateway.commands import CommandSender
from api_gateway.dependencies import EdgeDependencies
from api_gateway.presign import Presigner
from api_gateway.read_model import ReadModel
from api_gateway.settings import EdgeSettings
from sdmw_contracts.events import CheckpointChanged, EndpointDeploymentChanged
from sdmw_contracts.events.assets import CheckpointFile
from sdmw_contracts.runtime import plain_model_name
from service_kit.events import EventPublisher, RecordingPublisher
from service_kit.snapshots import SnapshotTable
from service_kit.webhook_secrets import StaticSigningKey
from service_kit.webhook_targets import GetAddrInfo
from tests.conftest import create_service_table

EDGE_BUCKET = "edge-bucket"
#: The edge's webhook signing key in tests.
WEBHOOK_KEY = b"k" * 32


def no_dns(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    """A resolver for which no name exists, so that no test reaches real DNS (literal addresses need none)."""
    raise socket.gaierror(socket.EAI_NONAME, f"{host} is unknown to the tests' resolver")


@dataclass
class InProcessEdge:
    client: TestClient
    read_model: ReadModel
    s3: Any


def in_process_edge(
    publisher: EventPublisher,
    *,
    keys: tuple[str, ...] = ("key",),
    transition_wait_s: float = 0.2,
    clock: Callable[[], datetime] | None = None,
    webhooks_allow_loopback: bool = False,
    resolve: GetAddrInfo = no_dns,
) -> InProcessEdge:
    """The ASGI app with real (mocked) S3 and DynamoDB, sending its commands to ``publisher``.

    Presigned URLs expire after 60 s by default and 120 s at most.
    """
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=EDGE_BUCKET)
    settings = EdgeSettings(
        stage="prod",
        api_keys=keys,
        transition_wait_s=transition_wait_s,
        presign_expiry_s=60,
        presign_max_expiry_s=120,
        upload_key_prefixes=("config/",),
        webhooks_allow_loopback=webhooks_allow_loopback,
    )
    read_model = ReadModel(SnapshotTable(create_service_table("edge"), boto3.resource("dynamodb")))
    deps = EdgeDependencies(
        settings=settings,
        read_model=read_model,
        commands=CommandSender(publisher),
        presigner=Presigner(EDGE_BUCKET, 60, 120, s3),
        claims=ClaimCheck(EDGE_BUCKET, s3),
        webhook_keys=StaticSigningKey(WEBHOOK_KEY),
        resolve=resolve,
    )
    if clock is not None:
        deps.clock = clock
    return InProcessEdge(TestClient(create_app(deps)), read_model, s3)


# ---------------------------------------------------------------- what a job needs to run


def in_service_endpoint(name: str, status: str = "InService", at: datetime | None = None) -> EndpointDeploymentChanged:
    return EndpointDeploymentChanged(
        id=f"deployment-{name}",
        version=3,
        endpoint_name=name,
        instance_type="ml.g5.xlarge",
        initial_instance_count=1,
        status="success" if status == "InService" else "inprogress",
        endpoint_status=status,
        start_time=at or datetime(2024, 1, 1, tzinfo=UTC),
    )


def active_checkpoint(checkpoint_type: str, filename: str, bucket: str = EDGE_BUCKET) -> CheckpointChanged:
    prefix = f"checkpoint/{checkpoint_type}/{filename}/"
    return CheckpointChanged(
        id=f"{checkpoint_type}-{filename}",
        version=2,
        checkpoint_type=checkpoint_type,
        status="Active",
        s3_location=f"s3://{bucket}/{prefix}",
        files=[
            CheckpointFile(
                filename=filename, key=prefix + filename, s3_uri=f"s3://{bucket}/{prefix}{filename}", parts_number=1
            )
        ],
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def ready_to_run(read_model: ReadModel, endpoint: str, models: dict[str, list[str]]) -> None:
    """The endpoint in service and every model named Active, in the edge's read model."""
    read_model.apply(in_service_endpoint(endpoint))
    for checkpoint_type, titles in models.items():
        for title in titles:
            read_model.apply(active_checkpoint(checkpoint_type, plain_model_name(title)))


# The edge as most tests here use it; a module that needs another bus double or a prepared edge overrides
# ``publisher`` or ``edge`` with a fixture of its own.


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def edge(mocked_aws, publisher: EventPublisher) -> InProcessEdge:
    return in_process_edge(publisher)
