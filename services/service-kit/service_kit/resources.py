"""Declarations of the AWS resources a service owns, written once.

Each service exports one ``ServiceResources`` in its ``resources.py``. The local
bootstrap (``infra/local``) provisions them into the emulator and the AWS
deployment renders the same objects, so there is no second hand-kept list.
Names are logical; ``physical_name`` adds the stack prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Buses a rule can listen on. Project events go on the project bus; AWS puts
#: service events (e.g. aws.sagemaker) on the account's default bus.
PROJECT_BUS = "project"
DEFAULT_BUS = "default"


@dataclass(frozen=True)
class Table:
    """A DynamoDB table with a string partition key ``pk`` and sort key ``sk``.

    One table per service holds its entities and its idempotency records.
    """

    name: str
    ttl_attribute: str | None = "expiration"


@dataclass(frozen=True)
class Queue:
    """The service's SQS queue and its dead-letter queue."""

    name: str
    visibility_timeout_s: int = 60
    max_receive_count: int = 5
    dlq_retention_s: int = 14 * 24 * 3600


@dataclass(frozen=True)
class Rule:
    """An EventBridge rule that feeds the service's queue."""

    name: str
    event_pattern: dict[str, Any]
    bus: str = PROJECT_BUS

    def pattern_json(self) -> str:
        return json.dumps(self.event_pattern, sort_keys=True)


@dataclass(frozen=True)
class TopicSubscription:
    """The service's queue subscribed to an SNS topic of the core stack.

    Without raw delivery each message is SNS's JSON envelope, which the
    consumer recognises as an ``SnsNotification``.
    """

    topic: str
    raw_message_delivery: bool = False


#: detail-type of the events EventBridge sends for a scheduled rule.
SCHEDULED_EVENT = "Scheduled Event"


@dataclass(frozen=True)
class Schedule:
    """A scheduled rule that puts a "Scheduled Event" on the service's queue every ``every_s`` seconds."""

    name: str
    every_s: int

    def expression(self) -> str:
        minutes = max(1, self.every_s // 60)
        return f"rate({minutes} minute{'s' if minutes > 1 else ''})"


@dataclass(frozen=True)
class ServiceResources:
    service: str
    table: Table | None = None
    queue: Queue | None = None
    rules: tuple[Rule, ...] = ()
    topic_subscriptions: tuple[TopicSubscription, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CoreResources:
    """What the core stack owns and every service may use."""

    bus: str = "bus"
    bucket: str = "bucket"
    topics: tuple[str, ...] = ()
    #: Multipart uploads nobody completed or disabled are aborted after this many days.
    abort_incomplete_uploads_after_days: int = 1


def project_events(*detail_types: str, sources: tuple[str, ...] = ()) -> dict[str, Any]:
    """An event pattern matching project events by name (and optionally source)."""
    pattern: dict[str, Any] = {"detail-type": list(detail_types)}
    if sources:
        pattern["source"] = list(sources)
    else:
        pattern["source"] = [{"prefix": "sdmw."}]
    return pattern


def physical_name(stack_prefix: str, logical: str) -> str:
    return f"{stack_prefix}-{logical}"
