"""Versioned entity snapshots in a service's DynamoDB table.

Each entity has a partition of its own, ``pk`` = ``<entity type>#<id>``, so no
partition grows with the number of entities a service ever held:

- ``sk`` = ``snapshot``: the entity's row, holding the snapshot as JSON and its
  ``version``; also ``entity_type`` and ``entity_id`` (the ``by-type`` index,
  for lists), ``due_type`` and ``due_at`` while the entity has a due time (the
  sparse ``by-due`` index, for sweeps) and ``names``, the names it can be found
  by (``EntityChanged.due_at`` and ``lookup_names``);
- ``sk`` = ``name#<digest>``: one row per name, with ``name_key`` =
  ``<entity type>#<name>`` (the ``by-name`` index) and the ``version`` that
  last claimed it;
- ``sk`` = ``part#<token>#<n>``: the parts of a big snapshot (below).

Two ways to write:

- ``apply``: a consumer's projection. Writes only if the snapshot is newer than
  the stored one, so replays, duplicates and reordering change nothing.
- ``save``: the owner's write. Succeeds only if the stored version is the one
  before it (optimistic concurrency), so two writers cannot both win.

Name rows are written before the entity's row, each only over an older claim,
and the names the replaced version had and this one lacks are deleted after
it, each only if no newer version claimed it again. A name row can therefore
outlive its claim (a write that lost its race, a crash), never go missing while
the entity has the name; ``named`` reads each entity it finds and keeps those
that still have the name. The indexes are eventually consistent; ``due`` and
``named`` read every entity they return from its row, consistently.

A snapshot whose JSON is over ``INLINE_BYTES`` (a dataset of thousands of
items; DynamoDB holds at most 400 KB per item) is stored in parts: its JSON is
cut into part rows, written first, and the entity's row then names the
``token`` and the number of ``parts`` instead of holding ``data``. The row is
written under the same conditions as any other, so a row only ever names a
complete set of parts; the parts of the version it replaced are deleted
afterwards, and a reader that lost that race reads again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError
from pydantic import ConfigDict

from sdmw_contracts.envelope import EntityChanged
from sdmw_contracts.events import ALL_EVENTS
from service_kit import aws
from service_kit.resources import BY_DUE, BY_NAME, BY_TYPE, Index

S = TypeVar("S", bound=EntityChanged)

#: Snapshots whose JSON is longer go in parts (DynamoDB's item limit is 400 KB, keys and attributes included).
#: The TTL attribute of every service table (``service_kit.resources.Table.ttl_attribute``), set on the rows
#: of a snapshot whose model says when it expires (``expires_at()``).
EXPIRES_ATTRIBUTE = "expiration"
INLINE_BYTES = 300 * 1024
PART_BYTES = 300 * 1024
#: How often a reader retries when the parts it was pointed at were replaced meanwhile.
PART_READ_TRIES = 5

#: Sort keys within an entity's partition.
ROW = "snapshot"
PART = "part#"
NAME = "name#"
#: A name longer than this (in bytes) is indexed by its digest: index keys are at most 1 KB / 2 KB.
NAME_KEY_BYTES = 512


class StaleWrite(RuntimeError):
    """The stored version moved on since it was read."""


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def entity_key(entity_type: str, entity_id: str) -> dict[str, str]:
    """The key of an entity's row."""
    return {"pk": f"{entity_type}#{entity_id}", "sk": ROW}


def _entity_id(pk: str) -> str:
    """The id in a partition key (types have no ``#``; ids may)."""
    return pk.partition("#")[2]


def due_key(when: datetime) -> str:
    """A due time as the index sorts it: UTC, fixed width, so text order is time order (naive means UTC)."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def name_key(entity_type: str, name: str) -> str:
    """What the ``by-name`` index holds for a name: readable, or a digest for a name too long for a key."""
    if len(name.encode()) > NAME_KEY_BYTES:
        name = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    return f"{entity_type}#{name}"


def _name_sk(name: str) -> str:
    return NAME + hashlib.sha256(name.encode()).hexdigest()[:32]


def snapshot_json(snapshot: EntityChanged) -> str:
    """The stored form of a snapshot: ASCII JSON, so its characters are its bytes."""
    return json.dumps(snapshot.model_dump(mode="json"), sort_keys=True)


def _index_keys(snapshot: EntityChanged) -> dict[str, Any]:
    """The row's keys in the by-type index, the sparse by-due index (while due) and its names."""
    kind = snapshot.entity_type()
    keys: dict[str, Any] = {BY_TYPE.partition_key: kind, BY_TYPE.sort_key: snapshot.id}
    due = snapshot.due_at()
    if due is not None:  # only open entities are in the sweep's index
        keys[BY_DUE.partition_key] = kind
        keys[BY_DUE.sort_key] = due_key(due)
    names = sorted(set(snapshot.lookup_names()))
    if names:
        keys["names"] = names
    return keys


def _rows(snapshot: EntityChanged) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The entity's row and, for a snapshot too large for one, the rows of its parts (to write first)."""
    kind = snapshot.entity_type()
    row: dict[str, Any] = {**entity_key(kind, snapshot.id), "version": snapshot.version}
    # A deleted entity's row stays, so that no older snapshot brings it back, but in no index: lists,
    # sweeps and names no longer find it.
    if not snapshot.is_deleted:
        row |= _index_keys(snapshot)
    expires = getattr(snapshot, "expires_at", None)
    if expires is not None:  # a row kept for a while only: the table's TTL attribute removes it then
        row[EXPIRES_ATTRIBUTE] = int(expires().timestamp())
    data = snapshot_json(snapshot)
    if len(data) <= INLINE_BYTES:
        return {**row, "data": data}, []
    token = f"v{snapshot.version}-{uuid.uuid4().hex[:12]}"
    chunks = [data[start : start + PART_BYTES] for start in range(0, len(data), PART_BYTES)]
    parts = [
        {"pk": row["pk"], "sk": f"{PART}{token}#{n:05}", "version": snapshot.version, "data": chunk}
        | ({EXPIRES_ATTRIBUTE: row[EXPIRES_ATTRIBUTE]} if EXPIRES_ATTRIBUTE in row else {})
        for n, chunk in enumerate(chunks)
    ]
    return {**row, "token": token, "parts": len(parts)}, parts


class _PartsGone(LookupError):
    """The parts a row named were replaced while being read."""


class SnapshotTable:
    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self._table = (dynamodb or aws.resource("dynamodb")).Table(table_name)

    # ------------------------------------------------------------ reads

    def get(self, model: type[S], entity_id: str) -> S | None:
        key = entity_key(model.entity_type(), entity_id)
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
        """Every snapshot of a type, or those whose id starts with ``id_prefix``, in id order.

        An item that cannot be read raises, unless ``on_unreadable`` is given: then it gets the item (its
        ``entity_type`` and ``entity_id`` among others) and the error, and the item is left out of the list.
        """
        condition = Key(BY_TYPE.partition_key).eq(model.entity_type())
        if id_prefix:
            condition &= Key(BY_TYPE.sort_key).begins_with(id_prefix)
        found = []
        for item in self._query(condition, BY_TYPE):
            try:
                try:
                    found.append(model.model_validate_json(self._data(item)))
                except _PartsGone:
                    again = self.get(model, item[BY_TYPE.sort_key])
                    if again is not None:
                        found.append(again)
            except Exception as error:
                if on_unreadable is None:
                    raise
                on_unreadable(item, error)
        return found

    def due(self, model: type[S], now: datetime) -> list[S]:
        """The snapshots of a type whose ``due_at`` is ``now`` or earlier, soonest first.

        Reads only those: a finished entity has no due time and is not in the index at all.
        """
        condition = Key(BY_DUE.partition_key).eq(model.entity_type()) & Key(BY_DUE.sort_key).lte(due_key(now))
        ids = [_entity_id(item["pk"]) for item in self._query(condition, BY_DUE)]

        def still_due(snapshot: S) -> bool:  # the index may lag behind the row
            due = snapshot.due_at()
            return due is not None and due_key(due) <= due_key(now)

        return [snapshot for snapshot in self._get_each(model, ids) if still_due(snapshot)]

    def named(self, model: type[S], name: str) -> list[S]:
        """The snapshots of a type that ``lookup_names`` finds by ``name``, in id order."""
        condition = Key(BY_NAME.partition_key).eq(name_key(model.entity_type(), name))
        ids = sorted({_entity_id(item["pk"]) for item in self._query(condition, BY_NAME)})
        return [snapshot for snapshot in self._get_each(model, ids) if name in snapshot.lookup_names()]

    def _get_each(self, model: type[S], entity_ids: list[str]) -> Iterator[S]:
        for entity_id in entity_ids:
            snapshot = self.get(model, entity_id)
            if snapshot is not None:
                yield snapshot

    def _data(self, item: dict[str, Any]) -> str:
        """The snapshot's JSON: the row's own, or its parts joined."""
        if "data" in item:
            return item["data"]
        parts = [part["data"] for part in self._partition(item["pk"], f"{PART}{item['token']}#")]
        if len(parts) != int(item["parts"]):
            raise _PartsGone(item["pk"])
        return "".join(parts)

    def _partition(self, pk: str, sk_prefix: str) -> Iterator[dict[str, Any]]:
        """Rows of one entity's partition whose sort key starts with ``sk_prefix``."""
        return self._query(Key("pk").eq(pk) & Key("sk").begins_with(sk_prefix))

    def _query(self, condition: Any, index: Index | None = None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition}
        if index is None:
            kwargs["ConsistentRead"] = True
        else:
            kwargs["IndexName"] = index.name  # indexes offer no consistent reads
        while True:
            page = self._table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ------------------------------------------------------------ writes

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
        """Delete the entity only if it is still at the snapshot's version (nothing newer arrived)."""
        key = entity_key(snapshot.entity_type(), snapshot.id)
        try:
            deleted = self._table.delete_item(
                Key=key, ConditionExpression=Attr("version").eq(snapshot.version), ReturnValues="ALL_OLD"
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            return
        old = deleted.get("Attributes") or {}
        if old.get("token"):
            self._delete_parts(key["pk"], old["token"])
        for row in list(self._partition(key["pk"], NAME)):
            self._delete_claim(row, snapshot.version + 1)

    def _write(self, snapshot: EntityChanged, condition: Any) -> None:
        """Parts and name rows first, then the row under ``condition``; then what the row replaced goes."""
        row, parts = _rows(snapshot)
        for part in parts:  # a few rows even for thousands of items
            self._table.put_item(Item=part)
        for name in row.get("names", []):
            self._claim(row["pk"], snapshot.entity_type(), name, snapshot.version)
        try:
            previous = self._table.put_item(Item=row, ConditionExpression=condition, ReturnValues="ALL_OLD")
        except ClientError as exc:
            if parts and _is_condition_failure(exc):
                self._delete_parts(row["pk"], row["token"])
            raise
        old = previous.get("Attributes") or {}
        if old.get("token") and old.get("token") != row.get("token"):
            self._delete_parts(row["pk"], old["token"])
        for name in set(old.get("names", [])) - set(row.get("names", [])):
            self._delete_claim({"pk": row["pk"], "sk": _name_sk(name)}, snapshot.version)

    def _claim(self, pk: str, entity_type: str, name: str, version: int) -> None:
        """The entity's name row, unless a newer version already claimed the name."""
        item = _name_row(pk, entity_type, name, version)
        try:
            self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists() | Attr("version").lt(version))
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def _delete_claim(self, key: dict[str, Any], version: int) -> None:
        """Delete a name row claimed before ``version``; one a newer version claimed again stays."""
        try:
            self._table.delete_item(
                Key={"pk": key["pk"], "sk": key["sk"]}, ConditionExpression=Attr("version").lt(version)
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def _delete_parts(self, pk: str, token: str) -> None:
        for part in list(self._partition(pk, f"{PART}{token}#")):
            self._table.delete_item(Key={"pk": part["pk"], "sk": part["sk"]})


# ---------------------------------------------------------------- the previous layout


class _Opaque(EntityChanged):
    """A snapshot of a type no contract describes (a service's private row), kept field for field."""

    model_config = ConfigDict(extra="allow")


def upgrade_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the previous layout, every entity of a type under ``pk`` = entity type with its id as ``sk``
    and its parts under ``<entity type>#part``, rewritten in this one; any other row as it is.

    For data saved before the layout changed (``infra/local/data.py`` restores through this). A contract's
    type gets its due time and names from its model; any other type is kept as it was, in the list index.
    """
    models = {m.entity_type(): m for m in ALL_EVENTS.values() if issubclass(m, EntityChanged)}
    old = {(row["pk"], row["sk"]): row for row in rows if _is_old_entity_row(row)}
    parts_of: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        for key in _old_owner_keys(row, old):
            parts_of.setdefault(key, []).append(row)
    consumed = {id(part) for parts in parts_of.values() for part in parts}
    kept = [row for row in rows if (row["pk"], row["sk"]) not in old and id(row) not in consumed]
    upgraded = []
    for (kind, entity_id), row in old.items():
        parts = sorted(parts_of.get((kind, entity_id), []), key=lambda part: part["sk"])
        data = row["data"] if "data" in row else "".join(part["data"] for part in parts)
        try:
            snapshot = _parse(models.get(kind), kind, data)
        except ValueError:  # not even a snapshot: kept as it was, where no reader looks
            kept += [row, *parts]
            continue
        entity_row, part_rows = _rows(snapshot)
        names = [_name_row(entity_row["pk"], kind, name, snapshot.version) for name in entity_row.get("names", [])]
        upgraded += [*part_rows, *names, entity_row]
    return kept + upgraded


def _is_old_entity_row(row: dict[str, Any]) -> bool:
    # Every row of this layout has a "#" in its key; the old entity rows, none.
    return "#" not in row["pk"] and "version" in row and ("data" in row or "token" in row)


def _old_owner_keys(row: dict[str, Any], old: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[str, str]]:
    """The old entity row this row is a part of (``<type>#part`` / ``<id>#<token>#<n>``), if any."""
    kind, _, suffix = row["pk"].rpartition("#")
    if suffix != "part" or "#" in kind:
        return []
    entity_id, _, _ = row["sk"].rpartition("#")  # drops "#<n>"
    entity_id, _, token = entity_id.rpartition("#")
    owner = old.get((kind, entity_id))
    return [(kind, entity_id)] if owner is not None and owner.get("token") == token else []


def _parse(model: type[EntityChanged] | None, kind: str, data: str) -> EntityChanged:
    if model is not None:
        try:
            return model.model_validate_json(data)
        except ValueError:
            pass  # kept as it is: readers skip what they cannot read, as they did before
    opaque = type(f"{kind}Changed", (_Opaque,), {})
    return opaque.model_validate_json(data)


def _name_row(pk: str, entity_type: str, name: str, version: int) -> dict[str, Any]:
    return {"pk": pk, "sk": _name_sk(name), BY_NAME.partition_key: name_key(entity_type, name), "version": version}
