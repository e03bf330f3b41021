"""Everything inference-dispatcher owns in AWS, declared once (see service_kit.resources)."""

from inference_dispatcher import SERVICE
from sdmw_contracts.events import InferenceRequested, ModelMergeRequested
from sdmw_contracts.events.inference import InferenceCancelRequested, InferenceDeletionRequested
from sdmw_contracts.events.progress import RUNTIME_PRODUCER, InferenceProgressReported
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
    TopicSubscription,
    project_events,
    sagemaker_resources,
)
from service_kit.sagemaker import ASYNC_ERROR_TOPIC, ASYNC_SUCCESS_TOPIC

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    queue=Queue(SERVICE, visibility_timeout_s=360),
    rules=(
        Rule(
            "inference-commands",
            project_events(
                InferenceRequested.detail_type(),
                ModelMergeRequested.detail_type(),
                InferenceCancelRequested.detail_type(),
                InferenceDeletionRequested.detail_type(),
                sources=("sdmw.api-gateway",),
            ),
        ),
        # The runtime puts its reports on the bus itself, from the endpoint's container.
        Rule(
            "inference-progress",
            project_events(InferenceProgressReported.detail_type(), sources=(f"sdmw.{RUNTIME_PRODUCER}",)),
        ),
    ),
    topic_subscriptions=(TopicSubscription(ASYNC_SUCCESS_TOPIC), TopicSubscription(ASYNC_ERROR_TOPIC)),
    schedules=(Schedule("overdue-sweep", every_s=60),),
    functions=(LambdaFunction("worker", "inference_dispatcher.entrypoints.lambda_handler.handler", timeout_s=60),),
    grants=(
        # The runtime's requests and cancel markers out; claimed commands and the runtime's answers (captions,
        # merges) in; a cancelled or deleted job's files removed (listed by prefix).
        Grant(("s3:PutObject", "s3:GetObject", "s3:DeleteObject"), BUCKET_OBJECTS),
        Grant(("s3:ListBucket",), BUCKET),
        Grant(("sagemaker:InvokeEndpointAsync",), sagemaker_resources("endpoint")),
    ),
)
