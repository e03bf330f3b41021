"""Every deployable service's resource declaration, in one list.

The local bootstrap and the AWS deployment both read this, so a service's
tables, queues, rules and subscriptions are declared once, in its own
``resources.py``.
"""

from api_gateway.resources import RESOURCES as API_GATEWAY
from asset_registry.resources import RESOURCES as ASSET_REGISTRY
from endpoint_manager.resources import RESOURCES as ENDPOINT_MANAGER
from inference_dispatcher.resources import RESOURCES as INFERENCE_DISPATCHER
from service_kit.resources import ServiceResources
from training_manager.resources import RESOURCES as TRAINING_MANAGER
from webhooks.resources import RESOURCES as WEBHOOKS

SERVICES: tuple[ServiceResources, ...] = (
    API_GATEWAY,
    ENDPOINT_MANAGER,
    ASSET_REGISTRY,
    INFERENCE_DISPATCHER,
    TRAINING_MANAGER,
    WEBHOOKS,
)
