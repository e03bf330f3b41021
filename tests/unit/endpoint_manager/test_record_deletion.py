"""endpoint-manager forgets a deployment job whose endpoint is gone (EndpointRecordDeletionRequested)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from endpoint_manager.handlers import UnknownJob
from endpoint_manager.jobs import Job
from sdmw_contracts.events import EndpointDeletionRequested
from sdmw_contracts.events.endpoints import EndpointRecordDeletionRequested
from tests.unit.endpoint_manager.test_handlers import DEPLOY, command_event, last_job

FORGET = EndpointRecordDeletionRequested(job_id="job-1", requested_at=datetime(2024, 2, 1, tzinfo=UTC))
DELETE_ENDPOINT = EndpointDeletionRequested(job_id="job-1", endpoint_name="infer-endpoint-job1")


def test_a_job_whose_endpoint_was_deleted_is_forgotten(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    route.dispatch(command_event(DELETE_ENDPOINT))
    route.dispatch(command_event(FORGET))
    job = last_job(publisher)
    assert job["deleted_at"] is not None and job["status"] == "deleted"
    assert deps.jobs.get(Job, "job-1").is_deleted


def test_a_failed_job_is_forgotten(world):
    deps, endpoints, publisher, route = world
    endpoints.refuse_with = "quota"
    route.dispatch(command_event(DEPLOY))
    route.dispatch(command_event(FORGET))
    assert last_job(publisher)["deleted_at"] is not None


def test_a_job_with_an_endpoint_is_kept(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    route.dispatch(command_event(FORGET))
    job = last_job(publisher)
    assert job["deleted_at"] is None and job["status"] == "inprogress"
    assert endpoints.deleted == []


def test_a_repeated_record_deletion_publishes_the_same_snapshot(world):
    deps, endpoints, publisher, route = world
    route.dispatch(command_event(DEPLOY))
    route.dispatch(command_event(DELETE_ENDPOINT))
    route.dispatch(command_event(FORGET))
    route.dispatch(command_event(FORGET))
    first, second = publisher.of_type("EndpointDeploymentChanged")[-2:]
    assert first["data"] == second["data"]


def test_a_record_deletion_before_the_job_is_known_is_retried(world):
    deps, endpoints, publisher, route = world
    with pytest.raises(UnknownJob):
        route.dispatch(command_event(FORGET))
