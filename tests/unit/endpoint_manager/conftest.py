"""The endpoint-manager's handlers wired to test doubles (``world``), shared by its handler tests."""

from __future__ import annotations

import pytest
from aws_lambda_powertools import Logger

from endpoint_manager.handlers import Dependencies, router
from service_kit.events import RecordingPublisher
from service_kit.testing import InMemorySnapshotTable
from tests.unit.endpoint_manager.test_handlers import FakeEndpoints


@pytest.fixture
def world():
    publisher = RecordingPublisher()
    endpoints = FakeEndpoints()
    table = InMemorySnapshotTable()
    deps = Dependencies(jobs=table, endpoints=endpoints, publisher=publisher, logger=Logger(service="test"))
    return deps, endpoints, publisher, router(deps)
