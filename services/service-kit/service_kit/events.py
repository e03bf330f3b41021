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
#: Details above this go by claim check; the rest of the entry (source, detail-type, trace header) needs room too.
CLAIM_ABOVE_BYTES = 200 * 1024


class ClaimCheck(Protocol):
    """Puts an event's data in S3 (``service_kit.claims.EventClaims``)."""

    def hand_over(self, detail_type: str, envelope: EventEnvelope) -> EventEnvelope: ...


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


def _batches(items: Sequence[tuple[Outgoing, dict[str, Any]]]) -> Iterable[list[tuple[Outgoing, dict[str, Any]]]]:
    """PutEvents takes at most 10 entries and 256 KB in all: an event near the limit goes on its own."""
    batch: list[tuple[Outgoing, dict[str, Any]]] = []
    size = 0
    for item in items:
        entry_size = _entry_size(item[1])
        if batch and (len(batch) == PUT_EVENTS_BATCH or size + entry_size > MAX_ENTRY_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += entry_size
    if batch:
        yield batch


def _entry_size(entry: dict[str, Any]) -> int:
    """EventBridge's reckoning of an entry's size, near enough: its strings' bytes."""
    return sum(len(str(value).encode()) for key, value in entry.items() if key != "EventBusName")


class EventBridgePublisher:
    """Puts events on the bus; with ``claims``, an event too large for EventBridge goes by claim check."""

    def __init__(self, bus_name: str, source: str, client: Any | None = None, claims: ClaimCheck | None = None) -> None:
        self._bus = bus_name
        self._source = source
        self._client = client or aws.client("events")
        self._claims = claims

    def _entry(self, event: Outgoing) -> dict[str, Any]:
        detail = event.detail_json()
        if len(detail.encode()) > CLAIM_ABOVE_BYTES and self._claims is not None:
            detail = self._claims.hand_over(event.detail_type, event.envelope).model_dump_json()
        if len(detail.encode()) > MAX_ENTRY_BYTES:
            raise PublishError(f"{event.detail_type} is over EventBridge's 256 KB and there is no claim check")
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
        for batch in _batches([(e, self._entry(e)) for e in events]):
            response = self._client.put_events(Entries=[entry for _, entry in batch])
            if response.get("FailedEntryCount"):
                failures = [
                    f"{e.detail_type}: {r.get('ErrorCode')} {r.get('ErrorMessage')}"
                    for (e, _), r in zip(batch, response["Entries"], strict=True)
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
