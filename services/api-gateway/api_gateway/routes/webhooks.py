"""Webhook subscriptions (owned by the webhooks service), beyond the seed; and the check every webhook
URL a client names passes, a subscription's or a job's own.

A subscription's signing secret is derived from the deployment's signing key and its id
(``service_kit.webhook_secrets``): it is shown in the answer to its creation and never travels on the
bus, nor is it stored; the webhooks service derives the same secret to sign each delivery.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import ApiError, answers, not_found
from api_gateway.ids import new_id
from api_gateway.pages import Limit, NextToken, described, newest_first, paged_answers
from api_gateway.routes import MAX_ID_LENGTH
from api_gateway.transitions import send, send_then_record
from sdmw_contracts.api.webhooks import CreatedWebhook, CreateWebhookRequest, DefaultSecret, WebhookList, WebhookView
from sdmw_contracts.events import (
    WebhookSubscriptionChanged,
    WebhookSubscriptionDeletionRequested,
    WebhookSubscriptionRequested,
)
from service_kit.webhook_secrets import DEFAULT_SUBSCRIPTION
from service_kit.webhook_targets import HostNotResolved, RefusedTarget, check_target

router = APIRouter(tags=["webhooks"])
Edge = Annotated[EdgeDependencies, Depends(edge)]
WebhookId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, examples=["0d8cbd27-5c1a-4b5e-9b55-1c64a3b2f7a1"])
]


def refuse_unsafe_target(deps: EdgeDependencies, url: str, field: str) -> None:
    """400 naming ``field`` and why, unless ``url`` may be a webhook target (a public http(s) address).

    Checked before anything is recorded or sent, so a refused request changes nothing.
    """
    try:
        check_target(url, allow_loopback=deps.settings.webhooks_allow_loopback, getaddrinfo=deps.resolve)
    except (RefusedTarget, HostNotResolved) as exc:
        raise ApiError(400, f"{field}: {exc}") from exc


@router.post("/webhooks", status_code=201, responses=answers(400, 503))
def create_webhook(body: CreateWebhookRequest, deps: Edge) -> CreatedWebhook:
    """Subscribes ``url`` to the facts of ``event_types``; answers the subscription's signing secret, shown
    only here."""
    refuse_unsafe_target(deps, body.url, "url")
    subscription_id = new_id()
    # Derived first: if the signing key cannot be read, nothing is recorded or sent.
    secret = deps.webhook_keys.secret_for(subscription_id)
    command = WebhookSubscriptionRequested(
        subscription_id=subscription_id,
        url=body.url,
        event_types=body.event_types,
        terminal_only=body.terminal_only,
        description=body.description,
        requested_at=deps.clock(),
    )
    initial = command.initial_snapshot(version=0)
    send_then_record(deps, command, [initial], correlation_id=subscription_id)
    return CreatedWebhook.with_secret(initial, secret)


@router.get(
    "/webhooks",
    description=described("The active subscriptions, newest first (deleted ones are left out)."),
    responses=paged_answers(answers(400)),
)
def list_webhooks(deps: Edge, response: Response, limit: Limit = None, next_token: NextToken = None) -> WebhookList:
    page = newest_first(
        (s for s in deps.read_model.list(WebhookSubscriptionChanged) if s.status == "active"),
        list_name="webhooks",
        at=lambda s: s.created_at,
        view=WebhookView.of,
        limit=limit,
        next_token=next_token,
        response=response,
    )
    return WebhookList(webhooks=page.items, next_token=page.next_token)


@router.get("/webhooks/default/secret")
def get_default_webhook_secret(deps: Edge) -> DefaultSecret:
    """The secret jobs' own webhooks (``webhook`` in a job request) are signed with."""
    return DefaultSecret(secret=deps.webhook_keys.secret_for(DEFAULT_SUBSCRIPTION))


def _subscription(deps: EdgeDependencies, webhook_id: str) -> WebhookSubscriptionChanged:
    subscription = deps.read_model.get(WebhookSubscriptionChanged, webhook_id)
    if subscription is None:
        raise not_found(f"no webhook {webhook_id}")
    return subscription


@router.get("/webhooks/{webhook_id}", responses=answers(404))
def get_webhook(webhook_id: WebhookId, deps: Edge) -> WebhookView:
    """One subscription; a deleted one is gone (404), as every deleted entity is."""
    return WebhookView.of(_subscription(deps, webhook_id))


@router.delete("/webhooks/{webhook_id}", responses=answers(404, 503))
def delete_webhook(webhook_id: WebhookId, deps: Edge) -> WebhookView:
    """Stops deliveries to the subscription; waits a bounded time and shows it as it then is (``deleted``,
    or still ``active`` if the webhooks service has not answered yet)."""
    subscription = _subscription(deps, webhook_id)  # a deleted one is already a 404 here
    command = WebhookSubscriptionDeletionRequested(subscription_id=subscription.id, requested_at=deps.clock())
    send(deps, command, correlation_id=subscription.id)
    current = deps.read_model.wait_for(
        WebhookSubscriptionChanged, subscription.id, lambda s: s.status == "deleted", deps.settings.transition_wait_s
    )
    return WebhookView.of(current or subscription)
