"""The read model: the latest snapshot of every entity, built from ``*Changed`` events.

The edge writes an initial snapshot (version 0) of what it creates before it
publishes the command, so a read right after a create finds it; the owner's
events (version 1 and up) then replace it. Snapshots are applied only when
newer, so order and duplicates do not matter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sdmw_contracts.envelope import EntityChanged
from sdmw_contracts.events import ALL_EVENTS, EndpointDeploymentChanged
from service_kit.consumer import Router
from service_kit.messages import BusEvent
from service_kit.snapshots import SnapshotTable

S = TypeVar("S", bound=EntityChanged)


class ReadModel:
    def __init__(self, table: SnapshotTable) -> None:
        self._table = table

    def apply(self, snapshot: EntityChanged) -> bool:
        return self._table.apply(snapshot)

    def discard_initial(self, snapshot: EntityChanged) -> None:
        """Forget an initial snapshot whose command could not be sent."""
        self._table.delete_if_version(snapshot)

    def get(self, model: type[S], entity_id: str) -> S | None:
        return self._table.get(model, entity_id)

    def list(self, model: type[S], id_prefix: str | None = None) -> list[S]:
        return self._table.list(model, id_prefix)

    def wait_for(self, model: type[S], entity_id: str, done: Callable[[S], bool], timeout_s: float) -> S | None:
        """Poll until the entity satisfies ``done`` or time runs out; the last seen snapshot."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.get(model, entity_id)
            if (current is not None and done(current)) or time.monotonic() >= deadline:
                return current
            time.sleep(0.2)

    # Queries the routes need, kept here so routes stay thin.

    def endpoint_jobs(self) -> list[EndpointDeploymentChanged]:
        return sorted(self.list(EndpointDeploymentChanged), key=lambda job: job.start_time, reverse=True)

    def endpoint_job_named(self, endpoint_name: str, *, include_failed: bool) -> EndpointDeploymentChanged | None:
        """The newest job for an endpoint name that still stands for an endpoint."""
        ended = {"deleted"} if include_failed else {"deleted", "failed"}
        for job in self.endpoint_jobs():
            if job.endpoint_name == endpoint_name and job.status not in ended:
                return job
        return None


def projection_router(read_model: ReadModel) -> Router:
    """Every ``*Changed`` event in the contracts is applied to the read model."""
    router = Router()
    for name, model in ALL_EVENTS.items():
        if issubclass(model, EntityChanged):
            router.on_event(name, _projector(read_model, model))
    return router


def _projector(read_model: ReadModel, model: type[EntityChanged]) -> Callable[[BusEvent], None]:
    def project(event: BusEvent) -> None:
        read_model.apply(event.envelope().parse_data(model))

    return project
