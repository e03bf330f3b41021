"""How routes hand work to the owning services.

- ``send_then_record``: send the command that creates something, then write
  its initial snapshot, so that a read right after the answer finds it. In this
  order an edge that dies between the two leaves a command its owner carries
  out (the client, never answered, retries: under an ``Idempotency-Key`` the
  retry names the same entity, which the owner takes as a redelivery), never a
  snapshot that no owner will ever move on. A command the bus refuses is
  answered 503 with nothing written.
- ``send``: send a command about something that exists.
- ``await_outcome``: wait a bounded time for the owner's answer to one request,
  which is either the wanted state or a rejection naming that request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from api_gateway.dependencies import EdgeDependencies
from api_gateway.errors import ApiError, unavailable
from sdmw_contracts.envelope import Command, EntityChanged
from service_kit.events import PublishError
from service_kit.logging import get_logger

S = TypeVar("S", bound=EntityChanged)
_logger = get_logger("api-gateway")


def send_then_record(
    deps: EdgeDependencies, command: Command, initial: list[EntityChanged], correlation_id: str
) -> None:
    send(deps, command, correlation_id)
    for snapshot in initial:
        try:
            deps.read_model.apply(snapshot)
        except Exception:
            # The command is sent: the job exists and the answer names it. Its owner's first event fills
            # the read model in a moment; answering 5xx now would only make the client submit it twice.
            _logger.exception("could not record an initial snapshot", extra={"entity_id": snapshot.id})


def send(deps: EdgeDependencies, command: Command, correlation_id: str) -> None:
    try:
        deps.commands.send(command, correlation_id=correlation_id)
    except PublishError as exc:
        raise unavailable(f"the request was not accepted, try again: {exc}") from exc


def await_outcome(
    deps: EdgeDependencies,
    model: type[S],
    entity_id: str,
    request_id: str,
    done: Callable[[S], bool],
) -> S:
    """The entity once ``done`` or once the request was rejected (400); 504 if the owner is slow."""

    def answered(snapshot: S) -> bool:
        return done(snapshot) or _rejected(snapshot, request_id) is not None

    current = deps.read_model.wait_for(model, entity_id, answered, deps.settings.transition_wait_s)
    if current is not None and (reason := _rejected(current, request_id)):
        raise ApiError(400, reason)
    if current is None or not done(current):
        raise ApiError(504, f"the request {request_id} is accepted but not finished yet; check again shortly")
    return current


def await_first_owner_snapshot(deps: EdgeDependencies, model: type[S], entity_id: str) -> S:
    """The owner's first snapshot (version 1 and up) of something the edge created."""
    current = deps.read_model.wait_for(model, entity_id, lambda s: s.version >= 1, deps.settings.transition_wait_s)
    if current is None or current.version < 1:
        raise ApiError(504, f"{model.entity_type()} {entity_id} is accepted but not ready yet; check again shortly")
    return current


def await_deleted(deps: EdgeDependencies, model: type[S], entity_id: str) -> None:
    """Wait for the owner's deleted snapshot; 504 if it has not come within the wait."""
    current = deps.read_model.wait_for(model, entity_id, lambda s: s.is_deleted, deps.settings.transition_wait_s)
    if current is None or not current.is_deleted:
        raise ApiError(504, f"the deletion of {model.entity_type()} {entity_id} is accepted but not done yet")


def _rejected(snapshot: EntityChanged, request_id: str) -> str | None:
    rejection = getattr(snapshot, "rejection", None)
    if rejection is not None and rejection.request_id == request_id:
        return rejection.reason
    return None
