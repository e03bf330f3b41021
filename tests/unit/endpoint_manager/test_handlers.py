"""endpoint-manager handlers over fakes (test doubles) of SageMaker and of the snapshot table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from endpoint_manager.handlers import UnknownJob
from endpoint_manager.jobs import Job
from endpoint_manager.sagemaker import AUTOSCALING_NOT_OFFERED, AutoscalingNotOffered, EndpointSpec, EndpointState
from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import EndpointDeletionRequested, EndpointDeploymentRequested
from service_kit.events import RecordingPublisher
from service_kit.messages import BusEvent


@dataclass
class FakeEndpoints:
    """Test double of the SageMaker gateway: remembers calls, answers a scripted state."""

    created: list[EndpointSpec] = field(default_factory=list)
    deleted: list[EndpointSpec] = field(default_factory=list)
    autoscaled: list[str] = field(default_factory=list)
    states: dict[str, EndpointState] = field(default_factory=dict)
    refuse_with: str | None = None

    def create(self, spec: EndpointSpec) -> None:
        if self.refuse_with:
            raise ClientError(
                {"Error": {"Code": "ResourceLimitExceeded", "Message": self.refuse_with}}, "CreateEndpoint"
            )
        self.created.append(spec)
        self.states[spec.endpoint_name] = EndpointState("Creating")

    def delete(self, spec: EndpointSpec) -> None:
        self.deleted.append(spec)
        self.states.pop(spec.endpoint_name, None)

    def describe(self, endpoint_name: str) -> EndpointState | None:
        return self.states.get(endpoint_name)

    def enable_autoscaling(self, endpoint_name: str, max_instances: int) -> None:
        self.autoscaled.append(endpoint_name)


def command_event(command) -> BusEvent:
    envelope = EventEnvelope.wrap(command, producer="api-gateway", correlation_id=command.job_id)
    return BusEvent(
        id="e",
        source="sdmw.api-gateway",
        detail_type=command.detail_type(),
        detail=json.loads(envelope.model_dump_json()),
    )


def state_event(name: str, status: str) -> BusEvent:
    detail = {"EndpointName": name, "EndpointStatus": status}
    return BusEvent(id="aws-1", source="aws.sagemaker", detail_type="SageMaker Endpoint State Change", detail=detail)


DEPLOY = EndpointDeploymentRequested(
    job_id="job-1",
    endpoint_name="infer-endpoint-job1",
    instance_type="ml.g4dn.xlarge",
    initial_instance_count=2,
    requested_at=datetime(2024, 1, 1, tzinfo=UTC),
)


def last_job(publisher: RecordingPublisher) -> dict:
    return publisher.of_type("EndpointDeploymentChanged")[-1]["data"]


def test_deploy_creates_the_endpoint_and_publishes_creating(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    assert [s.endpoint_name for s in endpoints.created] == ["infer-endpoint-job1"]
    assert endpoints.created[0].instance_count == 2
    job = last_job(publisher)
    assert (job["status"], job["endpoint_status"], job["version"]) == ("inprogress", "Creating", 2)


def test_a_redelivered_deploy_creates_nothing_twice_but_publishes_again(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    route.dispatch(command_event(DEPLOY))
    assert len(endpoints.created) == 1
    events = publisher.of_type("EndpointDeploymentChanged")
    assert [e["data"]["version"] for e in events] == [2, 2]
    assert events[0]["metadata"]["event_id"] == events[1]["metadata"]["event_id"]


def test_a_refused_creation_fails_the_job_with_sagemakers_reason(world):
    deps, endpoints, publisher, route = world
    endpoints.refuse_with = "account quota for ml.g4dn.xlarge exceeded"
    route.dispatch(command_event(DEPLOY))
    job = last_job(publisher)
    assert job["status"] == "failed"
    assert "ResourceLimitExceeded" in job["error"] and "quota" in job["error"]
    assert job["end_time"] is not None


def test_in_service_makes_the_job_a_success(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    endpoints.states["infer-endpoint-job1"] = EndpointState("InService")
    route.dispatch(state_event("infer-endpoint-job1", "InService"))
    job = last_job(publisher)
    assert (job["status"], job["endpoint_status"], job["error"]) == ("success", "InService", "")


def test_a_late_creating_event_does_not_undo_in_service(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    endpoints.states["infer-endpoint-job1"] = EndpointState("InService")
    route.dispatch(state_event("infer-endpoint-job1", "InService"))
    published = len(publisher.published)
    route.dispatch(state_event("infer-endpoint-job1", "Creating"))  # late; SageMaker now says InService
    assert len(publisher.published) == published
    assert deps.jobs.get(Job, "job-1").status == "success"


def test_failed_endpoint_fails_the_job_with_the_reason(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    endpoints.states["infer-endpoint-job1"] = EndpointState("Failed", "instance exited with code 3")
    route.dispatch(state_event("infer-endpoint-job1", "Failed"))
    job = last_job(publisher)
    assert (job["status"], job["endpoint_status"]) == ("failed", "Failed")
    assert job["error"] == "instance exited with code 3"


def test_autoscaling_is_enabled_once_in_service(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY.model_copy(update={"autoscaling_enabled": True})))
    endpoints.states["infer-endpoint-job1"] = EndpointState("InService")
    route.dispatch(state_event("infer-endpoint-job1", "InService"))
    assert endpoints.autoscaled == ["infer-endpoint-job1"]


def test_autoscaling_not_offered_leaves_the_deploy_a_success_with_the_limitation_noted(world):
    deps, endpoints, publisher, route = world

    def not_offered(endpoint_name: str, max_instances: int) -> None:
        raise AutoscalingNotOffered(AUTOSCALING_NOT_OFFERED)

    endpoints.enable_autoscaling = not_offered
    route.dispatch(command_event(DEPLOY.model_copy(update={"autoscaling_enabled": True})))
    endpoints.states["infer-endpoint-job1"] = EndpointState("InService")
    route.dispatch(state_event("infer-endpoint-job1", "InService"))
    job = last_job(publisher)
    assert (job["status"], job["endpoint_status"]) == ("success", "InService")
    assert "autoscaling failed" in job["error"] and "LocalStack's free edition" in job["error"]


def test_a_state_change_goes_to_the_live_job_of_that_endpoint_among_all_jobs(world):
    """Found by the endpoint's name: a deleted job of the same name and other endpoints' jobs are passed over."""
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    route.dispatch(command_event(EndpointDeletionRequested(job_id="job-1", endpoint_name="infer-endpoint-job1")))
    for n in range(2, 6):
        route.dispatch(command_event(DEPLOY.model_copy(update={"job_id": f"job-{n}", "endpoint_name": f"other-{n}"})))
    route.dispatch(command_event(DEPLOY.model_copy(update={"job_id": "job-again"})))
    endpoints.states["infer-endpoint-job1"] = EndpointState("InService")
    reads_before = deps.jobs.items_read
    route.dispatch(state_event("infer-endpoint-job1", "InService"))
    # the two jobs of that name, each found in the index and read; none of the other endpoints' jobs
    assert deps.jobs.items_read - reads_before == 2 * 2
    job = last_job(publisher)
    assert (job["id"], job["status"]) == ("job-again", "success")
    assert deps.jobs.get(Job, "job-1").status == "deleted"


def test_state_change_of_a_foreign_endpoint_is_ignored(world):
    deps, endpoints, publisher, route = world
    route.dispatch(state_event("someone-elses-endpoint", "InService"))
    assert publisher.published == []


def test_delete_removes_everything_and_marks_the_job_deleted(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    route.dispatch(command_event(EndpointDeletionRequested(job_id="job-1", endpoint_name="infer-endpoint-job1")))
    spec = endpoints.deleted[0]
    assert (spec.endpoint_name, spec.config_name, spec.model_name) == (
        "infer-endpoint-job1",
        "config-job-1",
        "model-job-1",
    )
    job = last_job(publisher)
    assert (job["status"], job["endpoint_status"]) == ("deleted", "deleted")


def test_deleting_a_failed_deployment_cleans_up_and_shows_it_deleted(world):
    # The WebUI extension hides only jobs whose endpoint_status is "deleted", so a failed job it
    # deletes must end there too.
    deps, endpoints, publisher, route = world
    endpoints.refuse_with = "account quota for ml.g4dn.xlarge exceeded"
    route.dispatch(command_event(DEPLOY))
    failed = last_job(publisher)
    route.dispatch(command_event(EndpointDeletionRequested(job_id="job-1", endpoint_name="infer-endpoint-job1")))
    job = last_job(publisher)
    assert (job["status"], job["endpoint_status"], job["error"]) == ("deleted", "deleted", failed["error"])
    assert job["end_time"] == failed["end_time"]  # it ended when it failed


def test_a_redelivered_deletion_deletes_nothing_more_but_publishes_again(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    deletion = command_event(EndpointDeletionRequested(job_id="job-1", endpoint_name="infer-endpoint-job1"))
    route.dispatch(deletion)
    route.dispatch(deletion)
    assert len(endpoints.deleted) == 1
    first, second = publisher.of_type("EndpointDeploymentChanged")[-2:]
    assert first["data"] == second["data"] and second["data"]["endpoint_status"] == "deleted"


def test_deleting_an_unknown_job_is_retried_not_dropped(world):
    deps, endpoints, publisher, route = world
    with pytest.raises(UnknownJob):
        route.dispatch(command_event(EndpointDeletionRequested(job_id="nope", endpoint_name="x")))


def test_the_deployments_runtime_settings_reach_every_endpoints_container(monkeypatch):
    from endpoint_manager.settings import EndpointManagerSettings
    from tests.conftest import SERVICE_ENVIRONMENT

    environ = {
        "SD_RUNTIME_CAPTION_MODEL": "s3://b/blip/",
        "SD_RUNTIME_SINGLE_FILE_CONFIG": "",
        "SD_RUNTIME_COMPILE_UNET": "max-autotune-no-cudagraphs",
        "HOME": "/root",
    }
    for name, value in {**SERVICE_ENVIRONMENT, **environ, "SDMW_BUCKET": "b"}.items():
        monkeypatch.setenv(name, value)
    settings = EndpointManagerSettings()
    expected = {
        "SDMW_BUCKET": "b",
        "SDMW_EVENT_BUS": SERVICE_ENVIRONMENT["SDMW_EVENT_BUS"],
        "SD_RUNTIME_CAPTION_MODEL": "s3://b/blip/",
        "SD_RUNTIME_COMPILE_UNET": "max-autotune-no-cudagraphs",
    }
    assert settings.container_environment() == settings.runtime().container_environment == expected
