"""The edge in-process, over moto: one way to build it for every test file here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from fastapi.testclient import TestClient

from api_gateway.app import create_app
from api_gateway.claims import ClaimCheck
from api_gateway.commands import CommandSender
from api_gateway.dependencies import EdgeDependencies
from api_gateway.presign import Presigner
from api_gateway.read_model import ReadModel
from api_gateway.settings import EdgeSettings
from service_kit.events import EventPublisher
from service_kit.snapshots import SnapshotTable
from tests.conftest import create_service_table

EDGE_BUCKET = "edge-bucket"


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
    )
    read_model = ReadModel(SnapshotTable(create_service_table("edge"), boto3.resource("dynamodb")))
    deps = EdgeDependencies(
        settings=settings,
        read_model=read_model,
        commands=CommandSender(publisher),
        presigner=Presigner(EDGE_BUCKET, 60, 120, s3),
        claims=ClaimCheck(EDGE_BUCKET, s3),
    )
    if clock is not None:
        deps.clock = clock
    return InProcessEdge(TestClient(create_app(deps)), read_model, s3)
