"""Routes 1 and 7-10: test-connection and the endpoint deployment jobs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import answers, conflict, not_found
from api_gateway.routes import JobId
from api_gateway.transitions import record_then_send, send
from sdmw_contracts.api.endpoints import DeleteEndpointsRequest, DeployEndpointRequest, EndpointDeploymentJobView
from sdmw_contracts.events import EndpointDeletionRequested, EndpointDeploymentChanged, EndpointDeploymentRequested

router = APIRouter(tags=["endpoints"])
Edge = Annotated[EdgeDependencies, Depends(edge)]


@router.get("/inference/test-connection")
def test_connection() -> dict[str, str]:
    """Answers when the client reaches the API with a valid key."""
    return {"message": "Success"}


@router.post("/inference/deploy-sagemaker-endpoint", responses=answers(409, 503))
def deploy_sagemaker_endpoint(body: DeployEndpointRequest, deps: Edge) -> EndpointDeploymentJobView:
    job_id = str(uuid.uuid4())
    endpoint_name = body.endpoint_name or f"infer-endpoint-{job_id[:7]}"
    existing = deps.read_model.endpoint_job_named(endpoint_name, include_failed=False)
    if existing is not None:
        raise conflict(f"endpoint {endpoint_name} already exists (deployment job {existing.id})")
    command = EndpointDeploymentRequested(
        job_id=job_id,
        endpoint_name=endpoint_name,
        instance_type=body.instance_type,
        initial_instance_count=body.initial_instance_count,
        autoscaling_enabled=body.autoscaling_enabled,
        requested_at=deps.clock(),
    )
    initial = command.initial_snapshot(version=0)
    record_then_send(deps, [initial], command, correlation_id=job_id)
    return EndpointDeploymentJobView.of(initial)


@router.post("/inference/delete-sagemaker-endpoint", responses=answers(503))
def delete_sagemaker_endpoint(body: DeleteEndpointsRequest, deps: Edge) -> list[EndpointDeploymentJobView]:
    """Deletes each named endpoint; waits a bounded time and shows each job as it then is.

    Names that are unknown or already deleted are skipped, as the original middleware did (the
    WebUI extension sends whatever the user ticked); the answer shows only what was deleted.
    """
    named = [deps.read_model.endpoint_job_named(name, include_failed=True) for name in body.delete_endpoint_list]
    jobs = [job for job in named if job is not None]
    for job in jobs:
        send(deps, EndpointDeletionRequested(job_id=job.id, endpoint_name=job.endpoint_name), correlation_id=job.id)
    return [_view_after_deletion(deps, job) for job in jobs]


def _view_after_deletion(deps: EdgeDependencies, job: EndpointDeploymentChanged) -> EndpointDeploymentJobView:
    current = deps.read_model.wait_for(
        EndpointDeploymentChanged, job.id, lambda j: j.status == "deleted", deps.settings.transition_wait_s
    )
    return EndpointDeploymentJobView.of(current or job)


@router.get("/inference/list-endpoint-deployment-jobs")
def list_endpoint_deployment_jobs(deps: Edge) -> list[EndpointDeploymentJobView]:
    return [EndpointDeploymentJobView.of(job) for job in deps.read_model.endpoint_jobs()]


@router.get("/inference/get-endpoint-deployment-job", responses=answers(404))
def get_endpoint_deployment_job(jobID: JobId, deps: Edge) -> EndpointDeploymentJobView:
    job = deps.read_model.get(EndpointDeploymentChanged, jobID)
    if job is None:
        raise not_found(f"no endpoint deployment job {jobID}")
    return EndpointDeploymentJobView.of(job)
