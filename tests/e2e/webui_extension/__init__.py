"""The Stable Diffusion WebUI with the AWS extension v1.1.0 installed, for end-to-end tests.

``WebUI`` starts a process that is the WebUI (see ``harness``): the
extension's own modules, read from ``../shared/clients/webui-extension-v1.1.0``,
loaded with stand-ins for what they import from the WebUI (``webui/``). A test
asks it to do what a user does (``webui.call("connect", url, key)``) and gets
back what the WebUI would show.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tests.e2e.webui_extension import harness

EXTENSION = harness.EXTENSION


class WebUI:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._process = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=harness.boot,
            initargs=(str(root),),
        )

    def call(self, action: str, *args: Any, timeout_s: float = 600, **kwargs: Any) -> Any:
        """Run ``harness.<action>`` in the WebUI's process; what it returns, or what it raised."""
        return self._process.submit(getattr(harness, action), *args, **kwargs).result(timeout=timeout_s)

    def close(self) -> None:
        self._process.shutdown(wait=False, cancel_futures=True)
