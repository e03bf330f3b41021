"""Every request body is read as JSON, whatever its ``Content-Type`` says, as API Gateway passed it on.

The WebUI extension's browser scripts ``fetch`` with a JSON string as the body
and no ``Content-Type`` of their own, so the browser labels it
``text/plain;charset=UTF-8``; API Gateway handed such bodies to the original
middleware, which parsed them as JSON. Every route here takes JSON (uploads go
straight to S3), so the header is made ``application/json`` before routing; a
body that is not JSON is still refused with the usual 422.

:func:`unparsable_body_reason` says why a body FastAPI could not parse at all was refused: its bytes
are not UTF-8 text, its arrays and objects nest deeper than Python's parser goes, or it holds an
integer with more digits than Python converts.
"""

from __future__ import annotations

import sys
from typing import Any

_JSON = b"application/json"


def is_json_type(value: bytes) -> bool:
    media = value.split(b";", 1)[0].strip().lower()
    return media == _JSON or media.endswith(b"+json")


#: The depth of nesting Python's JSON parser always reaches: it recurses once per array or object, and
#: gives up (RecursionError) near the interpreter's recursion limit less the frames already in use.
MAX_JSON_DEPTH_HINT = sys.getrecursionlimit() - 200


def unparsable_body_reason(error: BaseException | None) -> str:
    """The 422's message for a body FastAPI's ``json.loads`` raised ``error`` on (not a ``JSONDecodeError``)."""
    if isinstance(error, UnicodeDecodeError):
        return "JSON decode error: the body is not UTF-8 text"
    if isinstance(error, RecursionError):
        return (
            f"JSON decode error: the body's arrays and objects are nested deeper than {MAX_JSON_DEPTH_HINT} "
            "levels (more than the parser can read)"
        )
    if isinstance(error, ValueError) and "digits" in str(error):
        return (
            f"JSON decode error: the body holds an integer of more than {sys.get_int_max_str_digits()} digits "
            "(more than the parser converts)"
        )
    return "JSON decode error: the body could not be parsed as JSON"


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
