"""``//`` in a path is ``/``, as API Gateway treated it.

The WebUI extension keeps the API URL with a trailing ``/`` and appends
``/dataset`` to it, so it asks for ``/prod//dataset`` and
``/prod//dataset/<name>/data``; routing must see ``/prod/dataset``. Done once,
here, before routing and before the key check, so every route (and the check)
sees the one normal path.
"""

from __future__ import annotations

import re
from typing import Any

_REPEATED_SLASHES = re.compile(r"/{2,}")
_REPEATED_RAW_SLASHES = re.compile(rb"/{2,}")


def collapse_slashes(path: str) -> str:
    return _REPEATED_SLASHES.sub("/", path)


class CollapseSlashesMiddleware:
    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            changed = {"path": collapse_slashes(scope["path"])}
            raw_path = scope.get("raw_path")
            if raw_path is not None:
                # raw_path stays percent-encoded (``my%20cats``); only its slashes are collapsed.
                changed["raw_path"] = _REPEATED_RAW_SLASHES.sub(b"/", raw_path)
            scope = {**scope, **changed}
        await self._app(scope, receive, send)


def with_stage_in_path(event: dict[str, Any]) -> dict[str, Any]:
    """A REST API event whose ``path`` starts with its stage, as the app's routes (and local URLs) do.

    Called on API Gateway's ``execute-api`` URL, a REST API gives Lambda the path
    without the stage (``/inference/...`` for ``/prod/inference/...``); through a
    custom domain it may already carry it. The app serves under ``/<stage>`` in
    both places, so the stage is put back where it is missing.
    """
    stage = (event.get("requestContext") or {}).get("stage")
    path = event.get("path") or "/"
    if not stage or stage == "$default" or path == f"/{stage}" or path.startswith(f"/{stage}/"):
        return event
    return {**event, "path": f"/{stage}{path}"}
