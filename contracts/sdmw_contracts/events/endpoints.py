"""Endpoint deployment: commands to endpoint-manager and the job it owns."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from sdmw_contracts.envelope import Command, EntityChanged

EndpointJobStatus = Literal["inprogress", "success", "failed", "deleted"]


class EndpointDeploymentRequested(Command):
    """api-gateway asks endpoint-manager to deploy an async SageMaker endpoint."""

    job_id: str
    endpoint_name: str
    instance_type: str
    initial_instance_count: int = Field(ge=1)
    autoscaling_enabled: bool = False
    requested_at: datetime = Field(description="When the client asked; the job's start time.")

    def initial_snapshot(self, version: int) -> EndpointDeploymentChanged:
        """The job as this command creates it: the edge's version 0, the owner's version 1."""
        return EndpointDeploymentChanged(
            id=self.job_id,
            version=version,
            endpoint_name=self.endpoint_name,
            instance_type=self.instance_type,
            initial_instance_count=self.initial_instance_count,
            autoscaling_enabled=self.autoscaling_enabled,
            status="inprogress",
            start_time=self.requested_at,
        )


class EndpointDeletionRequested(Command):
    """api-gateway asks endpoint-manager to delete an endpoint and what backs it."""

    job_id: str
    endpoint_name: str


class EndpointRecordDeletionRequested(Command):
    """Forget a deployment job whose endpoint is gone (status ``deleted`` or ``failed``)."""

    job_id: str
    requested_at: datetime


class EndpointDeploymentChanged(EntityChanged):
    """The endpoint deployment job as it now is (``id`` is the job id)."""

    endpoint_name: str
    instance_type: str
    initial_instance_count: int
    autoscaling_enabled: bool = False
    status: EndpointJobStatus
    endpoint_status: str | None = Field(default=None, description="SageMaker EndpointStatus: Creating, InService, ...")
    error: str = ""
    start_time: datetime
    end_time: datetime | None = None

    def lookup_names(self) -> list[str]:
        """Found by its endpoint's name (SageMaker's state changes and the API name endpoints, not jobs)."""
        return [self.endpoint_name]

    def due_at(self) -> datetime | None:
        """Open (deploying, or its endpoint in service): endpoint-manager's sweep asks SageMaker about it, so a
        lost state change or an endpoint removed outside the system does not leave the job wrong for good."""
        return self.start_time if self.status in ("inprogress", "success") else None
