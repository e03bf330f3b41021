"""Everything inference-dispatcher owns in AWS, declared once (see service_kit.resources)."""

from inference_dispatcher import SERVICE
from sdmw_contracts.events import CheckpointChanged, EndpointDeploymentChanged, InferenceRequested, ModelMergeRequested
from service_kit.resources import (
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

#: The core stack's topics SageMaker async inference notifies (infra/core.py).
SUCCESS_TOPIC = "async-success"
ERROR_TOPIC = "async-error"

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    queue=Queue(SERVICE, visibility_timeout_s=120),
    rules=(
        Rule(
            "inference-commands",
            project_events(
                InferenceRequested.detail_type(), ModelMergeRequested.detail_type(), sources=("sdmw.api-gateway",)
            ),
        ),
        # The dispatcher keeps its own view of endpoints and models, built from their owners' facts.
        Rule(
            "endpoint-and-model-facts",
            project_events(EndpointDeploymentChanged.detail_type(), CheckpointChanged.detail_type()),
        ),
    ),
    topic_subscriptions=(TopicSubscription(SUCCESS_TOPIC), TopicSubscription(ERROR_TOPIC)),
    schedules=(Schedule("overdue-sweep", every_s=60),),
    functions=(LambdaFunction("worker", "inference_dispatcher.entrypoints.lambda_handler.handler", timeout_s=60),),
    grants=(
        # Request bodies for the runtime in, results (images, parameters) out.
        Grant(("s3:PutObject", "s3:GetObject"), BUCKET_OBJECTS),
        Grant(("sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpointAsync"), sagemaker_resources("endpoint")),
    ),
)
