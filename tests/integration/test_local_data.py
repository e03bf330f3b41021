"""The local stack's data kept across `make down`/`make up` (infra/local/data.py), against a moto server:
save, wipe the emulator (as stopping it does), restore."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import boto3
import pytest
import requests

from infra.local import data
from sdmw_contracts.envelope import EntityChanged
from sdmw_contracts.events import DatasetChanged, DatasetCreationRequested, EndpointDeploymentChanged, ModelChanged
from sdmw_contracts.events.assets import DatasetItemSpec
from service_kit.snapshots import PART_BYTES, SnapshotTable
from tests.conftest import create_service_table, free_port


@pytest.fixture
def moto_server(aws_credentials, monkeypatch):
    """A moto server of its own, in its own process: the in-process ones share their state with other tests."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{url}/moto-api/", timeout=1)
            break
        except requests.RequestException:
            assert time.monotonic() < deadline, "moto did not start"
            time.sleep(0.2)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_objects_items_and_queued_messages_survive_a_wiped_emulator(moto_server, tmp_path):
    s3, dynamodb, sqs = boto3.client("s3"), boto3.client("dynamodb"), boto3.client("sqs")
    s3.create_bucket(Bucket="kept-bucket")
    body = bytes(range(256)) * 4100  # binary, about 1 MB
    s3.put_object(Bucket="kept-bucket", Key="checkpoint/Lora/x/model.safetensors", Body=body, Metadata={"a": "b"})
    s3.put_object(Bucket="kept-bucket", Key="out/j/result/p.json", Body=b"{}", ContentType="application/json")
    table = create_service_table("kept-table")
    item = {"pk": {"S": "job#1"}, "sk": {"S": "v"}, "blob": {"B": b"\x00\xff"}, "n": {"N": "3"}, "l": {"SS": ["a"]}}
    dynamodb.put_item(TableName=table, Item=item)
    url = sqs.create_queue(QueueName="kept-queue")["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"detail-type": "X"}',
        MessageAttributes={"bin": {"DataType": "Binary", "BinaryValue": b"\x01"}},
    )
    sqs.send_message(QueueUrl=url, MessageBody="second")

    saved = data.save(tmp_path / "data", moto_server, "us-east-1", inflight_wait_s=0)
    assert saved == {"objects": 2, "items": 1, "messages": 2}

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    assert s3.list_buckets()["Buckets"] == []
    # `up` provisions the declared table and queue before restoring; the bucket is created by restore.
    create_service_table("kept-table")
    url = sqs.create_queue(QueueName="kept-queue")["QueueUrl"]

    restored = data.restore(tmp_path / "data", moto_server, "us-east-1")
    assert restored == saved
    got = s3.get_object(Bucket="kept-bucket", Key="checkpoint/Lora/x/model.safetensors")
    assert got["Body"].read() == body and got["Metadata"] == {"a": "b"}
    assert s3.get_object(Bucket="kept-bucket", Key="out/j/result/p.json")["ContentType"] == "application/json"
    assert dynamodb.get_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})["Item"] == item
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    assert sorted(m["Body"] for m in messages) == sorted(['{"detail-type": "X"}', "second"])
    [with_attribute] = [m for m in messages if m["Body"] != "second"]
    assert with_attribute["MessageAttributes"]["bin"]["BinaryValue"] == b"\x01"

    # Restoring the same snapshot again (an `up` that failed and was retried) does not send the messages twice.
    assert data.restore(tmp_path / "data", moto_server, "us-east-1")["messages"] == 0


def test_the_webhook_signing_key_survives_so_secrets_handed_out_stay_valid(moto_server, tmp_path):
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="sdmw-webhook-signing-key", SecretString="the key subscriptions were derived from")
    data.save(tmp_path / "data", moto_server, "us-east-1", inflight_wait_s=0)

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    # `up` provisions a new random key before restoring; the saved one goes back over it.
    secrets.create_secret(Name="sdmw-webhook-signing-key", SecretString="a new random key")
    data.restore(tmp_path / "data", moto_server, "us-east-1")
    value = secrets.get_secret_value(SecretId="sdmw-webhook-signing-key")["SecretString"]
    assert value == "the key subscriptions were derived from"


def test_snapshots_saved_in_the_layout_before_partitions_per_entity_come_back_in_todays(moto_server, tmp_path):
    """One partition per entity type then, one per entity now: a restore rewrites the rows, names and parts."""
    when = datetime(2024, 1, 1, tzinfo=UTC)
    deployment = EndpointDeploymentChanged(
        id="job-1",
        version=2,
        endpoint_name="infer-endpoint-a",
        instance_type="ml.g4dn.xlarge",
        initial_instance_count=1,
        status="success",
        start_time=when,
    )
    creating = ModelChanged(
        id="m1",
        version=3,
        model_type="Stable-diffusion",
        name="mine",
        status="Creating",
        s3_base="s3://b/",
        created_at=when,
    )
    specs = [DatasetItemSpec(name=f"i{n:05}.png", type="image", original_filename=f"/p/{n}") for n in range(5000)]
    big = DatasetCreationRequested(dataset_name="big", items=specs, requested_at=when).initial_snapshot("b", version=1)
    big_json = json.dumps(big.model_dump(mode="json"), sort_keys=True)
    chunks = [big_json[start : start + PART_BYTES] for start in range(0, len(big_json), PART_BYTES)]
    assert len(chunks) > 1
    old_layout = [
        {"pk": "EndpointDeployment", "sk": "job-1", "version": 2, "data": deployment.model_dump_json()},
        {"pk": "Model", "sk": "m1", "version": 3, "data": creating.model_dump_json()},
        {"pk": "Dataset", "sk": "big", "version": 1, "token": "v1-abc", "parts": len(chunks)},
        *(
            {"pk": "Dataset#part", "sk": f"big#v1-abc#{n:05}", "version": 1, "data": chunk}
            for n, chunk in enumerate(chunks)
        ),
        {"pk": "DatasetItems", "sk": "pets", "version": 4, "data": '{"id": "pets", "items": [], "version": 4}'},
        {"pk": "idempotency#handler", "sk": "abc", "status": "COMPLETED"},
    ]
    table = boto3.resource("dynamodb").Table(create_service_table("kept-table"))
    for row in old_layout:
        table.put_item(Item=row)
    data.save(tmp_path / "data", moto_server, "us-east-1", inflight_wait_s=0)
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    create_service_table("kept-table")

    data.restore(tmp_path / "data", moto_server, "us-east-1")
    snapshots = SnapshotTable("kept-table")
    assert snapshots.get(EndpointDeploymentChanged, "job-1") == deployment
    assert snapshots.named(EndpointDeploymentChanged, "infer-endpoint-a") == [deployment]
    assert snapshots.due(ModelChanged, when) == [creating]
    assert snapshots.get(DatasetChanged, "big") == big
    assert [kept.id for kept in snapshots.list(_DatasetItemsRow)] == ["pets"]
    rows = boto3.resource("dynamodb").Table("kept-table").scan(ConsistentRead=True)["Items"]
    assert all("#" in row["pk"] for row in rows), "a row of the old layout is left"
    assert {"pk": "idempotency#handler", "sk": "abc", "status": "COMPLETED"} in rows


class _DatasetItemsRow(EntityChanged):
    """The read model's private row of a dataset's items, as it reads it."""

    items: list[dict]

    @classmethod
    def entity_type(cls) -> str:
        return "DatasetItems"


def test_an_emulator_that_outlives_down_gives_up_the_saved_messages(moto_server, tmp_path):
    """A LocalStack in Docker keeps running after `make down`: what `down` saved leaves its queues, or the next
    `up` would queue it twice."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="outliving-queue")["QueueUrl"]
    for i in range(12):  # more than one delete batch
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")

    saved = data.save(tmp_path / "data", moto_server, "us-east-1", inflight_wait_s=0, take_messages=True)

    assert saved["messages"] == 12
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == counts["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert data.restore(tmp_path / "data", moto_server, "us-east-1")["messages"] == 12
