"""The event envelope every service publishes and consumes.

On EventBridge an event is ``source`` (``sdmw.<service>``), ``detail-type`` (the
event's name) and ``detail`` = ``{"metadata": ..., "data": ...}``. The name and
version come from the data model class, so they cannot drift apart.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

BUS_SOURCE_PREFIX = "sdmw."

E = TypeVar("E", bound="Event")


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(description="Unique per event; redeliveries of one event share it.")
    event_version: int = Field(ge=1, description="Version of the data model's schema.")
    correlation_id: str = Field(description="The id of the job the user sees.")
    causation_id: str | None = Field(default=None, description="event_id of the event that caused this one.")
    occurred_at: datetime
    producer: str = Field(description="The service that published the event.")
    trace_header: str | None = Field(default=None, description="X-Ray trace header (Root=...;Parent=...;Sampled=...).")


class Event(BaseModel):
    """Base of every event's data. The class name is the event's detail-type."""

    model_config = ConfigDict(extra="ignore")
    event_version: ClassVar[int] = 1

    @classmethod
    def detail_type(cls) -> str:
        return cls.__name__


class Command(Event):
    """An event that asks the owning service to do something."""


class EntityChanged(Event):
    """A fact: the whole entity as it now is. ``version`` only grows.

    Consumers apply a snapshot only if its version is newer than the one they
    hold, so order and duplicates do not matter.
    """

    id: str
    version: int = Field(ge=0)
    deleted_at: datetime | None = Field(
        default=None,
        description="When the entity was deleted: this snapshot is its last; read models and catalogues drop it.",
    )

    def as_deleted(self, at: datetime) -> Self:
        """The entity's last snapshot: deleted at ``at``, one version on, due for no sweep."""
        return self.model_copy(update={"deleted_at": at, "version": self.version + 1})

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @classmethod
    def entity_type(cls) -> str:
        return cls.__name__.removesuffix("Changed")

    # Hooks the owner's table indexes a snapshot by (``service_kit.snapshots``); both default to "not indexed".

    def due_at(self) -> datetime | None:
        """When the owner's sweep must next look at this entity; None when no sweep needs to (it is finished).

        Only entities with a due time are in the sweep's index, so a sweep reads the open ones, never the
        history.
        """
        return None

    def lookup_names(self) -> list[str]:
        """The names this entity can be found by (``SnapshotTable.named``), besides its id."""
        return []


class EventEnvelope(BaseModel):
    """``detail`` of an EventBridge event: metadata plus the event's own data.

    Claim check: an event whose data would take it over EventBridge's 256 KB
    carries ``data_s3_uri`` (a JSON object in the project's bucket) and an empty
    ``data``; consumers read the data from there (``service_kit.claims``)
    before they parse it.
    """

    model_config = ConfigDict(extra="ignore")

    metadata: EventMetadata
    data: dict[str, Any]
    data_s3_uri: str | None = Field(
        default=None, description="Claim check: s3:// URI of the data, when it did not fit the event; data is {}."
    )

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        producer: str,
        correlation_id: str,
        causation_id: str | None = None,
        trace_header: str | None = None,
        event_id: str | None = None,
    ) -> Self:
        return cls(
            metadata=EventMetadata(
                event_id=event_id or str(uuid.uuid4()),
                event_version=event.event_version,
                correlation_id=correlation_id,
                causation_id=causation_id,
                occurred_at=utcnow(),
                producer=producer,
                trace_header=trace_header,
            ),
            data=event.model_dump(mode="json"),
        )

    def parse_data(self, model: type[E]) -> E:
        if self.data_s3_uri is not None:
            raise ValueError(f"the data is at {self.data_s3_uri}: resolve the claim check first")
        return model.model_validate(self.data)


def snapshot_event_id(entity_changed: EntityChanged) -> str:
    """A stable event id for one version of one entity.

    Re-publishing the same snapshot after a crash yields the same event id, so
    idempotent consumers see one event, not two.
    """
    key = f"{entity_changed.detail_type()}:{entity_changed.id}:{entity_changed.version}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))
