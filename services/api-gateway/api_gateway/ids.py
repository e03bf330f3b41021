"""The ids of what the edge creates: random, or, under an ``Idempotency-Key``, derived from the request.

A client whose request got no answer (the edge died after sending the command) retries it with the same
key. The retry must name the same job, so that the owner takes its command as a redelivery of the first
(owners are idempotent by id) instead of running a second job: within :func:`derived_from`, the n-th id a
request asks for is a digest of the request's identity (API key, method, path, key, query and body) and n.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_request_seed: ContextVar[tuple[str, itertools.count] | None] = ContextVar("request_seed", default=None)


def new_id() -> str:
    """A new entity id: random, unless the request carries an Idempotency-Key (see the module's doc)."""
    seeded = _request_seed.get()
    if seeded is None:
        return str(uuid.uuid4())
    seed, counter = seeded
    digest = hashlib.sha256(f"{seed}/{next(counter)}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


@contextmanager
def derived_from(seed: str) -> Iterator[None]:
    """Ids asked for within this block (by this request) are derived from ``seed``, in order."""
    token = _request_seed.set((seed, itertools.count()))
    try:
        yield
    finally:
        _request_seed.reset(token)
