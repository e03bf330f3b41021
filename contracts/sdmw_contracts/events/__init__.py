"""Every event the services exchange, by the service that owns it."""

from sdmw_contracts.envelope import Event
from sdmw_contracts.events.assets import (
    CheckpointChanged,
    CheckpointCreationRequested,
    CheckpointDeletionRequested,
    CheckpointImportRequested,
    CheckpointRegistrationRequested,
    CheckpointRenameRequested,
    CheckpointUpdateRequested,
    DatasetChanged,
    DatasetCreationRequested,
    DatasetDeletionRequested,
    DatasetItemChanged,
    DatasetUpdateRequested,
)
from sdmw_contracts.events.endpoints import (
    EndpointDeletionRequested,
    EndpointDeploymentChanged,
    EndpointDeploymentRequested,
    EndpointRecordDeletionRequested,
)
from sdmw_contracts.events.inference import (
    InferenceCancelRequested,
    InferenceDeletionRequested,
    InferenceJobChanged,
    InferenceRequested,
    ModelMergeRequested,
)
from sdmw_contracts.events.progress import (
    InferenceProgressReported,
    TrainingProgressReported,
)
from sdmw_contracts.events.sagemaker import (
    SageMakerEndpointStateChange,
    SageMakerTrainingJobStateChange,
)
from sdmw_contracts.events.training import (
    ModelChanged,
    ModelCreationRequested,
    ModelDeletionRequested,
    ModelUpdateRequested,
    TrainJobCancelRequested,
    TrainJobChanged,
    TrainJobDeletionRequested,
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
        EndpointRecordDeletionRequested,
        CheckpointCreationRequested,
        CheckpointImportRequested,
        CheckpointRenameRequested,
        CheckpointDeletionRequested,
        DatasetDeletionRequested,
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
        InferenceCancelRequested,
        InferenceDeletionRequested,
        InferenceProgressReported,
        TrainingProgressReported,
        ModelCreationRequested,
        ModelDeletionRequested,
        TrainJobCancelRequested,
        TrainJobDeletionRequested,
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
    "CheckpointDeletionRequested",
    "CheckpointImportRequested",
    "CheckpointRegistrationRequested",
    "CheckpointRenameRequested",
    "CheckpointUpdateRequested",
    "DatasetChanged",
    "DatasetCreationRequested",
    "DatasetDeletionRequested",
    "DatasetItemChanged",
    "DatasetUpdateRequested",
    "EndpointDeletionRequested",
    "EndpointDeploymentChanged",
    "EndpointDeploymentRequested",
    "EndpointRecordDeletionRequested",
    "InferenceCancelRequested",
    "InferenceDeletionRequested",
    "InferenceJobChanged",
    "InferenceProgressReported",
    "InferenceRequested",
    "ModelChanged",
    "ModelCreationRequested",
    "ModelDeletionRequested",
    "ModelMergeRequested",
    "ModelUpdateRequested",
    "SageMakerEndpointStateChange",
    "SageMakerTrainingJobStateChange",
    "TrainJobCancelRequested",
    "TrainJobChanged",
    "TrainJobDeletionRequested",
    "TrainJobRequested",
    "TrainJobUpdateRequested",
    "TrainingProgressReported",
    "WebhookSubscriptionChanged",
    "WebhookSubscriptionDeletionRequested",
    "WebhookSubscriptionRequested",
]
