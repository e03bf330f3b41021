"""Everything the webhooks service owns in AWS, declared once (see service_kit.resources)."""

from sdmw_contracts.events import WebhookSubscriptionDeletionRequested, WebhookSubscriptionRequested
from sdmw_contracts.events.webhooks import EVENT_KINDS
from service_kit.resources import (
    BUCKET_OBJECTS,
    Grant,
    LambdaFunction,
    Queue,
    Rule,
    ServiceResources,
    Table,
    project_events,
)
from webhooks import SERVICE

COMMANDS = (WebhookSubscriptionRequested, WebhookSubscriptionDeletionRequested)

RESOURCES = ServiceResources(
    service=SERVICE,
    table=Table(SERVICE),
    # One delivery attempt is over in at most 15 s (delivery.ATTEMPT_DEADLINE_S, on the wall clock, however
    # slowly a receiver answers), well inside the function's 45 s; the queue's own redelivery is only for
    # a handler that crashed: failed attempts are re-sent as new messages.
    queue=Queue(SERVICE, visibility_timeout_s=270, sends_to_itself=True),
    rules=(
        Rule(
            "subscription-commands", project_events(*(c.detail_type() for c in COMMANDS), sources=("sdmw.api-gateway",))
        ),
        # The facts subscribers may receive, whoever publishes them.
        Rule("deliverable-facts", project_events(*EVENT_KINDS.values())),
    ),
    # One message per invocation: a delivery that waits on a slow receiver holds up no other delivery.
    functions=(LambdaFunction("worker", "webhooks.entrypoints.lambda_handler.handler", timeout_s=45, batch_size=1),),
    # Claim checks: facts over EventBridge's limit are read back, deliveries over SQS's are parked.
    grants=(Grant(("s3:PutObject", "s3:GetObject"), BUCKET_OBJECTS),),
    signs_webhooks=True,
)
