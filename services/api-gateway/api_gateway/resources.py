"""Everything api-gateway owns in AWS, declared once (see service_kit.resources)."""

from api_gateway import SERVICE
from sdmw_contracts.envelope import EntityChanged
from sdmw_contracts.events import ALL_EVENTS
from service_kit.resources import Queue, Rule, ServiceResources, Table, project_events

#: The read model follows every fact any service publishes.
PROJECTED_EVENTS = tuple(name for name, model in ALL_EVENTS.items() if issubclass(model, EntityChanged))

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    queue=Queue(SERVICE, visibility_timeout_s=30),
    rules=(Rule("entity-changes", project_events(*PROJECTED_EVENTS)),),
)
