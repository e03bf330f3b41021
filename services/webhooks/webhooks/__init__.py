"""webhooks: delivers events to subscribers' HTTP endpoints, signed, retried, never to internal addresses."""

SERVICE = "webhooks"
