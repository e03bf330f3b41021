"""Routes 7-10: deploy, delete, list and get endpoint deployment jobs."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_serializer

from sdmw_contracts.api.common import ApiModel, seed_time
from sdmw_contracts.events.endpoints import EndpointDeploymentChanged

#: GPU instance types an endpoint may use. The seed lists the g4dn family;
#: g5 is the current generation of the same class.
SUPPORTED_INSTANCE_TYPES: tuple[str, ...] = (
    "ml.g4dn.xlarge",
    "ml.g4dn.2xlarge",
    "ml.g4dn.4xlarge",
    "ml.g4dn.8xlarge",
    "ml.g4dn.12xlarge",
    "ml.g4dn.16xlarge",
    "ml.g5.xlarge",
    "ml.g5.2xlarge",
    "ml.g5.4xlarge",
    "ml.g5.8xlarge",
    "ml.g5.12xlarge",
    "ml.g5.16xlarge",
    "ml.g5.24xlarge",
    "ml.g5.48xlarge",
)
#: A sanity bound only: the account's SageMaker quota is the real limit, and SageMaker's refusal
#: becomes the deployment job's error. (The WebUI extension offers 1-6, as strings.)
MAX_INITIAL_INSTANCE_COUNT = 100

#: SageMaker's rule for endpoint names.
ENDPOINT_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
#: The same rule as the OpenAPI document shows it (``""`` allowed where the middleware names the endpoint).
ENDPOINT_NAME_SCHEMA_PATTERN = r"^$|^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"


class DeployEndpointRequest(ApiModel):
    """POST /inference/deploy-sagemaker-endpoint.

    The seed documents ``instance_type`` and ``initial_instance_count``; the
    deployed middleware also took ``endpoint_name`` and ``autoscaling_enabled``.
    As the seed's sample and the WebUI extension send them: the count may be a
    string (``"1"``..``"6"``), ``endpoint_name`` may be ``""`` (the middleware
    then names the endpoint ``infer-endpoint-<7 hex>``), and
    ``autoscaling_enabled`` may be a string (``"true"``, ``"False"``, ``"1"``...;
    ``""`` or null is false).
    """

    instance_type: str = Field(examples=["ml.g4dn.xlarge"])
    initial_instance_count: int = Field(ge=1, le=MAX_INITIAL_INSTANCE_COUNT, examples=[1, "1"])
    endpoint_name: str | None = Field(
        default=None,
        description="SageMaker's rule: 1-63 letters, digits or hyphens, starting with a letter or digit; "
        '"" lets the middleware name it.',
        json_schema_extra={"pattern": ENDPOINT_NAME_SCHEMA_PATTERN},
        examples=["infer-endpoint-cb821ea", ""],
    )
    autoscaling_enabled: bool = False

    @field_validator("instance_type")
    @classmethod
    def _supported_instance_type(cls, value: str) -> str:
        if value not in SUPPORTED_INSTANCE_TYPES:
            raise ValueError(f"unsupported instance type {value!r}; supported: {', '.join(SUPPORTED_INSTANCE_TYPES)}")
        return value

    @field_validator("autoscaling_enabled", mode="before")
    @classmethod
    def _unset_is_false(cls, value: object) -> object:
        return False if value is None or (isinstance(value, str) and not value.strip()) else value

    @field_validator("endpoint_name", mode="before")
    @classmethod
    def _empty_name_is_none(cls, value: object) -> object:
        """The WebUI extension sends "" when the user gave no name: the middleware names it then."""
        return None if value == "" else value

    @field_validator("endpoint_name")
    @classmethod
    def _sagemaker_endpoint_name(cls, value: str | None) -> str | None:
        if value is not None and not ENDPOINT_NAME_PATTERN.fullmatch(value):
            raise ValueError("endpoint_name must be 1-63 letters, digits or hyphens, starting with a letter or digit")
        return value


class DeleteEndpointsRequest(ApiModel):
    """POST /inference/delete-sagemaker-endpoint.

    The WebUI extension sends whatever the user ticked: names that are unknown
    or already deleted are skipped by the route, and a name given twice counts
    once (its second mention would be "already deleted").
    """

    delete_endpoint_list: list[str] = Field(min_length=1, examples=[["infer-endpoint-XXXXXX", "infer-endpoint-YYYYYY"]])

    @field_validator("delete_endpoint_list")
    @classmethod
    def _each_name_once(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))


def shown_endpoint_status(job: EndpointDeploymentChanged) -> str:
    """The endpoint's status as the seed's clients read it, never null: SageMaker's own (``Creating``,
    ``InService``, ...) while the job stands, ``Creating`` before SageMaker has said anything, and the job's
    own ``failed`` or ``deleted`` once it ended so (the WebUI extension shows a failed deployment's reason,
    and hides a deleted endpoint, by exactly these words)."""
    if job.status in ("failed", "deleted"):
        return job.status
    return job.endpoint_status or "Creating"


class EndpointDeploymentJobView(ApiModel):
    """One job as list-endpoint-deployment-jobs and get-endpoint-deployment-job show it."""

    EndpointDeploymentJobId: str
    startTime: str | None
    endTime: str | None = None
    endpoint_name: str
    endpoint_status: str = Field(
        examples=["InService"],
        description="SageMaker's EndpointStatus (Creating, InService, Updating, ...); 'failed' or 'deleted' "
        "once the job ended so.",
    )
    instance_type: str
    initial_instance_count: int
    autoscaling_enabled: bool = False
    status: str
    error: str = ""

    @model_serializer(mode="wrap")
    def _no_end_time_until_there_is_one(self, handler: Any) -> Any:
        """``endTime`` is absent, not null, while the job runs: the WebUI extension shows "N/A" then."""
        data = handler(self)
        if isinstance(data, dict) and data.get("endTime") is None:
            data.pop("endTime", None)
        return data

    @classmethod
    def of(cls, job: EndpointDeploymentChanged) -> EndpointDeploymentJobView:
        return cls(
            EndpointDeploymentJobId=job.id,
            startTime=seed_time(job.start_time),
            endTime=seed_time(job.end_time),
            endpoint_name=job.endpoint_name,
            endpoint_status=shown_endpoint_status(job),
            instance_type=job.instance_type,
            initial_instance_count=job.initial_instance_count,
            autoscaling_enabled=job.autoscaling_enabled,
            status=job.status,
            error=job.error,
        )
