"""The SageMaker side of an endpoint: model, async endpoint config, endpoint, autoscaling.

Every call here is safe to repeat: a resource that already exists (on create)
or is already gone (on delete) is not an error, so a redelivered command picks
up where a crashed attempt stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from service_kit import aws

ALL_TRAFFIC = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


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


class EndpointGateway(Protocol):
    def create(self, spec: EndpointSpec) -> None: ...
    def delete(self, spec: EndpointSpec) -> None: ...
    def describe(self, endpoint_name: str) -> EndpointState | None: ...
    def enable_autoscaling(self, endpoint_name: str, max_instances: int) -> None: ...


def _error_text(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', str(exc))}"


def _already_exists(exc: ClientError) -> bool:
    message = exc.response.get("Error", {}).get("Message", "")
    return "already exist" in message


def _not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") in {"ResourceNotFound", "ObjectNotFoundException"} or "Could not find" in error.get(
        "Message", ""
    )


class SageMakerEndpoints:
    """The real gateway: boto3 clients for sagemaker and application-autoscaling."""

    def __init__(self, settings: RuntimeSettings, sagemaker: Any = None, autoscaling: Any = None) -> None:
        self._settings = settings
        self._sagemaker = sagemaker or aws.client("sagemaker")
        self._autoscaling = autoscaling or aws.client("application-autoscaling")

    def create(self, spec: EndpointSpec) -> None:
        self._create_once(self._sagemaker.create_model, **self._model_request(spec))
        self._create_once(self._sagemaker.create_endpoint_config, **self._config_request(spec))
        self._create_once(
            self._sagemaker.create_endpoint, EndpointName=spec.endpoint_name, EndpointConfigName=spec.config_name
        )

    def delete(self, spec: EndpointSpec) -> None:
        self._delete_once(
            self._autoscaling.deregister_scalable_target,
            ServiceNamespace="sagemaker",
            ResourceId=_variant_resource_id(spec.endpoint_name),
            ScalableDimension=SCALABLE_DIMENSION,
        )
        self._delete_once(self._sagemaker.delete_endpoint, EndpointName=spec.endpoint_name)
        self._delete_once(self._sagemaker.delete_endpoint_config, EndpointConfigName=spec.config_name)
        self._delete_once(self._sagemaker.delete_model, ModelName=spec.model_name)

    def describe(self, endpoint_name: str) -> EndpointState | None:
        try:
            found = self._sagemaker.describe_endpoint(EndpointName=endpoint_name)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        return EndpointState(status=found["EndpointStatus"], failure_reason=found.get("FailureReason"))

    def enable_autoscaling(self, endpoint_name: str, max_instances: int) -> None:
        """Scale on the async backlog per instance, down to zero when idle."""
        resource_id = _variant_resource_id(endpoint_name)
        self._autoscaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource_id,
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=0,
            MaxCapacity=max_instances,
        )
        self._autoscaling.put_scaling_policy(
            PolicyName=f"{endpoint_name}-backlog",
            ServiceNamespace="sagemaker",
            ResourceId=resource_id,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 3.0,
                "CustomizedMetricSpecification": {
                    "MetricName": "ApproximateBacklogSizePerInstance",
                    "Namespace": "AWS/SageMaker",
                    "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}],
                    "Statistic": "Average",
                },
                "ScaleInCooldown": 600,
                "ScaleOutCooldown": 300,
            },
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
            if not _already_exists(exc):
                raise

    @staticmethod
    def _delete_once(call: Any, **request: Any) -> None:
        try:
            call(**request)
        except ClientError as exc:
            if not _not_found(exc) and "No scalable target" not in str(exc):
                raise


def _variant_resource_id(endpoint_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{ALL_TRAFFIC}"


def describe_error(exc: ClientError) -> str:
    return _error_text(exc)
