"""An inference job watched as it runs, stopped, and cleaned up after, end to end on the tiny pipeline.

Progress: the runtime reports its steps on the bus at most once a second, inference-dispatcher turns each
report into the job's next snapshot, and a job's own webhook (``webhook_events_filter: progress``) gets
every one of them, then the final state. Cancel: the dispatcher writes the job's cancel marker and shows
the job cancelled at once; the runtime looks for the marker before it loads anything and about once a
second between steps. Delete: a finished job's files under ``out/<id>/`` go, and so does the job.
The endpoint has one instance that runs one job at a time, so a long job holds it and the next one queues.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator

import pytest

from infra.core import CORE
from service_kit.resources import physical_name
from tests.e2e.conftest import ApiClient
from tests.e2e.receivers import OriginPerPath
from tests.e2e.test_assets import emulator_s3
from tests.e2e.test_inference import MODEL_NAME, endpoint, wait_for_job  # noqa: F401 - the module's endpoint

pytestmark = pytest.mark.e2e

#: A job that runs for minutes on the tiny pipeline: 150 steps for each of 100 images.
LONG_JOB = {"steps": 150, "n_iter": 100}
#: How long a job may take to show what the test waits for (the runtime's first step, its end).
WAIT_S = 240


class Facts:
    """What each job's own webhook received, in the order it arrived."""

    def __init__(self) -> None:
        self._by_path: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        self.origins = OriginPerPath(self.on_post)

    def on_post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self._by_path.setdefault(path, []).append(json.loads(body)["data"])
        return 200

    def url(self, name: str) -> str:
        return self.origins.url(f"/{name}")

    def of(self, name: str) -> list[dict]:
        with self._lock:
            return list(self._by_path.get(f"/{name}", []))


@pytest.fixture(scope="module")
def facts() -> Iterator[Facts]:
    received = Facts()
    yield received
    received.origins.shutdown()


def start(api: ApiClient, endpoint: str, facts: Facts, name: str, **overrides) -> str:  # noqa: F811
    """A txt2img job whose every change goes to the webhook ``name``; its id."""
    body = {
        "task_type": "txt2img",
        "models": {"Stable-diffusion": [MODEL_NAME]},
        "sagemaker_endpoint_name": endpoint,
        "prompt": "a cute panda",
        "steps": 2,
        "width": 64,
        "height": 64,
        "seed": 1234,
        "webhook": facts.url(name),
        "webhook_events_filter": ["progress", "completed"],
        **overrides,
    }
    answer = api.post("/inference-api/inference", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "inprogress", answer.json()
    return answer.json()["inference_id"]


def job(api: ApiClient, job_id: str) -> dict:
    answer = api.get("/inference/get-inference-job", params={"jobID": job_id})
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_until(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout_s}s: {what}")


def sampling(api: ApiClient, job_id: str) -> dict:
    """The job's progress once the runtime reports sampling steps (it has loaded the model and runs)."""

    def progress() -> dict | None:
        shown = job(api, job_id).get("progress")
        return shown if shown and shown["phase"] == "txt2img" and shown["step"] >= 1 else None

    return wait_until(progress, WAIT_S, f"job {job_id} sampling")


def cancel(api: ApiClient, job_id: str) -> dict:
    answer = api.post(f"/inference/{job_id}/cancel")
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "cancelled", answer.json()
    return answer.json()


def project_bucket(stack) -> str:
    return physical_name(stack.settings.prefix, CORE.bucket)


def objects(stack, prefix: str) -> list[str]:
    listed = emulator_s3(stack).list_objects_v2(Bucket=project_bucket(stack), Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def outputs(stack, job_id: str) -> list[str]:
    return objects(stack, f"out/{job_id}/")


def seconds_per_step(progress: dict) -> float:
    """How long a sampling step took so far (loading included, so an over-estimate is impossible)."""
    steps_done = (progress["image"] - 1) * progress["total_steps"] + progress["step"]
    return progress["elapsed_s"] / steps_done


def test_progress_facts_reach_the_jobs_webhook_in_order_and_end_with_its_final_state(
    api: ApiClient,
    endpoint: str,  # noqa: F811
    facts: Facts,
):
    job_id = start(api, endpoint, facts, "progress", steps=100, n_iter=4)
    finished = wait_for_job(api, job_id, timeout_s=WAIT_S)
    assert finished["status"] == "succeed", finished
    wait_until(lambda: any(f["status"] == "succeed" for f in facts.of("progress")), 30, "the final state delivered")

    received = facts.of("progress")
    assert [f["version"] for f in received] == sorted({f["version"] for f in received})  # in order, once each
    assert received[-1]["status"] == "succeed"
    reports = [f["progress"] for f in received if f["status"] == "inprogress" and f["progress"]]
    assert reports[0]["phase"] == "loading"
    steps = [r for r in reports if r["phase"] == "txt2img"]
    assert len(steps) >= 2, reports  # 400 steps take seconds: several reports, a second or more apart
    assert all(r["total_steps"] == 100 and r["images"] == 4 for r in steps)
    assert [(r["image"], r["step"]) for r in steps] == sorted((r["image"], r["step"]) for r in steps)
    assert [r["fraction"] for r in reports] == sorted(r["fraction"] for r in reports)
    assert all(r["eta_s"] is not None for r in steps)
    # At most one a second (the last, "saving", is always sent, however soon after the one before it).
    stamps = [r["elapsed_s"] for r in reports if r["phase"] != "saving"]
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(stamps))


def test_a_cancelled_running_job_stops_within_a_few_steps_and_leaves_no_images(
    api: ApiClient,
    stack,
    endpoint: str,  # noqa: F811
    facts: Facts,
):
    long_id = start(api, endpoint, facts, "running", **LONG_JOB)
    sampling(api, long_id)
    cancelled = cancel(api, long_id)
    cancelled_at = time.monotonic()
    at_cancel = cancelled["progress"]
    assert cancelled["error"] == "cancelled by the user" and at_cancel["phase"] == "txt2img"
    remaining_s = seconds_per_step(at_cancel) * (100 * 150 - (at_cancel["image"] - 1) * 150 - at_cancel["step"])

    # The endpoint's one instance is free again once the runtime stopped: a short job after it runs at once.
    after_id = start(api, endpoint, facts, "after-running")
    assert wait_for_job(api, after_id, timeout_s=WAIT_S)["status"] == "succeed"
    freed_after_s = time.monotonic() - cancelled_at
    assert freed_after_s < min(60.0, remaining_s / 2), (freed_after_s, remaining_s)

    assert job(api, long_id)["status"] == "cancelled"
    reports = [f["progress"] for f in facts.of("running") if f["progress"]]
    furthest = max((r["image"], r["step"]) for r in reports if r["phase"] == "txt2img")
    assert furthest <= (at_cancel["image"], at_cancel["step"] + 5)
    assert outputs(stack, long_id) == []


def test_a_job_cancelled_while_queued_never_runs(
    api: ApiClient,
    stack,
    endpoint: str,  # noqa: F811
    facts: Facts,
):
    busy_id = start(api, endpoint, facts, "busy", **LONG_JOB)
    sampling(api, busy_id)
    queued_id = start(api, endpoint, facts, "queued")
    assert "progress" not in cancel(api, queued_id)  # it never started: no report, so no progress shown
    again = api.post(f"/inference/{queued_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"

    cancel(api, busy_id)
    # Jobs leave the endpoint's queue in order: once a job sent after it has run, the runtime took it.
    after_id = start(api, endpoint, facts, "after-queued")
    assert wait_for_job(api, after_id, timeout_s=WAIT_S)["status"] == "succeed"

    queued = job(api, queued_id)
    assert queued["status"] == "cancelled" and queued["image_names"] == []
    assert api.get("/inference/get-inference-job-image-output", params={"jobID": queued_id}).json() == []
    assert outputs(stack, queued_id) == []
    assert all(f["progress"] is None for f in facts.of("queued"))  # not even "loading"
    assert facts.of("queued")[-1]["status"] == "cancelled"


def test_a_finished_job_cannot_be_cancelled_and_deleting_it_removes_its_files(
    api: ApiClient,
    stack,
    endpoint: str,  # noqa: F811
    facts: Facts,
):
    job_id = start(api, endpoint, facts, "deleted", batch_size=2)
    assert wait_for_job(api, job_id, timeout_s=WAIT_S)["status"] == "succeed"
    assert sorted(outputs(stack, job_id)) == sorted(
        f"out/{job_id}/result/{name}" for name in ("image_0.jpg", "image_1.jpg", f"{job_id}_param.json")
    )

    refused = api.post(f"/inference/{job_id}/cancel")
    assert refused.status_code == 409, refused.text
    assert refused.json() == {"statusCode": 409, "error": f"inference job {job_id} is already finished: succeed"}

    deleted = api.delete(f"/inference/{job_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": job_id, "deleted": True}
    assert outputs(stack, job_id) == []
    assert objects(stack, f"inference-input/{job_id}") == []
    assert api.get("/inference/get-inference-job", params={"jobID": job_id}).status_code == 404
    assert job_id not in [j["InferenceJobId"] for j in api.get("/inference/list-inference-jobs").json()]
    assert api.delete(f"/inference/{job_id}").status_code == 404


def test_lifecycle_requests_for_unknown_or_running_jobs_change_nothing(
    api: ApiClient,
    endpoint: str,  # noqa: F811
    facts: Facts,
):
    assert api.post("/inference/no-such-job/cancel").status_code == 404
    assert api.delete("/inference/no-such-job").status_code == 404

    running_id = start(api, endpoint, facts, "kept", **LONG_JOB)
    sampling(api, running_id)
    refused = api.delete(f"/inference/{running_id}")
    assert refused.status_code == 409 and "cancel it first" in refused.json()["error"]
    assert job(api, running_id)["status"] == "inprogress"
    cancel(api, running_id)  # so the endpoint is free for whatever runs next
