"""Everything asset-registry owns in AWS, declared once (see service_kit.resources)."""

from asset_registry import SERVICE
from sdmw_contracts.events import (
    CheckpointCreationRequested,
    CheckpointRegistrationRequested,
    CheckpointUpdateRequested,
    DatasetCreationRequested,
    DatasetUpdateRequested,
)
from sdmw_contracts.events.assets import (
    CheckpointDeletionRequested,
    CheckpointImportRequested,
    CheckpointRenameRequested,
    DatasetDeletionRequested,
)
from service_kit.resources import (
    BUCKET,
    BUCKET_OBJECTS,
    Grant,
    LambdaFunction,
    Queue,
    Rule,
    Schedule,
    ServiceResources,
    Table,
    project_events,
)

COMMANDS = (
    CheckpointCreationRequested,
    CheckpointUpdateRequested,
    CheckpointImportRequested,
    CheckpointRenameRequested,
    CheckpointDeletionRequested,
    DatasetCreationRequested,
    DatasetUpdateRequested,
    DatasetDeletionRequested,
)

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    # Completing a multi-gigabyte multipart upload can take a while in S3.
    queue=Queue(SERVICE, visibility_timeout_s=1800),
    rules=(
        Rule(
            "asset-commands",
            project_events(*(command.detail_type() for command in COMMANDS), sources=("sdmw.api-gateway",)),
        ),
        # What other services produced and asset-registry adopts as checkpoints: trained models, merges.
        Rule(
            "checkpoint-registrations",
            project_events(
                CheckpointRegistrationRequested.detail_type(),
                sources=("sdmw.training-manager", "sdmw.inference-dispatcher"),
            ),
        ),
    ),
    # Uploads never completed are deleted a day on (``handlers.on_sweep``).
    schedules=(Schedule("unfinished-uploads-sweep", every_s=3600),),
    # An import downloads for up to ``import_time_limit_s`` (270 s) of these 300.
    functions=(LambdaFunction("worker", "asset_registry.entrypoints.lambda_handler.handler", timeout_s=300),),
    grants=(
        # Multipart uploads: create and complete (PutObject), give up, list parts; HeadObject and the ranged
        # reads that check a file's format (GetObject); deleted checkpoints and datasets (DeleteObject).
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
        # A registered folder's files are listed to check they are all there; a deletion finds open uploads.
        Grant(("s3:ListBucket", "s3:ListBucketMultipartUploads"), BUCKET),
    ),
)
