"""Powertools around every Lambda handler: one function, used by each Lambda entrypoint.

``lambda_entry`` wraps a handler with ``Logger.inject_lambda_context`` (the
function's name, ARN, memory, request id and ``cold_start`` on every log line
of the service's logger; optionally a correlation id taken from the event) and
``Tracer.capture_lambda_handler`` (a ``## <handler>`` subsegment under the
function's X-Ray segment, annotated with ``ColdStart`` and ``Service``; the
functions run with active tracing).

Outside Lambda (no ``LAMBDA_TASK_ROOT``: tests, the local workers) Powertools
disables the Tracer by itself, patches nothing and records nothing, so the
same wrapped handler runs anywhere; ``POWERTOOLS_TRACE_DISABLED=true`` turns it
off in Lambda too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Tracer

from service_kit.logging import get_logger

Handler = Callable[[Any, Any], Any]


def lambda_entry(
    service: str,
    handle: Handler,
    *,
    correlation_id_path: str | None = None,
    capture_response: bool = True,
) -> Handler:
    """``handle(event, context)`` as a Lambda handler with the service's Powertools logger and tracer.

    ``correlation_id_path``: a JMESPath into the event for the logger's correlation id (e.g.
    ``correlation_paths.API_GATEWAY_REST``); the SQS consumer sets one per message itself.
    ``capture_response=False`` keeps large responses (HTTP bodies) out of the trace's metadata.
    """

    def handler(event: Any, context: Any) -> Any:
        return handle(event, context)

    # Names the trace's subsegment after what is wrapped (a bound method, or e.g. a Mangum instance).
    handler.__name__ = handler.__qualname__ = getattr(handle, "__name__", type(handle).__name__)
    traced = Tracer(service=service).capture_lambda_handler(handler, capture_response=capture_response)
    return get_logger(service).inject_lambda_context(traced, correlation_id_path=correlation_id_path)
