"""endpoint-manager's autoscaling over real HTTP to a moto server, the way the local stack runs it.

The clients find the emulator through AWS_ENDPOINT_URL alone, as the services do.
"""

import boto3

from endpoint_manager.sagemaker import EndpointSpec, SageMakerEndpoints, wake_up_name
from tests.unit.endpoint_manager.test_autoscaling import SETTINGS

ENDPOINT = "infer-endpoint-it"


def test_autoscaling_is_set_up_and_torn_down_over_http(moto_server):
    endpoints = SageMakerEndpoints(SETTINGS)
    endpoints.enable_autoscaling(ENDPOINT, max_instances=3)
    endpoints.enable_autoscaling(ENDPOINT, max_instances=3)  # a redelivery

    autoscaling, cloudwatch = boto3.client("application-autoscaling"), boto3.client("cloudwatch")
    policies = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    step = next(p for p in policies if p["PolicyType"] == "StepScaling")
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[wake_up_name(ENDPOINT)])["MetricAlarms"]
    assert alarm["AlarmActions"] == [step["PolicyARN"]]
    assert len(policies) == 2

    endpoints.delete(EndpointSpec(ENDPOINT, "model-it", "config-it", "ml.g4dn.xlarge", 1))
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []
    assert autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
