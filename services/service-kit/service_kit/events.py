"""Publishing events to the project's EventBridge bus.

``EventPublisher`` is the interface handlers depend on; ``EventBridgePublisher``
is the real one, ``RecordingPublisher`` a test double.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sdmw_contracts.envelope import EntityChanged, Event, EventEnvelope, snapshot_event_id
from service_kit import aws
from service_kit.tracing import current_trace_header

PUT_EVENTS_BATCH = 10  # EventBridge's limit of entries per PutEvents call
MAX_ENTRY_BYTES = 256 * 1024


class PublishError(RuntimeError):
    """Some entries were not accepted by EventBridge; the caller must retry."""


@dataclass(frozen=True)
class Outgoing:
    """An event ready to put on the bus."""

    detail_type: str
    envelope: EventEnvelope

    def detail_json(self) -> str:
        return self.envelope.model_dump_json()


class EventPublisher(Protocol):
    def publish(self, events: Sequence[Outgoing]) -> None: ...


def outgoing(
    event: Event,
    *,
    producer: str,
    correlation_id: str,
    causation_id: str | None = None,
) -> Outgoing:
    """Wrap ``event`` in the envelope, carrying the current trace header.

    Snapshots get a stable event id per (entity, version), so re-publishing
    after a crash is a duplicate that consumers drop, not a second event.
    """
    event_id = snapshot_event_id(event) if isinstance(event, EntityChanged) else None
    envelope = EventEnvelope.wrap(
        event,
        producer=producer,
        correlation_id=correlation_id,
        causation_id=causation_id,
        trace_header=current_trace_header(),
        event_id=event_id,
    )
    return Outgoing(detail_type=event.detail_type(), envelope=envelope)


def publish_snapshots(
    publisher: EventPublisher,
    snapshots: Sequence[EntityChanged],
    *,
    producer: str,
    correlation_id: str,
    cause: EventEnvelope | None = None,
) -> None:
    """Publish entity snapshots as facts, caused by ``cause`` (the message being handled), if any."""
    causation_id = cause.metadata.event_id if cause else None
    publisher.publish(
        [outgoing(s, producer=producer, correlation_id=correlation_id, causation_id=causation_id) for s in snapshots]
    )


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EventBridgePublisher:
    def __init__(self, bus_name: str, source: str, client: Any | None = None) -> None:
        self._bus = bus_name
        self._source = source
        self._client = client or aws.client("events")

    def _entry(self, event: Outgoing) -> dict[str, Any]:
        detail = event.detail_json()
        if len(detail.encode()) > MAX_ENTRY_BYTES:
            raise PublishError(
                f"{event.detail_type} is over EventBridge's 256 KB; store the payload in S3 and send its URI"
            )
        entry = {
            "EventBusName": self._bus,
            "Source": self._source,
            "DetailType": event.detail_type,
            "Detail": detail,
        }
        if event.envelope.metadata.trace_header:
            entry["TraceHeader"] = event.envelope.metadata.trace_header
        return entry

    def publish(self, events: Sequence[Outgoing]) -> None:
        for batch in _batches(list(events), PUT_EVENTS_BATCH):
            response = self._client.put_events(Entries=[self._entry(e) for e in batch])
            if response.get("FailedEntryCount"):
                failures = [
                    f"{e.detail_type}: {r.get('ErrorCode')} {r.get('ErrorMessage')}"
                    for e, r in zip(batch, response["Entries"], strict=True)
                    if r.get("ErrorCode")
                ]
                raise PublishError("EventBridge refused events: " + "; ".join(failures))


@dataclass
class RecordingPublisher:
    """Test double: keeps what would have been published."""

    published: list[Outgoing] = field(default_factory=list)

    def publish(self, events: Sequence[Outgoing]) -> None:
        self.published.extend(events)

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [json.loads(e.detail_json()) for e in self.published if e.detail_type == detail_type]
