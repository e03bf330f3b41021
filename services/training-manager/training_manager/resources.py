"""Everything training-manager owns in AWS, declared once (see service_kit.resources)."""

from sdmw_contracts.events import (
    ModelCreationRequested,
    ModelUpdateRequested,
    TrainJobRequested,
    TrainJobUpdateRequested,
)
from sdmw_contracts.events.sagemaker import SAGEMAKER_SOURCE, SageMakerTrainingJobStateChange
from service_kit.resources import DEFAULT_BUS, Queue, Rule, Schedule, ServiceResources, Table, project_events
from training_manager import SERVICE

COMMANDS = (ModelCreationRequested, ModelUpdateRequested, TrainJobRequested, TrainJobUpdateRequested)

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    # Completing the multipart upload of a multi-gigabyte base checkpoint can take a while in S3.
    queue=Queue(SERVICE, visibility_timeout_s=300),
    rules=(
        Rule(
            "training-commands",
            project_events(*(command.detail_type() for command in COMMANDS), sources=("sdmw.api-gateway",)),
        ),
        Rule(
            "sagemaker-training-state",
            {"source": [SAGEMAKER_SOURCE], "detail-type": [SageMakerTrainingJobStateChange.DETAIL_TYPE]},
            bus=DEFAULT_BUS,
        ),
    ),
    # State-change events can be missed; the sweep asks SageMaker about every running job.
    schedules=(Schedule("running-jobs-sweep", every_s=60),),
)
