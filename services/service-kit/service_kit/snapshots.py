"""Versioned entity snapshots in a service's DynamoDB table.

Items are keyed ``pk`` = entity type, ``sk`` = entity id, and hold the
snapshot as JSON plus its ``version``. Two ways to write:

- ``apply``: a consumer's projection. Writes only if the snapshot is newer than
  the stored one, so replays, duplicates and reordering change nothing.
- ``save``: the owner's write. Succeeds only if the stored version is the one
  the owner read (optimistic concurrency), so two writers cannot both win.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from service_kit import aws


class StaleWrite(RuntimeError):
    """The stored version moved on since it was read."""


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class SnapshotTable:
    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self._table = (dynamodb or aws.resource("dynamodb")).Table(table_name)

    def get(self, entity_type: str, entity_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": entity_type, "sk": entity_id}, ConsistentRead=True).get("Item")
        return json.loads(item["data"]) if item else None

    def list(self, entity_type: str, id_prefix: str | None = None) -> list[dict[str, Any]]:
        """Every snapshot of a type, or those whose id starts with ``id_prefix``."""
        return [json.loads(item["data"]) for item in self._query(entity_type, id_prefix)]

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

    def apply(self, entity_type: str, entity_id: str, version: int, data: dict[str, Any]) -> bool:
        """Store the snapshot if it is newer than what is held. True if stored."""
        try:
            self._table.put_item(
                Item=self._item(entity_type, entity_id, version, data),
                ConditionExpression=Attr("pk").not_exists() | Attr("version").lt(version),
            )
            return True
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise

    def save(self, entity_type: str, entity_id: str, version: int, data: dict[str, Any]) -> None:
        """The owner's write of ``version``; the stored one must be ``version - 1``."""
        condition = Attr("pk").not_exists() if version <= 1 else Attr("version").eq(version - 1)
        try:
            self._table.put_item(Item=self._item(entity_type, entity_id, version, data), ConditionExpression=condition)
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise StaleWrite(f"{entity_type} {entity_id} changed while version {version} was written") from exc
            raise

    @staticmethod
    def _item(entity_type: str, entity_id: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
        return {"pk": entity_type, "sk": entity_id, "version": version, "data": json.dumps(data, sort_keys=True)}

    def delete_if_version(self, entity_type: str, entity_id: str, version: int) -> None:
        """Delete the item only if it is still at ``version`` (nothing newer arrived)."""
        try:
            self._table.delete_item(
                Key={"pk": entity_type, "sk": entity_id}, ConditionExpression=Attr("version").eq(version)
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
