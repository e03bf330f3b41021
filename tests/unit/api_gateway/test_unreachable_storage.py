"""With AWS (the local emulator) down, a route answers the documented 503 JSON, not a plain-text 500."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.config import Config
from fastapi.testclient import TestClient

from api_gateway.app import create_app
from api_gateway.read_model import ReadModel
from service_kit.events import RecordingPublisher
from service_kit.snapshots import SnapshotTable
from tests.unit.api_gateway.conftest import in_process_edge

KEY = {"x-api-key": "key"}


def closed_port() -> int:
    """A port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def edge_with_storage_down(mocked_aws) -> TestClient:
    edge = in_process_edge(RecordingPublisher())
    down = boto3.resource(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1),
    )
    deps = edge.client.app.state.deps
    deps.read_model = ReadModel(SnapshotTable("sdmw-api-gateway", down))
    return TestClient(create_app(deps), raise_server_exceptions=False)


def test_a_read_with_the_storage_unreachable_answers_503_json(edge_with_storage_down: TestClient):
    response = edge_with_storage_down.get("/prod/checkpoints", headers=KEY)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["statusCode"] == 503 and "unreachable" in body["error"] and "EndpointConnectionError" in body["error"]
