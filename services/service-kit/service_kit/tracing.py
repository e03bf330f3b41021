"""X-Ray trace headers carried through events.

The header of the work in hand is kept in a context variable: the consumer sets
it from an incoming event, the HTTP edge from the request (or a new root), and
the publisher copies it into every event it emits and into PutEvents'
TraceHeader, so X-Ray links the hops in AWS and logs link them locally.
"""

from __future__ import annotations

import contextvars
import os
import secrets
import time

from aws_xray_sdk.core import xray_recorder

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_header", default=None)

# Outside Lambda there is no segment to attach to; say so quietly instead of raising.
xray_recorder.configure(context_missing="IGNORE_ERROR")


def new_trace_header() -> str:
    """A fresh header in X-Ray's format: Root=1-<epoch hex>-<96-bit hex>;Sampled=1."""
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Sampled=1"


def lambda_trace_header() -> str | None:
    return os.environ.get("_X_AMZN_TRACE_ID")


def current_trace_header() -> str:
    header = _current.get() or lambda_trace_header()
    if header is None:
        header = new_trace_header()
        _current.set(header)
    return header


def set_trace_header(header: str | None) -> contextvars.Token:
    return _current.set(header or new_trace_header())


def reset_trace_header(token: contextvars.Token) -> None:
    _current.reset(token)


def trace_root(header: str | None) -> str | None:
    """The Root=... part, which stays the same across hops."""
    if not header:
        return None
    for part in header.split(";"):
        if part.startswith("Root="):
            return part.removeprefix("Root=")
    return None
