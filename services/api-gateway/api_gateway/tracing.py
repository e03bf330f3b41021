"""The trace header of each HTTP request: API Gateway's ``X-Amzn-Trace-Id``, or a new root.

Every command the request publishes carries it, so X-Ray (and the logs) can
follow a job from the edge through every service.
"""

from __future__ import annotations

from typing import Any

from service_kit.tracing import reset_trace_header, set_trace_header


class TraceHeaderMiddleware:
    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"x-amzn-trace-id"), None
        )
        token = set_trace_header(incoming)
        try:
            await self._app(scope, receive, send)
        finally:
            reset_trace_header(token)
