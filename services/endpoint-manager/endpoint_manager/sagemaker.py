"""The SageMaker side of an endpoint: model, async endpoint config, endpoint, autoscaling.

Autoscaling follows AWS's "Autoscale an asynchronous endpoint": a target-tracking
policy on the backlog per instance (down to zero instances when idle), plus a
step-scaling policy, fired by a CloudWatch alarm on HasBacklogWithoutCapacity,
that wakes an endpoint at zero as soon as a request waits (without it, an
endpoint at zero starts only once its backlog exceeds the tracking target).

Every call here is safe to repeat: a resource that already exists (on create)
or is already gone (on delete) is not an error, and autoscaling's calls are all
create-or-update under fixed names, so a redelivered command picks up where a
crashed attempt stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from service_kit import aws
from service_kit.sagemaker import already_exists, endpoint_log_group, is_not_found, keep_logs_for_a_while

_log = logging.getLogger(__name__)

ALL_TRAFFIC = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
#: Target backlog per instance, and cooldowns: a GPU instance takes minutes to start, so scale out
#: no faster than one can come up, and scale in only after a long quiet spell.
BACKLOG_PER_INSTANCE = 3.0
SCALE_IN_COOLDOWN_S = 600
SCALE_OUT_COOLDOWN_S = 300
#: While its alarm stays in ALARM the wake-up policy is invoked again; this cooldown keeps it from
#: adding a second instance while the first one is still starting.
WAKE_UP_COOLDOWN_S = 300


@dataclass(frozen=True)
class EndpointSpec:
    endpoint_name: str
    model_name: str
    config_name: str
    instance_type: str
    instance_count: int


@dataclass(frozen=True)
class RuntimeSettings:
    """What every endpoint's model and async config share."""

    image_uri: str
    execution_role_arn: str
    output_s3_uri: str
    failure_s3_uri: str
    success_topic_arn: str
    error_topic_arn: str
    container_environment: dict[str, str]
    max_concurrent_invocations_per_instance: int = 1


@dataclass(frozen=True)
class EndpointState:
    status: str
    failure_reason: str | None = None


class NameTaken(Exception):
    """SageMaker holds an endpoint of this name made by another deployment (a Failed one, typically)."""


class EndpointGateway(Protocol):
    def create(self, spec: EndpointSpec) -> None: ...
    def delete(self, spec: EndpointSpec) -> None: ...
    def delete_unused(self, spec: EndpointSpec) -> None: ...
    def describe(self, endpoint_name: str) -> EndpointState | None: ...
    def enable_autoscaling(self, endpoint_name: str, max_instances: int) -> None: ...


#: The deployment's note where Application Auto Scaling is missing altogether.
AUTOSCALING_NOT_OFFERED = (
    "Application Auto Scaling is not offered at this AWS endpoint: LocalStack's free edition does not include "
    "it (it answers 501 Not Implemented); the endpoint keeps its initial instance count"
)


class AutoscalingNotOffered(RuntimeError):
    """The AWS endpoint in use has no Application Auto Scaling at all (LocalStack's free edition)."""


def autoscaling_not_offered(exc: ClientError) -> bool:
    """AWS never answers 501 Not Implemented; LocalStack's free edition answers every autoscaling call so."""
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 501


class SageMakerEndpoints:
    """The real gateway: boto3 clients for sagemaker, application-autoscaling, cloudwatch and logs."""

    def __init__(
        self,
        settings: RuntimeSettings,
        sagemaker: Any = None,
        autoscaling: Any = None,
        cloudwatch: Any = None,
        logs: Any = None,
    ) -> None:
        self._settings = settings
        self._sagemaker = sagemaker or aws.client("sagemaker")
        self._autoscaling = autoscaling or aws.client("application-autoscaling")
        self._cloudwatch = cloudwatch or aws.client("cloudwatch")
        self._logs = logs or aws.client("logs")

    def create(self, spec: EndpointSpec) -> None:
        self._create_once(self._sagemaker.create_model, **self._model_request(spec))
        self._create_once(self._sagemaker.create_endpoint_config, **self._config_request(spec))
        self._create_endpoint_once(spec)
        problem = keep_logs_for_a_while(self._logs, endpoint_log_group(spec.endpoint_name))
        if problem:
            _log.warning(problem)

    def delete(self, spec: EndpointSpec) -> None:
        # Deregistering the target deletes its policies (and target tracking's own alarms), not the
        # wake-up alarm this service made: delete that first, so it never fires at a policy that is gone.
        self._delete_once(self._cloudwatch.delete_alarms, AlarmNames=[wake_up_name(spec.endpoint_name)])
        self._deregister_scalable_target(spec.endpoint_name)
        self._delete_once(self._sagemaker.delete_endpoint, EndpointName=spec.endpoint_name)
        self._delete_once(self._sagemaker.delete_endpoint_config, EndpointConfigName=spec.config_name)
        self._delete_once(self._sagemaker.delete_model, ModelName=spec.model_name)

    def _deregister_scalable_target(self, endpoint_name: str) -> None:
        try:
            self._delete_once(self._autoscaling.deregister_scalable_target, **_target(endpoint_name))
        except ClientError as exc:
            if not autoscaling_not_offered(exc):  # where it is not offered, nothing was ever registered
                raise

    def delete_unused(self, spec: EndpointSpec) -> None:
        """The config and model of a deployment that got no endpoint."""
        self._delete_once(self._sagemaker.delete_endpoint_config, EndpointConfigName=spec.config_name)
        self._delete_once(self._sagemaker.delete_model, ModelName=spec.model_name)

    def _create_endpoint_once(self, spec: EndpointSpec) -> None:
        """Create the endpoint; one that exists counts as created only if it is this deployment's own."""
        try:
            self._sagemaker.create_endpoint(EndpointName=spec.endpoint_name, EndpointConfigName=spec.config_name)
        except ClientError as exc:
            if not already_exists(exc):
                raise
            found = self._sagemaker.describe_endpoint(EndpointName=spec.endpoint_name)
            if found["EndpointConfigName"] != spec.config_name:
                raise NameTaken(
                    f"SageMaker already has an endpoint named {spec.endpoint_name} (status "
                    f"{found['EndpointStatus']}) from another deployment; delete it first, or deploy under "
                    "another name"
                ) from exc

    def describe(self, endpoint_name: str) -> EndpointState | None:
        try:
            found = self._sagemaker.describe_endpoint(EndpointName=endpoint_name)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return EndpointState(status=found["EndpointStatus"], failure_reason=found.get("FailureReason"))

    def enable_autoscaling(self, endpoint_name: str, max_instances: int) -> None:
        """Scale on the async backlog per instance, down to zero when idle, and wake up from zero.

        Register, put and put-alarm all create or update under names fixed per endpoint,
        so a retry leaves one target, two policies and one alarm.
        """
        try:
            self._autoscaling.register_scalable_target(
                **_target(endpoint_name), MinCapacity=0, MaxCapacity=max_instances
            )
        except ClientError as exc:
            if autoscaling_not_offered(exc):
                raise AutoscalingNotOffered(AUTOSCALING_NOT_OFFERED) from exc
            raise
        self._track_backlog(endpoint_name)
        self._wake_up_from_zero(endpoint_name)

    def _track_backlog(self, endpoint_name: str) -> None:
        """Keep about BACKLOG_PER_INSTANCE queued requests per instance; scales in down to MinCapacity 0."""
        self._autoscaling.put_scaling_policy(
            PolicyName=backlog_policy_name(endpoint_name),
            **_target(endpoint_name),
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": BACKLOG_PER_INSTANCE,
                "CustomizedMetricSpecification": _endpoint_metric("ApproximateBacklogSizePerInstance", endpoint_name),
                "ScaleInCooldown": SCALE_IN_COOLDOWN_S,
                "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S,
            },
        )

    def _wake_up_from_zero(self, endpoint_name: str) -> None:
        """Add one instance when requests wait and none is running (HasBacklogWithoutCapacity is 1)."""
        name = wake_up_name(endpoint_name)
        policy = self._autoscaling.put_scaling_policy(
            PolicyName=name,
            **_target(endpoint_name),
            PolicyType="StepScaling",
            StepScalingPolicyConfiguration={
                "AdjustmentType": "ChangeInCapacity",
                "MetricAggregationType": "Average",
                "Cooldown": WAKE_UP_COOLDOWN_S,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
            },
        )
        # Two one-minute averages >= 1 fire it; a gap in the metric leaves the alarm's state as it is.
        self._cloudwatch.put_metric_alarm(
            AlarmName=name,
            AlarmDescription=f"Wake {endpoint_name} from zero instances when requests are waiting",
            **_endpoint_metric("HasBacklogWithoutCapacity", endpoint_name),
            Period=60,
            EvaluationPeriods=2,
            DatapointsToAlarm=2,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="missing",
            AlarmActions=[policy["PolicyARN"]],
        )

    def _model_request(self, spec: EndpointSpec) -> dict[str, Any]:
        return {
            "ModelName": spec.model_name,
            "ExecutionRoleArn": self._settings.execution_role_arn,
            "PrimaryContainer": {
                "Image": self._settings.image_uri,
                "Environment": dict(self._settings.container_environment),
            },
        }

    def _config_request(self, spec: EndpointSpec) -> dict[str, Any]:
        settings = self._settings
        return {
            "EndpointConfigName": spec.config_name,
            "ProductionVariants": [
                {
                    "VariantName": ALL_TRAFFIC,
                    "ModelName": spec.model_name,
                    "InstanceType": spec.instance_type,
                    "InitialInstanceCount": spec.instance_count,
                }
            ],
            "AsyncInferenceConfig": {
                "ClientConfig": {
                    "MaxConcurrentInvocationsPerInstance": settings.max_concurrent_invocations_per_instance
                },
                "OutputConfig": {
                    "S3OutputPath": settings.output_s3_uri,
                    "S3FailurePath": settings.failure_s3_uri,
                    "NotificationConfig": {
                        "SuccessTopic": settings.success_topic_arn,
                        "ErrorTopic": settings.error_topic_arn,
                    },
                },
            },
        }

    @staticmethod
    def _create_once(call: Any, **request: Any) -> None:
        try:
            call(**request)
        except ClientError as exc:
            if not already_exists(exc):
                raise

    @staticmethod
    def _delete_once(call: Any, **request: Any) -> None:
        try:
            call(**request)
        except ClientError as exc:
            if not is_not_found(exc) and "No scalable target" not in str(exc):
                raise


def _variant_resource_id(endpoint_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{ALL_TRAFFIC}"


def _target(endpoint_name: str) -> dict[str, str]:
    """The endpoint variant's scalable target, as every application-autoscaling call names it."""
    return {
        "ServiceNamespace": "sagemaker",
        "ResourceId": _variant_resource_id(endpoint_name),
        "ScalableDimension": SCALABLE_DIMENSION,
    }


def _endpoint_metric(metric_name: str, endpoint_name: str) -> dict[str, Any]:
    """One of SageMaker's per-endpoint metrics, averaged: the shape a policy's and an alarm's metric share."""
    return {
        "MetricName": metric_name,
        "Namespace": "AWS/SageMaker",
        "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}],
        "Statistic": "Average",
    }


def backlog_policy_name(endpoint_name: str) -> str:
    return f"{endpoint_name}-backlog"


def wake_up_name(endpoint_name: str) -> str:
    """The step policy's and its alarm's name: fixed per endpoint, so a retry overwrites, never adds."""
    return f"{endpoint_name}-has-backlog-without-capacity"
