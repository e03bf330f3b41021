"""Webhooks, beyond the seed: subscriptions (``/webhooks``) and the webhook a job request may carry.

- ``POST /webhooks``: subscribe a URL to kinds of fact (``event_types``); the answer holds the
  subscription's signing secret, shown only there.
- ``GET /webhooks``, ``GET /webhooks/{webhook_id}``: the active subscriptions, one subscription.
- ``DELETE /webhooks/{webhook_id}``: stop delivering to it.
- ``GET /webhooks/default/secret``: the secret jobs' own webhooks are signed with, as Replicate's
  ``GET /v1/webhooks/default/secret``.

A job request (``POST /inference-api/inference``, ``POST /inference/run-model-merge``, ``POST /train``)
may name a webhook of its own, as Replicate's predictions do: ``webhook`` and ``webhook_events_filter``
(:class:`JobWebhookFields`). Deliveries are signed as Standard Webhooks (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``) with the secret the subscription, or the default, has.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, TypeVar

from pydantic import AfterValidator, Field

from sdmw_contracts.api.common import ApiModel, next_token_field
from sdmw_contracts.events.webhooks import (
    EVENT_KINDS,
    EventKind,
    JobWebhook,
    JobWebhookEvent,
    SubscriptionStatus,
    WebhookSubscriptionChanged,
)

#: The longest target URL accepted (browsers' and most servers' practical limit).
MAX_WEBHOOK_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 200
#: Every kind of fact, the default of a subscription's ``event_types``.
ALL_EVENT_KINDS: tuple[EventKind, ...] = tuple(EVENT_KINDS)  # type: ignore[assignment]
#: Both job webhook events, the default of ``webhook_events_filter``.
ALL_JOB_WEBHOOK_EVENTS: tuple[JobWebhookEvent, ...] = ("progress", "completed")

_WEBHOOK_ID_EXAMPLE = "0d8cbd27-5c1a-4b5e-9b55-1c64a3b2f7a1"
_URL_EXAMPLE = "https://hooks.example.com/sdmw"
_SECRET_EXAMPLE = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
_URL_RULE = (
    "http or https, without a user name or password; the host must be public: a private, loopback, "
    "link-local or reserved address, or a name that resolves to one, is refused with 400."
)


T = TypeVar("T")


def _unique(values: list[T]) -> list[T]:
    """The values in their first order, each once."""
    return list(dict.fromkeys(values))


WebhookUrl = Annotated[str, Field(min_length=1, max_length=MAX_WEBHOOK_URL_LENGTH)]


class CreateWebhookRequest(ApiModel):
    """``POST /webhooks``: deliver facts of ``event_types`` to ``url``."""

    url: WebhookUrl = Field(description=f"Where the facts are POSTed: {_URL_RULE}", examples=[_URL_EXAMPLE])
    event_types: Annotated[list[EventKind], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(ALL_EVENT_KINDS),
        min_length=1,
        max_length=4 * len(ALL_EVENT_KINDS),
        description="The kinds of fact to deliver (each kind once; every kind by default): "
        + ", ".join(f"{kind} ({detail_type})" for kind, detail_type in EVENT_KINDS.items())
        + ".",
        examples=[["inference", "training"]],
    )
    terminal_only: bool = Field(
        default=False,
        description="Only each entity's final states (an inference job succeeded or failed, a training "
        "job complete or failed...), not every change on the way.",
    )
    description: str = Field(
        default="", max_length=MAX_DESCRIPTION_LENGTH, description="Free text, for people.", examples=["CI notifier"]
    )


class WebhookView(ApiModel):
    """One subscription as the API shows it; never its secret (that is shown once, when it is created)."""

    id: str = Field(examples=[_WEBHOOK_ID_EXAMPLE])
    url: str = Field(examples=[_URL_EXAMPLE])
    event_types: list[EventKind] = Field(examples=[["inference", "training"]])
    terminal_only: bool = Field(examples=[False])
    description: str = Field(examples=["CI notifier"])
    status: SubscriptionStatus = Field(
        description="active, or deleted once DELETE /webhooks/{webhook_id} is carried out.", examples=["active"]
    )
    created_at: datetime = Field(description="ISO 8601, UTC.", examples=["2024-05-01T12:00:00Z"])

    @classmethod
    def of(cls, subscription: WebhookSubscriptionChanged) -> WebhookView:
        return cls(
            id=subscription.id,
            url=subscription.url,
            event_types=subscription.event_types,
            terminal_only=subscription.terminal_only,
            description=subscription.description,
            status=subscription.status,
            created_at=subscription.created_at,
        )


class CreatedWebhook(WebhookView):
    """What ``POST /webhooks`` answers: the subscription and its signing secret."""

    secret: str = Field(
        description="The Standard Webhooks secret every delivery to this subscription is signed with "
        "(HMAC-SHA256 of ``webhook-id.webhook-timestamp.body``). Shown only in this answer: keep it.",
        examples=[_SECRET_EXAMPLE],
    )

    @classmethod
    def with_secret(cls, subscription: WebhookSubscriptionChanged, secret: str) -> CreatedWebhook:
        return cls(**WebhookView.of(subscription).model_dump(), secret=secret)


class WebhookList(ApiModel):
    """``GET /webhooks``: the active subscriptions, newest first."""

    webhooks: list[WebhookView] = Field(default_factory=list)
    next_token: str | None = next_token_field()


class DefaultSecret(ApiModel):
    """``GET /webhooks/default/secret``: what jobs' own webhooks (``webhook`` in a job request) are signed with."""

    secret: str = Field(examples=[_SECRET_EXAMPLE])


class JobWebhookFields(ApiModel):
    """A job request's own webhook, as Replicate's predictions take it.

    Every change of the job is POSTed to ``webhook`` (filtered by ``webhook_events_filter``), signed
    with the default secret (``GET /webhooks/default/secret``).
    """

    #: The fields this adds to a request (the WebUI extension's routes leave them out).
    webhook_fields: ClassVar[tuple[str, ...]] = ("webhook", "webhook_events_filter")

    webhook: WebhookUrl | None = Field(
        default=None,
        description=f"Where this job's changes are POSTed: {_URL_RULE}",
        examples=[_URL_EXAMPLE],
    )
    webhook_events_filter: Annotated[list[JobWebhookEvent], AfterValidator(_unique)] = Field(
        default_factory=lambda: list(ALL_JOB_WEBHOOK_EVENTS),
        min_length=1,
        max_length=4 * len(ALL_JOB_WEBHOOK_EVENTS),
        description="Which changes go to ``webhook``: progress (every change before the end), completed "
        "(the final one). Both by default.",
        examples=[["completed"]],
    )

    def job_webhook(self) -> JobWebhook | None:
        """The command's ``webhook``: None when the request names none."""
        if self.webhook is None:
            return None
        return JobWebhook(url=self.webhook, events_filter=self.webhook_events_filter)
