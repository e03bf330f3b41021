"""What a service reads from its environment.

Only standard AWS configuration (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>,
AWS_REGION, credentials) tells AWS and the local stack apart; these variables
only name the resources, and the deployment sets them from the declarations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class ServiceConfig:
    service: str
    event_bus: str
    bucket: str
    table: str | None
    queue_url: str | None

    @classmethod
    def from_env(cls, service: str) -> ServiceConfig:
        return cls(
            service=service,
            event_bus=_required("SDMW_EVENT_BUS"),
            bucket=_required("SDMW_BUCKET"),
            table=os.environ.get("SDMW_TABLE") or None,
            queue_url=os.environ.get("SDMW_QUEUE_URL") or None,
        )

    @property
    def table_name(self) -> str:
        """The service's own table (SDMW_TABLE); every service with state has one."""
        if not self.table:
            raise RuntimeError("environment variable SDMW_TABLE is not set")
        return self.table

    @property
    def source(self) -> str:
        return f"sdmw.{self.service}"


def topic_variable(topic: str) -> str:
    return f"SDMW_TOPIC_{topic.upper().replace('-', '_')}_ARN"


def topic_arn(topic: str) -> str:
    """ARN of a core SNS topic, from ``SDMW_TOPIC_<NAME>_ARN``."""
    return _required(topic_variable(topic))


def core_environment(bus: str, bucket: str, topic_arns: dict[str, str]) -> dict[str, str]:
    """The variables that name the core's resources, as every deployment sets them."""
    return {
        "SDMW_EVENT_BUS": bus,
        "SDMW_BUCKET": bucket,
        **{topic_variable(topic): arn for topic, arn in topic_arns.items()},
    }
