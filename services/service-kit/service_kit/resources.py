"""Declarations of the AWS resources a service owns, written once.

Each service exports one ``ServiceResources`` in its ``resources.py``. The local
bootstrap (``infra/local``) provisions them into the emulator and the AWS
deployment renders the same objects, so there is no second hand-kept list.
Names are logical; ``physical_name`` adds the stack prefix, and the naming
methods below are the one rule both renderers follow for physical names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Buses a rule can listen on. Project events go on the project bus; AWS puts
#: service events (e.g. aws.sagemaker) on the account's default bus.
PROJECT_BUS = "project"
DEFAULT_BUS = "default"


@dataclass(frozen=True)
class Index:
    """A global secondary index of a service's table; its key attributes are strings.

    ``projection`` is ``ALL`` (the index answers with whole items) or ``KEYS_ONLY`` (the reader then gets
    each item it needs from the table, with a consistent read).
    """

    name: str
    partition_key: str
    sort_key: str
    projection: str = "ALL"


#: The indexes ``service_kit.snapshots`` reads. Each is sparse: only the rows that carry its key attributes
#: are in it, so idempotency records and snapshot parts stay out of all three.
#: Every snapshot of a type, by id (the list routes).
BY_TYPE = Index("by-type", partition_key="entity_type", sort_key="entity_id")
#: Unfinished snapshots of a type by the time they are due (the sweeps).
BY_DUE = Index("by-due", partition_key="due_type", sort_key="due_at", projection="KEYS_ONLY")
#: One row per name a snapshot can be found by (lookups by endpoint or model name).
BY_NAME = Index("by-name", partition_key="name_key", sort_key="pk", projection="KEYS_ONLY")


@dataclass(frozen=True)
class Table:
    """A DynamoDB table with a string partition key ``pk`` and sort key ``sk``, and ``indexes``.

    One table per service holds its entities and its idempotency records.
    """

    name: str
    ttl_attribute: str | None = "expiration"
    indexes: tuple[Index, ...] = (BY_TYPE, BY_DUE, BY_NAME)

    def key_attributes(self) -> list[str]:
        """Every attribute a key of the table or of one of its indexes is made of (all strings)."""
        names = ["pk", "sk"]
        for index in self.indexes:
            names += [name for name in (index.partition_key, index.sort_key) if name not in names]
        return names


#: AWS's recommendation for a queue that feeds a Lambda function: visibility >= 6 x the function's timeout
#: (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
VISIBILITY_PER_FUNCTION_TIMEOUT = 6


@dataclass(frozen=True)
class Queue:
    """The service's SQS queue and its dead-letter queue."""

    name: str
    visibility_timeout_s: int = 60
    max_receive_count: int = 5
    dlq_retention_s: int = 14 * 24 * 3600
    #: The service itself sends to its queue (delayed retries) and to its DLQ (what it gives up on, with
    #: why): it is told both URLs (SDMW_QUEUE_URL, SDMW_DLQ_URL) and may send to both.
    sends_to_itself: bool = False


@dataclass(frozen=True)
class Rule:
    """An EventBridge rule that feeds the service's queue."""

    name: str
    event_pattern: dict[str, Any]
    bus: str = PROJECT_BUS

    def pattern_json(self) -> str:
        return json.dumps(self.event_pattern, sort_keys=True)


@dataclass(frozen=True)
class TopicSubscription:
    """The service's queue subscribed to an SNS topic of the core stack.

    Without raw delivery each message is SNS's JSON envelope, which the
    consumer recognises as an ``SnsNotification``.
    """

    topic: str
    raw_message_delivery: bool = False


#: detail-type of the events EventBridge sends for a scheduled rule.
SCHEDULED_EVENT = "Scheduled Event"


@dataclass(frozen=True)
class Schedule:
    """A scheduled rule that puts a "Scheduled Event" on the service's queue every ``every_s`` seconds."""

    name: str
    every_s: int

    def expression(self) -> str:
        minutes = max(1, self.every_s // 60)
        return f"rate({minutes} minute{'s' if minutes > 1 else ''})"


#: Where event data too big for EventBridge is kept (``service_kit.claims``); see ``CoreResources.expiring_prefixes``.
CLAIM_PREFIX = "event-claims/"

#: Symbolic resources a ``Grant`` names; the AWS deployment turns each into ARNs.
BUCKET = "bucket"  # the core bucket itself (ListBucket)
BUCKET_OBJECTS = "bucket-objects"  # every object in the core bucket
SAGEMAKER_ROLE = "sagemaker-role"  # the execution role SageMaker jobs and models run as
ANY_RESOURCE = "*"  # only for APIs without resource-level permissions; needs a reason


def sagemaker_resources(resource_type: str) -> str:
    """Every SageMaker resource of one type (``endpoint``, ``training-job``, ...): their names come from users."""
    return f"sagemaker:{resource_type}/*"


def sagemaker_log_groups(group: str) -> str:
    """A log group SageMaker writes to (``/aws/sagemaker/...``), whose retention the service sets."""
    return f"logs:log-group:{group}"


def cloudwatch_alarms() -> str:
    """Every CloudWatch alarm of the account (alarm names follow endpoint names, which come from users)."""
    return "cloudwatch:alarm:*"


@dataclass(frozen=True)
class Grant:
    """AWS actions a service's functions may call, beyond their own table, queue and the project bus.

    ``reason`` says why a grant cannot name its resources more narrowly; it is
    required for ``ANY_RESOURCE`` and ends up in the deployment's nag report.
    """

    actions: tuple[str, ...]
    resource: str
    reason: str = ""
    conditions: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.resource == ANY_RESOURCE and not self.reason:
            raise ValueError(f"a grant of {self.actions} on every resource needs a reason")


@dataclass(frozen=True)
class LambdaFunction:
    """One Lambda function of the service, fed by its queue or by the HTTP API."""

    name: str
    handler: str
    trigger: str = "queue"  # "queue" or "http"
    timeout_s: int = 30
    memory_mb: int = 512
    batch_size: int = 10


@dataclass(frozen=True)
class ServiceResources:
    service: str
    table: Table | None = None
    queue: Queue | None = None
    rules: tuple[Rule, ...] = ()
    topic_subscriptions: tuple[TopicSubscription, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    functions: tuple[LambdaFunction, ...] = ()
    grants: tuple[Grant, ...] = ()
    #: Starts SageMaker work with the sd-runtime image (SD_RUNTIME_IMAGE, SAGEMAKER_ROLE_ARN).
    runs_sd_runtime: bool = False
    #: Reads the core's webhook signing key (``service_kit.webhook_secrets``): its secret's name is in
    #: SDMW_WEBHOOK_SIGNING_KEY_SECRET and the service may read that secret alone.
    signs_webhooks: bool = False

    def __post_init__(self) -> None:
        for function in self.functions:
            if function.trigger == "queue" and self.queue is None:
                raise ValueError(f"{self.service}: function {function.name} is fed by a queue the service lacks")
            # AWS: "set the source queue's visibility timeout to at least six times the timeout that you
            # configure on your function" (Lambda with SQS), so a throttled batch is retried before it
            # reaches the DLQ after maxReceiveCount receives.
            if (
                function.trigger == "queue"
                and self.queue
                and (function.timeout_s * VISIBILITY_PER_FUNCTION_TIMEOUT > self.queue.visibility_timeout_s)
            ):
                raise ValueError(
                    f"{self.service}: the queue's visibility timeout ({self.queue.visibility_timeout_s} s) must be "
                    f"at least {VISIBILITY_PER_FUNCTION_TIMEOUT}x {function.name}'s timeout ({function.timeout_s} s)"
                )

    # The physical names of what the service owns, under a stack prefix (both renderers use these).
    def table_name(self, prefix: str) -> str:
        return physical_name(prefix, self.table.name) if self.table else ""

    def queue_name(self, prefix: str) -> str:
        return physical_name(prefix, self.queue.name) if self.queue else ""

    def dlq_name(self, prefix: str) -> str:
        return physical_name(prefix, f"{self.queue.name}-dlq") if self.queue else ""

    def rule_name(self, prefix: str, rule: Rule | Schedule) -> str:
        return physical_name(prefix, f"{self.service}-{rule.name}")

    def function_name(self, prefix: str, function: LambdaFunction) -> str:
        return physical_name(prefix, f"{self.service}-{function.name}")


@dataclass(frozen=True)
class BucketCors:
    """A CORS rule of the bucket: browsers upload checkpoint and dataset parts (and the WebUI extension's
    parameters) straight to presigned URLs from another origin, and read back each part's ETag."""

    allowed_methods: tuple[str, ...] = ("PUT", "GET", "HEAD")
    allowed_origins: tuple[str, ...] = ("*",)
    allowed_headers: tuple[str, ...] = ("*",)
    exposed_headers: tuple[str, ...] = ("ETag",)
    max_age_s: int = 3000


@dataclass(frozen=True)
class CoreResources:
    """What the core stack owns and every service may use."""

    bus: str = "bus"
    bucket: str = "bucket"
    topics: tuple[str, ...] = ()
    #: Multipart uploads nobody completed or disabled are aborted after this many days.
    abort_incomplete_uploads_after_days: int = 1
    #: The bucket's CORS rule, the same locally (the emulator applies it) and in AWS.
    upload_cors: BucketCors = BucketCors()
    #: Objects under these prefixes are deleted after so many days: claimed event data outlives every
    #: queue's retention (DLQs keep 14 days) and then serves no one.
    expiring_prefixes: tuple[tuple[str, int], ...] = ((CLAIM_PREFIX, 30),)
    #: The role SageMaker endpoints and training jobs run as.
    sagemaker_role: str = "sagemaker-execution"
    #: Where every service's alarms notify (operators subscribe to it).
    alarm_topic: str = "alarms"
    #: The ECR repository of the sd-runtime image.
    runtime_repository: str = "sd-runtime"
    #: The Secrets Manager secret every webhook subscription's signing secret is derived from.
    webhook_signing_key: str = "webhook-signing-key"

    def role_arn(self, prefix: str, account: str, partition: str = "aws") -> str:
        return f"arn:{partition}:iam::{account}:role/{physical_name(prefix, self.sagemaker_role)}"

    def parameter(self, prefix: str, name: str) -> str:
        """The SSM parameter through which the core publishes a value whose name is not fixed (``bucket``...)."""
        return f"/{prefix}/core/{name}"


def project_events(*detail_types: str, sources: tuple[str, ...] = ()) -> dict[str, Any]:
    """An event pattern matching project events by name (and optionally source)."""
    pattern: dict[str, Any] = {"detail-type": list(detail_types)}
    if sources:
        pattern["source"] = list(sources)
    else:
        pattern["source"] = [{"prefix": "sdmw."}]
    return pattern


def physical_name(stack_prefix: str, logical: str) -> str:
    return f"{stack_prefix}-{logical}"
