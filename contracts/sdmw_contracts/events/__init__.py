"""Every event the services exchange, by the service that owns it."""

from sdmw_contracts.envelope import Event
from sdmw_contracts.events.assets import (
    CheckpointChanged,
    CheckpointCreationRequested,
    CheckpointUpdateRequested,
    DatasetChanged,
    DatasetCreationRequested,
    DatasetItemChanged,
    DatasetUpdateRequested,
)
from sdmw_contracts.events.endpoints import (
    EndpointDeletionRequested,
    EndpointDeploymentChanged,
    EndpointDeploymentRequested,
)
from sdmw_contracts.events.inference import (
    InferenceJobChanged,
    InferenceRequested,
    ModelMergeRequested,
)
from sdmw_contracts.events.sagemaker import SageMakerEndpointStateChange

#: Events published on the project's bus, by detail-type.
ALL_EVENTS: dict[str, type[Event]] = {
    model.detail_type(): model
    for model in (
        EndpointDeploymentRequested,
        EndpointDeletionRequested,
        EndpointDeploymentChanged,
        CheckpointCreationRequested,
        CheckpointUpdateRequested,
        CheckpointChanged,
        DatasetCreationRequested,
        DatasetUpdateRequested,
        DatasetChanged,
        DatasetItemChanged,
        InferenceRequested,
        ModelMergeRequested,
        InferenceJobChanged,
    )
}

__all__ = [
    "ALL_EVENTS",
    "CheckpointChanged",
    "CheckpointCreationRequested",
    "CheckpointUpdateRequested",
    "DatasetChanged",
    "DatasetCreationRequested",
    "DatasetItemChanged",
    "DatasetUpdateRequested",
    "EndpointDeletionRequested",
    "EndpointDeploymentChanged",
    "EndpointDeploymentRequested",
    "InferenceJobChanged",
    "InferenceRequested",
    "ModelMergeRequested",
    "SageMakerEndpointStateChange",
]
