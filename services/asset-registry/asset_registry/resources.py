"""Everything asset-registry owns in AWS, declared once (see service_kit.resources)."""

from asset_registry import SERVICE
from sdmw_contracts.events import (
    CheckpointCreationRequested,
    CheckpointRegistrationRequested,
    CheckpointUpdateRequested,
    DatasetCreationRequested,
    DatasetUpdateRequested,
)
from service_kit.resources import (
    BUCKET,
    BUCKET_OBJECTS,
    Grant,
    LambdaFunction,
    Queue,
    Rule,
    ServiceResources,
    Table,
    project_events,
)

COMMANDS = (CheckpointCreationRequested, CheckpointUpdateRequested, DatasetCreationRequested, DatasetUpdateRequested)

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
    functions=(LambdaFunction("worker", "asset_registry.entrypoints.lambda_handler.handler", timeout_s=300),),
    grants=(
        # Multipart uploads: create and complete (PutObject), give up, list parts; HeadObject (GetObject).
        Grant(
            ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"),
            BUCKET_OBJECTS,
        ),
        # A registered folder's files are listed to check they are all there.
        Grant(("s3:ListBucket",), BUCKET),
    ),
)
