"""Where a service stack finds the core's resources: by name, or through the core's SSM parameters.

Never through CloudFormation exports: an export pins the importing stack to the
exporting one, and each service must deploy, update and roll back on its own.
Names that are fixed (the bus, the topics, the role) are derived from the
prefix, the account and the region; the one value that is not (the image's
URI changes with its content) is an SSM parameter the core writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from service_kit.config import core_environment
from service_kit.resources import CoreResources, physical_name

#: The SSM parameters the core stack writes for the service stacks (names under ``/<prefix>/core/``).
RUNTIME_IMAGE_PARAMETER = "runtime-image-uri"


@dataclass(frozen=True)
class CoreReferences:
    """The core's resources as a service stack sees them (CloudFormation tokens where resolved at deploy)."""

    prefix: str
    bus_name: str
    bucket_name: str
    topic_arns: dict[str, str]
    alarm_topic_arn: str
    sagemaker_role_arn: str
    #: Only for services that start SageMaker work (an unused parameter is a template warning).
    runtime_image_uri: str | None
    #: The name of the secret webhook signing secrets are derived from.
    webhook_signing_key: str = ""

    @property
    def bus_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:event-bus/{self.bus_name}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:s3:::{self.bucket_name}"

    @property
    def webhook_signing_key_arn(self) -> str:
        """Secrets Manager ends a secret's ARN with six random characters of its own."""
        return (
            f"arn:{Aws.PARTITION}:secretsmanager:{Aws.REGION}:{Aws.ACCOUNT_ID}:secret:{self.webhook_signing_key}-??????"
        )


def topic_arn(prefix: str, topic: str) -> str:
    return f"arn:{Aws.PARTITION}:sns:{Aws.REGION}:{Aws.ACCOUNT_ID}:{physical_name(prefix, topic)}"


def bucket_name(scope: Construct, prefix: str, core: CoreResources) -> str:
    """Bucket names are global: the account and region make the core's own unique.

    Literal when the stack has an environment (``cdk deploy`` gives it the deploying account's): a name
    made with ``Ref``s cannot be adopted by ``--import-existing-resources`` after a teardown kept it.
    """
    stack = Stack.of(scope)
    return f"{physical_name(prefix, core.bucket)}-{stack.account}-{stack.region}"


def access_logs_bucket_name(scope: Construct, prefix: str) -> str:
    """Where the bucket's server access logs go; named as the bucket is, for the same reason."""
    stack = Stack.of(scope)
    return f"{prefix}-access-logs-{stack.account}-{stack.region}"


def data_removal(retain_data: bool) -> RemovalPolicy:
    """Named data (tables, the bucket, the repository): kept by a teardown unless ``retain_data`` is false.

    ``RETAIN_ON_UPDATE_OR_DELETE`` (CloudFormation's ``RetainExceptOnCreate``): a first deploy that rolls
    back deletes what it created, so the next try does not fail on names it left behind; a kept resource
    is adopted by the next deploy (``cdk deploy --import-existing-resources``, which needs a fixed name
    and a retaining policy).
    """
    return RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if retain_data else RemovalPolicy.DESTROY


def core_references(scope: Construct, prefix: str, core: CoreResources, runs_sd_runtime: bool) -> CoreReferences:
    """Resolved when the service stack deploys, from whatever the core stack has deployed at that time."""

    def parameter(name: str) -> str:
        return ssm.StringParameter.value_for_string_parameter(scope, core.parameter(prefix, name))

    return CoreReferences(
        prefix=prefix,
        bus_name=physical_name(prefix, core.bus),
        bucket_name=bucket_name(scope, prefix, core),
        topic_arns={topic: topic_arn(prefix, topic) for topic in core.topics},
        alarm_topic_arn=topic_arn(prefix, core.alarm_topic),
        sagemaker_role_arn=core.role_arn(prefix, Aws.ACCOUNT_ID, Aws.PARTITION),
        runtime_image_uri=parameter(RUNTIME_IMAGE_PARAMETER) if runs_sd_runtime else None,
        webhook_signing_key=physical_name(prefix, core.webhook_signing_key),
    )


def service_environment(core: CoreReferences) -> dict[str, str]:
    """What every service reads to find the core (service_kit.config), as the local provisioner sets it."""
    return core_environment(core.bus_name, core.bucket_name, core.topic_arns)
