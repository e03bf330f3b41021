"""Versioned entity snapshots in a service's DynamoDB table.

Items are keyed ``pk`` = entity type, ``sk`` = entity id, and hold the
snapshot as JSON plus its ``version``. Two ways to write:

- ``apply``: a consumer's projection. Writes only if the snapshot is newer than
  the stored one, so replays, duplicates and reordering change nothing.
- ``save``: the owner's write. Succeeds only if the stored version is the one
  before it (optimistic concurrency), so two writers cannot both win.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TypeVar

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from sdmw_contracts.envelope import EntityChanged
from service_kit import aws

S = TypeVar("S", bound=EntityChanged)


class StaleWrite(RuntimeError):
    """The stored version moved on since it was read."""


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _key(snapshot: EntityChanged) -> dict[str, str]:
    return {"pk": snapshot.entity_type(), "sk": snapshot.id}


def _item(snapshot: EntityChanged) -> dict[str, Any]:
    data = json.dumps(snapshot.model_dump(mode="json"), sort_keys=True)
    return {**_key(snapshot), "version": snapshot.version, "data": data}


class SnapshotTable:
    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self._table = (dynamodb or aws.resource("dynamodb")).Table(table_name)

    def get(self, model: type[S], entity_id: str) -> S | None:
        key = {"pk": model.entity_type(), "sk": entity_id}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        return model.model_validate_json(item["data"]) if item else None

    def list(self, model: type[S], id_prefix: str | None = None) -> list[S]:
        """Every snapshot of a type, or those whose id starts with ``id_prefix``."""
        return [model.model_validate_json(item["data"]) for item in self._query(model.entity_type(), id_prefix)]

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
            self._table.put_item(
                Item=_item(snapshot),
                ConditionExpression=Attr("pk").not_exists() | Attr("version").lt(snapshot.version),
            )
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
                self._table.put_item(Item=_item(snapshot), ConditionExpression=condition)
            except ClientError as exc:
                if _is_condition_failure(exc):
                    kind = snapshot.entity_type()
                    raise StaleWrite(f"{kind} {snapshot.id} changed while version {version} was written") from exc
                raise

    def delete_if_version(self, snapshot: EntityChanged) -> None:
        """Delete the item only if it is still at the snapshot's version (nothing newer arrived)."""
        try:
            self._table.delete_item(Key=_key(snapshot), ConditionExpression=Attr("version").eq(snapshot.version))
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
