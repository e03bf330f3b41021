"""The local stack's data kept across `make down`/`make up` (infra/local/data.py), against a moto server:
save, wipe the emulator (as stopping it does), restore."""

from __future__ import annotations

import subprocess
import sys
import time

import boto3
import pytest
import requests

from infra.local import data
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
