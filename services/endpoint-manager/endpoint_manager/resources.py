"""Everything endpoint-manager owns in AWS, declared once (see service_kit.resources)."""

from endpoint_manager import SERVICE
from sdmw_contracts.events import EndpointDeletionRequested, EndpointDeploymentRequested
from sdmw_contracts.events.endpoints import EndpointRecordDeletionRequested
from sdmw_contracts.events.sagemaker import SAGEMAKER_SOURCE, SageMakerEndpointStateChange
from service_kit.resources import (
    ANY_RESOURCE,
    DEFAULT_BUS,
    SAGEMAKER_ROLE,
    Grant,
    LambdaFunction,
    Queue,
    Rule,
    Schedule,
    ServiceResources,
    Table,
    cloudwatch_alarms,
    project_events,
    sagemaker_log_groups,
    sagemaker_resources,
)
from service_kit.sagemaker import endpoint_log_group

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    queue=Queue(SERVICE, visibility_timeout_s=360),
    rules=(
        Rule(
            "endpoint-commands",
            project_events(
                EndpointDeploymentRequested.detail_type(),
                EndpointDeletionRequested.detail_type(),
                EndpointRecordDeletionRequested.detail_type(),
                sources=("sdmw.api-gateway",),
            ),
        ),
        Rule(
            "sagemaker-endpoint-state",
            {"source": [SAGEMAKER_SOURCE], "detail-type": [SageMakerEndpointStateChange.DETAIL_TYPE]},
            bus=DEFAULT_BUS,
        ),
    ),
    schedules=(Schedule("open-jobs-sweep", every_s=60),),
    functions=(LambdaFunction("worker", "endpoint_manager.entrypoints.lambda_handler.handler", timeout_s=60),),
    runs_sd_runtime=True,
    grants=(
        Grant(("sagemaker:CreateModel", "sagemaker:DeleteModel"), sagemaker_resources("model")),
        Grant(
            # Describe: Application Auto Scaling checks the caller may read what it is asked to scale.
            ("sagemaker:CreateEndpointConfig", "sagemaker:DeleteEndpointConfig", "sagemaker:DescribeEndpointConfig"),
            sagemaker_resources("endpoint-config"),
        ),
        Grant(
            (
                "sagemaker:CreateEndpoint",
                "sagemaker:DeleteEndpoint",
                "sagemaker:DescribeEndpoint",
                # Application Auto Scaling changes the instance count with the caller's rights.
                "sagemaker:UpdateEndpointWeightsAndCapacities",
            ),
            sagemaker_resources("endpoint"),
        ),
        Grant(
            ("iam:PassRole",),
            SAGEMAKER_ROLE,
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        Grant(
            (
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
            ),
            ANY_RESOURCE,
            reason="Application Auto Scaling names a scalable target by ARN only once it exists; "
            "the endpoints it scales are named by users at deploy time.",
        ),
        # The alarm that wakes an endpoint scaled to zero (named after the endpoint).
        # Target tracking also creates and removes its own TargetTracking-* alarms with the caller's rights.
        Grant(
            ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"), cloudwatch_alarms()
        ),
        # Registering the first SageMaker scalable target creates Application Auto Scaling's service-linked role.
        Grant(
            ("iam:CreateServiceLinkedRole",),
            "iam:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*",
            conditions={"StringEquals": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}},
        ),
        # SageMaker makes its log groups without a retention; the service gives them one.
        Grant(("logs:CreateLogGroup", "logs:PutRetentionPolicy"), sagemaker_log_groups(endpoint_log_group("*"))),
    ),
)
