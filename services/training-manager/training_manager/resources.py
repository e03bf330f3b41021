"""Everything training-manager owns in AWS, declared once (see service_kit.resources)."""

from sdmw_contracts.events import (
    ModelCreationRequested,
    ModelUpdateRequested,
    TrainJobRequested,
    TrainJobUpdateRequested,
)
from sdmw_contracts.events.progress import RUNTIME_PRODUCER, TrainingProgressReported
from sdmw_contracts.events.sagemaker import SAGEMAKER_SOURCE, SageMakerTrainingJobStateChange
from sdmw_contracts.events.training import ModelDeletionRequested, TrainJobCancelRequested, TrainJobDeletionRequested
from service_kit.resources import (
    BUCKET,
    BUCKET_OBJECTS,
    DEFAULT_BUS,
    SAGEMAKER_ROLE,
    Grant,
    LambdaFunction,
    Queue,
    Rule,
    Schedule,
    ServiceResources,
    Table,
    project_events,
    sagemaker_log_groups,
    sagemaker_resources,
)
from service_kit.sagemaker import TRAINING_LOG_GROUP
from training_manager import SERVICE

COMMANDS = (
    ModelCreationRequested,
    ModelUpdateRequested,
    TrainJobRequested,
    TrainJobUpdateRequested,
    TrainJobCancelRequested,
    TrainJobDeletionRequested,
    ModelDeletionRequested,
)

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    # Completing the multipart upload of a multi-gigabyte base checkpoint can take a while in S3.
    queue=Queue(SERVICE, visibility_timeout_s=1800),
    rules=(
        Rule(
            "training-commands",
            project_events(*(command.detail_type() for command in COMMANDS), sources=("sdmw.api-gateway",)),
        ),
        # The training container reports its progress itself (sd_runtime.progress), as sdmw.sd-runtime.
        Rule(
            "training-progress",
            project_events(TrainingProgressReported.detail_type(), sources=(f"sdmw.{RUNTIME_PRODUCER}",)),
        ),
        Rule(
            "sagemaker-training-state",
            {"source": [SAGEMAKER_SOURCE], "detail-type": [SageMakerTrainingJobStateChange.DETAIL_TYPE]},
            bus=DEFAULT_BUS,
        ),
    ),
    # State-change events can be missed; the sweep asks SageMaker about every running job.
    schedules=(Schedule("running-jobs-sweep", every_s=60),),
    functions=(LambdaFunction("worker", "training_manager.entrypoints.lambda_handler.handler", timeout_s=300),),
    runs_sd_runtime=True,
    grants=(
        # Base checkpoints uploaded with a model request (multipart), and the jobs' inputs and outputs,
        # deleted with their job.
        Grant(
            (
                "s3:PutObject",
                "s3:GetObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ),
            BUCKET_OBJECTS,
        ),
        Grant(("s3:ListBucket", "s3:ListBucketMultipartUploads"), BUCKET),
        # Jobs are tagged with the entity they serve, which CreateTrainingJob checks as AddTags.
        Grant(
            (
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopTrainingJob",
                "sagemaker:AddTags",
            ),
            sagemaker_resources("training-job"),
        ),
        Grant(
            ("iam:PassRole",),
            SAGEMAKER_ROLE,
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        # SageMaker makes its log groups without a retention; the service gives them one.
        Grant(("logs:CreateLogGroup", "logs:PutRetentionPolicy"), sagemaker_log_groups(TRAINING_LOG_GROUP)),
    ),
)
