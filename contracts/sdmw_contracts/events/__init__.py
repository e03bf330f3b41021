"""Every event the services exchange, by the service that owns it."""

from sdmw_contracts.envelope import Event
from sdmw_contracts.events.endpoints import (
    EndpointDeletionRequested,
    EndpointDeploymentChanged,
    EndpointDeploymentRequested,
)
from sdmw_contracts.events.sagemaker import SageMakerEndpointStateChange

#: Events published on the project's bus, by detail-type.
ALL_EVENTS: dict[str, type[Event]] = {
    model.detail_type(): model
    for model in (
        EndpointDeploymentRequested,
        EndpointDeletionRequested,
        EndpointDeploymentChanged,
    )
}

__all__ = [
    "ALL_EVENTS",
    "EndpointDeletionRequested",
    "EndpointDeploymentChanged",
    "EndpointDeploymentRequested",
    "SageMakerEndpointStateChange",
]
