"""inference-dispatcher's settings: everything it reads from its environment (see service_kit.config)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from inference_dispatcher import SERVICE
from service_kit.config import ServiceSettings


class InferenceDispatcherSettings(ServiceSettings):
    service: ClassVar[str] = SERVICE

    #: How long a job may wait in the endpoint's queue, and run, before SageMaker gives up on it.
    queue_ttl_s: int = Field(3600, validation_alias="INFERENCE_QUEUE_TTL_S")
    invocation_timeout_s: int = Field(900, validation_alias="INFERENCE_TIMEOUT_S")
    #: Added to those before the sweep fails a job that never got a notification.
    deadline_grace_s: int = Field(60, validation_alias="INFERENCE_DEADLINE_GRACE_S")
