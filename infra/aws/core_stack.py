"""The core stack: what every service shares, rendered from ``infra.core.CORE``.

The project bus, the bucket (with its access logs), the SNS topics SageMaker's
async inference notifies and the alarms go to, the sd-runtime image and its
ECR repository, and the role SageMaker runs as. Service stacks find all of it
by name or through the SSM parameters written here (see ``naming``).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    Aws,
    Duration,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as sns_subscriptions
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.aws import nag
from infra.aws.naming import RUNTIME_IMAGE_PARAMETER, access_logs_bucket_name, bucket_name, data_removal
from infra.aws.runtime_image import CODEBUILD, CodeBuildImage
from service_kit.resources import BucketCors, CoreResources, physical_name


def cors_rule(cors: BucketCors) -> s3.CorsRule:
    """The bucket's CORS rule as declared once (``CoreResources.upload_cors``), for CloudFormation."""
    return s3.CorsRule(
        allowed_methods=[s3.HttpMethods(method) for method in cors.allowed_methods],
        allowed_origins=list(cors.allowed_origins),
        allowed_headers=list(cors.allowed_headers),
        exposed_headers=list(cors.exposed_headers),
        max_age=cors.max_age_s,
    )


class CoreStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        core: CoreResources,
        image_context: Path,
        runtime_image_uri: str | None,
        retain_data: bool,
        alarm_email: str | None = None,
        image_build: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.prefix = prefix
        self.core = core
        removal = data_removal(retain_data)

        self.bus = events.EventBus(self, "Bus", event_bus_name=physical_name(prefix, core.bus))
        self.bucket = self._bucket(removal, retain_data)
        self.topics = {topic: self._topic(topic) for topic in core.topics}
        self.topics[core.alarm_topic] = self._alarm_topic(alarm_email)
        self.repository = ecr.Repository(
            self,
            "RuntimeRepository",
            repository_name=physical_name(prefix, core.runtime_repository),
            image_scan_on_push=True,
            lifecycle_rules=[ecr.LifecycleRule(max_image_count=10, description="keep the last 10 images")],
            removal_policy=removal,
            empty_on_delete=not retain_data,
        )
        if runtime_image_uri:
            image_uri = runtime_image_uri
        elif image_build == CODEBUILD:
            image_uri = CodeBuildImage(
                self, "ImageBuild", prefix=prefix, context=image_context, repository=self.repository
            ).image_uri
        else:
            image_uri = self._image_asset(image_context)
        self.role = self._sagemaker_role()
        self._parameter(RUNTIME_IMAGE_PARAMETER, image_uri, "The sd-runtime image SageMaker runs.")

    def _bucket(self, removal: RemovalPolicy, retain_data: bool) -> s3.Bucket:
        logs = s3.Bucket(
            self,
            "AccessLogs",
            # Named, so that a bucket a teardown kept is adopted by the next deploy, not left behind.
            bucket_name=access_logs_bucket_name(self, self.prefix),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=removal,
            auto_delete_objects=not retain_data,
        )
        return s3.Bucket(
            self,
            "Bucket",
            bucket_name=bucket_name(self, self.prefix, self.core),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            cors=[cors_rule(self.core.upload_cors)],
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(
                        self.core.abort_incomplete_uploads_after_days
                    ),
                ),
                *(
                    s3.LifecycleRule(id=f"expire-{prefix.strip('/')}", prefix=prefix, expiration=Duration.days(days))
                    for prefix, days in self.core.expiring_prefixes
                ),
            ],
            server_access_logs_bucket=logs,
            server_access_logs_prefix="bucket/",
            removal_policy=removal,
            auto_delete_objects=not retain_data,
        )

    def _topic(self, topic: str) -> sns.Topic:
        return sns.Topic(self, f"Topic-{topic}", topic_name=physical_name(self.prefix, topic), enforce_ssl=True)

    def _alarm_topic(self, email: str | None) -> sns.Topic:
        """Where every alarm goes, and the deployer's address if one was given (``make deploy ALARM_EMAIL=``).

        ``enforce_ssl`` writes a topic policy, and a topic policy replaces SNS's default one: without the
        statement below it holds only a Deny, and CloudWatch is refused ``SNS:Publish``.
        """
        topic = self._topic(self.core.alarm_topic)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
                    },
                },
            )
        )
        if email:
            # SNS mails a confirmation first; alarms reach the address once it is confirmed.
            topic.add_subscription(sns_subscriptions.EmailSubscription(email))
        return topic

    def _image_asset(self, image_context: Path) -> str:
        """Built from the packaged context (``make package``) and pushed by ``cdk deploy``; Docker only then."""
        asset = ecr_assets.DockerImageAsset(
            self,
            "RuntimeImage",
            directory=str(image_context),
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self._runtime_asset = asset
        return asset.image_uri

    def _sagemaker_role(self) -> iam.Role:
        """What SageMaker endpoints and training jobs may do: the bucket, the notification topics, the image."""
        role = iam.Role(
            self,
            "SageMakerExecutionRole",
            role_name=physical_name(self.prefix, self.core.sagemaker_role),
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Runs the sd-runtime container for endpoints and training jobs.",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[self.bucket.arn_for_objects("*")],
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]))
        # The runtime reports a job's progress on the bus itself (sd_runtime.progress).
        self.bus.grant_put_events_to(role)
        for topic in self.core.topics:
            self.topics[topic].grant_publish(role)
        self.repository.grant_pull(role)
        if getattr(self, "_runtime_asset", None) is not None:
            self._runtime_asset.repository.grant_pull(role)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/*",
                    f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/*:*",
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "AWS/SageMaker"]}},
            )
        )
        self._acknowledge_role_findings(role)
        return role

    @staticmethod
    def _acknowledge_role_findings(role: iam.Role) -> None:
        nag.acknowledge(
            role,
            "IAM5[Resource::<Bucket83908E77.Arn>/*]",
            "Models, datasets and outputs are read and written under keys made at run time, in this one bucket.",
        )
        for pattern in ("/aws/sagemaker/*", "/aws/sagemaker/*:*"):
            nag.acknowledge(
                role,
                f"IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:{pattern}]",
                "SageMaker writes each endpoint's and job's logs to a group named after it, under /aws/sagemaker/.",
            )
        nag.acknowledge(
            role,
            "IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions; "
            "PutMetricData is conditioned on SageMaker's namespaces.",
        )

    def _parameter(self, name: str, value: str, description: str) -> None:
        ssm.StringParameter(
            self,
            f"Parameter-{name}",
            parameter_name=self.core.parameter(self.prefix, name),
            string_value=value,
            description=description,
        )
