"""``//`` in a path is ``/``, as API Gateway treated it.

The WebUI extension keeps the API URL with a trailing ``/`` and appends
``/dataset`` to it, so it asks for ``/prod//dataset``; routing must see
``/prod/dataset``.
"""

from __future__ import annotations

import re
from typing import Any

_REPEATED_SLASHES = re.compile(r"/{2,}")


class CollapseSlashesMiddleware:
    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            path = _REPEATED_SLASHES.sub("/", scope["path"])
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self._app(scope, receive, send)
