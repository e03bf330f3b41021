"""The real size limits of a request and of an answer on AWS, enforced the same way locally.

On AWS the edge is one Lambda function behind an API Gateway REST API (Lambda proxy integration).
API Gateway accepts bodies up to 10 MB, but it hands each request to the function as one JSON event,
and a synchronous invocation's event may be at most 6 MiB. The event carries the body as a JSON
string (each ``"`` and ``\\`` escaped, so counted twice), next to the headers twice (``headers`` and
``multiValueHeaders``), the path and the query string several times, and the request context. So the
edge's limit is what fits the event: a body whose size *as it sits in the event* (:func:`event_bytes`)
is over :data:`MAX_BODY_BYTES` gets 413, with the same words locally and on AWS.

- A request whose ``Content-Length`` is over the limit gets 413 whether or not it has a key, before
  anything reads its body (a body never takes less room in the event than its own length).
- Any other body is counted as the app reads it, after the key check: once its event size passes the
  limit the app is told the client went away (so no route runs on a cut body) and whatever it would
  answer is replaced by the 413. Nothing over the limit is ever buffered.

Answers are bounded too: a Lambda response is at most 6 MB in all, so list answers are cut into pages
of at most :data:`MAX_RESPONSE_BYTES` (``api_gateway.pages``).
"""

from __future__ import annotations

import json
from typing import Any

# ---------------------------------------------------------------- what AWS allows

#: A synchronous Lambda invocation's request payload (the whole proxy event), in bytes: "6 MB", and
#: Lambda refuses more with "Request must be smaller than 6291456 bytes for the InvokeFunction operation".
#: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
#: https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
#: A synchronous Lambda invocation's response payload (the whole proxy response), in bytes: "6 MB", and
#: Lambda refuses more with "Response payload size exceeded maximum allowed payload size (6291556 bytes)"
#: (API Gateway then answers 502, INTEGRATION_FAILURE).
#: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
LAMBDA_SYNC_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
#: API Gateway's REST API payload limit (10 MB): it refuses larger bodies itself, with 413.
#: https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
API_GATEWAY_PAYLOAD_BYTES = 10 * 1024 * 1024
#: API Gateway's limit on a REST API request's headers: "Total combined size of all header values,
#: including header names, values, any line terminators, and whitespaces: 10240 Bytes".
#: https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html
API_GATEWAY_HEADERS_BYTES = 10_240
#: API Gateway's limit on a REST API request's URL: 10,240 characters for a regional API (8,192 for an
#: edge-optimized one). Same page.
API_GATEWAY_URL_CHARS = 10_240
#: What the proxy event holds besides the body, the headers and the URL (``requestContext``'s ids, times,
#: stage, ARNs and identity; ``resource``, ``httpMethod``, ``isBase64Encoded``): a few KB, allowed 8 KiB.
EVENT_CONTEXT_BYTES = 8 * 1024

# ---------------------------------------------------------------- the edge's budgets

#: What the proxy event holds besides the body, at most. The headers appear up to three times (``headers``,
#: ``multiValueHeaders``, and some again in ``requestContext``: ``identity.userAgent``, ``domainName``),
#: the URL twice (the path in ``path`` and ``requestContext.path``, the query in ``queryStringParameters``
#: and ``multiValueQueryStringParameters``), every copy escaped (at worst doubled):
#: 2 x (3 x 10,240 + 2 x 10,240) + 8,192 = 110,592 bytes. Allowed 128 KiB.
#: https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
EVENT_ENVELOPE_ALLOWANCE_BYTES = 128 * 1024
#: The largest body the edge takes, counted as it sits in the Lambda event (:func:`event_bytes`):
#: 6,291,456 - 131,072 = 6,160,384 bytes (about 5.9 MiB).
MAX_BODY_BYTES = LAMBDA_SYNC_PAYLOAD_BYTES - EVENT_ENVELOPE_ALLOWANCE_BYTES

#: What the proxy response holds besides the body: ``statusCode``, ``isBase64Encoded`` and the headers
#: (the edge's own: a few hundred bytes, with ``x-next-token`` at most about 2 KB). 64 KiB leaves room.
RESPONSE_ENVELOPE_ALLOWANCE_BYTES = 64 * 1024
#: The largest list answer, counted as it sits in the Lambda response (:func:`escaped_size`): 6,291,556 -
#: 65,536 = 6,226,020 bytes, under Lambda's response limit and API Gateway's 10 MB.
MAX_RESPONSE_BYTES = LAMBDA_SYNC_RESPONSE_BYTES - RESPONSE_ENVELOPE_ALLOWANCE_BYTES

# ---------------------------------------------------------------- the 413

#: The 413's words: the limit, and how to send more (parameters go to S3 through a presigned URL; the
#: request that starts the job is then small). Also meant for API Gateway's own 413 (a gateway response
#: carrying the same ``{"message": ...}``), so that a client reads one sentence wherever it is refused.
TOO_LARGE_MESSAGE = (
    f"Request Too Long: a body may take at most {MAX_BODY_BYTES:,} bytes as AWS Lambda receives it "
    '(each " and \\ counts twice, each non-ASCII byte three times). Send large images through S3 '
    "instead: POST /inference/v2, PUT the parameters to its api_params_s3_upload_url, then PUT "
    "/inference/v2/{id}/run; or PUT them as config/aigc.json to the URL of GET "
    "/inference/generate-s3-presigned-url-for-uploading, then POST /inference/run-sagemaker-inference."
)
TOO_LARGE_BODY = json.dumps({"message": TOO_LARGE_MESSAGE}).encode()

# ---------------------------------------------------------------- sizes as Lambda sees them

#: Bytes a JSON string writes as two characters (``\"``, ``\\``, ``\b``, ``\f``, ``\n``, ``\r``, ``\t``).
_TWO_CHARACTERS = b'"\\\b\f\n\r\t'
#: The other control characters, written as ``\u00XX`` (six characters); DEL too, as some writers do.
_SIX_CHARACTERS = bytes(sorted(set(range(0x20)) - set(_TWO_CHARACTERS))) + b"\x7f"
#: Bytes of non-ASCII characters: at most three characters each once escaped (``\uXXXX`` per UTF-16
#: unit: 6 for a 2- or 3-byte character, 12 for a 4-byte one).
_NON_ASCII = bytes(range(0x80, 0x100))


def _count(chunk: bytes, these: bytes) -> int:
    return len(chunk) - len(chunk.translate(None, these))


def event_bytes(chunk: bytes) -> int:
    """How many bytes ``chunk`` of a body takes inside the Lambda event's ``body`` string, at most:
    escapes counted, non-ASCII counted as ``\\u`` escapes (whichever way the event is written)."""
    return (
        len(chunk) + _count(chunk, _TWO_CHARACTERS) + 5 * _count(chunk, _SIX_CHARACTERS) + 2 * _count(chunk, _NON_ASCII)
    )


def escaped_size(value: Any) -> int:
    """How many bytes ``value`` (JSON-able) takes in a Lambda response's ``body`` string, at most: its
    JSON text written as a JSON string with every non-ASCII character escaped (a runtime that writes them
    unescaped, as UTF-8, takes no more)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return len(text) + text.count('"') + text.count("\\")


# ---------------------------------------------------------------- the middleware


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
        state = {"counted": 0, "over": False, "answered": False}

        async def counted_receive() -> dict[str, Any]:
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["counted"] += event_bytes(message.get("body", b""))
                if state["counted"] > self._max:
                    # The app reads "the client went away": no route runs on what was read so far.
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not state["over"]:
                await send(message)
            elif not state["answered"] and message["type"] == "http.response.start":
                state["answered"] = True
                await _too_large(send)

        try:
            await self._app(scope, counted_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["answered"]:
            state["answered"] = True
            await _too_large(send)


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
