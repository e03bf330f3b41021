"""The local stack's data across ``make down`` and ``make up``.

The emulator (moto in server mode) keeps everything in memory and has no
persistence of its own (its recorder replays requests; it does not save state),
nor has LocalStack's free edition (its PERSISTENCE is a paid feature). So
``down`` saves the data through the AWS APIs, after the services have stopped
and before the emulator does, and ``up`` puts it back once the declarations are
provisioned:

- S3: every object of every bucket (body, content type, user metadata);
- DynamoDB: every item of every table (and the table's keys and indexes, to
  create a table no declaration provisions); snapshots saved in the layout
  before each entity had a partition of its own are rewritten in today's
  (``service_kit.snapshots.upgrade_rows``);
- SQS: every message (body and message attributes), sent again on ``up``. A
  message in flight when the services stop (one a stopped worker's poll took,
  one waiting out a retry back-off) is waited for a few seconds
  (``inflight_wait_s``: the worker's receive lease, ``service_kit.worker``);
  one still invisible after that is not kept. Consumers are idempotent, so a
  message delivered twice has no second effect.

- Secrets Manager: every secret's value (the webhook signing key), put back over the one
  provisioning made.

Not kept here: multipart uploads in progress, SNS/EventBridge/IAM (provisioned
from the declarations again). The local SageMaker keeps its own state (models,
endpoints, queued async invocations, training jobs) in ``<data>/sagemaker``
when it stops (``infra.local.sagemaker.persistence``), before ``down`` saves
this snapshot; ``save`` carries that folder over into the new snapshot.

The snapshot lives in ``<run dir>/data`` and is written to a new folder that
replaces the old one only once complete. ``make clean`` removes it. It holds the
secrets' values (the webhook signing key), so only its owner can read it: the
folder is made 0700 and ``snapshot.json`` 0600, whatever the umask.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config

from service_kit.snapshots import upgrade_rows

S3_DIR = "s3"
SNAPSHOT = "snapshot.json"
#: The local SageMaker's own state, written by it as it stops (LOCAL_SAGEMAKER_STATE_DIR).
SAGEMAKER_DIR = "sagemaker"
_DESERIALIZE, _SERIALIZE = TypeDeserializer(), TypeSerializer()
#: The snapshot holds secret values: its folders are its owner's alone, and so is the snapshot file.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _private_dir(path: Path) -> None:
    """``path`` (and missing parents) made, and ``path`` itself set to 0700 whatever the umask."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)


def _write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, which is 0600 from its creation on (never readable by others, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), PRIVATE_FILE_MODE)  # an existing file keeps its mode through O_CREAT
        out.write(text)


def _default(value: Any) -> Any:
    """Binary attributes (DynamoDB ``B``, SQS ``BinaryValue``) as base64."""
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(value).decode()}
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"cannot save {type(value).__name__}")


def _object_hook(value: dict[str, Any]) -> Any:
    if len(value) == 1 and "__bytes__" in value:
        return base64.b64decode(value["__bytes__"])
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_default)


def _loads(text: str) -> Any:
    return json.loads(text, object_hook=_object_hook)


def _client(service: str, endpoint_url: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 3}),
    )


def _clients(endpoint_url: str, region: str, dynamodb_url: str | None) -> tuple[Any, Any, Any]:
    """S3, DynamoDB (on ``dynamodb_url`` when it is elsewhere, as under LocalStack) and SQS."""
    return (
        _client("s3", endpoint_url, region),
        _client("dynamodb", dynamodb_url or endpoint_url, region),
        _client("sqs", endpoint_url, region),
    )


def save(
    data_dir: Path,
    endpoint_url: str,
    region: str,
    inflight_wait_s: float = 12,
    dynamodb_url: str | None = None,
    take_messages: bool = False,
) -> dict[str, int]:
    """Snapshot the emulator's data into ``data_dir``; answers counts of what was kept.

    Messages in flight (a stopped worker's receive lease, a retry's back-off) are waited for up
    to ``inflight_wait_s``, then given up. With ``take_messages`` the saved messages are deleted
    from their queues once the snapshot is written: for an emulator that outlives ``down``, to
    which ``restore`` would otherwise send them a second time.
    """
    s3, dynamodb, sqs = _clients(endpoint_url, region, dynamodb_url)
    work = data_dir.with_name(data_dir.name + ".new")
    shutil.rmtree(work, ignore_errors=True)
    _private_dir(work)
    _private_dir(work / S3_DIR)
    snapshot: dict[str, Any] = {"buckets": {}, "tables": {}, "queues": {}, "secrets": _secrets(endpoint_url, region)}
    counts = {"objects": 0, "items": 0, "messages": 0}

    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        objects = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for entry in page.get("Contents", []):
                index = counts["objects"]
                counts["objects"] += 1
                answer = s3.get_object(Bucket=name, Key=entry["Key"])
                with open(work / S3_DIR / str(index), "wb") as out:
                    for chunk in answer["Body"].iter_chunks(1 << 20):
                        out.write(chunk)
                objects.append(
                    {
                        "key": entry["Key"],
                        "file": str(index),
                        "content_type": answer.get("ContentType"),
                        "metadata": answer.get("Metadata", {}),
                    }
                )
        snapshot["buckets"][name] = objects

    for page in dynamodb.get_paginator("list_tables").paginate():
        for table in page.get("TableNames", []):
            description = dynamodb.describe_table(TableName=table)["Table"]
            items = [
                item
                for scan in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
                for item in scan.get("Items", [])
            ]
            counts["items"] += len(items)
            snapshot["tables"][table] = {
                "key_schema": description["KeySchema"],
                "attribute_definitions": description["AttributeDefinitions"],
                "indexes": [
                    {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                    for index in description.get("GlobalSecondaryIndexes", [])
                ],
                "items": items,
            }

    kept = {url: {} for url in sqs.list_queues().get("QueueUrls", [])}
    receipts: dict[str, list[str]] = {url: [] for url in kept}
    deadline = time.monotonic() + inflight_wait_s
    while True:
        for url, messages in kept.items():
            messages.update(_drain_visible(sqs, url, receipts[url]))
        in_flight = sum(_not_visible(sqs, url) - len(messages) for url, messages in kept.items())
        if in_flight <= 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # a stopped worker's lease or a retry's back-off ends soon
    for url, messages in kept.items():
        counts["messages"] += len(messages)
        snapshot["queues"][url.rsplit("/", 1)[-1]] = list(messages.values())

    _write_private(work / SNAPSHOT, _dumps(snapshot))
    if (data_dir / SAGEMAKER_DIR).is_dir():  # written by the local SageMaker as it stopped, just before
        (data_dir / SAGEMAKER_DIR).replace(work / SAGEMAKER_DIR)
    shutil.rmtree(data_dir, ignore_errors=True)
    work.replace(data_dir)
    if take_messages:
        for url, handles in receipts.items():
            _delete_received(sqs, url, handles)
    return counts


def _delete_received(sqs: Any, url: str, handles: list[str]) -> None:
    for start in range(0, len(handles), 10):
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + 10])]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def _not_visible(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"])


def _drain_visible(sqs: Any, url: str, receipts: list[str]) -> dict[str, dict[str, Any]]:
    """Every visible message's body and attributes by id; received for long enough not to come round twice.

    Each receipt handle is added to ``receipts``."""
    kept: dict[str, dict[str, Any]] = {}
    while True:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=900, MessageAttributeNames=["All"]
        )
        messages = answer.get("Messages", [])
        if not messages:
            return kept
        for message in messages:
            receipts.append(message["ReceiptHandle"])
            kept[message["MessageId"]] = {
                "body": message["Body"],
                "attributes": message.get("MessageAttributes", {}),
            }


def _in_current_layout(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items saved before snapshots had a partition each, rewritten in today's layout (``upgrade_rows``)."""
    plain = [{name: _DESERIALIZE.deserialize(value) for name, value in item.items()} for item in items]
    return [{name: _SERIALIZE.serialize(value) for name, value in row.items()} for row in upgrade_rows(plain)]


def _secrets(endpoint_url: str, region: str) -> dict[str, str]:
    """Every secret's value (the webhook signing key: every subscription's secret is derived from it)."""
    client = _client("secretsmanager", endpoint_url, region)
    names = [entry["Name"] for page in client.get_paginator("list_secrets").paginate() for entry in page["SecretList"]]
    return {name: client.get_secret_value(SecretId=name)["SecretString"] for name in names}


def _put_back_secrets(saved: dict[str, str], endpoint_url: str, region: str) -> None:
    """Over the values provisioning just made, so that secrets handed out before stay valid."""
    client = _client("secretsmanager", endpoint_url, region)
    for name, value in saved.items():
        try:
            client.put_secret_value(SecretId=name, SecretString=value)
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=name, SecretString=value)


def restore(data_dir: Path, endpoint_url: str, region: str, dynamodb_url: str | None = None) -> dict[str, int]:
    """Put a snapshot back into a freshly provisioned emulator; answers counts of what came back."""
    snapshot_file = data_dir / SNAPSHOT
    counts = {"objects": 0, "items": 0, "messages": 0}
    if not snapshot_file.exists():
        return counts
    s3, dynamodb, sqs = _clients(endpoint_url, region, dynamodb_url)
    snapshot = _loads(snapshot_file.read_text())

    existing_buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket, objects in snapshot["buckets"].items():
        if bucket not in existing_buckets:
            s3.create_bucket(Bucket=bucket)
        for entry in objects:
            extra: dict[str, Any] = {"Metadata": entry.get("metadata") or {}}
            if entry.get("content_type"):
                extra["ContentType"] = entry["content_type"]
            s3.upload_file(str(data_dir / S3_DIR / entry["file"]), bucket, entry["key"], ExtraArgs=extra)
            counts["objects"] += 1

    existing_tables = set(dynamodb.list_tables().get("TableNames", []))
    for table, saved in snapshot["tables"].items():
        if table not in existing_tables:
            indexes = {"GlobalSecondaryIndexes": saved["indexes"]} if saved.get("indexes") else {}
            dynamodb.create_table(
                TableName=table,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=saved["key_schema"],
                AttributeDefinitions=saved["attribute_definitions"],
                **indexes,
            )
        items = _in_current_layout(saved["items"])
        for start in range(0, len(items), 25):
            requests = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
            while requests:
                requests = dynamodb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
        counts["items"] += len(items)

    _put_back_secrets(snapshot.get("secrets", {}), endpoint_url, region)

    for queue, messages in snapshot["queues"].items():
        if not messages:
            continue
        try:
            url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            continue  # a queue no declaration provisions any more
        for start in range(0, len(messages), 10):
            entries = []
            for i, message in enumerate(messages[start : start + 10]):
                entry = {"Id": str(i), "MessageBody": message["body"]}
                if message["attributes"]:
                    entry["MessageAttributes"] = message["attributes"]
                entries.append(entry)
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
        counts["messages"] += len(messages)
    # The messages are in the queues again: restoring the same snapshot twice must not send them twice.
    snapshot["queues"] = {}
    _private_dir(data_dir)  # a snapshot saved before the folder was made private becomes so
    _write_private(snapshot_file, _dumps(snapshot))
    return counts
