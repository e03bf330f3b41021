"""API keys, checked before anything else runs, for every path.

An ASGI middleware (not a route dependency) so that nothing, not even body
parsing or a 404, answers a request without a valid ``x-api-key``. It lets
nothing through, ``OPTIONS`` included: a CORS preflight is answered before it
is reached, by :class:`api_gateway.cors.ApiGatewayCors`, which the app puts
outside it, and only a real preflight (``Origin`` and
``Access-Control-Request-Method``) is answered there.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

Scope = dict[str, Any]


def key_is_valid(candidate: str, keys: tuple[str, ...]) -> bool:
    # Compare against every key in constant time; do not stop at the first match.
    matches = [hmac.compare_digest(candidate.encode(), key.encode()) for key in keys]
    return any(matches)


class ApiKeyMiddleware:
    def __init__(self, app: Any, keys: tuple[str, ...]) -> None:
        self._app = app
        self._keys = keys

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        candidate = _header(scope, b"x-api-key")
        if candidate is None:
            await _deny(send, 401, "Missing x-api-key header")
        elif not key_is_valid(candidate, self._keys):
            await _deny(send, 403, "Forbidden")
        else:
            await self._app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _deny(send: Any, status: int, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
