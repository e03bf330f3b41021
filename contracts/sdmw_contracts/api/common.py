"""Shapes shared by several routes."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

#: How deep :func:`lone_surrogates` looks into nested JSON (deeper values are checked by the nested models,
#: and JSON this deep is refused by the parsers long before).
_MAX_DEPTH = 64
#: ``params`` of what the edge stores (a checkpoint, a dataset, a model or a train job) must leave room in
#: their DynamoDB item (400 KB) and in their command (EventBridge's 256 KB) for the rest of the entity.
MAX_PARAMS_BYTES = 200 * 1024


def printable(value: str) -> str:
    """``value`` with lone surrogates written as ``\\udXXX`` escapes: safe to encode as UTF-8 and to echo."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if not value.isascii() else value


def _is_unencodable(value: str) -> bool:
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def lone_surrogates(data: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Where ``data`` (parsed JSON) holds a string, or an object key, with a lone surrogate (``"\\ud800"``).

    JSON's ``\\uXXXX`` escapes can spell half of a UTF-16 pair; Python's parser accepts it, but no UTF-8
    encoder (the event bus, the tables, the answer) can write it, so such input is refused where it enters.
    """
    if len(loc) > _MAX_DEPTH:
        return
    if isinstance(data, str):
        if _is_unencodable(data):
            yield loc
    elif isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and _is_unencodable(key):
                yield (*loc, printable(key))
            else:
                yield from lone_surrogates(value, (*loc, key))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from lone_surrogates(value, (*loc, index))


def refuse_lone_surrogates(data: Any, title: str) -> None:
    """A ValidationError naming every place in ``data`` that holds a lone surrogate; nothing if none does."""
    found = list(lone_surrogates(data))
    if found:
        error = PydanticCustomError(
            "lone_surrogate", "must be valid Unicode text: a lone UTF-16 surrogate (such as \\ud800) is not"
        )
        raise ValidationError.from_exception_data(
            title, [InitErrorDetails(type=error, loc=loc, input="<lone surrogate>") for loc in found]
        )


class ApiModel(BaseModel):
    """Base of request models: unknown fields are ignored, as the seed did.

    No string anywhere in a body, nor any object key, may hold a lone surrogate (a 422 names the field):
    it could not be written to the bus, the tables or the answer.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogates(cls, data: Any) -> Any:
        refuse_lone_surrogates(data, cls.__name__)
        return data


#: Integers in free-form JSON must fit in 64 bits, signed or not: what A1111, the tables and every JSON
#: reader downstream can hold. Larger ones (Python's parser takes up to 4,300 digits) are refused.
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**64 - 1


def _where(loc: tuple[str | int, ...]) -> str:
    return "".join(
        f"[{part}]" if isinstance(part, int) else f"[{json.dumps(part, ensure_ascii=False)}]" for part in loc
    )


def odd_numbers(data: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Where ``data`` (parsed JSON) holds a number JSON cannot carry or no reader downstream can hold, and why.

    ``NaN``, ``Infinity`` and ``-Infinity`` (and ``1e999``, which Python reads as infinity) are not JSON:
    written back out they would silently become ``null``. Integers beyond 64 bits are refused too.
    """
    if len(loc) > _MAX_DEPTH:
        return
    if isinstance(data, bool):
        return
    if isinstance(data, float):
        if not math.isfinite(data):
            yield loc, f"must be a finite number, not {data}"
    elif isinstance(data, int):
        if not MIN_JSON_INT <= data <= MAX_JSON_INT:
            digits = len(str(abs(data)))
            yield loc, f"must be an integer of at most 64 bits (-2**63 to 2**64-1), not one of {digits} digits"
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from odd_numbers(value, (*loc, key))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from odd_numbers(value, (*loc, index))


def check_json_numbers(value: Any) -> Any:
    """Refuse free-form JSON holding a non-finite number or an integer beyond 64 bits; the message names where."""
    found = list(odd_numbers(value))
    if found:
        raise ValueError("; ".join(f"{_where(loc) or 'the value'} {why}" for loc, why in found[:8]))
    return value


#: Free-form JSON objects and arrays of a request: any values, but only numbers JSON can carry.
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_numbers)]
JsonArray = Annotated[list[Any], AfterValidator(check_json_numbers)]


def check_params_size(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` must fit where they are kept: at most :data:`MAX_PARAMS_BYTES` as JSON."""
    check_json_numbers(params)
    size = len(json.dumps(params, separators=(",", ":")).encode())
    if size > MAX_PARAMS_BYTES:
        raise ValueError(f"must be at most {MAX_PARAMS_BYTES} bytes as JSON, got {size}")
    return params


#: Free-form ``params`` the edge stores with an entity; bounded so the entity fits its table item and event.
StoredParams = Annotated[dict[str, Any], AfterValidator(check_params_size)]


class ValidationErrorItem(BaseModel):
    """One problem: where (``["body", "params", "x"]``), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(BaseModel):
    """The 422 body of the seed API."""

    detail: list[ValidationErrorItem]


class ErrorResponse(BaseModel):
    """The seed's error body for 4xx/5xx answers other than validation."""

    statusCode: int
    error: str


class GatewayMessage(BaseModel):
    """API Gateway's own answers, and the edge's in the same shape: 401/403 without a valid key, 413 for a
    body over what one AWS Lambda invocation carries (``api_gateway.limits``)."""

    message: str


#: The longest continuation token of a list (``api_gateway.pages``) a client may send back.
MAX_NEXT_TOKEN_CHARS = 2048


def next_token_field() -> Any:
    """A list answer's ``next_token``: present only when items are left (so answers read as before)."""
    return Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Items are left: send this back as `next_token` for the next page (also in `x-next-token`).",
    )


def seed_time(value: datetime | None) -> str | None:
    """The seed's time format: ``2023-07-04 08:00:35.171309`` (UTC, no zone)."""
    if value is None:
        return None
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
