"""Everything api-gateway owns in AWS, declared once (see service_kit.resources)."""

from api_gateway import SERVICE
from sdmw_contracts.envelope import EntityChanged
from sdmw_contracts.events import ALL_EVENTS
from service_kit.resources import (
    BUCKET_OBJECTS,
    Grant,
    LambdaFunction,
    Queue,
    Rule,
    ServiceResources,
    Table,
    project_events,
    sagemaker_log_groups,
)

#: The read model follows every fact any service publishes.
PROJECTED_EVENTS = tuple(name for name, model in ALL_EVENTS.items() if issubclass(model, EntityChanged))

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    queue=Queue(SERVICE, visibility_timeout_s=180),
    rules=(Rule("entity-changes", project_events(*PROJECTED_EVENTS)),),
    functions=(
        # API Gateway gives an integration 29 s; the edge waits at most TRANSITION_WAIT_S (20 s) for an outcome.
        LambdaFunction("edge", "api_gateway.entrypoints.lambda_http.handler", trigger="http", timeout_s=29),
        LambdaFunction("projector", "api_gateway.entrypoints.projector_lambda.handler", timeout_s=30),
    ),
    grants=(
        # Claim checks (put/get) and the presigned URLs clients upload parts to and read outputs from:
        # a presigned URL carries the signer's permissions.
        Grant(("s3:PutObject", "s3:GetObject"), BUCKET_OBJECTS),
        # Jobs' log lines (GET /jobs/{id}/logs): SageMaker's training and endpoint log groups.
        Grant(("logs:FilterLogEvents", "logs:DescribeLogStreams"), sagemaker_log_groups("/aws/sagemaker/*")),
    ),
    # Shows webhook subscriptions' signing secrets (POST /webhooks) and the default one.
    signs_webhooks=True,
)
