"""Versioned entity snapshots in a service's DynamoDB table.

Items are keyed ``pk`` = entity type, ``sk`` = entity id, and hold the
snapshot as JSON plus its ``version``. Two ways to write:

- ``apply``: a consumer's projection. Writes only if the snapshot is newer than
  the stored one, so replays, duplicates and reordering change nothing.
- ``save``: the owner's write. Succeeds only if the stored version is the one
  before it (optimistic concurrency), so two writers cannot both win.

A snapshot whose JSON is over ``INLINE_BYTES`` (a dataset of thousands of
items; DynamoDB holds at most 400 KB per item) is stored in parts: its JSON is
cut into rows under ``pk`` = ``<entity type>#part``, ``sk`` =
``<id>#<token>#<n>``, written first, and the entity's row then names the
``token`` and the number of ``parts`` instead of holding ``data``. The row is
written under the same conditions as any other, so a row only ever names a
complete set of parts; the parts of the version it replaced are deleted
afterwards, and a reader that lost that race reads again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from sdmw_contracts.envelope import EntityChanged
from service_kit import aws

S = TypeVar("S", bound=EntityChanged)

#: Snapshots whose JSON is longer go in parts (DynamoDB's item limit is 400 KB, keys and attributes included).
INLINE_BYTES = 300 * 1024
PART_BYTES = 300 * 1024
#: How often a reader retries when the parts it was pointed at were replaced meanwhile.
PART_READ_TRIES = 5


class StaleWrite(RuntimeError):
    """The stored version moved on since it was read."""


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _key(snapshot: EntityChanged) -> dict[str, str]:
    return {"pk": snapshot.entity_type(), "sk": snapshot.id}


def _parts_pk(entity_type: str) -> str:
    return f"{entity_type}#part"


def _rows(snapshot: EntityChanged) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The entity's row and, for a snapshot too large for one, the rows of its parts (to write first)."""
    data = json.dumps(snapshot.model_dump(mode="json"), sort_keys=True)  # ASCII: characters are bytes
    if len(data) <= INLINE_BYTES:
        return {**_key(snapshot), "version": snapshot.version, "data": data}, []
    token = f"v{snapshot.version}-{uuid.uuid4().hex[:12]}"
    chunks = [data[start : start + PART_BYTES] for start in range(0, len(data), PART_BYTES)]
    parts = [
        {
            "pk": _parts_pk(snapshot.entity_type()),
            "sk": f"{snapshot.id}#{token}#{n:05}",
            "version": snapshot.version,
            "data": chunk,
        }
        for n, chunk in enumerate(chunks)
    ]
    return {**_key(snapshot), "version": snapshot.version, "token": token, "parts": len(parts)}, parts


class _PartsGone(LookupError):
    """The parts a row named were replaced while being read."""


class SnapshotTable:
    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self._table = (dynamodb or aws.resource("dynamodb")).Table(table_name)

    def get(self, model: type[S], entity_id: str) -> S | None:
        key = {"pk": model.entity_type(), "sk": entity_id}
        for _ in range(PART_READ_TRIES):
            item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
            if item is None:
                return None
            try:
                return model.model_validate_json(self._data(item))
            except _PartsGone:
                continue
        raise RuntimeError(f"{model.entity_type()} {entity_id} kept changing while it was read")

    def list(
        self,
        model: type[S],
        id_prefix: str | None = None,
        on_unreadable: Callable[[dict[str, Any], Exception], None] | None = None,
    ) -> list[S]:
        """Every snapshot of a type, or those whose id starts with ``id_prefix``.

        An item that cannot be read raises, unless ``on_unreadable`` is given: then it gets the item and
        the error, and the item is left out of the list.
        """
        found = []
        for item in self._query(model.entity_type(), id_prefix):
            try:
                try:
                    found.append(model.model_validate_json(self._data(item)))
                except _PartsGone:
                    again = self.get(model, item["sk"])
                    if again is not None:
                        found.append(again)
            except Exception as error:
                if on_unreadable is None:
                    raise
                on_unreadable(item, error)
        return found

    def _data(self, item: dict[str, Any]) -> str:
        """The snapshot's JSON: the row's own, or its parts joined."""
        if "data" in item:
            return item["data"]
        prefix = f"{item['sk']}#{item['token']}#"
        parts = [part["data"] for part in self._query(_parts_pk(item["pk"]), prefix)]
        if len(parts) != int(item["parts"]):
            raise _PartsGone(prefix)
        return "".join(parts)

    def _write(self, snapshot: EntityChanged, condition: Any) -> None:
        """Parts first, then the row under ``condition``; the parts of what the row replaced are then deleted."""
        row, parts = _rows(snapshot)
        for part in parts:  # a few rows even for thousands of items
            self._table.put_item(Item=part)
        try:
            previous = self._table.put_item(Item=row, ConditionExpression=condition, ReturnValues="ALL_OLD")
        except ClientError as exc:
            if parts and _is_condition_failure(exc):
                self._delete_parts(row["pk"], row["sk"], row["token"])
            raise
        old = previous.get("Attributes") or {}
        if old.get("token") and old.get("token") != row.get("token"):
            self._delete_parts(row["pk"], row["sk"], old["token"])

    def _delete_parts(self, entity_type: str, entity_id: str, token: str) -> None:
        for part in list(self._query(_parts_pk(entity_type), f"{entity_id}#{token}#")):
            self._table.delete_item(Key={"pk": part["pk"], "sk": part["sk"]})

    def _query(self, entity_type: str, id_prefix: str | None) -> Iterator[dict[str, Any]]:
        condition = Key("pk").eq(entity_type)
        if id_prefix:
            condition = condition & Key("sk").begins_with(id_prefix)
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition, "ConsistentRead": True}
        while True:
            page = self._table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def apply(self, snapshot: EntityChanged) -> bool:
        """Store the snapshot if it is newer than what is held. True if stored."""
        try:
            self._write(snapshot, Attr("pk").not_exists() | Attr("version").lt(snapshot.version))
            return True
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise

    def save(self, *snapshots: EntityChanged) -> None:
        """The owner's writes, in order; each one's stored version must be the one before it."""
        for snapshot in snapshots:
            version = snapshot.version
            condition = Attr("pk").not_exists() if version <= 1 else Attr("version").eq(version - 1)
            try:
                self._write(snapshot, condition)
            except ClientError as exc:
                if _is_condition_failure(exc):
                    kind = snapshot.entity_type()
                    raise StaleWrite(f"{kind} {snapshot.id} changed while version {version} was written") from exc
                raise

    def delete_if_version(self, snapshot: EntityChanged) -> None:
        """Delete the item only if it is still at the snapshot's version (nothing newer arrived)."""
        try:
            deleted = self._table.delete_item(
                Key=_key(snapshot), ConditionExpression=Attr("version").eq(snapshot.version), ReturnValues="ALL_OLD"
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return
        token = (deleted.get("Attributes") or {}).get("token")
        if token:
            self._delete_parts(snapshot.entity_type(), snapshot.id, token)
