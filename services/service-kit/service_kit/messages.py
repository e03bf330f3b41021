"""What arrives on a service's queue, parsed.

Two kinds of message reach a queue: EventBridge events delivered by a rule
(the project's own events and AWS service events such as ``aws.sagemaker``),
and SNS notifications (e.g. SageMaker async inference results).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sdmw_contracts.envelope import EventEnvelope


class MalformedMessage(ValueError):
    """The message is neither an EventBridge event nor an SNS notification."""


@dataclass(frozen=True)
class BusEvent:
    id: str
    source: str
    detail_type: str
    detail: dict[str, Any]
    time: str | None = None

    @property
    def is_project_event(self) -> bool:
        return self.source.startswith("sdmw.")

    def envelope(self) -> EventEnvelope:
        return EventEnvelope.model_validate(self.detail)

    @property
    def idempotency_key(self) -> str:
        if self.is_project_event:
            return f"event:{self.envelope().metadata.event_id}"
        return f"aws-event:{self.id}"


@dataclass(frozen=True)
class SnsNotification:
    message_id: str
    topic_arn: str
    message: str
    timestamp: str | None = None

    @property
    def topic_name(self) -> str:
        return self.topic_arn.rsplit(":", 1)[-1]

    def json(self) -> dict[str, Any]:
        return json.loads(self.message)

    @property
    def idempotency_key(self) -> str:
        return f"sns:{self.message_id}"


Message = BusEvent | SnsNotification


def parse_message(body: str) -> Message:
    try:
        raw = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"message body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise MalformedMessage("message body is not a JSON object")
    if "detail-type" in raw and "detail" in raw:
        return BusEvent(
            id=str(raw.get("id", "")),
            source=str(raw.get("source", "")),
            detail_type=str(raw["detail-type"]),
            detail=raw["detail"] if isinstance(raw["detail"], dict) else {},
            time=raw.get("time"),
        )
    if raw.get("Type") == "Notification" and "TopicArn" in raw:
        return SnsNotification(
            message_id=str(raw["MessageId"]),
            topic_arn=str(raw["TopicArn"]),
            message=str(raw.get("Message", "")),
            timestamp=raw.get("Timestamp"),
        )
    raise MalformedMessage("message is neither an EventBridge event nor an SNS notification")
