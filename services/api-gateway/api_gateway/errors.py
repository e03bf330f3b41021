"""Error answers in the seed's shapes.

- Validation: 422 with ``{"detail": [{"loc", "msg", "type"}]}`` (HTTPValidationError). A body that
  is not JSON text is one too, whatever its bytes: FastAPI answers malformed JSON with a 422
  ``json_invalid`` but bytes that are not text at all (not UTF-8) with an undocumented
  ``400 {"detail": "There was an error parsing the body"}``; that is answered as the 422.
- Anything refused for another reason: 400/404/409/503/504 with ``{"statusCode", "error"}``.

What a client sent is echoed only bounded and made encodable (a lone surrogate becomes its
``\\udXXX`` escape), so no answer can fail to be written or grow with the input.

:func:`answers` documents, per route, the statuses it can answer besides 200 (see ``api_gateway.openapi``).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from api_gateway.bodies import unparsable_body_reason
from sdmw_contracts.api.common import ErrorResponse, printable

#: What botocore raises when the AWS service (or the local emulator) cannot be reached at all.
UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
#: The longest message or location part an answer echoes.
MAX_ECHO_CHARS = 500
#: What FastAPI answers, as a 400, for a JSON body it cannot even decode as text.
_UNDECODABLE_BODY = "There was an error parsing the body"


class ApiError(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def unavailable(message: str) -> ApiError:
    return ApiError(503, message)


def bounded(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` encodable as UTF-8 and at most ``limit`` characters (cut with an ellipsis)."""
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _loc_part(part: Any) -> Any:
    return part if isinstance(part, int) else bounded(str(part), 128)


def _seed_validation_detail(exc: RequestValidationError) -> list[dict[str, object]]:
    return [
        {
            "loc": [_loc_part(part) for part in error.get("loc", ())],
            "msg": bounded(str(error.get("msg", ""))),
            "type": error.get("type", ""),
        }
        for error in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _seed_validation_detail(exc)})

    @app.exception_handler(ApiError)
    async def _refused(_: Request, exc: ApiError) -> JSONResponse:
        message = bounded(exc.message)
        return JSONResponse(status_code=exc.status_code, content={"statusCode": exc.status_code, "error": message})

    async def _unreachable(_: Request, exc: Exception) -> JSONResponse:
        # Raised once botocore's retries are spent: the AWS service behind the route (the emulator, locally)
        # did not answer. Nothing was accepted; the client may try again.
        message = f"The service's storage or bus is unreachable right now ({type(exc).__name__}); try again."
        return JSONResponse(status_code=503, content={"statusCode": 503, "error": message})

    for unreachable in UNREACHABLE:
        app.add_exception_handler(unreachable, _unreachable)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == _UNDECODABLE_BODY:
            # What FastAPI's json.loads raised says why: bytes that are not UTF-8, or nesting or an integer
            # beyond what Python's parser reads (RecursionError, ValueError); never the generic 400.
            reason = unparsable_body_reason(exc.__cause__)
            invalid = {"loc": ["body"], "msg": reason, "type": "json_invalid"}
            return JSONResponse(status_code=422, content={"detail": [invalid]})
        return await http_exception_handler(request, exc)


#: What each refusal means, as the OpenAPI document describes it.
_MEANINGS = {
    400: "Refused: the request cannot be carried out as sent (the message says why).",
    404: "Not found: what the request names does not exist.",
    409: "Conflict: what the request names is not in a state that allows it.",
    503: "The command could not be handed to the owning service, or the service's storage could not be "
    "reached; nothing was accepted. Try again.",
    504: "Accepted, but the owning service has not answered within the wait; check again shortly.",
}


def answers(*statuses: int, **models: Any) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer ``statuses``; ``models`` overrides a status's body model
    (``_400=RefusedInference``)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = models.get(f"_{status}", ErrorResponse)
        documented[status] = {"model": model, "description": _MEANINGS[status]}
    return documented


def with_header(
    responses: dict[int | str, dict[str, Any]], name: str, description: str, schema: dict[str, Any]
) -> dict[int | str, dict[str, Any]]:
    """``responses`` with a header of the 200 answer documented (``name``: what it says, its schema)."""
    documented = {status: dict(entry) for status, entry in responses.items()}
    ok = documented.setdefault(200, {})
    ok["headers"] = {**ok.get("headers", {}), name: {"description": description, "schema": schema}}
    return documented
