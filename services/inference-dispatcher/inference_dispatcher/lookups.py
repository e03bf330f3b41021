"""What the dispatcher knows of endpoints and models, projected from their owners' events.

endpoint-manager and asset-registry publish full snapshots; the dispatcher
keeps the newest of each in its own table and answers two questions from them:
is this endpoint in service, and where in S3 is the model with this name.
"""

from __future__ import annotations

from collections.abc import Callable

from sdmw_contracts.envelope import EntityChanged
from sdmw_contracts.events import CheckpointChanged, EndpointDeploymentChanged
from sdmw_contracts.runtime import ModelRef, plain_model_name
from service_kit.messages import BusEvent
from service_kit.snapshots import SnapshotTable


class UnknownModel(LookupError):
    pass


class EndpointNotReady(LookupError):
    pass


class Lookups:
    def __init__(self, table: SnapshotTable) -> None:
        self._table = table

    def apply(self, snapshot: EntityChanged) -> None:
        self._table.apply(snapshot)

    def projector(self, model: type[EntityChanged]) -> Callable[[BusEvent], None]:
        return lambda event: self.apply(event.envelope().parse_data(model))

    def endpoint_in_service(self, name: str) -> None:
        """Raises EndpointNotReady with a reason a user can read unless ``name`` is in service."""
        live = [
            j for j in self._table.list(EndpointDeploymentChanged) if j.endpoint_name == name and j.status != "deleted"
        ]
        if not live:
            raise EndpointNotReady(f"endpoint {name} does not exist")
        newest = max(live, key=lambda j: j.start_time)
        if newest.endpoint_status != "InService":
            state = newest.endpoint_status or newest.status
            raise EndpointNotReady(f"endpoint {name} is {state}, not InService")

    def any_endpoint_in_service(self) -> str:
        for job in self._table.list(EndpointDeploymentChanged):
            if job.status == "success" and job.endpoint_status == "InService":
                return job.endpoint_name
        raise EndpointNotReady("no endpoint is InService")

    def model(self, model_type: str, title: str) -> ModelRef:
        """The active checkpoint file (or diffusers folder) of this type that ``title`` names."""
        for checkpoint in self._table.list(CheckpointChanged):
            if checkpoint.checkpoint_type != model_type or checkpoint.status != "Active":
                continue
            if found := checkpoint.model_named(title):
                return found
        name = plain_model_name(title)
        raise UnknownModel(f"unknown model {name!r} ({model_type}): no active checkpoint has that name")
