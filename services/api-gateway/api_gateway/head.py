"""``HEAD`` on every ``GET`` route: the ``GET`` answer's status and headers, without its body.

FastAPI's ``APIRoute`` answers only the methods it names (Starlette's plain ``Route`` adds ``HEAD``
to ``GET``, ``APIRoute`` does not), so instead of a second route per ``GET`` the request is run as a
``GET`` and its body dropped. The app puts this inside the key check: a ``HEAD`` needs a key as any
request does. A ``HEAD`` where only other methods are served is answered 405, as a ``GET`` there is.
"""

from __future__ import annotations

from typing import Any


class HeadAsGetMiddleware:
    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self._app(scope, receive, send)
            return

        async def without_body(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self._app({**scope, "method": "GET"}, receive, without_body)
