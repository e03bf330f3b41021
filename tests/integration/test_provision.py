"""Provisioning the declarations into a moto server: what the local stack and AWS both get."""

import json

import boto3

from infra.catalog import SERVICES
from infra.core import CORE
from infra.local.provision import provision


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
