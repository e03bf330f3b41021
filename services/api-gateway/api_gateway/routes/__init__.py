"""HTTP routes, one module per area of the seed API. Routes are thin: validate, read or send, shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

#: The longest id a path or query may carry (ids are UUIDs; names are at most 128 characters too), so
#: no lookup and no "not found" message grows with what a client sends.
MAX_ID_LENGTH = 128

JobId = Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH)]
OptionalJobId = Annotated[str | None, Query(max_length=MAX_ID_LENGTH)]
