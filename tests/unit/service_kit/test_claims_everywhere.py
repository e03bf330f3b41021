"""Every service that can be sent an event over EventBridge's limit reads claims and publishes by claim check.

Commands from the edge carry user ``params`` (up to 200 KiB) and facts carry
them back, so a training command or a checkpoint fact can go by claim check;
a consumer that read no claims would dead-letter it.
"""

from __future__ import annotations

import pytest

from tests.conftest import SERVICE_ENVIRONMENT


@pytest.fixture(autouse=True)
def environment(aws_credentials, monkeypatch):
    for name, value in SERVICE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


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
