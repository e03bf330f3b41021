"""Fixtures of the CLI's tests: a private config folder, and the commands pointed at a fake API."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from sdmw_cli import cli
from sdmw_cli.client import Client

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("SDMW_URL", "SDMW_API_KEY", "SDMW_EVENT_BUS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_api(monkeypatch) -> Callable[[Handler], list[httpx.Request]]:
    """``fake_api(handler)`` points the commands at ``handler`` (API and S3 alike); answers the requests seen."""

    def start(handler: Handler) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return handler(request)

        transport = httpx.MockTransport(record)
        monkeypatch.setattr(
            cli,
            "client_factory",
            lambda s: Client(
                s.url,
                s.api_key,
                http=httpx.Client(transport=transport),
                storage=httpx.Client(transport=transport),
                retry_pause_s=0,
            ),
        )
        monkeypatch.setenv("SDMW_URL", "http://api.test/prod")
        monkeypatch.setenv("SDMW_API_KEY", "key")
        return seen

    return start
