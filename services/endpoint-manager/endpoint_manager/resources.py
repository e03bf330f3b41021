"""Everything endpoint-manager owns in AWS, declared once (see service_kit.resources)."""

from endpoint_manager import SERVICE
from sdmw_contracts.events import EndpointDeletionRequested, EndpointDeploymentRequested
from sdmw_contracts.events.sagemaker import SAGEMAKER_SOURCE, SageMakerEndpointStateChange
from service_kit.resources import DEFAULT_BUS, Queue, Rule, ServiceResources, Table, project_events

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    queue=Queue(SERVICE, visibility_timeout_s=120),
    rules=(
        Rule(
            "endpoint-commands",
            project_events(
                EndpointDeploymentRequested.detail_type(),
                EndpointDeletionRequested.detail_type(),
                sources=("sdmw.api-gateway",),
            ),
        ),
        Rule(
            "sagemaker-endpoint-state",
            {"source": [SAGEMAKER_SOURCE], "detail-type": [SageMakerEndpointStateChange.DETAIL_TYPE]},
            bus=DEFAULT_BUS,
        ),
    ),
)
