"""End-to-end fixtures: the whole system, started the way `make up` starts it, on ports of its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from endpoint_manager.sagemaker import AUTOSCALING_NOT_OFFERED
from infra.local.stack import LocalStack, StackSettings
from tests.conftest import free_port

#: Small enough that the quota test can exceed it; large enough for the others.
LOCAL_INSTANCE_QUOTA = 6


@dataclass
class ApiClient:
    """A client of the public API, as the seed's code samples call it."""

    base_url: str
    api_key: str

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Accept": "application/json", "x-api-key": self.api_key}

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.base_url + path, headers=self._headers(), timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.base_url + path, headers=self._headers(), timeout=60, **kwargs)

    def put(self, path: str, **kwargs) -> requests.Response:
        return requests.put(self.base_url + path, headers=self._headers(), timeout=60, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return requests.delete(self.base_url + path, headers=self._headers(), timeout=60, **kwargs)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack the tests drive. Its emulator is moto, or LocalStack with SDMW_TEST_EMULATOR=localstack
    (StackSettings reads it; `make test-localstack`), which the stack starts on a port of its own."""
    settings = StackSettings(
        api_port=free_port(),
        api_key="e2e-key",
        emulator_port=free_port(),
        sagemaker_port=free_port(),
        run_dir=tmp_path_factory.mktemp("stack"),
        extra_env={
            "LOCAL_SAGEMAKER_MAX_INSTANCES": str(LOCAL_INSTANCE_QUOTA),
            "TRANSITION_WAIT_S": "20",
            "SD_RUNTIME_CAPTION_MODEL": "s3://sdmw-bucket/test-models/blip/",
            # Webhook retries after seconds, not half a minute (tests/e2e/test_webhooks.py).
            "WEBHOOKS_FIRST_RETRY_S": "2",
        },
    )
    local = LocalStack(settings)
    local.up()
    yield local
    local.down()


@pytest.fixture(scope="session")
def autoscaling_note(stack: LocalStack) -> str:
    """What a deployment with autoscaling notes once in service: nothing, or that LocalStack lacks autoscaling."""
    if stack.settings.emulator == "localstack":
        return f"endpoint is in service but autoscaling failed: {AUTOSCALING_NOT_OFFERED}"
    return ""


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> ApiClient:
    return ApiClient(stack.settings.base_url, stack.settings.api_key)
