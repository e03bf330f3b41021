"""List answers in pages that fit a Lambda response, with a continuation a client follows to the end.

Every list route orders its items by a key that tells any two apart (a time and the id, a name and the
id) and answers them from the start, or from just after the item a ``next_token`` names. A page stops
at ``limit`` items (-1, 0 or none: no count) or when the next item would take the answer past
:data:`api_gateway.limits.MAX_RESPONSE_BYTES` as Lambda carries it, whichever comes first; it always
holds at least one item, so every call makes progress (an item is a read-model row, at most 400 KB, as
DynamoDB allows, plus what the view adds to it). When items are left, the answer says where to go on:

- the ``x-next-token`` response header, on every list route;
- the ``next_token`` field too, on routes answering an object (never present when nothing is left, so
  such answers read as before).

The client sends it back as ``next_token`` (a query parameter; in the body of POST
``/inference/query-inference-jobs``) with the same filters, until no token comes back. The token names
the last item answered, not a position: items added or removed meanwhile neither repeat nor hide the
ones after it. A token from another list, or one that was not given, is refused with 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Response
from pydantic import BaseModel

from api_gateway.errors import ApiError, with_header
from api_gateway.limits import MAX_RESPONSE_BYTES, escaped_size
from sdmw_contracts.api.common import MAX_NEXT_TOKEN_CHARS

T = TypeVar("T")
V = TypeVar("V")
#: A position in a list: JSON scalars, compared in order.
Key = tuple[Any, ...]

#: The response header carrying the continuation.
NEXT_TOKEN_HEADER = "x-next-token"
#: The longest token a client may send back (a token holds the list's name and one item's key).
MAX_TOKEN_CHARS = MAX_NEXT_TOKEN_CHARS
#: Room kept in :data:`MAX_RESPONSE_BYTES` for what wraps the items (``statusCode``, the list's name,
#: ``next_token`` and its value, a dataset's name).
FRAME_ALLOWANCE_BYTES = 8 * 1024
#: What the items of one page may take, as Lambda carries them.
ITEMS_BUDGET_BYTES = MAX_RESPONSE_BYTES - FRAME_ALLOWANCE_BYTES

_DESCRIBED = (
    "Answers at most one page: `limit` items, or fewer when more would not fit one AWS Lambda response. "
    f"When items are left the `{NEXT_TOKEN_HEADER}` header (and a `next_token` field, where the answer is "
    "an object) carries a token: send it back as `next_token`, with the same filters, for the next page."
)

Limit = Annotated[
    int | None,
    Query(
        ge=-1,
        le=10_000,
        description="At most this many items; -1, 0 or absent: no count (the page still "
        "ends where one AWS Lambda response would be full).",
    ),
]
NextToken = Annotated[
    str | None,
    Query(max_length=MAX_TOKEN_CHARS, description=f"The `{NEXT_TOKEN_HEADER}` of the previous page: go on after it."),
]


def described(summary: str = "") -> str:
    """A list route's description: its own words, then how its pages work."""
    return f"{summary}\n\n{_DESCRIBED}".strip()


def count_limit(limit: int | None) -> int | None:
    """-1 and 0 (the WebUI extension's "Show All") mean no count, as absent does."""
    return None if limit is None or limit <= 0 else limit


def instant(moment: datetime) -> int:
    """A time as a key part: microseconds since the epoch (exact through a token, and orderable)."""
    return round(moment.timestamp() * 1_000_000)


#: How much of a name a key keeps: names (object names, file names) may be 1,024 characters, and a token
#: must stay short enough for a query string.
KEY_TEXT_CHARS = 256


def text_key(text: str) -> tuple[str, str]:
    """A name as key parts: its first :data:`KEY_TEXT_CHARS` characters, then a digest of all of it, so
    names order by their text and two names alike in their first characters still differ."""
    return text[:KEY_TEXT_CHARS], hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class Page(Generic[V]):
    items: list[V]
    next_token: str | None

    def tell(self, response: Response) -> None:
        """Put the continuation in ``response``'s headers (when items are left)."""
        if self.next_token is not None:
            response.headers[NEXT_TOKEN_HEADER] = self.next_token


def newest_first(
    items: Iterable[T],
    *,
    list_name: str,
    at: Callable[[T], datetime],
    view: Callable[[T], V],
    limit: int | None,
    next_token: str | None,
    response: Response,
) -> Page[V]:
    """One page of entities newest first (by ``at``, ties by id), the continuation told in ``response``:
    how every list of jobs, models, checkpoints, datasets and subscriptions is ordered."""
    page = paginate(
        items,
        list_name=list_name,
        key=lambda item: (instant(at(item)), item.id),
        view=view,
        descending=True,
        limit=limit,
        next_token=next_token,
    )
    page.tell(response)
    return page


def paginate(
    items: Iterable[T],
    *,
    list_name: str,
    key: Callable[[T], Key],
    view: Callable[[T], V],
    descending: bool,
    limit: int | None,
    next_token: str | None,
    budget_bytes: int = ITEMS_BUDGET_BYTES,
) -> Page[V]:
    """One page of ``items`` ordered by ``key`` (newest first: ``descending``), as ``view`` shows them."""
    ordered: Sequence[T] = sorted(items, key=key, reverse=descending)
    if next_token:
        ordered = _after(ordered, _decode(next_token, list_name), key, descending, list_name)
    limit = count_limit(limit)
    kept: list[V] = []
    used = 0
    for item in ordered:
        if limit is not None and len(kept) == limit:
            break
        shown = view(item)
        cost = _answer_size(shown) + 1  # and the comma before it
        if kept and used + cost > budget_bytes:
            break
        kept.append(shown)
        used += cost
    left = len(ordered) > len(kept)
    return Page(kept, _encode(list_name, key(ordered[len(kept) - 1])) if left and kept else None)


def _after(ordered: Sequence[T], after: Key, key: Callable[[T], Key], descending: bool, list_name: str) -> list[T]:
    """The items past ``after`` in the order of the list."""
    try:
        return [item for item in ordered if (key(item) < after if descending else key(item) > after)]
    except TypeError:  # a key of other types than this list's: not one of its tokens
        raise _refused(list_name) from None


def _answer_size(shown: Any) -> int:
    """What one item takes in the answer's body as Lambda carries it (as the route serializes it)."""
    return escaped_size(shown.model_dump(mode="json", by_alias=True) if isinstance(shown, BaseModel) else shown)


def _encode(list_name: str, key: Key) -> str:
    text = json.dumps({"list": list_name, "after": list(key)}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _refused(list_name: str) -> ApiError:
    return ApiError(400, f"next_token: not a token of this list ({list_name}); start again without one")


def _decode(token: str, list_name: str) -> Key:
    refused = _refused(list_name)
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise refused from None
    if not isinstance(data, dict) or data.get("list") != list_name or not isinstance(data.get("after"), list):
        raise refused
    after = data["after"]
    if not all(isinstance(part, str | int | float) and not isinstance(part, bool) for part in after):
        raise refused
    return tuple(after)


def paged_answers(responses: dict[int | str, dict[str, Any]] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a list route: ``responses`` with the 200 answer's ``x-next-token`` header documented."""
    return with_header(
        responses or {},
        NEXT_TOKEN_HEADER,
        "Present when items are left: send it back as `next_token` for the next page.",
        {"type": "string", "maxLength": MAX_TOKEN_CHARS},
    )
