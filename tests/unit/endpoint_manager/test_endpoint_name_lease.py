"""One live deployment per endpoint name: two deploys of one name at once, and a name SageMaker still holds.

The attack: 20 of 20 pairs of concurrent deploys of one name were both accepted; each pair left one job
Creating forever and leaked a model and a config. And redeploying a name whose endpoint is Failed sat
Creating, because SageMaker's "already exists" counted as created.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from endpoint_manager.handlers import Dependencies, router
from endpoint_manager.jobs import Job
from endpoint_manager.leases import EndpointNameLease, acquire
from endpoint_manager.sagemaker import EndpointSpec, SageMakerEndpoints
from sdmw_contracts.events import EndpointDeploymentRequested
from service_kit.events import RecordingPublisher
from service_kit.snapshots import SnapshotTable
from tests.conftest import create_service_table
from tests.unit.endpoint_manager.test_autoscaling import SETTINGS
from tests.unit.endpoint_manager.test_handlers import FakeEndpoints, command_event

NAME = "shared-name"


def deploy(job_id: str) -> EndpointDeploymentRequested:
    return EndpointDeploymentRequested(
        job_id=job_id,
        endpoint_name=NAME,
        instance_type="ml.g4dn.xlarge",
        initial_instance_count=1,
        requested_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def test_of_two_deploys_of_one_name_at_once_one_creates_and_the_other_fails_saying_why(mocked_aws):
    table = SnapshotTable(create_service_table("sdmw-endpoint-manager"), boto3.resource("dynamodb"))
    endpoints, publisher = FakeEndpoints(), RecordingPublisher()
    deps = Dependencies(jobs=table, endpoints=endpoints, publisher=publisher, logger=Logger(service="test"))
    route = router(deps)
    for _ in range(10):  # rounds of two concurrent commands, each a new pair of jobs
        endpoints.created.clear()
        pair = [f"job-{len(publisher.published)}-{n}" for n in range(2)]
        start = threading.Barrier(2)

        def handle(job_id: str, start: threading.Barrier = start) -> None:
            start.wait()
            route.dispatch(command_event(deploy(job_id)))

        threads = [threading.Thread(target=handle, args=(job_id,)) for job_id in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        jobs = [table.get(Job, job_id) for job_id in pair]
        assert sorted(job.status for job in jobs) == ["failed", "inprogress"]
        [loser] = [job for job in jobs if job.status == "failed"]
        [winner] = [job for job in jobs if job.status == "inprogress"]
        assert loser.error.startswith(f"the endpoint name {NAME} is in use by deployment job {winner.id}")
        assert [spec.model_name for spec in endpoints.created] == [f"model-{winner.id}"]  # nothing leaked
        # The round's winner ends (deleted), so the next round's pair may take the name.
        table.save(replace_job(winner, status="deleted"))


def replace_job(job: Job, **changes: object) -> Job:
    return job.model_copy(update={**changes, "version": job.version + 1})


def test_a_lease_whose_holder_finished_or_never_existed_is_taken_over(mocked_aws):
    table = SnapshotTable(create_service_table("sdmw-endpoint-manager"), boto3.resource("dynamodb"))
    assert acquire(table, NAME, "job-a", is_live=lambda _: True) is None
    assert acquire(table, NAME, "job-a", is_live=lambda _: True) is None  # a redelivery: still its own
    assert acquire(table, NAME, "job-b", is_live=lambda holder: holder == "job-a") == "job-a"
    assert acquire(table, NAME, "job-b", is_live=lambda _: False) is None  # job-a finished
    assert table.get(EndpointNameLease, NAME).holder == "job-b"


class SageMakerRefusingExistingNames:
    """A test double around moto's SageMaker client: moto overwrites an endpoint created again under its
    name, where SageMaker refuses with ``ValidationException: Cannot create already existing endpoint``."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create_endpoint(self, **request: Any) -> Any:
        names = {e["EndpointName"] for e in self._client.list_endpoints()["Endpoints"]}
        if request["EndpointName"] in names:
            message = f'Cannot create already existing endpoint "{request["EndpointName"]}".'
            raise ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "CreateEndpoint")
        return self._client.create_endpoint(**request)


def test_redeploying_a_name_sagemaker_still_holds_fails_at_once_and_leaves_that_endpoint(mocked_aws):
    sagemaker = boto3.client("sagemaker")
    endpoints = SageMakerEndpoints(SETTINGS, sagemaker=SageMakerRefusingExistingNames(sagemaker))
    earlier = EndpointSpec(NAME, "model-earlier", "config-earlier", "ml.g4dn.xlarge", 1)
    endpoints.create(earlier)  # an earlier deployment's endpoint (Failed, say), still in SageMaker

    table = SnapshotTable(create_service_table("sdmw-endpoint-manager"), boto3.resource("dynamodb"))
    deps = Dependencies(jobs=table, endpoints=endpoints, publisher=RecordingPublisher(), logger=Logger(service="t"))
    router(deps).dispatch(command_event(deploy("job-new")))

    job = table.get(Job, "job-new")
    assert job.status == "failed"
    assert job.error.startswith(f"SageMaker already has an endpoint named {NAME}")
    found = sagemaker.describe_endpoint(EndpointName=NAME)
    assert found["EndpointConfigName"] == "config-earlier"  # the earlier endpoint is left alone
    configs = {c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]}
    models = {m["ModelName"] for m in sagemaker.list_models()["Models"]}
    assert "config-job-new" not in configs and "model-job-new" not in models  # nothing of the refused job is left


def test_a_redelivered_create_of_its_own_endpoint_still_counts_as_created(mocked_aws):
    endpoints = SageMakerEndpoints(SETTINGS, sagemaker=SageMakerRefusingExistingNames(boto3.client("sagemaker")))
    spec = EndpointSpec(NAME, "model-job-1", "config-job-1", "ml.g4dn.xlarge", 1)
    endpoints.create(spec)
    endpoints.create(replace(spec))  # the same deployment again: no NameTaken
    assert boto3.client("sagemaker").describe_endpoint(EndpointName=NAME)["EndpointConfigName"] == "config-job-1"
