"""Provision the core stack and every service's declared resources into an emulator.

Reads the same declarations the AWS deployment renders (``infra.core`` and each
service's ``resources.py``) and creates them with plain boto3, so it works
against moto and LocalStack alike. Safe to run again on a provisioned emulator.
Returns the environment each service needs to find its resources.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import boto3

from service_kit.config import WEBHOOK_SIGNING_KEY_VARIABLE, core_environment
from service_kit.resources import DEFAULT_BUS, CoreResources, Rule, ServiceResources, Table, physical_name


@dataclass(frozen=True)
class CoreNames:
    bus: str
    bucket: str
    topic_arns: dict[str, str]
    webhook_signing_key: str = ""

    def environment(self) -> dict[str, str]:
        return core_environment(self.bus, self.bucket, self.topic_arns)


def table_definition(name: str, table: Table) -> dict[str, Any]:
    """``CreateTable``'s arguments for a declared table: its keys and its global secondary indexes."""

    def key(partition_key: str, sort_key: str) -> list[dict[str, str]]:
        return [{"AttributeName": partition_key, "KeyType": "HASH"}, {"AttributeName": sort_key, "KeyType": "RANGE"}]

    definition: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in table.key_attributes()],
        "KeySchema": key("pk", "sk"),
    }
    if table.indexes:  # CreateTable refuses an empty list
        definition["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": key(index.partition_key, index.sort_key),
                "Projection": {"ProjectionType": index.projection},
            }
            for index in table.indexes
        ]
    return definition


class Provisioner:
    def __init__(self, prefix: str, session: boto3.session.Session | None = None) -> None:
        self._prefix = prefix
        session = session or boto3.session.Session()
        self._events = session.client("events")
        self._sqs = session.client("sqs")
        self._sns = session.client("sns")
        self._s3 = session.client("s3")
        self._dynamodb = session.client("dynamodb")
        self._secrets = session.client("secretsmanager")
        self._region = session.region_name or "us-east-1"

    def name(self, logical: str) -> str:
        return physical_name(self._prefix, logical)

    def core(self, core: CoreResources) -> CoreNames:
        bus = self.name(core.bus)
        if not any(b["Name"] == bus for b in self._events.list_event_buses()["EventBuses"]):
            self._events.create_event_bus(Name=bus)
        bucket = self.name(core.bucket)
        if self._region == "us-east-1":
            self._s3.create_bucket(Bucket=bucket)
        else:
            self._s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self._region})
        cors = core.upload_cors
        self._s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedMethods": list(cors.allowed_methods),
                        "AllowedOrigins": list(cors.allowed_origins),
                        "AllowedHeaders": list(cors.allowed_headers),
                        "ExposeHeaders": list(cors.exposed_headers),
                        "MaxAgeSeconds": cors.max_age_s,
                    }
                ]
            },
        )
        self._s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "abort-incomplete-multipart-uploads",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "AbortIncompleteMultipartUpload": {
                            "DaysAfterInitiation": core.abort_incomplete_uploads_after_days
                        },
                    },
                    *(
                        {
                            "ID": f"expire-{prefix.strip('/')}",
                            "Status": "Enabled",
                            "Filter": {"Prefix": prefix},
                            "Expiration": {"Days": days},
                        }
                        for prefix, days in core.expiring_prefixes
                    ),
                ]
            },
        )
        topic_arns = {topic: self._sns.create_topic(Name=self.name(topic))["TopicArn"] for topic in core.topics}
        signing_key = self._signing_key(self.name(core.webhook_signing_key))
        return CoreNames(bus=bus, bucket=bucket, topic_arns=topic_arns, webhook_signing_key=signing_key)

    def _signing_key(self, name: str) -> str:
        """The webhook signing key's secret, made once with a random value (as the core stack's is)."""
        try:
            self._secrets.describe_secret(SecretId=name)
        except self._secrets.exceptions.ResourceNotFoundException:
            self._secrets.create_secret(Name=name, SecretString=secrets.token_urlsafe(48))
        return name

    def service(self, resources: ServiceResources, core: CoreNames) -> dict[str, str]:
        env = {**core.environment(), **resources.environment}
        if resources.table:
            env["SDMW_TABLE"] = self._table(resources.table_name(self._prefix), resources.table)
        if resources.signs_webhooks:
            env[WEBHOOK_SIGNING_KEY_VARIABLE] = core.webhook_signing_key
        if resources.queue:
            queue_url, queue_arn, dlq_url = self._queue_with_dlq(resources)
            env["SDMW_QUEUE_URL"] = queue_url
            if resources.queue.sends_to_itself:
                env["SDMW_DLQ_URL"] = dlq_url
            for rule in resources.rules:
                self._rule(resources.rule_name(self._prefix, rule), rule, core.bus, queue_arn)
            for subscription in resources.topic_subscriptions:
                self._sns.subscribe(
                    TopicArn=core.topic_arns[subscription.topic],
                    Protocol="sqs",
                    Endpoint=queue_arn,
                    Attributes={"RawMessageDelivery": str(subscription.raw_message_delivery).lower()},
                )
        return env

    def _table(self, name: str, table: Table) -> str:
        if name in self._dynamodb.list_tables()["TableNames"]:
            return name
        self._dynamodb.create_table(**table_definition(name, table))
        self._dynamodb.get_waiter("table_exists").wait(TableName=name)
        if table.ttl_attribute:
            self._dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute}
            )
        return name

    def _queue_with_dlq(self, resources: ServiceResources) -> tuple[str, str, str]:
        queue = resources.queue
        dlq_url = self._sqs.create_queue(
            QueueName=resources.dlq_name(self._prefix),
            Attributes={"MessageRetentionPeriod": str(queue.dlq_retention_s)},
        )["QueueUrl"]
        redrive = {"deadLetterTargetArn": self._queue_arn(dlq_url), "maxReceiveCount": str(queue.max_receive_count)}
        url = self._sqs.create_queue(
            QueueName=resources.queue_name(self._prefix),
            Attributes={
                "VisibilityTimeout": str(queue.visibility_timeout_s),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        arn = self._queue_arn(url)
        self._sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(_queue_policy(arn))})
        return url, arn, dlq_url

    def _queue_arn(self, url: str) -> str:
        return self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def _rule(self, name: str, rule: Rule, project_bus: str, queue_arn: str) -> None:
        bus = "default" if rule.bus == DEFAULT_BUS else project_bus
        self._events.put_rule(Name=name, EventBusName=bus, EventPattern=rule.pattern_json(), State="ENABLED")
        self._events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])


def _queue_policy(queue_arn: str) -> dict[str, Any]:
    """Let EventBridge and SNS deliver to the queue (as the AWS deployment does)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sns.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            }
        ],
    }


def provision(prefix: str, core: CoreResources, services: tuple[ServiceResources, ...]) -> dict[str, dict[str, str]]:
    """Create everything; the environment of each service, by service name."""
    provisioner = Provisioner(prefix)
    core_names = provisioner.core(core)
    return {resources.service: provisioner.service(resources, core_names) for resources in services}
