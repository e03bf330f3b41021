"""Every service that can be sent an event over EventBridge's limit reads claims and publishes by claim check.

Commands from the edge carry user ``params`` (up to 200 KiB) and facts carry
them back, so a training command or a checkpoint fact can go by claim check;
a consumer that read no claims would dead-letter it.
"""

from __future__ import annotations

import pytest

from service_kit import aws

ENVIRONMENT = {
    "SDMW_EVENT_BUS": "sdmw-bus",
    "SDMW_BUCKET": "sdmw-bucket",
    "SDMW_TABLE": "sdmw-table",
    "SDMW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sdmw-queue",
    "SDMW_TOPIC_ASYNC_SUCCESS_ARN": "arn:aws:sns:us-east-1:123456789012:sdmw-async-success",
    "SDMW_TOPIC_ASYNC_ERROR_ARN": "arn:aws:sns:us-east-1:123456789012:sdmw-async-error",
    "SD_RUNTIME_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sd-runtime:test",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sdmw-sagemaker-execution",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    aws.client.cache_clear()
    yield
    aws.client.cache_clear()


def consumers():
    from api_gateway.bootstrap import projector
    from asset_registry.bootstrap import bootstrap as asset_registry
    from endpoint_manager.bootstrap import bootstrap as endpoint_manager
    from inference_dispatcher.bootstrap import bootstrap as inference_dispatcher
    from training_manager.bootstrap import bootstrap as training_manager

    return {
        "api-gateway": projector()[1],
        "asset-registry": asset_registry().consumer,
        "inference-dispatcher": inference_dispatcher().consumer,
        "training-manager": training_manager().consumer,
        "endpoint-manager": endpoint_manager().consumer,
    }


def test_every_consumer_fed_by_events_that_may_be_claimed_reads_claims():
    found = {service: consumer.reads_claims for service, consumer in consumers().items()}
    # endpoint-manager's inputs are bounded (endpoint commands, SageMaker's state changes), and it has no S3 grant.
    assert found == {
        "api-gateway": True,
        "asset-registry": True,
        "inference-dispatcher": True,
        "training-manager": True,
        "endpoint-manager": False,
    }
