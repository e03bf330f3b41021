"""The HTTP edge's AWS calls give up after 3 tries (issue 20, item 12: with the emulator down, routes answered
only after 7-24 s of the workers' 6 tries with back-off)."""

from __future__ import annotations

import socket

import pytest
from botocore.exceptions import EndpointConnectionError

from service_kit import aws


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def shared_clients_restored(monkeypatch):
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(aws, "_CLIENT_CONFIG", aws._CLIENT_CONFIG)
    aws.client.cache_clear()
    aws.resource.cache_clear()
    yield
    aws.client.cache_clear()
    aws.resource.cache_clear()


def tries_against_a_closed_port(monkeypatch) -> int:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    table = aws.resource("dynamodb").Table("t")
    tries = []
    table.meta.client.meta.events.register("before-send", lambda **_: tries.append(1))
    with pytest.raises(EndpointConnectionError):
        table.get_item(Key={"pk": "x"})
    return len(tries)


def test_a_process_that_answers_people_tries_an_unreachable_aws_three_times(shared_clients_restored, monkeypatch):
    aws.answer_fast()
    assert tries_against_a_closed_port(monkeypatch) == 3
    config = aws.client("s3").meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 20)


def test_workers_keep_their_six_tries(shared_clients_restored):
    assert aws.client("sqs").meta.config.retries["total_max_attempts"] == 6
