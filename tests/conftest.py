"""Fixtures shared by every layer of tests.

Unit tests use moto in-process (``mock_aws``); integration tests a moto server
on a free port (real HTTP, real queues); end-to-end tests start the whole
stack the way ``make up`` does, on ports of their own.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from infra.local.provision import table_definition
from service_kit import aws
from service_kit.resources import Table

REGION = "us-east-1"

#: What every service's bootstrap reads to find its resources (service_kit.config and the SageMaker settings).
SERVICE_ENVIRONMENT = {
    "SDMW_EVENT_BUS": "sdmw-bus",
    "SDMW_BUCKET": "sdmw-bucket",
    "SDMW_TABLE": "sdmw-table",
    "SDMW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sdmw-queue",
    "SDMW_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sdmw-queue-dlq",
    "SDMW_WEBHOOK_SIGNING_KEY_SECRET": "sdmw-webhook-signing-key",
    "SDMW_TOPIC_ASYNC_SUCCESS_ARN": "arn:aws:sns:us-east-1:123456789012:sdmw-async-success",
    "SDMW_TOPIC_ASYNC_ERROR_ARN": "arn:aws:sns:us-east-1:123456789012:sdmw-async-error",
    "SD_RUNTIME_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sd-runtime:test",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sdmw-sagemaker-execution",
}


@pytest.fixture(autouse=True)
def fresh_aws_clients() -> Iterator[None]:
    """Shared clients are per process in services; per test here, so each sees its own emulator."""
    aws.client.cache_clear()
    aws.resource.cache_clear()
    yield
    aws.client.cache_clear()
    aws.resource.cache_clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region; no test ever reaches real AWS."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def mocked_aws(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def moto_server(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server on a free port; AWS_ENDPOINT_URL points every client at it."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    yield url
    server.stop()


def create_service_table(name: str) -> str:
    """A table shaped like every service's (its keys and indexes, as provisioned), for tests that need only it."""
    boto3.client("dynamodb").create_table(**table_definition(name, Table(name)))
    return name
