"""How routes hand work to the owning services.

- ``record_then_send``: write the initial snapshot of what the edge creates,
  then send the command; if the command cannot be sent, forget the snapshot and
  answer 503, so nothing is half-accepted.
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

S = TypeVar("S", bound=EntityChanged)


def record_then_send(
    deps: EdgeDependencies, initial: list[EntityChanged], command: Command, correlation_id: str
) -> None:
    for snapshot in initial:
        deps.read_model.apply(snapshot)
    try:
        deps.commands.send(command, correlation_id=correlation_id)
    except PublishError as exc:
        for snapshot in initial:
            deps.read_model.discard_initial(snapshot)
        raise unavailable(f"the request was not accepted, try again: {exc}") from exc


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


def _rejected(snapshot: EntityChanged, request_id: str) -> str | None:
    rejection = getattr(snapshot, "rejection", None)
    if rejection is not None and rejection.request_id == request_id:
        return rejection.reason
    return None
