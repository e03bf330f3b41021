"""A dataset of 5,000 items through the public API, while another user's inference jobs stay quick.

The create command and the dataset's fact are over EventBridge's 256 KB, so both
travel by claim check; the read model gets one fact per change of the dataset,
not one per item, so the projection does not back up behind it. The endpoint's
container is `bench/instant_runtime.py`, so a job's time is the middleware's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.inference_dispatch import Client, run_job, set_up, start_stack
from bench.projection_backlog import bucket_of, upload_items
from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e

ITEMS = 5000
#: submit -> succeed visible through the API; about 0.25 s on a quiet system.
JOB_BOUND_S = 3.0


@pytest.fixture(scope="module")
def instant_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = start_stack(Path(tmp_path_factory.mktemp("large-dataset")), "stack")
    try:
        set_up(Client(stack), instances=1)
        yield stack
    finally:
        stack.down()


def job_seconds(client: Client) -> float:
    submitted, _, seen, _ = run_job(client)
    return seen - submitted


def test_a_dataset_of_5000_items_is_enabled_and_listed_while_jobs_stay_quick(instant_stack: LocalStack):
    client = Client(instant_stack)
    name = f"big-{int(time.time())}"
    content = [
        {"filename": f"/home/bench/pictures/img_{n:05}.png", "name": f"img_{n:05}.png", "type": "image"}
        for n in range(ITEMS)
    ]
    created = client.send("POST", "/dataset", {"dataset_name": name, "content": content, "params": {"k": "v"}})
    assert len(created["s3PresignUrl"]) == ITEMS
    # Another user's job while the dataset's creation is projected.
    assert job_seconds(client) < JOB_BOUND_S

    upload_items(instant_stack, name, ITEMS, bucket_of(next(iter(created["s3PresignUrl"].values()))))

    with ThreadPoolExecutor(1) as pool:
        enabling = pool.submit(client.send, "PUT", "/dataset", {"dataset_name": name, "status": "Enabled"})
        # ... and one while its enabling is projected.
        assert job_seconds(client) < JOB_BOUND_S
        assert enabling.result()["status"] == "Enabled"

    listed = client.get("/datasets", dataset_status="Enabled")["datasets"]
    assert next(d for d in listed if d["datasetName"] == name)["k"] == "v"
    data = client.get(f"/dataset/{name}/data")["data"]
    assert len(data) == ITEMS and {item["dataStatus"] for item in data} == {"Enabled"}
    assert data[0]["name"] == "img_00000.png" and data[-1]["name"] == f"img_{ITEMS - 1:05}.png"
