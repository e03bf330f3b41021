"""What a service reads from its environment: one settings model per service.

Each service subclasses ``ServiceSettings`` once (``<package>/settings.py``), adding its own variables as
fields; its bootstrap builds that model, and no other module of the service reads a setting from
``os.environ``. A field reads the variable of its own name in upper case (``max_autoscaling_instances``
reads ``MAX_AUTOSCALING_INSTANCES``); the core's names keep their ``SDMW_`` variables through aliases,
and a keyword argument wins over the environment, so tests pass values directly.

Only standard AWS configuration (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>, AWS_REGION, credentials)
tells AWS and the local stack apart; these variables only name the resources, and the deployment sets
them from the declarations.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def topic_variable(topic: str) -> str:
    """The variable naming a core SNS topic's ARN: ``SDMW_TOPIC_<NAME>_ARN``."""
    return f"SDMW_TOPIC_{topic.upper().replace('-', '_')}_ARN"


def topic_arn_field(topic: str) -> Any:
    """A required settings field: the ARN of the core stack's topic ``topic``, as the deployment sets it."""
    return Field(validation_alias=topic_variable(topic))


#: The variable naming the Secrets Manager secret webhook secrets are derived from (``signs_webhooks``).
WEBHOOK_SIGNING_KEY_VARIABLE = "SDMW_WEBHOOK_SIGNING_KEY_SECRET"
#: Set by the local stack alone: webhook targets on this machine's loopback addresses are accepted.
WEBHOOKS_ALLOW_LOOPBACK_VARIABLE = "WEBHOOKS_ALLOW_LOOPBACK"
#: Set by the local stack alone: checkpoint imports from this machine's loopback addresses are accepted.
IMPORTS_ALLOW_LOOPBACK_VARIABLE = "IMPORTS_ALLOW_LOOPBACK"


def webhook_signing_key_field() -> Any:
    """The name of the webhook signing key's secret, as the deployment sets it for ``signs_webhooks`` services."""
    return Field(default="", validation_alias=WEBHOOK_SIGNING_KEY_VARIABLE)


def webhooks_allow_loopback_field() -> Any:
    """Whether webhook targets may be loopback addresses (the local stack only; never on AWS)."""
    return Field(default=False, validation_alias=WEBHOOKS_ALLOW_LOOPBACK_VARIABLE)


def imports_allow_loopback_field() -> Any:
    """Whether checkpoint import URLs may name loopback addresses (the local stack only; never on AWS)."""
    return Field(default=False, validation_alias=IMPORTS_ALLOW_LOOPBACK_VARIABLE)


class ServiceSettings(BaseSettings):
    """The core's names (bus, bucket) and the service's own table and queue.

    Subclasses set ``service`` and add their own fields.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", validate_by_name=True)

    service: ClassVar[str]

    event_bus: str = Field(validation_alias="SDMW_EVENT_BUS", min_length=1)
    bucket: str = Field(validation_alias="SDMW_BUCKET", min_length=1)
    table: str | None = Field(default=None, validation_alias="SDMW_TABLE")
    queue_url: str | None = Field(default=None, validation_alias="SDMW_QUEUE_URL")

    @property
    def table_name(self) -> str:
        """The service's own table (SDMW_TABLE); every service with state has one."""
        if not self.table:
            raise RuntimeError("environment variable SDMW_TABLE is not set")
        return self.table

    @property
    def source(self) -> str:
        return f"sdmw.{self.service}"


def core_environment(bus: str, bucket: str, topic_arns: dict[str, str]) -> dict[str, str]:
    """The variables that name the core's resources, as every deployment sets them."""
    return {
        "SDMW_EVENT_BUS": bus,
        "SDMW_BUCKET": bucket,
        **{topic_variable(topic): arn for topic, arn in topic_arns.items()},
    }
