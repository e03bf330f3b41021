"""A training job watched as it runs, stopped, and cleaned up after, end to end over HTTP.

The local SageMaker runs the real ``sd_runtime train`` on a tiny random model:
its progress reports reach ``GET /trains`` through the bus and training-manager,
and its output reaches ``GET /jobs/{id}/logs`` through CloudWatch Logs (the
emulator's), as on AWS. A cancelled job ends ``Fail`` with the error
``cancelled``; a deleted one is gone from the API with its files, all but the
checkpoint it produced.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests

from tests.e2e import test_training
from tests.e2e.conftest import ApiClient
from tests.e2e.test_assets import emulator_s3
from tests.e2e.test_training import SIZE, active_checkpoint, image_bytes, presigned_urls, tar_of, wait_for

# The same fixtures as the training scenario's: a tiny base checkpoint, a working model made from it, images.
base, model, dataset = test_training.base, test_training.model, test_training.dataset

pytestmark = pytest.mark.e2e

#: Far more steps than the test waits for: the job is still training when it is watched and cancelled.
LONG = {"max_train_steps": 20_000, "resolution": SIZE, "train_batch_size": 1, "learning_rate": 1e-4, "seed": 5}
SHORT = {"max_train_steps": 2, "resolution": SIZE, "train_batch_size": 1, "learning_rate": 1e-4, "seed": 5}


def start_training(api: ApiClient, body: dict, uploads: dict[str, bytes] | None = None) -> str:
    created = api.post("/train", json=body)
    assert created.status_code == 200, created.text
    job_id = created.json()["job"]["id"]
    for name, url in presigned_urls(created.json()).items():
        assert requests.put(url, data=(uploads or {})[name], timeout=60).status_code == 200
    started = api.put("/train", json={"train_job_id": job_id, "status": "Training"})
    assert started.status_code == 200, started.text
    return job_id


def lora(model: dict, dataset: str, settings: dict, output_name: str, **extra) -> dict:
    params = {"dataset_names": [dataset], "instance_prompt": "a photo of sks square", "output_name": output_name}
    return {"train_type": "lora", "model_id": model["id"], "params": {"train_params": settings | params}, **extra}


def train_job(api: ApiClient, job_id: str) -> dict | None:
    listed = api.get("/trains")
    assert listed.status_code == 200, listed.text
    return next((job for job in listed.json()["trainJobs"] if job["id"] == job_id), None)


def eventually(what: str, found: Callable[[], object], timeout_s: float = 180) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answer := found():
            return answer
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def log_lines(api: ApiClient, job_id: str) -> list[str]:
    lines, token = [], None
    while True:
        page = api.get(f"/jobs/{job_id}/logs", params={"next_token": token} if token else None)
        assert page.status_code == 200, page.text
        lines += [line["message"] for line in page.json()["lines"]]
        if not page.json()["lines"]:
            return lines
        token = page.json()["next_token"]


def test_a_running_jobs_progress_and_log_are_readable_and_a_cancel_stops_it(api: ApiClient, model, dataset):
    job_id = start_training(api, lora(model, dataset, LONG, "watched-lora"))

    def reported() -> dict | None:
        job = train_job(api, job_id)
        progress = job and job["progress"]
        return job if progress and progress["phase"] == "training" and progress["step"] >= 1 else None

    job = eventually("a progress report", reported)
    progress = job["progress"]
    assert job["status"] == "Training"
    assert progress["total_steps"] == LONG["max_train_steps"] and progress["loss"] is not None
    assert progress["learning_rate"] is not None and progress["epoch"] >= 1 and progress["eta_s"] is not None

    step_lines = eventually(
        "the job's log lines", lambda: [line for line in log_lines(api, job_id) if f"job {job_id}: training" in line]
    )
    assert "loss" in step_lines[0]
    assert train_job(api, job_id)["status"] == "Training"  # read while it ran

    cancelled = api.post(f"/trains/{job_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["job"]["id"] == job_id
    ended = wait_for(api, "/trains", "trainJobs", job_id, timeout_s=120)
    assert (ended["status"], ended["error"]) == ("Fail", "cancelled")

    again = api.post(f"/trains/{job_id}/cancel")
    assert again.status_code == 202 and again.json()["job"]["error"] == "cancelled"
    assert api.delete(f"/trains/{job_id}").status_code == 200  # a cancelled job is finished: it may go


def test_a_running_job_is_not_deleted_and_unknown_jobs_are_404(api: ApiClient, model, dataset):
    job_id = start_training(api, lora(model, dataset, LONG, "kept-lora"))
    refused = api.delete(f"/trains/{job_id}")
    assert refused.status_code == 409 and "cancel it first" in refused.json()["error"]
    assert api.post(f"/trains/{job_id}/cancel").status_code == 202
    wait_for(api, "/trains", "trainJobs", job_id, timeout_s=120)
    assert api.post("/trains/no-such-job/cancel").status_code == 404
    assert api.get("/jobs/no-such-job/logs").status_code == 404


def test_deleting_a_finished_job_removes_it_and_its_files_but_not_its_checkpoint(api: ApiClient, stack, model, dataset):
    extra = tar_of({"extra.png": image_bytes((20, 200, 20))})
    body = lora(model, dataset, SHORT, "deleted-lora", filenames=["data-extra.tar"])
    job_id = start_training(api, body, {"data-extra.tar": extra})
    job = wait_for(api, "/trains", "trainJobs", job_id)
    assert job["status"] == "Complete", job
    s3 = emulator_s3(stack)
    checkpoint = active_checkpoint(api, job["checkpoint_id"])
    bucket = checkpoint["s3Location"].removeprefix("s3://").partition("/")[0]
    prefix = f"train/{job_id}/"

    def keys() -> set[str]:
        return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}

    checkpoint_key = f"{prefix}train-{job_id}/output/model/deleted-lora.safetensors"
    assert f"{prefix}input/data-extra.tar" in keys() and checkpoint_key in keys()
    refused = api.post(f"/trains/{job_id}/cancel")
    assert refused.status_code == 409
    assert refused.json() == {"statusCode": 409, "error": f"training job {job_id} is already finished: Complete"}

    deleted = api.delete(f"/trains/{job_id}")

    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": job_id, "deleted": True}
    assert train_job(api, job_id) is None
    assert api.delete(f"/trains/{job_id}").status_code == 404
    assert api.get(f"/jobs/{job_id}/logs").status_code == 404
    assert keys() == {checkpoint_key}  # the checkpoint is asset-registry's
    assert active_checkpoint(api, job["checkpoint_id"])["id"] == checkpoint["id"]
