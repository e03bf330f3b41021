"""What the local SageMaker's integration tests share: an emulated AWS, and servers in threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from moto.server import ThreadedMotoServer

from tests.conftest import free_port

#: Endpoint overrides a developer's shell may hold; the tests set the ones they need.
_OVERRIDES = ("AWS_PROFILE", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_S3")


@contextmanager
def emulated_aws(region: str) -> Iterator[tuple[str, pytest.MonkeyPatch]]:
    """A moto server, and the environment pointing boto3 at it; its URL and the patch to add to."""
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    url = f"http://127.0.0.1:{port}"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL", url)
            patch.setenv("AWS_ACCESS_KEY_ID", "testing")
            patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            patch.setenv("AWS_DEFAULT_REGION", region)
            patch.setenv("AWS_REGION", region)
            for name in _OVERRIDES:
                patch.delenv(name, raising=False)
            yield url, patch
    finally:
        moto.stop()


class ThreadedServer:
    """An ASGI app served by uvicorn in a thread on a free port, stopped as uvicorn stops on SIGTERM."""

    def __init__(self, app: Any, start_timeout_s: float = 10) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout_s
        while not self._server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self, timeout_s: float = 30) -> None:
        """Ask it to exit (its shutdown runs) and wait; idempotent."""
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout=timeout_s)
            assert not self._thread.is_alive(), "the server did not shut down"
