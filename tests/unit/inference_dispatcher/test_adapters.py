"""SageMakerAsync: what InvokeEndpointAsync's answers mean for a job (botocore's Stubber as the service)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from inference_dispatcher.adapters import InvocationRefused, SageMakerAsync


@pytest.fixture
def runtime(aws_credentials):
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def invoke(client) -> None:
    SageMakerAsync(60, 30, runtime=client).invoke_async("infer-endpoint-a", "s3://b/in.json", "job-1")


def test_the_job_is_handed_over_with_its_limits(runtime):
    client, stubber = runtime
    expected = {
        "EndpointName": "infer-endpoint-a",
        "InputLocation": "s3://b/in.json",
        "InferenceId": "job-1",
        "ContentType": "application/json",
        "Accept": "application/json",
        "RequestTTLSeconds": 60,
        "InvocationTimeoutSeconds": 30,
    }
    stubber.add_response("invoke_endpoint_async", {"OutputLocation": "s3://b/out/job-1.out"}, expected)
    invoke(client)
    stubber.assert_no_pending_responses()


def test_an_endpoint_that_does_not_exist_refuses_the_job_with_that_reason(runtime):
    client, stubber = runtime
    message = "Endpoint infer-endpoint-a of account 123456789012 not found."
    stubber.add_client_error("invoke_endpoint_async", "ValidationError", message, http_status_code=400)
    with pytest.raises(InvocationRefused, match="endpoint infer-endpoint-a does not exist"):
        invoke(client)


def test_another_refusal_keeps_sagemakers_words(runtime):
    client, stubber = runtime
    message = "Endpoint infer-endpoint-a is not an async inference endpoint."
    stubber.add_client_error("invoke_endpoint_async", "ValidationError", message, http_status_code=400)
    with pytest.raises(InvocationRefused, match="not an async inference endpoint"):
        invoke(client)


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("ServiceUnavailable", 503)])
def test_throttling_and_server_errors_are_retried_not_failed(runtime, code, status):
    client, stubber = runtime
    stubber.add_client_error("invoke_endpoint_async", code, "try again", http_status_code=status)
    with pytest.raises(Exception) as raised:
        invoke(client)
    assert not isinstance(raised.value, InvocationRefused)
