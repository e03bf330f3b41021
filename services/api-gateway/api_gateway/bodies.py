"""Every request body is read as JSON, whatever its ``Content-Type`` says, as API Gateway passed it on.

The WebUI extension's browser scripts ``fetch`` with a JSON string as the body
and no ``Content-Type`` of their own, so the browser labels it
``text/plain;charset=UTF-8``; API Gateway handed such bodies to the original
middleware, which parsed them as JSON. Every route here takes JSON (uploads go
straight to S3), so the header is made ``application/json`` before routing; a
body that is not JSON is still refused with the usual 422.
"""

from __future__ import annotations

from typing import Any

_JSON = b"application/json"


def is_json_type(value: bytes) -> bool:
    media = value.split(b";", 1)[0].strip().lower()
    return media == _JSON or media.endswith(b"+json")


class JsonBodiesMiddleware:
    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            declared = [value for name, value in headers if name == b"content-type"]
            if declared and not all(is_json_type(value) for value in declared):
                kept = [(name, value) for name, value in headers if name != b"content-type"]
                scope = {**scope, "headers": [*kept, (b"content-type", _JSON)]}
        await self._app(scope, receive, send)
