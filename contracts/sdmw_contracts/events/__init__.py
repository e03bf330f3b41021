"""Every event the services exchange, by the service that owns it."""

from sdmw_contracts.envelope import Event
from sdmw_contracts.events.assets import (
    CheckpointChanged,
    CheckpointCreationRequested,
    CheckpointRegistrationRequested,
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
from sdmw_contracts.events.sagemaker import SageMakerEndpointStateChange, SageMakerTrainingJobStateChange
from sdmw_contracts.events.training import (
    ModelChanged,
    ModelCreationRequested,
    ModelUpdateRequested,
    TrainJobChanged,
    TrainJobRequested,
    TrainJobUpdateRequested,
)
from sdmw_contracts.events.webhooks import (
    WebhookSubscriptionChanged,
    WebhookSubscriptionDeletionRequested,
    WebhookSubscriptionRequested,
)

#: Events published on the project's bus, by detail-type.
ALL_EVENTS: dict[str, type[Event]] = {
    model.detail_type(): model
    for model in (
        EndpointDeploymentRequested,
        EndpointDeletionRequested,
        EndpointDeploymentChanged,
        CheckpointCreationRequested,
        CheckpointUpdateRequested,
        CheckpointRegistrationRequested,
        CheckpointChanged,
        DatasetCreationRequested,
        DatasetUpdateRequested,
        DatasetChanged,
        DatasetItemChanged,
        InferenceRequested,
        ModelMergeRequested,
        InferenceJobChanged,
        ModelCreationRequested,
        ModelUpdateRequested,
        ModelChanged,
        TrainJobRequested,
        TrainJobUpdateRequested,
        TrainJobChanged,
        WebhookSubscriptionRequested,
        WebhookSubscriptionDeletionRequested,
        WebhookSubscriptionChanged,
    )
}

__all__ = [
    "ALL_EVENTS",
    "CheckpointChanged",
    "CheckpointCreationRequested",
    "CheckpointRegistrationRequested",
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
    "ModelChanged",
    "ModelCreationRequested",
    "ModelMergeRequested",
    "ModelUpdateRequested",
    "SageMakerEndpointStateChange",
    "SageMakerTrainingJobStateChange",
    "TrainJobChanged",
    "TrainJobRequested",
    "TrainJobUpdateRequested",
    "WebhookSubscriptionChanged",
    "WebhookSubscriptionDeletionRequested",
    "WebhookSubscriptionRequested",
]
