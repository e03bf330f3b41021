"""Bodies over 10 MB get 413, as API Gateway (REST) refuses them.

API Gateway's payload limit is 10 MB and it answers ``413 {"message": "Request Too Long"}`` before it
looks at the key, so this middleware sits outside the key check: a request whose ``Content-Length``
is over the limit gets 413 whether or not it has a key, before anything reads its body.

A body sent without a ``Content-Length`` (chunked) is counted as the app reads it, which happens only
after the key check: once it passes the limit the app is handed an empty end of body, and whatever it
would answer is replaced by the 413. Nothing over the limit is ever buffered.
"""

from __future__ import annotations

import json
from typing import Any

#: API Gateway's payload limit.
MAX_BODY_BYTES = 10 * 1024 * 1024
TOO_LARGE_BODY = json.dumps({"message": "Request Too Long"}).encode()


class BodyLimitMiddleware:
    def __init__(self, app: Any, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self._app = app
        self._max = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self._max:
            await _too_large(send)
            return
        state = {"read": 0, "over": False, "answered": False}

        async def counted_receive() -> dict[str, Any]:
            if state["over"]:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self._max:
                    state["over"] = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not state["over"]:
                await send(message)
            elif not state["answered"] and message["type"] == "http.response.start":
                state["answered"] = True
                await _too_large(send)

        await self._app(scope, counted_receive, guarded_send)


def _content_length(scope: dict[str, Any]) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(TOO_LARGE_BODY)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE_BODY})
