"""The local stack and the AWS deployment render the same declarations into the same names and settings.

The local side is provisioned into moto in-process (``infra.local.provision``,
as ``make up`` does, prefix ``sdmw``) with the local stack's own scheduler list
and per-service settings (``infra.local.stack``); the AWS side is the CDK
templates of the session's one synth. They must agree on every service's
table, queue and dead-letter queue, rules, schedules, topic subscriptions and
the names of the environment variables its code reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.catalog import SERVICES
from infra.core import CORE
from infra.local.provision import provision
from infra.local.stack import LocalStack, StackSettings
from service_kit import resources as declarations
from tests.unit.infra.conftest import PREFIX, Synth, of_type, ref_id, render, stack_name

SERVICE_NAMES = [resources.service for resources in SERVICES]
BY_NAME = {resources.service: resources for resources in SERVICES}
ACCOUNT_REGION = "-${AWS::AccountId}-${AWS::Region}"

#: Variables only the Lambda functions get, and why the local processes do without them.
AWS_ONLY = {
    # Powertools names the service in logs and traces from it; the local workers log through the same
    # Logger, named in code, and have no X-Ray.
    "POWERTOOLS_SERVICE_NAME": SERVICE_NAMES,
    # The functions' log level; local processes log at the Logger's default.
    "LOG_LEVEL": SERVICE_NAMES,
    # On AWS the edge reads its API keys from Secrets Manager; locally the key is API_KEY.
    "API_KEYS_SECRET": ["api-gateway"],
}
#: Variables only the local processes get, and why the functions do without them.
LOCAL_ONLY = {
    # The local API key in plain text (make up's API_KEY); on AWS it lives in the secret (API_KEYS_SECRET).
    "API_KEY": ["api-gateway"],
    # Webhook targets on this machine's loopback are accepted locally; on AWS they are refused.
    "WEBHOOKS_ALLOW_LOOPBACK": ["api-gateway", "webhooks"],
    # Likewise checkpoint imports from a file served on this machine.
    "IMPORTS_ALLOW_LOOPBACK": ["api-gateway", "asset-registry"],
}


@dataclass(frozen=True)
class Local:
    """What the local stack made, read back from the emulator."""

    environments: dict[str, dict[str, str]]
    #: Service -> the variables its local processes get beyond the shared AWS configuration.
    process_environments: dict[str, dict[str, str]]
    tables: dict[str, str | None]  # name -> TTL attribute
    table_keys: dict[str, dict[str, Any]]  # name -> keys, attribute types and indexes (``table_shape``)
    queues: dict[str, dict[str, str]]  # name -> attributes
    queue_names_by_arn: dict[str, str]
    rules: dict[str, dict[str, Any]]  # name -> {bus, pattern, targets}
    subscriptions: list[dict[str, Any]]  # {topic, endpoint, raw}
    schedules: list[dict[str, Any]]  # the local scheduler's list
    topics: set[str]
    bus: str
    bucket: str
    abort_days: int
    expiring: set[tuple[str, int]]
    cors: list[dict[str, object]]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Local:
    with pytest.MonkeyPatch.context() as env:
        # `make` exports API_KEY (and a user may set the others): a process's own variables are told apart
        # from the inherited environment by value, so none of them may be inherited here.
        for name in (
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SAGEMAKER",
            "AWS_PROFILE",
            "API_KEY",
            "API_KEYS",
            "API_STAGE",
        ):
            env.delenv(name, raising=False)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }.items():
            env.setenv(name, value)
        with mock_aws():
            environments = provision(PREFIX, CORE, SERVICES)
            return read_back(environments, tmp_path_factory.mktemp("run"))


def read_back(environments: dict[str, dict[str, str]], run_dir: Path) -> Local:
    sqs, events, sns = boto3.client("sqs"), boto3.client("events"), boto3.client("sns")
    dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    tables, table_keys = {}, {}
    for table in dynamodb.list_tables()["TableNames"]:
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        tables[table] = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None
        table_keys[table] = table_shape(dynamodb.describe_table(TableName=table)["Table"])
    queues, queue_names_by_arn = {}, {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        name = url.rsplit("/", 1)[-1]
        queues[name] = attributes
        queue_names_by_arn[attributes["QueueArn"]] = name
    buses = [bus["Name"] for bus in events.list_event_buses()["EventBuses"]]
    rules = {}
    for bus in buses:
        for rule in events.list_rules(EventBusName=bus)["Rules"]:
            described = events.describe_rule(Name=rule["Name"], EventBusName=bus)
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
            rules[rule["Name"]] = {
                "bus": bus,
                "pattern": json.loads(described["EventPattern"]) if described.get("EventPattern") else None,
                "schedule": described.get("ScheduleExpression"),
                "targets": [queue_names_by_arn.get(t["Arn"], t["Arn"]) for t in targets],
            }
    subscriptions = []
    for subscription in sns.list_subscriptions()["Subscriptions"]:
        attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
        subscriptions.append(
            {
                "topic": subscription["TopicArn"].rsplit(":", 1)[-1],
                "protocol": subscription["Protocol"],
                "endpoint": queue_names_by_arn.get(subscription["Endpoint"], subscription["Endpoint"]),
                "raw": attributes.get("RawMessageDelivery", "false") == "true",
            }
        )
    topics = {arn["TopicArn"].rsplit(":", 1)[-1] for arn in sns.list_topics()["Topics"]}
    (bucket,) = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    (abort_days,) = [
        r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        for r in lifecycle
        if "AbortIncompleteMultipartUpload" in r
    ]
    expiring = {(r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in lifecycle if "Expiration" in r}
    (bus,) = [b for b in buses if b != "default"]

    # The local stack's scheduler list and per-process settings, made as `make up` makes them (nothing starts).
    stack = LocalStack(StackSettings(prefix=PREFIX, run_dir=run_dir))
    schedules = json.loads(stack._scheduler_process(environments).env["SDMW_SCHEDULES"])
    base = stack._base_env()
    process_environments: dict[str, dict[str, str]] = {}
    for process in stack._service_processes(environments):
        if process.name == "scheduler":  # its SDMW_SCHEDULES are compared in test_schedules_agree
            continue
        service = next((s for s in SERVICE_NAMES if process.name == s or process.name.startswith(f"{s}-")), None)
        assert service, f"a local process of no service: {process.name}"
        own = {k: v for k, v in process.env.items() if k not in base or base[k] != v}
        process_environments.setdefault(service, {}).update(own)
    return Local(
        environments=environments,
        process_environments=process_environments,
        tables=tables,
        table_keys=table_keys,
        queues=queues,
        queue_names_by_arn=queue_names_by_arn,
        rules=rules,
        subscriptions=subscriptions,
        schedules=schedules,
        topics=topics,
        bus=bus,
        bucket=bucket,
        abort_days=abort_days,
        expiring=expiring,
        cors=s3.get_bucket_cors(Bucket=bucket)["CORSRules"],
    )


def table_shape(table: dict[str, Any]) -> dict[str, Any]:
    """A table's keys, attribute types and global secondary indexes, as DescribeTable and CloudFormation both
    spell them (``KeySchema``, ``AttributeDefinitions``, ``GlobalSecondaryIndexes``)."""

    def keys(schema: list[dict[str, str]]) -> dict[str, str]:
        return {k["AttributeName"]: k["KeyType"] for k in schema}

    return {
        "keys": keys(table["KeySchema"]),
        "attributes": {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]},
        "indexes": {
            index["IndexName"]: (keys(index["KeySchema"]), index["Projection"]["ProjectionType"])
            for index in table.get("GlobalSecondaryIndexes", [])
        },
    }


def template(full_synth: Synth, service: str) -> dict[str, Any]:
    return full_synth.templates[stack_name(service)]


def aws_queues(tpl: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(the queue's logical id, its properties, its DLQ's properties)."""
    all_queues = of_type(tpl, "AWS::SQS::Queue")
    ((queue_id, queue),) = [(i, p) for i, p in all_queues.items() if "RedrivePolicy" in p]
    return queue_id, queue, all_queues[ref_id(queue["RedrivePolicy"]["deadLetterTargetArn"])]


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_table_names_and_ttl_agree(service: str, local: Local, full_synth: Synth):
    resources = BY_NAME[service]
    (table,) = of_type(template(full_synth, service), "AWS::DynamoDB::Table").values()
    name = resources.table_name(PREFIX)
    assert table["TableName"] == name
    assert name in local.tables, f"local has no table {name}"
    assert local.environments[service]["SDMW_TABLE"] == name
    aws_ttl = table.get("TimeToLiveSpecification", {})
    assert local.tables[name] == (aws_ttl.get("AttributeName") if aws_ttl.get("Enabled") else None)
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_table_keys_and_indexes_agree_with_the_declaration(service: str, local: Local, full_synth: Synth):
    resources = BY_NAME[service]
    (table,) = of_type(template(full_synth, service), "AWS::DynamoDB::Table").values()
    aws = table_shape(table)
    assert local.table_keys[resources.table_name(PREFIX)] == aws
    declared = {
        index.name: ({index.partition_key: "HASH", index.sort_key: "RANGE"}, index.projection)
        for index in resources.table.indexes
    }
    assert aws["indexes"] == declared
    snapshot_indexes = (declarations.BY_TYPE, declarations.BY_DUE, declarations.BY_NAME)
    assert set(declared) == {index.name for index in snapshot_indexes}  # what service_kit.snapshots reads


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_queue_and_dead_letter_queue_agree(service: str, local: Local, full_synth: Synth):
    resources = BY_NAME[service]
    _, queue, dlq = aws_queues(template(full_synth, service))
    assert queue["QueueName"] == resources.queue_name(PREFIX)
    assert dlq["QueueName"] == resources.dlq_name(PREFIX)
    local_queue = local.queues[queue["QueueName"]]
    local_dlq = local.queues[dlq["QueueName"]]
    assert int(local_queue["VisibilityTimeout"]) == queue["VisibilityTimeout"]
    redrive = json.loads(local_queue["RedrivePolicy"])
    assert local.queue_names_by_arn[redrive["deadLetterTargetArn"]] == dlq["QueueName"]
    assert int(redrive["maxReceiveCount"]) == queue["RedrivePolicy"]["maxReceiveCount"]
    assert int(local_dlq["MessageRetentionPeriod"]) == dlq["MessageRetentionPeriod"]
    assert local.environments[service]["SDMW_QUEUE_URL"].rsplit("/", 1)[-1] == queue["QueueName"]


def aws_rules(tpl: dict[str, Any], queue_id: str) -> dict[str, dict[str, Any]]:
    rules = {}
    for props in of_type(tpl, "AWS::Events::Rule").values():
        rules[props["Name"]] = {
            "bus": props.get("EventBusName", "default"),
            "pattern": props.get("EventPattern"),
            "schedule": props.get("ScheduleExpression"),
            "targets": [ref_id(t["Arn"]) for t in props["Targets"]],
            "state": props.get("State"),
        }
        assert rules[props["Name"]]["targets"] == [queue_id], f"{props['Name']} does not target the queue"
    return rules


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_event_rules_agree(service: str, local: Local, full_synth: Synth):
    tpl = template(full_synth, service)
    queue_id, queue, _ = aws_queues(tpl)
    on_aws = {name: rule for name, rule in aws_rules(tpl, queue_id).items() if rule["pattern"] is not None}
    here = {name: rule for name, rule in local.rules.items() if name.startswith(f"{PREFIX}-{service}-")}
    assert set(here) == set(on_aws)
    for name, rule in on_aws.items():
        assert rule["bus"] == here[name]["bus"], name  # "default" or the project bus, by name
        assert rule["bus"] in ("default", local.bus)
        assert rule["pattern"] == here[name]["pattern"], name
        assert rule["state"] == "ENABLED"
        assert here[name]["targets"] == [queue["QueueName"]], name
    declared = {BY_NAME[service].rule_name(PREFIX, rule) for rule in BY_NAME[service].rules}
    assert declared == set(on_aws)


def rate(every_s: int) -> str:
    minutes = max(1, every_s // 60)
    return f"rate({minutes} minute{'s' if minutes > 1 else ''})"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_schedules_agree(service: str, local: Local, full_synth: Synth):
    """Locally the scheduler (moto fires no scheduled rule) puts the events the AWS rule does, on the same queue."""
    tpl = template(full_synth, service)
    queue_id, queue, _ = aws_queues(tpl)
    on_aws = {name: rule["schedule"] for name, rule in aws_rules(tpl, queue_id).items() if rule["schedule"]}
    here = [s for s in local.schedules if s["queue_url"] == local.environments[service]["SDMW_QUEUE_URL"]]
    assert {s["rule"]: rate(s["every_s"]) for s in here} == on_aws
    assert {BY_NAME[service].rule_name(PREFIX, s) for s in BY_NAME[service].schedules} == set(on_aws)
    assert all(s["rule"].startswith(f"{PREFIX}-{service}-") for s in here)
    # Neither side leaves a scheduled rule the other lacks: moto gets none, the scheduler covers them all.
    assert not [name for name, rule in local.rules.items() if rule["schedule"]]


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_topic_subscriptions_agree(service: str, local: Local, full_synth: Synth):
    tpl = template(full_synth, service)
    queue_id, queue, _ = aws_queues(tpl)
    on_aws = set()
    for props in of_type(tpl, "AWS::SNS::Subscription").values():
        assert ref_id(props["Endpoint"]) == queue_id
        on_aws.add(
            (props["Protocol"], render(props["TopicArn"]).rsplit(":", 1)[-1], props.get("RawMessageDelivery", False))
        )
    here = {(s["protocol"], s["topic"], s["raw"]) for s in local.subscriptions if s["endpoint"] == queue["QueueName"]}
    assert here == on_aws
    declared = {("sqs", f"{PREFIX}-{s.topic}", s.raw_message_delivery) for s in BY_NAME[service].topic_subscriptions}
    assert declared == on_aws


def aws_environment(tpl: dict[str, Any]) -> dict[str, Any]:
    """Every variable any of the service's functions gets (raw CloudFormation values)."""
    variables: dict[str, Any] = {}
    for props in of_type(tpl, "AWS::Lambda::Function").values():
        variables.update(props.get("Environment", {}).get("Variables", {}))
    return variables


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_services_get_the_same_environment_variables(service: str, local: Local, full_synth: Synth):
    tpl = template(full_synth, service)
    on_aws = aws_environment(tpl)
    here = {**local.environments[service], **local.process_environments.get(service, {})}
    aws_only = {name for name, services in AWS_ONLY.items() if service in services}
    local_only = {name for name, services in LOCAL_ONLY.items() if service in services}
    assert aws_only <= set(on_aws), f"{service}: the AWS-only list names what AWS does not set"
    assert local_only <= set(here), f"{service}: the local-only list names what the local stack does not set"
    assert set(on_aws) - aws_only == set(here) - local_only, (
        f"{service}: only on AWS {sorted(set(on_aws) - aws_only - set(here))}; "
        f"only locally {sorted(set(here) - local_only - set(on_aws))}"
    )
    resources = of_type(tpl, "AWS::DynamoDB::Table") | of_type(tpl, "AWS::SQS::Queue")
    for name, value in on_aws.items():
        if name not in here:
            continue
        if name == "SDMW_BUCKET":  # globally unique on AWS: the account and region are added
            assert render(value) == here[name] + ACCOUNT_REGION
        elif name == "SDMW_TABLE":
            assert resources[ref_id(value)]["TableName"] == here[name]
        elif name == "SDMW_QUEUE_URL":
            assert here[name].rsplit("/", 1)[-1] == resources[ref_id(value)]["QueueName"]
        elif name.endswith("_ARN") and name.startswith(("SDMW_TOPIC_", "SAGEMAKER_ROLE")):
            # Same resource name; account, region and partition differ.
            assert render(value).rsplit(":", 1)[-1] == here[name].rsplit(":", 1)[-1], name
        elif isinstance(value, str):
            assert value == here[name], name


def test_the_core_agrees(local: Local, full_synth: Synth):
    core = full_synth.templates[stack_name("core")]
    assert [p["Name"] for p in of_type(core, "AWS::Events::EventBus").values()] == [local.bus]
    assert local.bus == f"{PREFIX}-{CORE.bus}"
    # The alarm topic is AWS's only: locally there are no alarms.
    aws_topics = {p["TopicName"] for p in of_type(core, "AWS::SNS::Topic").values()}
    assert aws_topics - {f"{PREFIX}-{CORE.alarm_topic}"} == local.topics
    buckets = {render(p.get("BucketName", "")): p for p in of_type(core, "AWS::S3::Bucket").values()}
    bucket = buckets[local.bucket + ACCOUNT_REGION]
    (aws_days,) = [
        r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        for r in bucket["LifecycleConfiguration"]["Rules"]
        if "AbortIncompleteMultipartUpload" in r
    ]
    assert aws_days == local.abort_days == CORE.abort_incomplete_uploads_after_days
    aws_expiring = {
        (r["Prefix"], r["ExpirationInDays"])
        for r in bucket["LifecycleConfiguration"]["Rules"]
        if "ExpirationInDays" in r
    }
    assert aws_expiring == local.expiring == set(CORE.expiring_prefixes)
    # The browser's uploads: the same CORS rule, the ETag exposed.
    [aws_cors] = bucket["CorsConfiguration"]["CorsRules"]
    [local_cors] = local.cors
    assert aws_cors["AllowedMethods"] == local_cors["AllowedMethods"] == list(CORE.upload_cors.allowed_methods)
    assert aws_cors["AllowedOrigins"] == local_cors["AllowedOrigins"]
    assert aws_cors["AllowedHeaders"] == local_cors["AllowedHeaders"]
    assert aws_cors["ExposedHeaders"] == local_cors["ExposeHeaders"] == ["ETag"]
    assert aws_cors["MaxAge"] == local_cors["MaxAgeSeconds"]
