"""Scenario 1 of the seed API, "Deploy a new Endpoint", driven over HTTP as its code samples do."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.e2e.conftest import LOCAL_INSTANCE_QUOTA, ApiClient

pytestmark = pytest.mark.e2e


def poll_until_finished(api: ApiClient, job_id: str, timeout_s: float = 90) -> dict:
    """List deployment jobs until ours leaves inprogress, as the seed tells clients to."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = api.get("/inference/list-endpoint-deployment-jobs")
        assert listed.status_code == 200
        job = next(j for j in listed.json() if j["EndpointDeploymentJobId"] == job_id)
        if job["status"] != "inprogress":
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still inprogress after {timeout_s}s")


@contextmanager
def in_service_endpoint(api: ApiClient, name: str) -> Iterator[str]:
    """A one-instance endpoint called ``name``, in service for the ``with`` block, deleted after it."""
    deployed = api.post(
        "/inference/deploy-sagemaker-endpoint",
        json={"instance_type": "ml.g5.xlarge", "initial_instance_count": 1, "endpoint_name": name},
    )
    assert deployed.status_code == 200, deployed.text
    job = poll_until_finished(api, deployed.json()["EndpointDeploymentJobId"])
    assert job["status"] == "success", job
    try:
        yield name
    finally:
        api.post("/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [name]})


def test_deploy_list_get_and_delete_an_endpoint(api: ApiClient):
    # The seed's sample sends the count as a string.
    deployed = api.post(
        "/inference/deploy-sagemaker-endpoint",
        json={"instance_type": "ml.g4dn.xlarge", "initial_instance_count": "1"},
    )
    assert deployed.status_code == 200, deployed.text
    job_id = deployed.json()["EndpointDeploymentJobId"]
    endpoint_name = deployed.json()["endpoint_name"]
    assert endpoint_name == f"infer-endpoint-{job_id[:7]}"

    right_after = api.get("/inference/get-endpoint-deployment-job", params={"jobID": job_id})
    assert right_after.status_code == 200 and right_after.json()["status"] == "inprogress"

    finished = poll_until_finished(api, job_id)
    assert finished["status"] == "success", finished
    assert finished["endpoint_status"] == "InService"

    job = api.get("/inference/get-endpoint-deployment-job", params={"jobID": job_id}).json()
    assert job["EndpointDeploymentJobId"] == job_id
    assert job["endpoint_name"] == endpoint_name
    assert job["endpoint_status"] == "InService" and job["status"] == "success"
    assert job["startTime"] < job["endTime"]

    deleted = api.post("/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [endpoint_name]})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == f"Endpoint delete completed: {endpoint_name}"
    listed = api.get("/inference/list-endpoint-deployment-jobs").json()
    assert next(j for j in listed if j["EndpointDeploymentJobId"] == job_id)["status"] == "deleted"


def test_deploy_with_the_old_middlewares_fields(api: ApiClient, autoscaling_note: str):
    deployed = api.post(
        "/inference/deploy-sagemaker-endpoint",
        json={
            "instance_type": "ml.g5.xlarge",
            "initial_instance_count": 2,
            "endpoint_name": "e2e-named-endpoint",
            "autoscaling_enabled": "true",  # a string, as a form may send it
        },
    )
    assert deployed.status_code == 200, deployed.text
    job_id = deployed.json()["EndpointDeploymentJobId"]
    again = api.post(
        "/inference/deploy-sagemaker-endpoint",
        json={"instance_type": "ml.g5.xlarge", "initial_instance_count": 1, "endpoint_name": "e2e-named-endpoint"},
    )
    # The name is in use: a deployment that failed at once, saying why (nothing is sent to SageMaker).
    assert again.status_code == 200, again.text
    assert again.json()["status"] == again.json()["endpoint_status"] == "failed"
    assert f"(deployment job {job_id})" in again.json()["error"]

    finished = poll_until_finished(api, job_id)
    assert (finished["status"], finished["endpoint_name"]) == ("success", "e2e-named-endpoint"), finished
    assert finished["autoscaling_enabled"] is True and finished["error"] == autoscaling_note
    deleted = api.post("/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": ["e2e-named-endpoint"]})
    assert deleted.json() == "Endpoint delete completed: e2e-named-endpoint"
    listed = api.get("/inference/list-endpoint-deployment-jobs").json()
    assert {j["status"] for j in listed if j["endpoint_name"] == "e2e-named-endpoint"} == {"deleted"}


def test_a_deployment_over_quota_fails_with_the_reason(api: ApiClient):
    # Counts as the extension sends them (strings); the account's quota, not the API, is the limit.
    deployed = api.post(
        "/inference/deploy-sagemaker-endpoint",
        json={"endpoint_name": "", "instance_type": "ml.g4dn.2xlarge", "initial_instance_count": "4"},
    )
    assert deployed.status_code == 200, deployed.text
    job_id = deployed.json()["EndpointDeploymentJobId"]
    second = api.post(
        "/inference/deploy-sagemaker-endpoint",
        json={
            "endpoint_name": "",
            "instance_type": "ml.g4dn.2xlarge",
            "initial_instance_count": str(LOCAL_INSTANCE_QUOTA - 3),
        },
    )
    assert second.status_code == 200, second.text
    second_id = second.json()["EndpointDeploymentJobId"]
    outcomes = {poll_until_finished(api, job_id)["status"], poll_until_finished(api, second_id)["status"]}
    assert outcomes == {"success", "failed"}
    failed = next(
        api.get("/inference/get-endpoint-deployment-job", params={"jobID": i}).json()
        for i in (job_id, second_id)
        if api.get("/inference/get-endpoint-deployment-job", params={"jobID": i}).json()["status"] == "failed"
    )
    assert "ResourceLimitExceeded" in failed["error"], failed
    assert failed["endTime"] and failed["EndpointDeploymentJobId"] in (job_id, second_id)
    succeeded = next(i for i in (job_id, second_id) if i != failed["EndpointDeploymentJobId"])
    name = api.get("/inference/get-endpoint-deployment-job", params={"jobID": succeeded}).json()["endpoint_name"]
    deleted = api.post(
        "/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [name, failed["endpoint_name"]]}
    )
    assert deleted.status_code == 200
    assert deleted.json() == f"Endpoint delete completed: {name}, {failed['endpoint_name']}"
    # Both leave the extension's list: a failed job it deletes shows endpoint_status "deleted" too.
    listed = {j["EndpointDeploymentJobId"]: j for j in api.get("/inference/list-endpoint-deployment-jobs").json()}
    assert [listed[i]["endpoint_status"] for i in (job_id, second_id)] == ["deleted", "deleted"]


def test_an_unknown_job_is_404_and_deleting_unknown_endpoints_deletes_nothing(api: ApiClient):
    assert api.get("/inference/get-endpoint-deployment-job", params={"jobID": "no-such-job"}).status_code == 404
    before = api.get("/inference/list-endpoint-deployment-jobs").json()
    # The WebUI extension sends whatever was ticked: unknown and already deleted names are skipped.
    missing = api.post("/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": ["no-such-endpoint"]})
    assert missing.status_code == 200
    assert (
        missing.json() == "Endpoint delete completed; skipped (no such endpoint, or already deleted): no-such-endpoint"
    )
    assert api.get("/inference/list-endpoint-deployment-jobs").json() == before


def test_the_extensions_deploy_an_empty_name_a_string_count_and_no_end_time_until_done(api: ApiClient):
    deployed = api.post(
        "/inference/deploy-sagemaker-endpoint",
        json={
            "endpoint_name": "",
            "instance_type": "ml.g5.xlarge",
            "initial_instance_count": "1",
            "autoscaling_enabled": False,
        },
    )
    assert deployed.status_code == 200, deployed.text
    started = deployed.json()
    job_id = started["EndpointDeploymentJobId"]
    assert started["endpoint_name"] == f"infer-endpoint-{job_id[:7]}"
    assert re.fullmatch(r"infer-endpoint-[0-9a-f]{7}", started["endpoint_name"]) and "endTime" not in started
    assert started["initial_instance_count"] == 1 and started["autoscaling_enabled"] is False
    # Rows 2 and 5: while it runs, endTime is absent (the client shows "N/A"), not null.
    listed = next(
        j for j in api.get("/inference/list-endpoint-deployment-jobs").json() if j["EndpointDeploymentJobId"] == job_id
    )
    got = api.get("/inference/get-endpoint-deployment-job", params={"jobID": job_id}).json()
    for shown in (listed, got):
        assert {"EndpointDeploymentJobId", "endpoint_name", "endpoint_status", "status", "error"} <= set(shown)
        assert shown["status"] != "inprogress" or "endTime" not in shown, shown
    finished = poll_until_finished(api, job_id)
    assert finished["status"] == "success" and finished["endTime"] and finished["endpoint_status"] == "InService"
    assert api.get("/inference/get-endpoint-deployment-job", params={"jobID": job_id}).json()["error"] == ""
    name = finished["endpoint_name"]
    deleted = api.post(
        "/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [name, "no-such-endpoint"]}
    )
    assert deleted.json() == (
        f"Endpoint delete completed: {name}; skipped (no such endpoint, or already deleted): no-such-endpoint"
    )
    listed = api.get("/inference/list-endpoint-deployment-jobs").json()
    assert next(j for j in listed if j["endpoint_name"] == name)["endpoint_status"] == "deleted"
    # Already deleted: skipped, still 200.
    again = api.post("/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [name]})
    assert again.status_code == 200 and again.json().endswith(f"already deleted): {name}")
