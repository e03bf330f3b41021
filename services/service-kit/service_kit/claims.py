"""Claim check for events: data too large for EventBridge goes to S3, the event carries its URI.

EventBridge takes at most 256 KB per entry. A command or fact over
``CLAIM_ABOVE_BYTES`` (a dataset of thousands of items) is published with its
``data`` written to ``event-claims/<detail-type>/<event id>.json`` in the
project's bucket, an empty ``data`` and ``data_s3_uri`` in the envelope; the
metadata stays inline, so routing, idempotency keys and tracing work as for
any event. The consumer runtime reads the data back before a handler sees the
event (``Consumer(..., claims=EventClaims())``), so handlers never know. Only
the services that publish or receive such events use this module (and hold
the S3 grants it needs): api-gateway (commands, facts) and asset-registry. The key follows from the event
id, so re-publishing a snapshot (same event id) writes the same object.
"""

from __future__ import annotations

import json
from typing import Any

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.s3 import split_s3_uri
from service_kit import aws
from service_kit.events import CLAIM_ABOVE_BYTES
from service_kit.resources import CLAIM_PREFIX

__all__ = ["CLAIM_ABOVE_BYTES", "CLAIM_PREFIX", "EventClaims"]


class EventClaims:
    """Writes (in ``bucket``) and reads (anywhere the caller may read) the data of claimed events."""

    def __init__(self, bucket: str | None = None, s3: Any | None = None) -> None:
        self._bucket = bucket
        self._s3 = s3

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws.client("s3")
        return self._s3

    def hand_over(self, detail_type: str, envelope: EventEnvelope) -> EventEnvelope:
        """The envelope with its data in S3, for a detail over the limit."""
        if not self._bucket:
            raise ValueError("no bucket to put claimed event data in")
        key = f"{CLAIM_PREFIX}{detail_type}/{envelope.metadata.event_id}.json"
        self.s3.put_object(
            Bucket=self._bucket, Key=key, Body=json.dumps(envelope.data).encode(), ContentType="application/json"
        )
        return envelope.model_copy(update={"data": {}, "data_s3_uri": f"s3://{self._bucket}/{key}"})

    def resolve(self, detail: dict[str, Any]) -> dict[str, Any]:
        """``detail`` with its data read back from S3 if it was claimed; as it is otherwise."""
        uri = detail.get("data_s3_uri")
        if not uri:
            return detail
        bucket, key = split_s3_uri(uri)
        data = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        if not isinstance(data, dict):
            raise ValueError(f"{uri} does not hold a JSON object")
        return {**{k: v for k, v in detail.items() if k != "data_s3_uri"}, "data": data}
