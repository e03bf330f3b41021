"""HTTP routes, one module per area of the seed API. Routes are thin: validate, read or send, shape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

#: The longest id a path or query may carry (ids are UUIDs; names are at most 128 characters too), so
#: no lookup and no "not found" message grows with what a client sends.
MAX_ID_LENGTH = 128

_JOB_ID_EXAMPLE = "1f9679f3-25b8-4c44-8345-0a845da30094"

JobId = Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH, examples=[_JOB_ID_EXAMPLE])]
OptionalJobId = Annotated[str | None, Query(max_length=MAX_ID_LENGTH, examples=[_JOB_ID_EXAMPLE])]


def example_answer(example: Any) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry showing ``example`` as the 200 answer (beside the schema FastAPI derives)."""
    return {200: {"content": {"application/json": {"example": example}}}}
