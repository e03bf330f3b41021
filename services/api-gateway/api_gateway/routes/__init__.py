"""HTTP routes, one module per area of the seed API. Routes are thin: validate, read or send, shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query, Response

from api_gateway.errors import ApiError, with_header
from api_gateway.presign import EXPIRES_IN_HEADER, TEMPORARY_CREDENTIALS_MAX_EXPIRY_S, ExpiryTooLong

if TYPE_CHECKING:
    from api_gateway.dependencies import EdgeDependencies

#: The longest id a path or query may carry (ids are UUIDs; names are at most 128 characters too), so
#: no lookup and no "not found" message grows with what a client sends.
MAX_ID_LENGTH = 128

_JOB_ID_EXAMPLE = "1f9679f3-25b8-4c44-8345-0a845da30094"

JobId = Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH, examples=[_JOB_ID_EXAMPLE])]
OptionalJobId = Annotated[str | None, Query(max_length=MAX_ID_LENGTH, examples=[_JOB_ID_EXAMPLE])]


def example_answer(example: Any) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry showing ``example`` as the 200 answer (beside the schema FastAPI derives)."""
    return {200: {"content": {"application/json": {"example": example}}}}


def presign_expiry(deps: EdgeDependencies, response: Response, requested_s: int | None = None) -> int:
    """The seconds the presigned URLs of an answer are granted (``expires_in``, or the default; 400 past the
    maximum; capped while the signing credentials are temporary), reported in ``x-presigned-url-expires-in``."""
    try:
        granted = deps.presigner.expiry(requested_s)
    except ExpiryTooLong as exc:
        raise ApiError(400, str(exc)) from exc
    response.headers[EXPIRES_IN_HEADER] = str(granted)
    return granted


def presigned_answers(responses: dict[int | str, dict[str, Any]] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route answering presigned URLs: the 200 answer's expiry header documented."""
    return with_header(
        responses or {},
        EXPIRES_IN_HEADER,
        "Seconds the presigned URLs in this answer were granted (what their X-Amz-Expires says). Signed with "
        f"temporary credentials (on AWS, always), at most {TEMPORARY_CREDENTIALS_MAX_EXPIRY_S} seconds, whatever "
        "`expires_in` asked: such a URL cannot outlive its credentials. Read again for fresh URLs.",
        {"type": "integer", "minimum": 1},
    )
