"""The messages the service sends itself: one per delivery attempt of one event to one target.

A fact that subscribers want is fanned out into one ``DeliveryDue`` per target, each a message on the
service's own queue, so each target's attempts and waits are its own: a slow or dead receiver holds up
nothing but its own messages. A failed attempt is not a handler error; the next attempt is sent as a new
message, delayed (SQS delays a message at most 15 min, so a longer wait is carried in ``not_before`` and
the message is sent on again until it is due). A delivery that will not succeed ends in the service's
DLQ with its last error, where it can be read and moved back to the queue.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import Field

from sdmw_contracts.envelope import Command, EventEnvelope
from service_kit import aws
from service_kit.events import CLAIM_ABOVE_BYTES, ClaimCheck
from service_kit.webhook_secrets import DEFAULT_SUBSCRIPTION
from webhooks import SERVICE

#: SQS's longest DelaySeconds.
MAX_SQS_DELAY_S = 900


class DeliveryDue(Command):
    """Deliver ``body`` (one fact) to ``url``: attempt number ``attempt``, not before ``not_before``."""

    event_id: str = Field(description="The fact's event id; with the target it makes the stable webhook-id.")
    event_type: str
    subscription_id: str | None = Field(default=None, description="None: the job's own webhook.")
    url: str
    body: str = Field(description="The JSON sent, exactly: the signature covers these characters.")
    attempt: int = Field(default=1, ge=1)
    first_attempt_at: datetime
    not_before: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None

    @property
    def signed_as(self) -> str:
        """The subscription whose secret signs it: a job's own webhook is signed with the default secret."""
        return self.subscription_id or DEFAULT_SUBSCRIPTION

    @property
    def target_key(self) -> str:
        """What sets this target apart in the webhook-id: the subscription, or the job's webhook URL."""
        return self.subscription_id or f"job-webhook:{self.url}"

    def retried(self, now: datetime, delay_s: float, status_code: int | None, error: str | None) -> DeliveryDue:
        return self.model_copy(
            update={
                "attempt": self.attempt + 1,
                "not_before": now + timedelta(seconds=delay_s),
                "last_status_code": status_code,
                "last_error": error,
            }
        )

    def waiting(self, now: datetime, wait_s: float) -> DeliveryDue:
        """The same attempt, not before ``wait_s`` from now."""
        return self.model_copy(update={"not_before": now + timedelta(seconds=wait_s)})

    def given_up(self, status_code: int | None, error: str | None) -> DeliveryDue:
        return self.model_copy(update={"last_status_code": status_code, "last_error": error})


class Outbox(Protocol):
    """Where delivery messages go: the service's queue (attempts) and its DLQ (what it gave up on)."""

    def send(self, deliveries: list[DeliveryDue], delay_s: float = 0) -> None: ...

    def dead_letter(self, delivery: DeliveryDue) -> None: ...


def message_body(delivery: DeliveryDue, claims: ClaimCheck | None = None) -> str:
    """The delivery as an EventBridge-shaped event, which the shared consumer routes like any other.

    A body too large for SQS goes by claim check (the dataset of thousands of items).
    """
    envelope = EventEnvelope.wrap(
        delivery, producer=SERVICE, correlation_id=delivery.event_id, event_id=str(uuid.uuid4())
    )
    detail = envelope.model_dump(mode="json")
    if claims is not None and len(json.dumps(detail).encode()) > CLAIM_ABOVE_BYTES:
        detail = claims.hand_over(DeliveryDue.detail_type(), envelope).model_dump(mode="json")
    return json.dumps(
        {
            "id": envelope.metadata.event_id,
            "source": f"sdmw.{SERVICE}",
            "detail-type": DeliveryDue.detail_type(),
            "time": envelope.metadata.occurred_at.isoformat(),
            "detail": detail,
        }
    )


class SqsOutbox:
    def __init__(self, queue_url: str, dlq_url: str, claims: ClaimCheck | None = None, sqs: Any | None = None) -> None:
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._claims = claims
        self._sqs = sqs or aws.client("sqs")

    def send(self, deliveries: list[DeliveryDue], delay_s: float = 0) -> None:
        # Rounded up: a message back early is only sent on again, one back late is a late attempt.
        delay = math.ceil(min(MAX_SQS_DELAY_S, max(0, delay_s)))
        for start in range(0, len(deliveries), 10):  # SendMessageBatch takes ten at most
            entries = [
                {"Id": str(index), "MessageBody": message_body(delivery, self._claims), "DelaySeconds": delay}
                for index, delivery in enumerate(deliveries[start : start + 10])
            ]
            answer = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            if answer.get("Failed"):
                # Raised, so the message being handled is redelivered: a repeat is dropped by the webhook-id.
                raise RuntimeError(f"SQS refused deliveries: {answer['Failed']}")

    def dead_letter(self, delivery: DeliveryDue) -> None:
        self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=message_body(delivery, self._claims),
            MessageAttributes={
                "last_error": {"DataType": "String", "StringValue": (delivery.last_error or "unknown")[:1000]},
                "attempts": {"DataType": "Number", "StringValue": str(delivery.attempt)},
            },
        )


class RecordingOutbox:
    """Test double: keeps what would have been sent, with each batch's delay."""

    def __init__(self) -> None:
        self.sent: list[tuple[DeliveryDue, float]] = []
        self.dead: list[DeliveryDue] = []

    def send(self, deliveries: list[DeliveryDue], delay_s: float = 0) -> None:
        self.sent += [(delivery, delay_s) for delivery in deliveries]

    def dead_letter(self, delivery: DeliveryDue) -> None:
        self.dead.append(delivery)
