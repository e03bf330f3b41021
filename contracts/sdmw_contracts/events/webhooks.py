"""Webhooks: subscriptions to the system's facts, owned by the webhooks service.

A subscription names a URL, the kinds of fact it wants (``EVENT_KINDS``) and whether it wants every
change or only the final ones. A job may also carry a webhook of its own (``JobWebhook``), as
Replicate's predictions do; it is part of the job's snapshot, so every change of the job says where
it is to be sent. Signing secrets never travel on the bus (see ``service_kit.webhook_secrets``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from sdmw_contracts.envelope import Command, EntityChanged

#: What a subscriber can ask for, by the fact each kind is.
EventKind = Literal["inference", "endpoint", "checkpoint", "dataset", "model", "training"]
EVENT_KINDS: dict[str, str] = {
    "inference": "InferenceJobChanged",
    "endpoint": "EndpointDeploymentChanged",
    "checkpoint": "CheckpointChanged",
    "dataset": "DatasetChanged",
    "model": "ModelChanged",
    "training": "TrainJobChanged",
}
#: The statuses after which an entity changes no more by itself (a checkpoint or dataset can still be
#: disabled by a user, and that change is final again).
TERMINAL_STATUSES: dict[str, frozenset[str]] = {
    "InferenceJobChanged": frozenset({"succeed", "failed", "cancelled"}),
    "EndpointDeploymentChanged": frozenset({"success", "failed", "deleted"}),
    "CheckpointChanged": frozenset({"Active", "Disabled", "Failed"}),
    "DatasetChanged": frozenset({"Enabled", "Disabled"}),
    "ModelChanged": frozenset({"Complete", "Fail"}),
    "TrainJobChanged": frozenset({"Complete", "Fail"}),
}
#: A job webhook's filter, as Replicate's ``webhook_events_filter``: ``progress`` is every change
#: before the end (training's ``Training``), ``completed`` the final one.
JobWebhookEvent = Literal["progress", "completed"]
SubscriptionStatus = Literal["active", "deleted"]


def is_terminal(detail_type: str, status: str) -> bool:
    """Whether a fact of ``detail_type`` in ``status`` is its entity's final state."""
    return status in TERMINAL_STATUSES.get(detail_type, frozenset())


class JobWebhook(BaseModel):
    """Where one job's changes are sent, and which (signed with the deployment's default secret)."""

    url: str
    events_filter: list[JobWebhookEvent] = Field(default_factory=lambda: ["progress", "completed"])

    def wants(self, detail_type: str, status: str) -> bool:
        return ("completed" if is_terminal(detail_type, status) else "progress") in self.events_filter


class WebhookSubscriptionRequested(Command):
    """api-gateway asks the webhooks service to deliver facts of ``event_types`` to ``url``."""

    subscription_id: str
    url: str
    event_types: list[EventKind] = Field(min_length=1)
    terminal_only: bool = False
    description: str = ""
    requested_at: datetime

    def initial_snapshot(self, version: int) -> WebhookSubscriptionChanged:
        """The subscription as this command creates it: the edge's version 0, the owner's version 1."""
        return WebhookSubscriptionChanged(
            id=self.subscription_id,
            version=version,
            url=self.url,
            event_types=self.event_types,
            terminal_only=self.terminal_only,
            description=self.description,
            status="active",
            created_at=self.requested_at,
        )


class WebhookSubscriptionDeletionRequested(Command):
    """api-gateway asks the webhooks service to stop delivering to a subscription."""

    subscription_id: str
    requested_at: datetime


class WebhookSubscriptionChanged(EntityChanged):
    """A subscription as it now is (``id`` is the subscription id); never its secret."""

    url: str
    event_types: list[EventKind]
    terminal_only: bool = False
    description: str = ""
    status: SubscriptionStatus
    created_at: datetime
    deleted_at: datetime | None = None

    def wants(self, detail_type: str, status: str) -> bool:
        """Whether a fact of ``detail_type`` in ``status`` is to be delivered to this subscription."""
        if self.status != "active":
            return False
        if not any(EVENT_KINDS[kind] == detail_type for kind in self.event_types):
            return False
        return is_terminal(detail_type, status) or not self.terminal_only
