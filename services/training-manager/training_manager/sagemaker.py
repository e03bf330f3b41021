"""SageMaker training jobs: what each model or train job asks SageMaker to run, and the calls.

A job's SageMaker name is derived from its id (``model-<id>``, ``train-<id>``),
so starting it again after a crash finds the job already there instead of
starting a second one, and a state-change event names its entity directly.
Output is uncompressed (``CompressionType: NONE``): the files land as they are
under ``<output path>/<job name>/output/model/``, where inference and the next
training job read them without unpacking a tarball.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from sdmw_contracts.events import ModelChanged as Model
from sdmw_contracts.events import TrainJobChanged as TrainJob
from sdmw_contracts.events.training import model_job_name, train_job_name
from sdmw_contracts.training import (
    CLASS_CHANNEL,
    INSTANCE_CHANNEL,
    LOSS_METRIC_REGEX,
    MODEL_CHANNEL,
    UPLOAD_CHANNEL,
    TrainingHyperparameters,
)
from service_kit import aws
from service_kit.sagemaker import (
    TRAINING_LOG_GROUP,
    already_exists,
    describe_error,
    is_not_found,
    keep_logs_for_a_while,
)

_log = logging.getLogger(__name__)

FINISHED = frozenset({"Completed", "Failed", "Stopped"})
#: Where the training container finds the id of the job it runs for.
JOB_ID_VARIABLE = "SDMW_JOB_ID"
#: Codes of a request SageMaker throttled: try again later, it is no reason to fail the job.
_THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException"}
)


def is_throttled(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code", "") in _THROTTLING_CODES


@dataclass(frozen=True)
class TrainingSettings:
    """What every training job shares."""

    image_uri: str
    execution_role_arn: str
    model_creation_instance_type: str = "ml.g4dn.xlarge"
    max_runtime_s: int = 24 * 3600
    volume_size_gb: int = 100
    container_environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingJobSpec:
    name: str
    hyperparameters: TrainingHyperparameters
    channels: dict[str, str]  # channel name -> s3:// prefix
    output_path: str
    instance_type: str
    entity_id: str


@dataclass(frozen=True)
class TrainingState:
    """What DescribeTrainingJob says, reduced to what the jobs need."""

    status: str
    secondary_status: str | None = None
    failure_reason: str | None = None
    artifacts: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class TrainingGateway(Protocol):
    def start(self, spec: TrainingJobSpec) -> None: ...
    def describe(self, name: str) -> TrainingState | None: ...
    def stop(self, name: str) -> None: ...


class TrainingRefused(RuntimeError):
    """SageMaker would not start the job; the reason is for the user."""


def model_creation_spec(model: Model, settings: TrainingSettings) -> TrainingJobSpec:
    if model.base_checkpoint is None:
        raise TrainingRefused(f"model {model.id} has no base checkpoint")
    hyperparameters = TrainingHyperparameters(task="create-model", model_name=model.name, extract_ema=model.extract_ema)
    return TrainingJobSpec(
        name=model_job_name(model.id),
        hyperparameters=hyperparameters,
        channels={MODEL_CHANNEL: model.base_checkpoint.s3_uri},
        output_path=model.s3_base,
        instance_type=settings.model_creation_instance_type,
        entity_id=model.id,
    )


def training_spec(job: TrainJob) -> TrainingJobSpec:
    channels = {MODEL_CHANNEL: job.base_model_uri}
    channels |= _numbered(INSTANCE_CHANNEL, [d.s3_uri for d in job.instance_datasets])
    channels |= _numbered(CLASS_CHANNEL, [d.s3_uri for d in job.class_datasets])
    if job.filenames:
        channels[UPLOAD_CHANNEL] = job.input_location
    return TrainingJobSpec(
        name=train_job_name(job.id),
        hyperparameters=job.hyperparameters,
        channels=channels,
        output_path=job.output_path,
        instance_type=job.instance_type,
        entity_id=job.id,
    )


def _numbered(channel: str, uris: list[str]) -> dict[str, str]:
    """``instance``, ``instance-1``, ``instance-2``...: one channel per dataset."""
    return {(channel if index == 0 else f"{channel}-{index}"): uri for index, uri in enumerate(uris)}


def create_request(spec: TrainingJobSpec, settings: TrainingSettings) -> dict[str, Any]:
    """The CreateTrainingJob request for ``spec``."""
    return {
        "TrainingJobName": spec.name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "train:loss", "Regex": LOSS_METRIC_REGEX}],
        },
        "RoleArn": settings.execution_role_arn,
        "HyperParameters": spec.hyperparameters.to_sagemaker(),
        "InputDataConfig": [_channel(name, uri) for name, uri in spec.channels.items()],
        "OutputDataConfig": {"S3OutputPath": spec.output_path, "CompressionType": "NONE"},
        "ResourceConfig": {
            "InstanceType": spec.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": settings.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_s},
        # The container reports its progress under the job's id (sd_runtime.training.reporting).
        "Environment": {**settings.container_environment, JOB_ID_VARIABLE: spec.entity_id},
        "Tags": [{"Key": "sdmw:job-id", "Value": spec.entity_id}],
    }


def _channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
        "InputMode": "File",
    }


class SageMakerTraining:
    """The real gateway: boto3's sagemaker and logs clients."""

    def __init__(self, settings: TrainingSettings, sagemaker: Any = None, logs: Any = None) -> None:
        self._settings = settings
        self._sagemaker = sagemaker or aws.client("sagemaker")
        self._logs = logs or aws.client("logs")

    def start(self, spec: TrainingJobSpec) -> None:
        """Start the job; one that already exists (a retry after a crash) counts as started."""
        try:
            self._sagemaker.create_training_job(**create_request(spec, self._settings))
        except ClientError as exc:
            if is_throttled(exc):
                raise  # still throttled after the client's own retries: the message is tried again later
            if not already_exists(exc):
                raise TrainingRefused(f"SageMaker refused the training job: {describe_error(exc)}") from exc
        problem = keep_logs_for_a_while(self._logs, TRAINING_LOG_GROUP)
        if problem:
            _log.warning(problem)

    def describe(self, name: str) -> TrainingState | None:
        try:
            answer = self._sagemaker.describe_training_job(TrainingJobName=name)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return TrainingState(
            status=answer["TrainingJobStatus"],
            secondary_status=answer.get("SecondaryStatus"),
            failure_reason=answer.get("FailureReason"),
            artifacts=(answer.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        )

    def stop(self, name: str) -> None:
        """Ask SageMaker to stop the job; one that already ended or never started is left alone."""
        try:
            self._sagemaker.stop_training_job(TrainingJobName=name)
        except ClientError as exc:
            if not is_not_found(exc) and "status" not in exc.response.get("Error", {}).get("Message", "").lower():
                raise
