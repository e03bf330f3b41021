"""The webhooks service's handlers on test doubles: an in-memory table, a recording outbox and an
``httpx.MockTransport`` receiver that checks every signature with the standardwebhooks package."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aws_lambda_powertools import Logger
from standardwebhooks import Webhook

from sdmw_contracts.envelope import EntityChanged, EventEnvelope, snapshot_event_id
from sdmw_contracts.events import (
    EndpointDeploymentChanged,
    InferenceJobChanged,
    WebhookSubscriptionChanged,
    WebhookSubscriptionDeletionRequested,
    WebhookSubscriptionRequested,
)
from sdmw_contracts.events.webhooks import JobWebhook
from service_kit.events import RecordingPublisher
from service_kit.messages import BusEvent, parse_message
from service_kit.testing import InMemorySnapshotTable
from service_kit.webhook_secrets import DEFAULT_SUBSCRIPTION, StaticSigningKey
from webhooks.deliveries import DeliveryDue, RecordingOutbox, message_body
from webhooks.delivery import GIVE_UP_AFTER_S, Deliverer
from webhooks.handlers import Dependencies, router
from webhooks.signing import webhook_id

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
KEYS = StaticSigningKey(b"k" * 32)
URL = "https://hooks.example.com/in"
OTHER_URL = "https://other.example.com/in"


def public_dns(host, port, *args, **kwargs):
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]


@dataclass
class Receiver:
    """Answers each URL with a status (200 unless told), and keeps what it verified."""

    statuses: dict[str, int] = field(default_factory=dict)
    received: list[tuple[str, dict, dict]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        secret = KEYS.secret_for(self.signed_as[url])
        body = Webhook(secret).verify(request.content, dict(request.headers))  # raises on a bad signature
        self.received.append((url, dict(request.headers), body))
        return httpx.Response(self.statuses.get(url, 200))

    signed_as: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    table: InMemorySnapshotTable = field(default_factory=InMemorySnapshotTable)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    outbox: RecordingOutbox = field(default_factory=RecordingOutbox)
    receiver: Receiver = field(default_factory=Receiver)
    now: list[datetime] = field(default_factory=lambda: [NOW])

    def __post_init__(self) -> None:
        client = httpx.Client(transport=httpx.MockTransport(self.receiver))
        self.deps = Dependencies(
            snapshots=self.table,
            publisher=self.publisher,
            outbox=self.outbox,
            deliverer=Deliverer(client, getaddrinfo=public_dns),
            keys=KEYS,
            logger=Logger(service="webhooks-test"),
            clock=lambda: self.now[0],
        )
        self.routes = router(self.deps)

    def dispatch(self, event: BusEvent) -> None:
        self.routes.dispatch(event)

    def subscribe(self, subscription_id: str, url: str = URL, **fields) -> None:
        command = WebhookSubscriptionRequested(
            subscription_id=subscription_id,
            url=url,
            event_types=fields.pop("event_types", ["inference"]),
            requested_at=NOW,
            **fields,
        )
        self.dispatch(bus(command))
        self.receiver.signed_as[url] = subscription_id

    def run_deliveries(self) -> list[tuple[DeliveryDue, float]]:
        """Hand every delivery sent so far to the handler, as the queue would (delays not waited)."""
        pending, self.outbox.sent = self.outbox.sent, []
        for delivery, _delay in pending:
            self.dispatch(as_queued(delivery))
        return pending


def bus(event, source: str = "sdmw.api-gateway") -> BusEvent:
    event_id = snapshot_event_id(event) if isinstance(event, EntityChanged) else None
    envelope = EventEnvelope.wrap(event, producer=source.removeprefix("sdmw."), correlation_id="c", event_id=event_id)
    detail = json.loads(envelope.model_dump_json())
    return BusEvent(id="e", source=source, detail_type=event.detail_type(), detail=detail)


def as_queued(delivery: DeliveryDue) -> BusEvent:
    """The delivery as the consumer parses it from the queue: through the real message body."""
    message = parse_message(message_body(delivery))
    assert isinstance(message, BusEvent)
    return message


def job(status: str = "succeed", version: int = 2, webhook: JobWebhook | None = None) -> InferenceJobChanged:
    return InferenceJobChanged(
        id="job-1",
        version=version,
        task_type="txt2img",
        endpoint_name="ep",
        status=status,
        start_time=NOW,
        webhook=webhook,
    )


@pytest.fixture
def world() -> World:
    return World()


# ---------------------------------------------------------------- subscriptions


def test_a_subscription_is_saved_and_published_without_its_secret(world):
    world.subscribe("sub-1")
    saved = world.table.get(WebhookSubscriptionChanged, "sub-1")
    assert saved.status == "active" and saved.version == 1 and saved.url == URL
    [published] = world.publisher.of_type("WebhookSubscriptionChanged")
    assert published["data"]["id"] == "sub-1"
    assert KEYS.secret_for("sub-1") not in json.dumps(published)


def test_a_repeated_subscription_command_changes_nothing(world):
    world.subscribe("sub-1")
    world.subscribe("sub-1")
    assert world.table.get(WebhookSubscriptionChanged, "sub-1").version == 1


def test_deletion_marks_it_deleted_and_deliveries_stop(world):
    world.subscribe("sub-1")
    world.dispatch(bus(job(), source="sdmw.inference-dispatcher"))
    world.dispatch(bus(WebhookSubscriptionDeletionRequested(subscription_id="sub-1", requested_at=NOW)))
    assert world.table.get(WebhookSubscriptionChanged, "sub-1").status == "deleted"
    world.run_deliveries()  # fanned out before the deletion: dropped when its turn comes
    assert world.receiver.received == []
    world.dispatch(bus(job(version=3), source="sdmw.inference-dispatcher"))
    assert world.outbox.sent == []


def test_deletion_before_the_creation_arrived_is_retried(world):
    with pytest.raises(LookupError):
        world.dispatch(bus(WebhookSubscriptionDeletionRequested(subscription_id="sub-9", requested_at=NOW)))


# ---------------------------------------------------------------- fan-out and delivery


def test_each_subscribed_fact_reaches_each_subscriber_once_signed_with_its_own_secret(world):
    world.subscribe("sub-1", URL)
    world.subscribe("sub-2", OTHER_URL)
    fact = bus(job(), source="sdmw.inference-dispatcher")
    world.dispatch(fact)
    world.run_deliveries()
    assert sorted(url for url, _, _ in world.receiver.received) == sorted([URL, OTHER_URL])
    event_id = fact.envelope().metadata.event_id
    for url, headers, body in world.receiver.received:
        subscription = world.receiver.signed_as[url]
        assert headers["webhook-id"] == webhook_id(event_id, subscription)
        assert body["type"] == "InferenceJobChanged"
        assert body["data"]["id"] == "job-1" and body["data"]["status"] == "succeed"


def test_the_same_fact_twice_keeps_one_webhook_id(world):
    world.subscribe("sub-1")
    fact = bus(job(), source="sdmw.inference-dispatcher")
    world.dispatch(fact)
    world.dispatch(fact)
    world.run_deliveries()
    ids = {headers["webhook-id"] for _, headers, _ in world.receiver.received}
    assert len(world.receiver.received) == 2 and len(ids) == 1


def test_kinds_and_terminal_only_filter_what_is_sent(world):
    world.subscribe("inference-only", URL, event_types=["inference"])
    world.subscribe("endpoints-final", OTHER_URL, event_types=["endpoint"], terminal_only=True)
    endpoint = EndpointDeploymentChanged(
        id="ep-job", version=2, endpoint_name="ep", instance_type="ml.g5.xlarge", initial_instance_count=1,
        status="inprogress", start_time=NOW,
    )
    world.dispatch(bus(endpoint, source="sdmw.endpoint-manager"))
    assert world.outbox.sent == []  # not final, and the inference subscriber does not want endpoints
    world.dispatch(bus(endpoint.model_copy(update={"version": 3, "status": "success"}), source="sdmw.endpoint-manager"))
    assert [delivery.subscription_id for delivery, _ in world.outbox.sent] == ["endpoints-final"]


def test_a_jobs_own_webhook_gets_its_changes_signed_with_the_default_secret(world):
    hook = JobWebhook(url=URL, events_filter=["completed"])
    world.receiver.signed_as[URL] = DEFAULT_SUBSCRIPTION
    world.dispatch(bus(job(status="inprogress", version=1, webhook=hook), source="sdmw.inference-dispatcher"))
    assert world.outbox.sent == []  # only "completed" asked for
    world.dispatch(bus(job(webhook=hook), source="sdmw.inference-dispatcher"))
    world.run_deliveries()
    [(url, _, body)] = world.receiver.received
    assert url == URL and body["data"]["status"] == "succeed"


def test_a_5xx_is_retried_later_and_delivered_once_the_receiver_is_back(world):
    world.subscribe("sub-1")
    world.receiver.statuses[URL] = 500
    world.dispatch(bus(job(), source="sdmw.inference-dispatcher"))
    world.run_deliveries()
    [(retry, delay)] = world.outbox.sent
    assert retry.attempt == 2 and retry.last_status_code == 500 and 20 <= delay <= 30
    world.receiver.statuses[URL] = 200
    world.now[0] = NOW + timedelta(seconds=delay)
    world.run_deliveries()
    first, second = (headers["webhook-id"] for _, headers, _ in world.receiver.received)
    assert first == second
    assert world.outbox.sent == [] and world.outbox.dead == []


def test_a_wait_longer_than_sqs_allows_is_sent_on_until_due(world):
    world.subscribe("sub-1")
    world.dispatch(bus(job(), source="sdmw.inference-dispatcher"))
    [(delivery, _)] = world.outbox.sent
    world.outbox.sent = []
    later = delivery.model_copy(update={"not_before": NOW + timedelta(hours=1)})
    world.dispatch(as_queued(later))
    [(again, delay)] = world.outbox.sent
    assert again.attempt == 1 and delay == 3600 and world.receiver.received == []


def test_a_410_is_not_retried_and_ends_in_the_dlq_with_its_error(world):
    world.subscribe("sub-1")
    world.receiver.statuses[URL] = 410
    world.dispatch(bus(job(), source="sdmw.inference-dispatcher"))
    world.run_deliveries()
    assert world.outbox.sent == []
    [dead] = world.outbox.dead
    assert dead.last_status_code == 410 and "410" in dead.last_error


def test_retries_stop_after_a_day_and_the_delivery_ends_in_the_dlq(world):
    world.subscribe("sub-1")
    world.receiver.statuses[URL] = 503
    world.dispatch(bus(job(), source="sdmw.inference-dispatcher"))
    world.now[0] = NOW + timedelta(seconds=GIVE_UP_AFTER_S - 10)
    world.run_deliveries()
    assert world.outbox.sent == []
    [dead] = world.outbox.dead
    assert dead.last_status_code == 503


def test_a_private_target_is_never_contacted(world):
    world.subscribe("sub-1", "http://10.0.0.7/in")
    world.dispatch(bus(job(), source="sdmw.inference-dispatcher"))
    world.run_deliveries()
    assert world.receiver.received == []
    [dead] = world.outbox.dead
    assert "private" in dead.last_error


def test_after_a_receiver_did_not_answer_its_deliveries_wait_without_an_attempt(world):
    world.subscribe("sub-1")
    world.receiver.signed_as[OTHER_URL] = "sub-2"
    world.subscribe("sub-2", OTHER_URL)
    world.deps.gate.done(URL, answered=False)  # as after a timeout of an attempt to URL
    world.dispatch(bus(job(), source="sdmw.inference-dispatcher"))
    world.run_deliveries()
    assert [url for url, _, _ in world.receiver.received] == [OTHER_URL]
    [(waiting, delay)] = world.outbox.sent
    assert waiting.url == URL and waiting.attempt == 1 and waiting.last_error is None
    assert 0 < delay <= 15 and waiting.not_before == NOW + timedelta(seconds=delay)


def test_a_timed_out_attempt_pauses_its_receiver(world):
    def hangs(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    world.deps.deliverer = Deliverer(httpx.Client(transport=httpx.MockTransport(hangs)), getaddrinfo=public_dns)
    world.subscribe("sub-1")
    world.dispatch(bus(job(), source="sdmw.inference-dispatcher"))
    world.run_deliveries()
    [(retry, _)] = world.outbox.sent
    assert retry.attempt == 2 and "timed out" in retry.last_error
    assert world.deps.gate.admit(URL) is not None
