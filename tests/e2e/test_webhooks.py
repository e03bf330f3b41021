"""Webhooks end to end: subscriptions through the API, receivers on this machine, real inference jobs.

Four receivers subscribe to inference jobs: one answers 200, one answers 500 to its first request, one
answers 410, one hangs longer than a delivery attempt may take. Every request is checked with the Standard
Webhooks reference library and the secret the API showed at creation. The e2e stack waits 2 s before a
first retry (``WEBHOOKS_FIRST_RETRY_S``), not 30.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
import pytest
from standardwebhooks import Webhook

from infra.local.stack import LocalStack
from tests.e2e.conftest import ApiClient
from tests.e2e.receivers import OriginPerPath
from tests.e2e.test_inference import endpoint, infer  # noqa: F401 - the module's endpoint fixture
from webhooks.resources import RESOURCES

pytestmark = pytest.mark.e2e

#: Longer than a delivery attempt's 15 s deadline: the hanging receiver's attempts are cut off.
HANG_S = 20


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receivers:
    """Receivers on 127.0.0.1 whose paths behave differently, each path a server (an origin) of its own:
    webhooks shares delivery slots and pauses per origin, as for one receiving host."""

    received: list[Received] = field(default_factory=list)
    first_answered: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    origins: OriginPerPath = field(init=False)

    def __post_init__(self) -> None:
        self.origins = OriginPerPath(self.on_post)

    def url(self, path: str) -> str:
        return self.origins.url(path)

    def on_post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.received.append(Received(path, headers, body, time.monotonic()))
        return self.status_for(path, body)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def status_for(self, path: str, body: bytes) -> int:
        key = f"{path}:{json.loads(body)['data']['id']}"
        with self.lock:
            first = key not in self.first_answered
            self.first_answered.add(key)
        if path == "/flaky":
            return 500 if first else 200
        if path == "/gone":
            return 410
        if path == "/hang":
            time.sleep(HANG_S)
        return 200


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    state = Receivers()
    yield state
    state.origins.shutdown()


def subscribe(api: ApiClient, url: str, **fields) -> dict:
    answer = api.post("/webhooks", json={"url": url, "event_types": ["inference"], "terminal_only": True, **fields})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["secret"].startswith("whsec_")
    return created


def verified(received: Received, secret: str) -> dict:
    """The body, if its signature is valid for ``secret`` (the reference library raises otherwise)."""
    return Webhook(secret).verify(received.body, received.headers)


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s}s: {what}")


def dead_letters(stack: LocalStack) -> list[dict]:
    settings = stack.settings
    sqs = boto3.client(
        "sqs",
        endpoint_url=settings.emulator_url,
        region_name=settings.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    url = sqs.get_queue_url(QueueName=RESOURCES.dlq_name(settings.prefix))["QueueUrl"]
    found = []
    for _ in range(3):
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=1
        )
        found += answer.get("Messages", [])
    return found


def test_refused_targets_get_a_clear_400_and_nothing_is_made(api: ApiClient):
    before = api.get("/webhooks").json()["webhooks"]
    for url in ("ftp://example.com/in", "http://user:pw@example.com/in", "http://169.254.169.254/latest"):
        answer = api.post("/webhooks", json={"url": url, "event_types": ["inference"]})
        assert answer.status_code == 400, (url, answer.text)
    assert api.get("/webhooks").json()["webhooks"] == before


def test_receivers_get_each_event_once_signed_retried_after_500_never_after_410_while_one_hangs(
    api: ApiClient, stack: LocalStack, endpoint: str, receivers: Receivers  # noqa: F811
):
    secrets = {path: subscribe(api, receivers.url(path))["secret"] for path in ("/ok", "/flaky", "/gone", "/hang")}

    started = time.monotonic()
    jobs = [infer(api, endpoint, seed=seed) for seed in (11, 12)]
    jobs_took_s = time.monotonic() - started
    assert [job["status"] for job in jobs] == ["succeed", "succeed"]
    job_ids = {job["InferenceJobId"] for job in jobs}

    # The healthy receiver: each job's final state, once, signed, while the hanging one is still held.
    wait_until(lambda: len(receivers.at("/ok")) >= 2, 30, "both jobs delivered to the healthy receiver")
    ok = receivers.at("/ok")
    bodies = [verified(r, secrets["/ok"]) for r in ok]
    assert {b["data"]["id"] for b in bodies} == job_ids
    assert {b["data"]["status"] for b in bodies} == {"succeed"}
    assert {b["type"] for b in bodies} == {"InferenceJobChanged"}
    assert len({r.headers["webhook-id"] for r in ok}) == 2

    # 500 first, then a retry with the same webhook-id, valid again.
    wait_until(lambda: len(receivers.at("/flaky")) >= 4, 60, "the failed deliveries retried")
    flaky = receivers.at("/flaky")
    by_id: dict[str, list[Received]] = {}
    for request in flaky:
        assert verified(request, secrets["/flaky"])["data"]["id"] in job_ids
        by_id.setdefault(request.headers["webhook-id"], []).append(request)
    assert sorted(len(requests) for requests in by_id.values()) == [2, 2]
    for first, retry in by_id.values():
        assert retry.at - first.at >= 1.5  # waited for the retry's delay, not sent again at once

    # 410: one request per event and none after, and the delivery is in the DLQ with the last error.
    time.sleep(6)  # three times the first retry's wait
    gone = receivers.at("/gone")
    assert len(gone) == 2 and len({r.headers["webhook-id"] for r in gone}) == 2
    for request in gone:
        verified(request, secrets["/gone"])
    errors = [m["MessageAttributes"]["last_error"]["StringValue"] for m in dead_letters(stack)]
    assert sum("HTTP 410" in error for error in errors) >= 2

    # The hanging receiver was tried (its other delivery waits while it does not answer), and held up
    # nothing: the jobs took as long as jobs take.
    assert len(receivers.at("/hang")) >= 1
    assert jobs_took_s < 60, f"two jobs took {jobs_took_s:.0f}s while a receiver hung"


def test_a_jobs_own_webhook_gets_its_final_state_signed_with_the_default_secret(
    api: ApiClient, endpoint: str, receivers: Receivers  # noqa: F811
):
    default = api.get("/webhooks/default/secret")
    assert default.status_code == 200, default.text
    job = infer(api, endpoint, webhook=receivers.url("/job"), webhook_events_filter=["completed"])
    assert job["status"] == "succeed"
    wait_until(lambda: len(receivers.at("/job")) >= 1, 30, "the job's own webhook delivered")
    [request] = receivers.at("/job")
    body = verified(request, default.json()["secret"])
    assert body["data"]["id"] == job["InferenceJobId"] and body["data"]["status"] == "succeed"


def test_a_deleted_subscription_gets_nothing_more(api: ApiClient, endpoint: str, receivers: Receivers):  # noqa: F811
    created = subscribe(api, receivers.url("/deleted"))
    deleted = api.delete(f"/webhooks/{created['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "deleted"
    assert created["id"] not in [w["id"] for w in api.get("/webhooks").json()["webhooks"]]
    assert infer(api, endpoint, seed=21)["status"] == "succeed"
    time.sleep(3)
    assert receivers.at("/deleted") == []
