"""endpoint-manager's sweep: no deployment job stays wrong for good (issue 20, item 2: jobs left ``Creating``).

Each round it asks SageMaker about every open job, as the state-change handler would, so a lost event, an
endpoint removed outside the system or a command that never ran cannot leave a job ``Creating`` or
``InService`` forever.
"""

from __future__ import annotations

from datetime import timedelta

from botocore.exceptions import ClientError

from endpoint_manager.jobs import START_WITHIN, Job
from endpoint_manager.sagemaker import EndpointState
from service_kit.messages import BusEvent
from service_kit.resources import SCHEDULED_EVENT
from tests.unit.endpoint_manager.test_handlers import DEPLOY, command_event, last_job

NAME = DEPLOY.endpoint_name


def sweep() -> BusEvent:
    return BusEvent(id="tick", source="aws.events", detail_type=SCHEDULED_EVENT, detail={})


def test_a_lost_in_service_event_is_made_good_by_the_sweep(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    endpoints.states[NAME] = EndpointState("InService")  # SageMaker's state-change event never came
    route.dispatch(sweep())
    job = last_job(publisher)
    assert (job["status"], job["endpoint_status"]) == ("success", "InService")
    published = len(publisher.published)
    route.dispatch(sweep())  # nothing changed: nothing saved, nothing published
    assert len(publisher.published) == published


def test_an_endpoint_removed_outside_the_system_fails_its_job(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    endpoints.states[NAME] = EndpointState("InService")
    route.dispatch(sweep())
    del endpoints.states[NAME]  # deleted in the console, or gone with the local stack
    route.dispatch(sweep())
    job = last_job(publisher)
    assert job["status"] == "failed" and "no longer exists" in job["error"]
    route.dispatch(sweep())  # a failed job is no longer read: finished jobs leave the due index
    assert deps.jobs.due(Job, deps.clock()) == []


def test_a_deployment_that_never_started_fails_after_a_bound(world):
    deps, endpoints, publisher, route = world
    deps.jobs.save(DEPLOY.initial_snapshot(version=1))  # saved, then its command dead-lettered
    start = DEPLOY.requested_at
    deps.clock = lambda: start + START_WITHIN - timedelta(seconds=1)
    route.dispatch(sweep())
    assert publisher.of_type("EndpointDeploymentChanged") == [] and endpoints.created == []
    deps.clock = lambda: start + START_WITHIN
    route.dispatch(sweep())
    job = last_job(publisher)
    assert job["status"] == "failed" and "did not start within 15 minutes" in job["error"]


class ThrottledOnce:
    """Test double of the SageMaker gateway's describe: the first call is throttled, as AWS may."""

    def __init__(self, endpoints) -> None:
        self.endpoints, self.calls = endpoints, 0

    def __call__(self, name: str) -> EndpointState | None:
        self.calls += 1
        if self.calls == 1:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "DescribeEndpoint")
        return self.endpoints.states.get(name)


def test_one_jobs_error_does_not_stop_the_others(world):
    deps, endpoints, publisher, route = world
    other = DEPLOY.model_copy(update={"job_id": "job-2", "endpoint_name": "infer-endpoint-job2"})
    route.dispatch(command_event(DEPLOY))
    route.dispatch(command_event(other))
    endpoints.states[NAME] = endpoints.states["infer-endpoint-job2"] = EndpointState("InService")
    endpoints.describe = ThrottledOnce(endpoints)
    route.dispatch(sweep())
    statuses = sorted(deps.jobs.get(Job, i).status for i in ("job-1", "job-2"))
    assert statuses == ["inprogress", "success"]
    route.dispatch(sweep())  # the throttled one, the next round
    assert {deps.jobs.get(Job, i).status for i in ("job-1", "job-2")} == {"success"}
