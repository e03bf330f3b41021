"""Routes 1 and 7-10: test-connection and the endpoint deployment jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import answers, bounded, conflict, not_found
from api_gateway.ids import new_id
from api_gateway.pages import Limit, NextToken, described, newest_first, paged_answers
from api_gateway.routes import MAX_ID_LENGTH, JobId
from api_gateway.transitions import await_deleted, send, send_then_record
from sdmw_contracts.api.endpoints import DeleteEndpointsRequest, DeployEndpointRequest, EndpointDeploymentJobView
from sdmw_contracts.api.jobs import Deleted
from sdmw_contracts.events import EndpointDeletionRequested, EndpointDeploymentChanged, EndpointDeploymentRequested
from sdmw_contracts.events.endpoints import EndpointRecordDeletionRequested

router = APIRouter(tags=["endpoints"])
Edge = Annotated[EdgeDependencies, Depends(edge)]


@router.get("/inference/test-connection")
def test_connection() -> dict[str, str]:
    """Answers when the client reaches the API with a valid key."""
    return {"message": "Success"}


@router.post("/inference/deploy-sagemaker-endpoint", responses=answers(503))
def deploy_sagemaker_endpoint(body: DeployEndpointRequest, deps: Edge) -> EndpointDeploymentJobView:
    """Starts a deployment job; its endpoint is named ``infer-endpoint-<7 hex>`` when the body names none.

    A name already taken by an endpoint that stands is a deployment job that failed at once, with the
    reason, as the original middleware showed it: listed with ``endpoint_status`` ``failed``, where the
    WebUI extension (which shows any answer as "started") lets the user read why.
    """
    job_id = new_id()
    endpoint_name = body.endpoint_name or f"infer-endpoint-{job_id[:7]}"
    existing = deps.read_model.endpoint_job_named(endpoint_name, include_failed=False)
    if existing is not None:
        return _failed_at_once(
            deps,
            job_id,
            endpoint_name,
            body,
            f"endpoint {endpoint_name} already exists "
            f"(deployment job {existing.id}): delete it first, or choose another name",
        )
    command = EndpointDeploymentRequested(
        job_id=job_id,
        endpoint_name=endpoint_name,
        instance_type=body.instance_type,
        initial_instance_count=body.initial_instance_count,
        autoscaling_enabled=body.autoscaling_enabled,
        requested_at=deps.clock(),
    )
    initial = command.initial_snapshot(version=0)
    send_then_record(deps, command, [initial], correlation_id=job_id)
    return EndpointDeploymentJobView.of(initial)


def _failed_at_once(
    deps: EdgeDependencies, job_id: str, endpoint_name: str, body: DeployEndpointRequest, reason: str
) -> EndpointDeploymentJobView:
    """A deployment that cannot start: recorded failed (version 0, the edge's own), and nothing is sent."""
    now = deps.clock()
    job = EndpointDeploymentChanged(
        id=job_id,
        version=0,
        endpoint_name=endpoint_name,
        instance_type=body.instance_type,
        initial_instance_count=body.initial_instance_count,
        autoscaling_enabled=body.autoscaling_enabled,
        status="failed",
        error=bounded(reason),
        start_time=now,
        end_time=now,
    )
    deps.read_model.apply(job)
    return EndpointDeploymentJobView.of(job)


@router.post("/inference/delete-sagemaker-endpoint", responses=answers(503))
def delete_sagemaker_endpoint(body: DeleteEndpointsRequest, deps: Edge) -> str:
    """Deletes each named endpoint; waits a bounded time and says, in words, what became of each.

    Answers a sentence, as the original middleware did ("Endpoint delete completed"): the WebUI extension
    shows the answer in a text label. A name's deployments refused at once (its name was in use) go with
    it. Names that are unknown or already deleted are skipped and named (the extension sends whatever the
    user ticked).
    """
    named: dict[str, EndpointDeploymentChanged | None] = {}
    for name in body.delete_endpoint_list:
        refusals = _refusals_named(deps, name)
        for refusal in refusals:
            deps.read_model.apply(refusal.model_copy(update={"version": 1, "status": "deleted"}))
        job = deps.read_model.endpoint_job_named(name, include_failed=True)
        if job is not None:
            send(deps, EndpointDeletionRequested(job_id=job.id, endpoint_name=job.endpoint_name), correlation_id=job.id)
        named[name] = job or (refusals[0] if refusals else None)
    deleted = [name for name, job in named.items() if job is not None and _deleted_in_time(deps, job)]
    deleting = [name for name, job in named.items() if job is not None and name not in deleted]
    skipped = [name for name, job in named.items() if job is None]
    parts = [f"Endpoint delete completed: {', '.join(deleted)}" if deleted else "Endpoint delete completed"]
    if deleting:
        parts.append(f"still deleting: {', '.join(deleting)}")
    if skipped:
        parts.append(f"skipped (no such endpoint, or already deleted): {', '.join(skipped)}")
    return bounded("; ".join(parts))


def _refusals_named(deps: EdgeDependencies, name: str) -> list[EndpointDeploymentChanged]:
    """The deployments of ``name`` the edge refused at once (``_failed_at_once``): endpoint-manager never
    heard of them, so the edge removes them itself."""
    jobs = deps.read_model.named(EndpointDeploymentChanged, name)
    return [job for job in jobs if job.version == 0 and job.status == "failed"]


def _deleted_in_time(deps: EdgeDependencies, job: EndpointDeploymentChanged) -> bool:
    current = deps.read_model.wait_for(
        EndpointDeploymentChanged, job.id, lambda j: j.status == "deleted", deps.settings.transition_wait_s
    )
    return current is not None and current.status == "deleted"


@router.get(
    "/inference/list-endpoint-deployment-jobs",
    description=described("Endpoint deployment jobs, newest first."),
    responses=paged_answers(answers(400)),
)
def list_endpoint_deployment_jobs(
    deps: Edge, response: Response, limit: Limit = None, next_token: NextToken = None
) -> list[EndpointDeploymentJobView]:
    page = newest_first(
        deps.read_model.list(EndpointDeploymentChanged),
        list_name="endpoint-deployment-jobs",
        at=lambda job: job.start_time,
        view=EndpointDeploymentJobView.of,
        limit=limit,
        next_token=next_token,
        response=response,
    )
    return page.items


@router.get("/inference/get-endpoint-deployment-job", responses=answers(404))
def get_endpoint_deployment_job(jobID: JobId, deps: Edge) -> EndpointDeploymentJobView:
    """The job with that id; or, given an endpoint's name (as the WebUI extension passes it), the newest
    job of that endpoint, so a failed deployment's reason reaches its user."""
    job = deps.read_model.get(EndpointDeploymentChanged, jobID)
    if job is None:
        jobs = deps.read_model.named(EndpointDeploymentChanged, jobID)
        # Newest first; at the same time, a failed one (what the extension asks a name for is why it failed).
        job = max(jobs, key=lambda j: (j.start_time, j.status == "failed"), default=None)
    if job is None:
        raise not_found(f"no endpoint deployment job or endpoint {jobID}")
    return EndpointDeploymentJobView.of(job)


DeploymentJobId = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, examples=["1f9679f3-25b8-4c44-8345-0a845da30094"])
]


@router.delete("/inference/endpoint-deployment-jobs/{job_id}", responses=answers(404, 409, 503, 504))
def delete_endpoint_deployment_job(job_id: DeploymentJobId, deps: Edge) -> Deleted:
    """Forgets a deployment job whose endpoint is gone (status ``deleted`` or ``failed``); one whose endpoint
    still stands is 409: delete the endpoint first."""
    job = deps.read_model.get(EndpointDeploymentChanged, job_id)
    if job is None:
        raise not_found(f"no endpoint deployment job {job_id}")
    if job.status not in ("deleted", "failed"):
        raise conflict(f"endpoint deployment job {job.id} is {job.status}: delete the endpoint first")
    send(deps, EndpointRecordDeletionRequested(job_id=job.id, requested_at=deps.clock()), correlation_id=job.id)
    await_deleted(deps, EndpointDeploymentChanged, job.id)
    return Deleted(id=job.id)
