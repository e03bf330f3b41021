"""CORS as the seed system's API Gateway gave it, on every route.

Parts of the WebUI extension run in the browser (``fetch`` from the WebUI's
origin), so a preflight ``OPTIONS`` must be answered, without a key, with
API Gateway's CORS headers: any origin (``*``), every method, and the request
headers ``Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token``.

Starlette's ``CORSMiddleware`` does the work, with two changes:

- the preflight answer advertises exactly API Gateway's header and method lists
  (Starlette would add the CORS-safelisted headers, which browsers allow anyway);
- every other answer carries ``Access-Control-Allow-Origin: *``, also when the
  request named no ``Origin`` (Starlette adds it only when one is named), and
  ``Access-Control-Expose-Headers`` naming the edge's own headers
  (``x-next-token``, ``x-presigned-url-expires-in``), so a page's continuation can
  be read from a browser too.

Only a real preflight (``OPTIONS`` with both ``Origin`` and
``Access-Control-Request-Method``) is answered here; the app puts this
middleware outside the key check, so a preflight never reaches it, and any
other request, ``OPTIONS`` included, still needs a valid key. A preflight
asking for a header or method outside the lists is answered 400 (Starlette's
choice; the browser refuses the request either way, as it would have refused
API Gateway's answer).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware

from api_gateway.pages import NEXT_TOKEN_HEADER
from api_gateway.presign import EXPIRES_IN_HEADER

#: The request headers API Gateway's CORS allows (the console's "Enable CORS" default).
ALLOWED_HEADERS: tuple[str, ...] = ("Content-Type", "X-Amz-Date", "Authorization", "X-Api-Key", "X-Amz-Security-Token")
#: The edge's own answer headers a browser script may read.
EXPOSED_HEADERS: tuple[str, ...] = (NEXT_TOKEN_HEADER, EXPIRES_IN_HEADER)
#: Every method a route here answers, and OPTIONS.
ALLOWED_METHODS: tuple[str, ...] = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class ApiGatewayCors(CORSMiddleware):
    def __init__(self, app: Any) -> None:
        super().__init__(
            app, allow_origins=["*"], allow_methods=list(ALLOWED_METHODS), allow_headers=list(ALLOWED_HEADERS)
        )
        self.preflight_headers["Access-Control-Allow-Headers"] = ",".join(ALLOWED_HEADERS)
        self.preflight_headers["Access-Control-Allow-Methods"] = ",".join(ALLOWED_METHODS)

    async def send(self, message: Any, send: Any, request_headers: Headers) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", [])
            headers = MutableHeaders(scope=message)
            headers.setdefault("Access-Control-Allow-Origin", "*")
            headers.setdefault("Access-Control-Expose-Headers", ",".join(EXPOSED_HEADERS))
        await super().send(message, send, request_headers)
