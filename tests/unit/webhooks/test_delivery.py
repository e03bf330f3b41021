"""Delivery: one signed POST, its outcome, and the retry schedule that follows (httpx.MockTransport as receiver)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from tests.unit.webhooks.secrets import new_secret
from webhooks.delivery import (
    FIRST_DELAY_S,
    GIVE_UP_AFTER_S,
    JITTER,
    MAX_DELAY_S,
    Attempt,
    Deliverer,
    Delivery,
    Outcome,
    classify_status,
    new_client,
    next_delay,
    retry_delay,
    should_retry,
)
from webhooks.signing import webhook_id
from webhooks.transport import CheckedTransport

SECRET = new_secret()
DELIVERY = Delivery(
    event_id="evt-1",
    subscription_id="sub-1",
    url="https://hooks.example.com/sdmw",
    secret=SECRET,
    body=json.dumps({"type": "InferenceJobChanged", "data": {"id": "job-1"}}),
)


def public_dns(host, port, *args, **kwargs):
    if host != "hooks.example.com":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]


def deliverer(handler, getaddrinfo=public_dns) -> Deliverer:
    return Deliverer(httpx.Client(transport=httpx.MockTransport(handler)), getaddrinfo=getaddrinfo)


def answering(status: int, body: bytes = b"", received: list | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        if received is not None:
            received.append(request)
        return httpx.Response(status, content=body)

    return handler


def test_a_2xx_answer_is_delivered_and_the_request_verifies():
    received: list[httpx.Request] = []
    attempt = deliverer(answering(204, received=received)).deliver(DELIVERY)
    assert attempt == Attempt(Outcome.DELIVERED, 204)
    [request] = received
    assert request.method == "POST"
    assert str(request.url) == DELIVERY.url
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == webhook_id("evt-1", "sub-1")
    assert Webhook(SECRET).verify(request.content, dict(request.headers)) == json.loads(DELIVERY.body)


def test_every_attempt_carries_the_same_webhook_id():
    received: list[httpx.Request] = []
    sender = deliverer(answering(500, received=received))
    sender.deliver(DELIVERY)
    sender.deliver(DELIVERY, now=datetime.now(UTC) + timedelta(seconds=30))
    assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"]


def test_a_500_is_retried_and_its_answer_kept():
    attempt = deliverer(answering(500, b"database is down")).deliver(DELIVERY)
    assert attempt == Attempt(Outcome.RETRY, 500, "HTTP 500: database is down")
    assert should_retry(attempt.outcome)


def test_a_410_is_final():
    attempt = deliverer(answering(410, b"gone")).deliver(DELIVERY)
    assert attempt == Attempt(Outcome.FINAL, 410, "HTTP 410: gone")
    assert not should_retry(attempt.outcome)


def test_only_the_start_of_a_long_answer_is_kept():
    attempt = deliverer(answering(400, b"x" * 100_000)).deliver(DELIVERY)
    assert attempt.error == "HTTP 400: " + "x" * 500


def test_a_timeout_is_retried():
    def handler(request):
        raise httpx.ReadTimeout("no answer", request=request)

    attempt = deliverer(handler).deliver(DELIVERY)
    assert attempt.outcome is Outcome.RETRY
    assert attempt.status_code is None
    assert "timed out" in attempt.error


def test_a_refused_connection_is_retried():
    def handler(request):
        raise httpx.ConnectError("connection refused", request=request)

    attempt = deliverer(handler).deliver(DELIVERY)
    assert attempt.outcome is Outcome.RETRY
    assert attempt.error == "connection failed: ConnectError: connection refused"


def test_a_redirect_is_not_followed_and_is_final():
    received: list[httpx.Request] = []

    def handler(request):
        received.append(request)
        return httpx.Response(302, headers={"location": "http://169.254.169.254/latest/meta-data/"})

    attempt = deliverer(handler).deliver(DELIVERY)
    assert attempt.outcome is Outcome.FINAL
    assert len(received) == 1


def test_a_target_now_resolving_to_an_internal_address_is_final_and_never_contacted():
    received: list[httpx.Request] = []

    def rebound(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    attempt = deliverer(answering(200, received=received), getaddrinfo=rebound).deliver(DELIVERY)
    assert attempt.outcome is Outcome.FINAL
    assert attempt.error.startswith("target refused: hooks.example.com resolves to 169.254.169.254")
    assert received == []


def test_a_host_that_does_not_resolve_now_is_retried():
    def nothing(host, port, *args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    attempt = deliverer(answering(200), getaddrinfo=nothing).deliver(DELIVERY)
    assert attempt.outcome is Outcome.RETRY
    assert "does not resolve" in attempt.error


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (201, Outcome.DELIVERED),
        (299, Outcome.DELIVERED),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (504, Outcome.RETRY),
        (301, Outcome.FINAL),
        (400, Outcome.FINAL),
        (401, Outcome.FINAL),
        (403, Outcome.FINAL),
        (404, Outcome.FINAL),
        (410, Outcome.FINAL),
        (413, Outcome.FINAL),
    ],
)
def test_statuses_are_classified(status, outcome):
    assert classify_status(status) is outcome


def test_delays_double_from_30_s_up_to_an_hour_without_jitter():
    assert [next_delay(n, rand=lambda: 0.0) for n in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert next_delay(1000, rand=lambda: 0.0) == MAX_DELAY_S


def test_jitter_only_shortens_a_delay_by_up_to_a_fifth():
    assert next_delay(1, rand=lambda: 1.0) == pytest.approx(FIRST_DELAY_S * (1 - JITTER))
    assert all(FIRST_DELAY_S * (1 - JITTER) <= next_delay(1) <= FIRST_DELAY_S for _ in range(100))
    assert all(MAX_DELAY_S * (1 - JITTER) <= next_delay(20) <= MAX_DELAY_S for _ in range(100))


def test_retrying_stops_when_delivered_final_or_after_a_day():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    failed = Attempt(Outcome.RETRY, 503, "HTTP 503")
    assert retry_delay(failed, 1, start, start, rand=lambda: 0.0) == 30
    assert retry_delay(Attempt(Outcome.DELIVERED, 200), 1, start, start) is None
    assert retry_delay(Attempt(Outcome.FINAL, 404, "HTTP 404"), 1, start, start) is None
    late = start + timedelta(seconds=GIVE_UP_AFTER_S - 60)
    assert retry_delay(failed, 25, start, late, rand=lambda: 0.0) is None


def test_a_receiver_down_all_day_gets_a_bounded_number_of_attempts():
    start = now = datetime(2026, 1, 1, tzinfo=UTC)
    attempts = 1
    while (delay := retry_delay(Attempt(Outcome.RETRY), attempts, start, now, rand=lambda: 0.0)) is not None:
        now += timedelta(seconds=delay)
        attempts += 1
    assert timedelta(hours=23) < now - start <= timedelta(hours=24)
    assert 25 <= attempts <= 35


def test_the_real_client_ignores_the_environment_and_redirects():
    with new_client() as client:
        assert client.trust_env is False
        assert client.follow_redirects is False
        assert client.timeout == httpx.Timeout(10.0)
        assert isinstance(client._transport, CheckedTransport)
