"""A name held while its creation is being sent, so that of parallel creations of one name one goes ahead.

The hold is the edge's own row (a versioned write: one writer of a version wins), apart from the read
model's rows, so an edge that dies while holding a name leaves nothing that lists show, and the name is
free again after :data:`HELD_AT_MOST`. Once the creation is sent, the entity's own row (the edge's
initial snapshot, then its owner's) is what keeps the name taken.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sdmw_contracts.envelope import EntityChanged
from service_kit.snapshots import StaleWrite

#: Sending a creation takes milliseconds; a hold older than this belongs to a request that died.
HELD_AT_MOST = timedelta(seconds=60)


class NameHold(EntityChanged):
    """The edge's own row holding ``<kind>:<name>`` (never published; removed by the table's TTL)."""

    held_at: datetime

    @classmethod
    def entity_type(cls) -> str:
        return "NameHold"

    def expires_at(self) -> datetime:
        return self.held_at + timedelta(hours=1)


def hold(store: Any, kind: str, name: str, now: datetime) -> NameHold | None:
    """Hold the name for this request; None if another request holds it."""
    entity_id = f"{kind}:{name}"
    held = store.get(NameHold, entity_id)
    if held is not None and now - held.held_at < HELD_AT_MOST:
        return None
    claim = NameHold(id=entity_id, version=(held.version + 1) if held else 1, held_at=now)
    try:
        store.record(claim)
    except StaleWrite:
        return None
    return claim
