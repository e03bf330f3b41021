"""Provisioning the declarations into a moto server: what the local stack and AWS both get."""

import json
from datetime import UTC, datetime

import boto3

from infra.catalog import SERVICES
from infra.core import CORE
from infra.local.provision import provision
from sdmw_contracts.events import EndpointDeploymentChanged
from service_kit.snapshots import SnapshotTable


def test_every_declared_resource_exists_and_is_wired(moto_server):
    environments = provision("it", CORE, SERVICES)
    assert set(environments) == {s.service for s in SERVICES}
    sqs, events = boto3.client("sqs"), boto3.client("events")
    for resources in SERVICES:
        env = environments[resources.service]
        attributes = sqs.get_queue_attributes(QueueUrl=env["SDMW_QUEUE_URL"], AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == resources.queue.max_receive_count
        assert redrive["deadLetterTargetArn"].endswith(f"it-{resources.queue.name}-dlq")
        assert attributes["VisibilityTimeout"] == str(resources.queue.visibility_timeout_s)
        for rule in resources.rules:
            bus = "default" if rule.bus == "default" else env["SDMW_EVENT_BUS"]
            described = events.describe_rule(Name=f"it-{resources.service}-{rule.name}", EventBusName=bus)
            assert json.loads(described["EventPattern"]) == rule.event_pattern
            targets = events.list_targets_by_rule(Rule=described["Name"], EventBusName=bus)["Targets"]
            assert [t["Arn"] for t in targets] == [attributes["QueueArn"]]
    lifecycle = boto3.client("s3").get_bucket_lifecycle_configuration(Bucket="it-bucket")["Rules"]
    assert lifecycle[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1


def test_provisioning_twice_changes_nothing(moto_server):
    first = provision("it", CORE, SERVICES)
    assert provision("it", CORE, SERVICES) == first


def test_each_provisioned_table_serves_the_snapshot_lists_sweeps_and_lookups(moto_server):
    environments = provision("it", CORE, SERVICES)
    table = SnapshotTable(environments["endpoint-manager"]["SDMW_TABLE"])
    now = datetime(2024, 1, 1, tzinfo=UTC)
    job = EndpointDeploymentChanged(
        id="job-1",
        version=1,
        endpoint_name="infer-endpoint-a",
        instance_type="ml.g4dn.xlarge",
        initial_instance_count=1,
        status="inprogress",
        start_time=now,
    )
    table.save(job)
    assert table.list(EndpointDeploymentChanged) == [job]
    assert table.named(EndpointDeploymentChanged, "infer-endpoint-a") == [job]
    assert table.due(EndpointDeploymentChanged, now) == [job]  # endpoint-manager's sweep reads the open ones
    finished = job.model_copy(update={"version": 2, "status": "failed", "end_time": now})
    table.save(finished)
    assert table.due(EndpointDeploymentChanged, now) == []  # and never the finished ones


def test_a_browser_may_upload_parts_to_the_bucket_and_read_their_etags(moto_server):
    """The WebUI extension's browser uploads (its "Upload from Laptop") PUT each part to a presigned URL from
    the WebUI's origin and read the part's ETag: the emulator answers the preflight and exposes ETag, as the
    bucket's CORS rule in AWS does (the same declaration, ``CoreResources.upload_cors``)."""
    import requests

    provision("it", CORE, SERVICES)
    s3 = boto3.client("s3")
    upload = s3.create_multipart_upload(Bucket="it-bucket", Key="checkpoint/Lora/x/style.safetensors")
    url = s3.generate_presigned_url(
        "upload_part",
        Params={"Bucket": "it-bucket", "Key": upload["Key"], "UploadId": upload["UploadId"], "PartNumber": 1},
    )
    origin = {"Origin": "http://127.0.0.1:7860"}
    preflight = requests.options(url, headers={**origin, "Access-Control-Request-Method": "PUT"}, timeout=10)
    assert preflight.status_code == 200
    assert "PUT" in preflight.headers["Access-Control-Allow-Methods"]
    put = requests.put(url, data=b"part", headers=origin, timeout=10)  # a Blob: no Content-Type
    assert put.status_code == 200 and put.headers["ETag"]
    assert put.headers["Access-Control-Allow-Origin"] in {"*", origin["Origin"]}
    assert "ETag" in put.headers["Access-Control-Expose-Headers"].split(",")
