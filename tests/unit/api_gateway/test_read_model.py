"""The read model applies snapshots only when newer: order and duplicates do not matter."""

from datetime import UTC, datetime

import boto3
import pytest

from api_gateway.read_model import ReadModel
from sdmw_contracts.events import EndpointDeploymentChanged
from service_kit.snapshots import SnapshotTable
from tests.conftest import create_service_table


def job(version: int, status: str = "inprogress", endpoint_status: str | None = None) -> EndpointDeploymentChanged:
    return EndpointDeploymentChanged(
        id="job-1",
        version=version,
        endpoint_name="infer-endpoint-job1",
        instance_type="ml.g4dn.xlarge",
        initial_instance_count=1,
        status=status,
        endpoint_status=endpoint_status,
        start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def read_model(mocked_aws) -> ReadModel:
    return ReadModel(SnapshotTable(create_service_table("read-model"), boto3.resource("dynamodb")))


def test_initial_snapshot_is_replaced_by_the_owners_first_event(read_model):
    assert read_model.apply(job(0))
    assert read_model.apply(job(1, endpoint_status="Creating"))
    assert read_model.get(EndpointDeploymentChanged, "job-1").endpoint_status == "Creating"


def test_an_older_snapshot_arriving_late_changes_nothing(read_model):
    read_model.apply(job(3, "success", "InService"))
    assert not read_model.apply(job(2, endpoint_status="Creating"))
    assert not read_model.apply(job(0))
    current = read_model.get(EndpointDeploymentChanged, "job-1")
    assert (current.version, current.status, current.endpoint_status) == (3, "success", "InService")


def test_a_duplicate_is_applied_once(read_model):
    assert read_model.apply(job(2, endpoint_status="Creating"))
    assert not read_model.apply(job(2, endpoint_status="Creating"))
    assert len(read_model.list(EndpointDeploymentChanged)) == 1


def test_any_order_converges_to_the_newest(read_model):
    for version in (2, 4, 1, 3, 4, 0):
        read_model.apply(job(version, endpoint_status=f"v{version}"))
    assert read_model.get(EndpointDeploymentChanged, "job-1").endpoint_status == "v4"


def test_endpoint_job_named_skips_finished_jobs(read_model):
    read_model.apply(job(5, "deleted", "Deleted"))
    assert read_model.endpoint_job_named("infer-endpoint-job1", include_failed=True) is None
    failed = job(2, "failed").model_copy(update={"id": "job-2"})
    read_model.apply(failed)
    assert read_model.endpoint_job_named("infer-endpoint-job1", include_failed=False) is None
    assert read_model.endpoint_job_named("infer-endpoint-job1", include_failed=True).id == "job-2"
