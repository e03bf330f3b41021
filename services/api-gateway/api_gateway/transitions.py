"""How routes hand work to the owning services.

- ``record_then_send``: write the initial snapshot of what the edge creates,
  then send the command; if anything fails on the way (the bus refuses it, the
  command cannot be serialized, the connection drops), forget what was written
  and answer 503 (or let the unexpected error answer 500), so nothing is
  half-accepted and no snapshot is left that no owner will ever move on.
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


def record_then_send(
    deps: EdgeDependencies, initial: list[EntityChanged], command: Command, correlation_id: str
) -> None:
    written: list[EntityChanged] = []
    try:
        for snapshot in initial:
            if deps.read_model.apply(snapshot):  # only what this request wrote is its to remove
                written.append(snapshot)
        deps.commands.send(command, correlation_id=correlation_id)
    except BaseException as exc:
        _forget(deps, written)
        if isinstance(exc, PublishError):
            raise unavailable(f"the request was not accepted, try again: {exc}") from exc
        raise


def _forget(deps: EdgeDependencies, written: list[EntityChanged]) -> None:
    """Remove the initial snapshots; each one on its own, so one failure does not keep the others."""
    for snapshot in written:
        try:
            deps.read_model.discard_initial(snapshot)
        except Exception:  # the original error is the one to answer
            _logger.exception("could not remove an initial snapshot", extra={"entity_id": snapshot.id})


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
