"""Operating the local stack (issue 10, item 5): supervision, `restart SERVICE=...`, data kept across down/up.

These tests stop, kill and restart processes, so they run on a stack of their
own (not the session's), started the way `make up` starts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import pytest

from infra.local.stack import LocalStack, StackSettings
from service_kit.worker import RECEIVE_LEASE_S
from tests.conftest import free_port
from tests.e2e.conftest import ApiClient
from tests.e2e.test_assets import put_parts, start_checkpoint, with_random_tail
from tests.model_files import LORA_SD1_SHAPES, safetensors

pytestmark = pytest.mark.e2e
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = StackSettings(
        api_port=free_port(),
        api_key="ops-key",
        emulator_port=free_port(),
        sagemaker_port=free_port(),
        run_dir=tmp_path_factory.mktemp("ops-stack"),
        extra_env={"TRANSITION_WAIT_S": "20"},
        keep_data=True,  # as `make up` does
    )
    local = LocalStack(settings)
    local.up()
    yield local
    local.clean()


@pytest.fixture(scope="module")
def ops_api(own_stack: LocalStack) -> ApiClient:
    return ApiClient(own_stack.settings.base_url, own_stack.settings.api_key)


def wait_until(condition, timeout_s: float, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    return None


def deployment_job(api: ApiClient, job_id: str) -> dict:
    return api.get("/inference/get-endpoint-deployment-job", params={"jobID": job_id}).json()


def in_service_endpoints(stack: LocalStack) -> set[str]:
    s = stack.settings
    keys = {"aws_access_key_id": "l", "aws_secret_access_key": "l"}
    sagemaker = boto3.client("sagemaker", endpoint_url=s.sagemaker_url, region_name=s.region, **keys)
    return {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"] if e["EndpointStatus"] == "InService"}


def deploy(api: ApiClient) -> str:
    deployed = api.post(
        "/inference/deploy-sagemaker-endpoint",
        json={"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 1},
    )
    assert deployed.status_code == 200, deployed.text
    return deployed.json()["EndpointDeploymentJobId"]


def queue_depths(stack: LocalStack, service: str) -> tuple[int, int]:
    s = stack.settings
    sqs = boto3.client(
        "sqs", endpoint_url=s.emulator_url, region_name=s.region, aws_access_key_id="l", aws_secret_access_key="l"
    )
    url = sqs.get_queue_url(QueueName=f"{s.prefix}-{service}")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_a_killed_worker_is_restarted_and_the_job_it_held_finishes(own_stack: LocalStack, ops_api: ApiClient):
    old_pid = own_stack._pids()["endpoint-manager"]
    taken = lambda: queue_depths(own_stack, "endpoint-manager")[0] == 0  # noqa: E731
    for _attempt in range(4):
        # Frozen in its long poll, the worker still receives the deployment command: it holds it.
        os.kill(old_pid, signal.SIGSTOP)
        job_id = deploy(ops_api)
        if wait_until(taken, 1.5):
            break
        # That poll had just ended: let the worker handle this command, and freeze it again.
        os.kill(old_pid, signal.SIGCONT)
        assert wait_until(taken, 10)
        time.sleep(0.2)
    else:
        raise AssertionError("could not freeze the worker in a poll")
    os.kill(old_pid, signal.SIGKILL)
    killed_at = time.monotonic()

    back = wait_until(lambda: own_stack.supervision()["endpoint-manager"]["pid"] not in (None, old_pid), 10)
    assert back, "the supervisor did not restart endpoint-manager"
    assert own_stack.status()["endpoint-manager"]
    finished = wait_until(lambda: deployment_job(ops_api, job_id)["status"] != "inprogress", 60, interval_s=0.5)
    took = time.monotonic() - killed_at
    assert finished and deployment_job(ops_api, job_id)["status"] == "success"
    # The held command came back after the worker's receive lease, not the queue's 360 s visibility timeout.
    assert took < RECEIVE_LEASE_S + 15, f"the job took {took:.1f}s after the kill"
    state = own_stack.supervision()["endpoint-manager"]
    assert state["restarts"] >= 1 and state["last_exit"] == -signal.SIGKILL


def test_restart_one_service(own_stack: LocalStack, ops_api: ApiClient):
    before = own_stack._pids()
    env = {
        **os.environ,
        "SDMW_RUN_DIR": str(own_stack.settings.run_dir),
        "API_PORT": str(own_stack.settings.api_port),
        "EMULATOR_PORT": str(own_stack.settings.emulator_port),
        "LOCAL_SAGEMAKER_PORT": str(own_stack.settings.sagemaker_port),
    }
    command = [sys.executable, "-m", "infra.local.stack", "restart", "endpoint-manager"]
    restarted = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert restarted.returncode == 0, restarted.stderr
    after = own_stack._pids()
    assert after["endpoint-manager"] != before["endpoint-manager"] and own_stack.status()["endpoint-manager"]
    assert {n: p for n, p in after.items() if n != "endpoint-manager"} == {
        n: p for n, p in before.items() if n != "endpoint-manager"
    }, "only the named service restarts"

    # The restarted service works: a deployment finishes, and soon: the stopped worker's last
    # poll did not take the command for nobody (it would have come back only after the lease).
    sent = time.monotonic()
    job_id = deploy(ops_api)
    assert wait_until(lambda: deployment_job(ops_api, job_id)["status"] == "success", 30, interval_s=0.2)
    assert time.monotonic() - sent < RECEIVE_LEASE_S

    unknown = subprocess.run(
        [*command[:-1], "no-such-service"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode != 0 and "endpoint-manager" in unknown.stderr


# Last in this module: it ends with the stack stopped.
def test_down_and_up_keep_a_checkpoint_and_a_finished_job(own_stack: LocalStack, ops_api: ApiClient, tmp_path):
    content = with_random_tail(safetensors(LORA_SD1_SHAPES), 64 * 1024)
    started = start_checkpoint(ops_api, "kept.safetensors", parts=1)
    checkpoint_id = started["checkpoint"]["id"]
    tags = put_parts(started["s3PresignUrl"]["kept.safetensors"], [content], tmp_path)
    done = ops_api.put(
        "/checkpoint",
        json={"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": {"kept.safetensors": tags}},
    )
    assert done.status_code == 200, done.text
    job_id = deploy(ops_api)
    assert wait_until(lambda: deployment_job(ops_api, job_id)["status"] == "success", 30, interval_s=0.5)
    in_service = in_service_endpoints(own_stack)
    assert in_service

    saved = own_stack.down()
    assert saved and saved["objects"] >= 1 and saved["items"] >= 2
    assert not own_stack.running()
    restored = own_stack.up()
    assert restored == {k: saved[k] for k in ("objects", "items")} | {"messages": saved["messages"]}

    listed = ops_api.get("/checkpoints", params={"status": "Active"}).json()["checkpoints"]
    [mine] = [c for c in listed if c["id"] == checkpoint_id]
    assert mine["name"] == ["kept.safetensors"]
    bucket, key = mine["s3Location"].removeprefix("s3://").split("/", 1)
    s = own_stack.settings
    s3 = boto3.client(
        "s3", endpoint_url=s.emulator_url, region_name=s.region, aws_access_key_id="l", aws_secret_access_key="l"
    )
    assert s3.get_object(Bucket=bucket, Key=f"{key}/kept.safetensors")["Body"].read() == content
    assert deployment_job(ops_api, job_id)["status"] == "success"
    # The local SageMaker kept its endpoints, as SageMaker does not forget them when this machine stops.
    assert in_service_endpoints(own_stack) == in_service
    listed_jobs = ops_api.get("/inference/list-endpoint-deployment-jobs").json()
    assert job_id in [j["EndpointDeploymentJobId"] for j in listed_jobs]

    # The services work on the kept data: the checkpoint can be disabled.
    disabled = ops_api.put("/checkpoint", json={"checkpoint_id": checkpoint_id, "status": "Disabled"})
    assert disabled.status_code == 200, disabled.text

    # A clean start (`make clean`) stops without saving and forgets the data: the next `up` starts empty.
    own_stack.clean()
    assert not own_stack.running() and not own_stack.data_dir.exists()
