"""Message handlers: subscriptions, the fan-out of each fact to its targets, and one delivery attempt.

- A subscription command saves the subscription and publishes it (``WebhookSubscriptionChanged``).
- A fact (``InferenceJobChanged``, ...) becomes one ``DeliveryDue`` per target that wants it: each
  active subscription of its kind, and the job's own webhook. Nothing is sent to a receiver here, so a
  fact is fanned out at once however slow the receivers are.
- A ``DeliveryDue`` is one signed POST. Delivered: done. Worth retrying: the next attempt is sent back to
  the queue, delayed (``delivery.retry_delay``). Refused for good, or retried for a day: it goes to the
  DLQ with its last error. A subscription deleted meanwhile gets nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import (
    WebhookSubscriptionChanged,
    WebhookSubscriptionDeletionRequested,
    WebhookSubscriptionRequested,
)
from sdmw_contracts.events.webhooks import EVENT_KINDS, JobWebhook
from service_kit.consumer import Router
from service_kit.events import EventPublisher, publish_snapshots
from service_kit.messages import BusEvent
from service_kit.snapshots import SnapshotTable, StaleWrite
from service_kit.webhook_secrets import SigningKey
from webhooks import SERVICE
from webhooks.deliveries import DeliveryDue, Outbox
from webhooks.delivery import FIRST_DELAY_S, Attempt, Deliverer, Delivery, Outcome, retry_delay
from webhooks.gate import TargetGate


@dataclass
class Dependencies:
    snapshots: SnapshotTable
    publisher: EventPublisher
    outbox: Outbox
    deliverer: Deliverer
    keys: SigningKey
    logger: Logger
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: The wait after a first failed attempt; each next one doubles it, up to an hour.
    first_retry_s: float = FIRST_DELAY_S
    #: Shared by every consumer of one process, so that they keep to one limit per receiver.
    gate: TargetGate = field(default_factory=TargetGate)


# ---------------------------------------------------------------- subscriptions


def on_subscription_requested(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(WebhookSubscriptionRequested)
    subscription = deps.snapshots.get(WebhookSubscriptionChanged, command.subscription_id)
    if subscription is None:
        subscription = command.initial_snapshot(version=1)
        try:
            deps.snapshots.save(subscription)
        except StaleWrite:  # a duplicate of this command saved it first
            subscription = deps.snapshots.get(WebhookSubscriptionChanged, command.subscription_id)
    _publish(deps, subscription, envelope)


def on_subscription_deletion(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    command = envelope.parse_data(WebhookSubscriptionDeletionRequested)
    subscription = deps.snapshots.get(WebhookSubscriptionChanged, command.subscription_id)
    if subscription is None:
        # Deletion can overtake creation (two messages, no order): retried until the creation is in.
        raise LookupError(f"no webhook subscription {command.subscription_id} yet")
    if subscription.status != "deleted":
        subscription = subscription.model_copy(
            update={"version": subscription.version + 1, "status": "deleted", "deleted_at": command.requested_at}
        )
        deps.snapshots.save(subscription)
    _publish(deps, subscription, envelope)


def _publish(deps: Dependencies, subscription: WebhookSubscriptionChanged | None, cause: EventEnvelope) -> None:
    if subscription is not None:
        publish_snapshots(deps.publisher, [subscription], producer=SERVICE, correlation_id=subscription.id, cause=cause)


# ---------------------------------------------------------------- fan-out


def payload(detail_type: str, envelope: EventEnvelope) -> str:
    """The body subscribers receive, as Standard Webhooks suggests: type, timestamp, data (the entity)."""
    return json.dumps(
        {"type": detail_type, "timestamp": envelope.metadata.occurred_at.isoformat(), "data": envelope.data},
        separators=(",", ":"),
    )


def on_fact(event: BusEvent, deps: Dependencies) -> None:
    envelope = event.envelope()
    status = str(envelope.data.get("status", ""))
    now = deps.clock()
    body = payload(event.detail_type, envelope)  # one body for every target: the signatures cover it

    def due(url: str, subscription_id: str | None) -> DeliveryDue:
        return DeliveryDue(
            event_id=envelope.metadata.event_id,
            event_type=event.detail_type,
            subscription_id=subscription_id,
            url=url,
            body=body,
            first_attempt_at=now,
        )

    subscriptions = deps.snapshots.list(WebhookSubscriptionChanged)
    deliveries = [due(s.url, s.id) for s in subscriptions if s.wants(event.detail_type, status)]
    job_webhook = envelope.data.get("webhook")
    if job_webhook:
        webhook = JobWebhook.model_validate(job_webhook)
        if webhook.wants(event.detail_type, status):
            deliveries.append(due(webhook.url, None))
    if deliveries:
        deps.outbox.send(deliveries)
        deps.logger.info("fact fanned out", extra={"event_type": event.detail_type, "deliveries": len(deliveries)})


# ---------------------------------------------------------------- one attempt


def on_delivery_due(event: BusEvent, deps: Dependencies) -> None:
    delivery = event.envelope().parse_data(DeliveryDue)
    now = deps.clock()
    if delivery.not_before is not None and delivery.not_before > now:
        # Longer than SQS delays a message: sent on again until it is due.
        deps.outbox.send([delivery], (delivery.not_before - now).total_seconds())
        return
    if delivery.subscription_id is not None and not _still_subscribed(deps, delivery.subscription_id):
        deps.logger.info("subscription gone; delivery dropped", extra={"subscription_id": delivery.subscription_id})
        return
    wait = deps.gate.admit(delivery.url)
    if wait is not None:
        # Its receiver is busy or not answering: back in the queue without an attempt, the slot freed at once.
        deps.outbox.send([delivery.waiting(now, wait)], wait)
        return
    attempt = Attempt(Outcome.RETRY, error="the attempt did not finish")
    try:
        attempt = _attempt(deps, delivery)
    finally:
        deps.gate.done(delivery.url, answered=attempt.status_code is not None)
    # The next wait counts from the end of this attempt, which a slow receiver can make late.
    _after(deps, delivery, attempt, deps.clock())


def _attempt(deps: Dependencies, delivery: DeliveryDue) -> Attempt:
    # Signed at the moment it is sent (the wall clock, not the handler's): receivers compare the two.
    return deps.deliverer.deliver(
        Delivery(
            event_id=delivery.event_id,
            subscription_id=delivery.target_key,
            url=delivery.url,
            secret=deps.keys.secret_for(delivery.signed_as),
            body=delivery.body,
        )
    )


def _still_subscribed(deps: Dependencies, subscription_id: str) -> bool:
    subscription = deps.snapshots.get(WebhookSubscriptionChanged, subscription_id)
    return subscription is not None and subscription.status == "active"


def _after(deps: Dependencies, delivery: DeliveryDue, attempt: Attempt, now: datetime) -> None:
    log = {"url": delivery.url, "attempt": delivery.attempt, "status_code": attempt.status_code}
    if attempt.outcome is Outcome.DELIVERED:
        deps.logger.info("webhook delivered", extra=log)
        return
    delay = retry_delay(attempt, delivery.attempt, delivery.first_attempt_at, now, first_delay_s=deps.first_retry_s)
    if delay is None:
        deps.logger.warning("webhook given up; sent to the DLQ", extra={**log, "error": attempt.error})
        deps.outbox.dead_letter(delivery.given_up(attempt.status_code, attempt.error))
        return
    deps.logger.info("webhook failed; retrying", extra={**log, "error": attempt.error, "delay_s": round(delay)})
    deps.outbox.send([delivery.retried(now, delay, attempt.status_code, attempt.error)], delay)


def router(deps: Dependencies) -> Router:
    routes = Router()
    routes.on_event(WebhookSubscriptionRequested.detail_type(), lambda e: on_subscription_requested(e, deps))
    routes.on_event(WebhookSubscriptionDeletionRequested.detail_type(), lambda e: on_subscription_deletion(e, deps))
    routes.on_event(DeliveryDue.detail_type(), lambda e: on_delivery_due(e, deps))
    for detail_type in EVENT_KINDS.values():
        routes.on_event(detail_type, lambda e: on_fact(e, deps))
    return routes
