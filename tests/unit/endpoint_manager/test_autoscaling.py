"""SageMakerEndpoints' autoscaling against moto: scale to zero, and wake up from zero.

moto's application-autoscaling takes the sagemaker namespace without an endpoint
in moto's SageMaker, so only the autoscaling calls are under test here.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from endpoint_manager.sagemaker import (
    SCALABLE_DIMENSION,
    AutoscalingNotOffered,
    EndpointSpec,
    RuntimeSettings,
    SageMakerEndpoints,
    backlog_policy_name,
    wake_up_name,
)

ENDPOINT = "infer-endpoint-job1"
RESOURCE_ID = f"endpoint/{ENDPOINT}/variant/AllTraffic"
SPEC = EndpointSpec(ENDPOINT, "model-job-1", "config-job-1", "ml.g4dn.xlarge", 1)
SETTINGS = RuntimeSettings(
    image_uri="image",
    execution_role_arn="arn:aws:iam::123456789012:role/sagemaker",
    output_s3_uri="s3://b/out/",
    failure_s3_uri="s3://b/failure/",
    success_topic_arn="arn:aws:sns:us-east-1:123456789012:success",
    error_topic_arn="arn:aws:sns:us-east-1:123456789012:error",
    container_environment={},
)


@pytest.fixture
def endpoints(mocked_aws) -> SageMakerEndpoints:
    return SageMakerEndpoints(SETTINGS)


def targets() -> list[dict]:
    return boto3.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")[
        "ScalableTargets"
    ]


def policies() -> dict[str, dict]:
    found = boto3.client("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID
    )["ScalingPolicies"]
    return {policy["PolicyName"]: policy for policy in found}


def alarms() -> list[dict]:
    return boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]


def test_the_variant_scales_between_zero_and_the_maximum(endpoints):
    endpoints.enable_autoscaling(ENDPOINT, max_instances=4)
    [target] = targets()
    assert (target["ResourceId"], target["ScalableDimension"]) == (RESOURCE_ID, SCALABLE_DIMENSION)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 4)


def test_target_tracking_follows_the_backlog_per_instance(endpoints):
    endpoints.enable_autoscaling(ENDPOINT, max_instances=4)
    policy = policies()[backlog_policy_name(ENDPOINT)]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    metric = policy["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
    assert (metric["MetricName"], metric["Namespace"], metric["Statistic"]) == (
        "ApproximateBacklogSizePerInstance",
        "AWS/SageMaker",
        "Average",
    )
    assert metric["Dimensions"] == [{"Name": "EndpointName", "Value": ENDPOINT}]


def test_a_step_policy_adds_one_instance_when_woken(endpoints):
    endpoints.enable_autoscaling(ENDPOINT, max_instances=4)
    policy = policies()[wake_up_name(ENDPOINT)]
    assert policy["PolicyType"] == "StepScaling"
    config = policy["StepScalingPolicyConfiguration"]
    assert config["AdjustmentType"] == "ChangeInCapacity"
    assert config["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    assert 150 <= config["Cooldown"] <= 300


def test_a_backlog_without_capacity_alarm_wakes_the_endpoint(endpoints):
    endpoints.enable_autoscaling(ENDPOINT, max_instances=4)
    [alarm] = alarms()
    assert alarm["AlarmName"] == f"{ENDPOINT}-has-backlog-without-capacity"
    assert (alarm["MetricName"], alarm["Namespace"], alarm["Statistic"]) == (
        "HasBacklogWithoutCapacity",
        "AWS/SageMaker",
        "Average",
    )
    assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": ENDPOINT}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1.0, "GreaterThanOrEqualToThreshold")
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (60, 2, "missing")
    assert alarm["AlarmActions"] == [policies()[wake_up_name(ENDPOINT)]["PolicyARN"]]


def test_enabling_again_leaves_one_of_each(endpoints):
    endpoints.enable_autoscaling(ENDPOINT, max_instances=4)
    endpoints.enable_autoscaling(ENDPOINT, max_instances=4)
    assert len(targets()) == 1
    assert sorted(policies()) == sorted([backlog_policy_name(ENDPOINT), wake_up_name(ENDPOINT)])
    [alarm] = alarms()
    assert alarm["AlarmActions"] == [policies()[wake_up_name(ENDPOINT)]["PolicyARN"]]


def test_delete_removes_the_alarm_and_the_target(endpoints):
    endpoints.enable_autoscaling(ENDPOINT, max_instances=4)
    endpoints.delete(SPEC)
    assert alarms() == []
    assert targets() == []


def test_delete_without_autoscaling_is_fine(endpoints):
    endpoints.delete(SPEC)  # no alarm, no target, no endpoint: nothing to remove, no error
    endpoints.delete(SPEC)
    assert alarms() == [] and targets() == []


def test_the_alarm_of_another_endpoint_survives_a_delete(endpoints):
    endpoints.enable_autoscaling(ENDPOINT, max_instances=4)
    endpoints.enable_autoscaling("other-endpoint", max_instances=2)
    endpoints.delete(SPEC)
    assert [alarm["AlarmName"] for alarm in alarms()] == [wake_up_name("other-endpoint")]
    assert [target["ResourceId"] for target in targets()] == ["endpoint/other-endpoint/variant/AllTraffic"]


class NotImplementedAutoscaling:
    """Application Auto Scaling as LocalStack's free edition answers it: 501 to every call."""

    def __getattr__(self, operation: str):
        def refuse(**_request):
            raise ClientError(
                {
                    "Error": {"Code": "InternalFailure", "Message": "not included in your current license plan"},
                    "ResponseMetadata": {"HTTPStatusCode": 501},
                },
                operation,
            )

        return refuse


@pytest.fixture
def without_autoscaling(mocked_aws) -> SageMakerEndpoints:
    return SageMakerEndpoints(SETTINGS, autoscaling=NotImplementedAutoscaling())


def test_autoscaling_where_it_is_not_offered_is_refused_naming_localstacks_free_edition(without_autoscaling):
    with pytest.raises(AutoscalingNotOffered, match="LocalStack's free edition"):
        without_autoscaling.enable_autoscaling(ENDPOINT, max_instances=4)


def test_delete_where_autoscaling_is_not_offered_completes(without_autoscaling):
    without_autoscaling.delete(SPEC)  # nothing was registered: the endpoint, config and model go as usual


def test_other_autoscaling_errors_still_fail_the_delete(mocked_aws):
    class Throttled(NotImplementedAutoscaling):
        def deregister_scalable_target(self, **_request):
            raise ClientError(
                {"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "Deregister"
            )

    with pytest.raises(ClientError, match="ThrottlingException"):
        SageMakerEndpoints(SETTINGS, autoscaling=Throttled()).delete(SPEC)
