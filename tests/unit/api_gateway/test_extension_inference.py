"""The WebUI extension's inference routes in-process: v2's three steps, queries, and the v1.0 path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdmw_contracts.events import CheckpointChanged, EndpointDeploymentChanged, InferenceJobChanged
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import EDGE_BUCKET, active_checkpoint, in_process_edge, in_service_endpoint

BUCKET = EDGE_BUCKET
KEY = {"x-api-key": "key"}
NOW = datetime(2024, 1, 1, tzinfo=UTC)
ENDPOINT = "infer-endpoint-abc1234"
MODELS = {"Stable-diffusion": ["v1-5.safetensors [6ce0161689]"], "Lora": ["style.safetensors"]}
PARAMS = {"prompt": "a cute panda", "steps": 3, "width": 64, "height": 64, "seed": 5}


@pytest.fixture
def edge(mocked_aws):
    publisher = RecordingPublisher()
    made = in_process_edge(publisher, clock=lambda: NOW)
    made.read_model.apply(endpoint("InService"))
    for checkpoint_type, name in (("Stable-diffusion", "v1-5.safetensors"), ("Lora", "style.safetensors")):
        made.read_model.apply(checkpoint(checkpoint_type, name))
    return made.client, made.read_model, publisher, made.s3


def endpoint(status: str) -> EndpointDeploymentChanged:
    return in_service_endpoint(ENDPOINT, status, NOW)


def checkpoint(checkpoint_type: str, filename: str) -> CheckpointChanged:
    return active_checkpoint(checkpoint_type, filename)


V2 = {"sagemaker_endpoint_name": ENDPOINT, "task_type": "txt2img", "models": MODELS, "filters": {"creator": "me"}}


def test_v2_checks_then_starts_the_job_with_the_uploaded_parameters(edge):
    client, _, publisher, s3 = edge
    created = client.post("/prod/inference/v2", json=V2, headers=KEY)
    assert created.status_code == 200, created.text
    inference = created.json()["inference"]
    key = inference["api_params_s3_location"].removeprefix(f"s3://{BUCKET}/")
    assert key in inference["api_params_s3_upload_url"] and publisher.published == []
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(PARAMS).encode())

    started = client.put(f"/prod/inference/v2/{inference['id']}/run", json=V2, headers=KEY)

    assert started.status_code == 200, started.text
    assert started.json()["inference"] == {
        "inference_id": inference["id"],
        "status": "inprogress",
        "endpoint_name": ENDPOINT,
        "output_path": f"s3://{BUCKET}/out/{inference['id']}/result/",
    }
    [command] = publisher.of_type("InferenceRequested")
    assert command["data"]["job_id"] == inference["id"] and command["data"]["models"] == MODELS
    params, resolved = command["data"]["params"], command["data"]["resolved"]
    assert params["prompt"] == "a cute panda" and params["steps"] == 3
    assert resolved["checkpoint"] == {
        "name": "v1-5.safetensors",
        "s3_uri": f"s3://{BUCKET}/checkpoint/Stable-diffusion/v1-5.safetensors/v1-5.safetensors",
    }
    assert [lora["name"] for lora in resolved["loras"]] == ["style.safetensors"]
    again = client.put(f"/prod/inference/v2/{inference['id']}/run", json=V2, headers=KEY)
    assert again.status_code == 200 and len(publisher.of_type("InferenceRequested")) == 1


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"sagemaker_endpoint_name": "infer-endpoint-nope"}, "does not exist"),
        ({"models": {"Stable-diffusion": ["missing.safetensors"]}}, "missing.safetensors (Stable-diffusion)"),
    ],
)
def test_v2_refuses_in_the_shape_the_extension_checks(edge, change, fragment):
    """HTTP 200 with ``status`` and a list ``error``: the extension raises on HTTP errors (and then shows
    the exception's text joined character by character) and shows ``', '.join(error)`` (defect 6)."""
    client, _, publisher, _ = edge
    refused = client.post("/prod/inference/v2", json={**V2, **change}, headers=KEY)
    assert refused.status_code == 200
    assert refused.json()["status"] == 400 and isinstance(refused.json()["error"], list)
    assert any(fragment in message for message in refused.json()["error"])
    assert "inference" not in refused.json() and publisher.published == []


def test_v2_refuses_an_endpoint_not_in_service(edge):
    client, read_model, _, _ = edge
    read_model.apply(endpoint("Updating").model_copy(update={"version": 4}))
    refused = client.post("/prod/inference/v2", json=V2, headers=KEY)
    assert refused.status_code == 200 and refused.json()["status"] == 400
    assert refused.json()["error"] == [f"endpoint {ENDPOINT} is Updating, not InService"]


def test_v2_refuses_a_body_that_is_not_a_request_in_the_same_shape(edge):
    client, _, publisher, _ = edge
    refused = client.post("/prod/inference/v2", json={**V2, "task_type": "paint", "models": {}}, headers=KEY)
    assert refused.status_code == 200 and refused.json()["status"] == 422
    assert any(message.startswith("task_type: ") for message in refused.json()["error"])
    assert any(message.startswith("models: ") for message in refused.json()["error"])
    assert publisher.published == []


def uploaded_job(client, s3, params: dict | None) -> str:
    inference = client.post("/prod/inference/v2", json=V2, headers=KEY).json()["inference"]
    if params is not None:
        key = inference["api_params_s3_location"].removeprefix(f"s3://{BUCKET}/")
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(params).encode())
    return inference["id"]


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (None, "upload the parameters (a JSON object) to api_params_s3_upload_url first"),
        ({**PARAMS, "width": 7}, "width: Input should be a multiple of 8"),
        ({**PARAMS, "cfg_scale": 99}, "cfg_scale: Input should be less than or equal to 30"),
    ],
    ids=["not-uploaded", "bad-width", "cfg-out-of-bounds"],
)
def test_a_run_that_cannot_start_ends_the_job_failed_with_the_reason_and_sends_nothing(edge, params, reason):
    """The extension ignores the run's answer and raises on HTTP errors: the job it created fails, and
    get-inference-job (which it polls) says why."""
    client, _, publisher, s3 = edge
    job_id = uploaded_job(client, s3, params)
    run = client.put(f"/prod/inference/v2/{job_id}/run", json=V2, headers=KEY)
    assert run.status_code == 200, run.text
    assert run.json()["inference"]["status"] == "failed" and reason in run.json()["inference"]["error"]
    shown = client.get("/prod/inference/get-inference-job", params={"jobID": job_id}, headers=KEY).json()
    assert (shown["status"], shown["taskType"]) == ("failed", "txt2img") and reason in shown["error"]
    again = client.put(f"/prod/inference/v2/{job_id}/run", json=V2, headers=KEY)
    assert again.json()["inference"]["status"] == "failed"
    assert publisher.published == []


SENT_BY_THE_WEBUI = Path(__file__).parents[1] / "contracts" / "a1111"


@pytest.mark.parametrize("name", ["txt2img", "img2img", "txt2img-controlnet"])
def test_the_parameters_the_webui_sends_start_the_job(edge, name):
    """The parameter files the extension's own code wrote (A1111 1.5's values: ``s_tmax`` Infinity, nulls,
    ControlNet's UI units), uploaded as it uploads them, start the job (defect 1: every one was a 422)."""
    client, read_model, publisher, s3 = edge
    read_model.apply(checkpoint("ControlNet", "control_real_canny.pth"))
    inference = client.post("/prod/inference/v2", json={**V2, "task_type": name[:7]}, headers=KEY).json()["inference"]
    key = inference["api_params_s3_location"].removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=key, Body=(SENT_BY_THE_WEBUI / f"{name}.json").read_bytes())
    run = client.put(f"/prod/inference/v2/{inference['id']}/run", json=V2, headers=KEY)
    assert run.json()["inference"]["status"] == "inprogress", run.text
    [command] = publisher.of_type("InferenceRequested")
    assert command["data"]["params"]["s_tmax"] is None


def test_an_unknown_run_is_404(edge):
    client, _, publisher, _ = edge
    assert client.put("/prod/inference/v2/unknown-id/run", json=V2, headers=KEY).status_code == 404
    assert publisher.published == []


def test_the_run_takes_any_body(edge):
    """The run's body (step 1's request again) is not needed: a browser's text/plain or none is fine."""
    client, _, publisher, s3 = edge
    job_id = uploaded_job(client, s3, PARAMS)
    run = client.put(f"/prod/inference/v2/{job_id}/run", content=b"", headers=KEY)
    assert run.status_code == 200 and run.json()["inference"]["status"] == "inprogress"
    assert len(publisher.of_type("InferenceRequested")) == 1


def job(job_id: str, started: datetime, **changes) -> InferenceJobChanged:
    fields = {
        "id": job_id,
        "version": 1,
        "task_type": "txt2img",
        "endpoint_name": ENDPOINT,
        "status": "succeed",
        "start_time": started,
        "models": {"Stable-diffusion": ["v1-5.safetensors"]},
    }
    return InferenceJobChanged(**{**fields, **changes})


def test_query_filters_by_every_field_given_and_ignores_empty_ones(edge):
    client, read_model, _, _ = edge
    read_model.apply(job("old", NOW - timedelta(days=2)))
    read_model.apply(job("failed", NOW - timedelta(hours=1), status="failed"))
    read_model.apply(job("other-model", NOW, models={"Stable-diffusion": ["other.safetensors"]}))
    read_model.apply(job("img", NOW + timedelta(minutes=1), task_type="img2img", endpoint_name="infer-endpoint-zzz"))

    def query(**body) -> list[str]:
        answer = client.post("/prod/inference/query-inference-jobs", json=body, headers=KEY)
        assert answer.status_code == 200, answer.text
        return [j["InferenceJobId"] for j in answer.json()]

    assert query() == ["img", "other-model", "failed", "old"]
    assert query(status="", task_type="", endpoint="", checkpoint="", limit="") == [
        "img",
        "other-model",
        "failed",
        "old",
    ]
    assert query(status="succeed") == ["img", "other-model", "old"]
    assert query(task_type="img2img") == ["img"]
    assert query(endpoint=ENDPOINT, checkpoint="v1-5.safetensors [6ce0161689]") == ["failed", "old"]
    assert query(start_time=(NOW - timedelta(days=1)).isoformat(), end_time="2024-01-01 00:00:00") == [
        "other-model",
        "failed",
    ]
    assert query(limit=2) == ["img", "other-model"]
    # The extension's "Show All" sends -1 (defect 8); 0 means no limit too; below -1 is refused.
    assert query(limit=-1) == query(limit=0) == query(limit="-1") == ["img", "other-model", "failed", "old"]
    assert client.post("/prod/inference/query-inference-jobs", json={"limit": -5}, headers=KEY).status_code == 422


def test_merges_are_listed_only_when_asked_for(edge):
    """The extension's job list fails on a merge job (its result is a checkpoint, not images)."""
    client, read_model, _, _ = edge
    read_model.apply(job("image", NOW))
    read_model.apply(job("merge", NOW + timedelta(minutes=1), task_type="merge"))
    listed = client.post("/prod/inference/query-inference-jobs", json={}, headers=KEY).json()
    assert [j["InferenceJobId"] for j in listed] == ["image"]
    merges = client.post("/prod/inference/query-inference-jobs", json={"task_type": "merge"}, headers=KEY).json()
    assert [j["InferenceJobId"] for j in merges] == ["merge"]


def test_cancelled_jobs_are_listed_only_when_asked_for(edge):
    """The extension's job view knows succeed, failed and inprogress; picking a cancelled job there would fail."""
    client, read_model, _, _ = edge
    read_model.apply(job("image", NOW))
    read_model.apply(job("stopped", NOW + timedelta(minutes=1), status="cancelled"))
    listed = client.post("/prod/inference/query-inference-jobs", json={}, headers=KEY).json()
    assert [j["InferenceJobId"] for j in listed] == ["image"]
    cancelled = client.post("/prod/inference/query-inference-jobs", json={"status": "cancelled"}, headers=KEY).json()
    assert [j["InferenceJobId"] for j in cancelled] == ["stopped"]


def test_the_older_client_runs_with_the_parameters_from_config_aigc_json(edge):
    client, _, publisher, s3 = edge
    body = {"task_type": "txt2img", "sagemaker_endpoint": ENDPOINT, "models": MODELS}
    early = client.post("/prod/inference/run-sagemaker-inference", json=body, headers=KEY)
    assert early.status_code == 200 and early.json()["status"] == "failed"
    assert "config/aigc.json" in early.json()["error"]
    s3.put_object(Bucket=BUCKET, Key="config/aigc.json", Body=json.dumps(PARAMS).encode())
    started = client.post("/prod/inference/run-sagemaker-inference", json=body, headers=KEY)
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "inprogress" and started.json()["inference_id"]
    [command] = publisher.of_type("InferenceRequested")
    assert command["data"]["params"]["prompt"] == "a cute panda"


def test_interrogation_without_an_image_in_config_aigc_json_is_refused(edge):
    client, _, publisher, _ = edge
    body = {"task_type": "interrogate_clip", "sagemaker_endpoint": ENDPOINT}
    refused = client.post("/prod/inference/run-sagemaker-inference", json=body, headers=KEY)
    assert refused.status_code == 200 and refused.json()["status"] == "failed"
    assert "interrogate_clip" in refused.json()["error"]
    # The extension follows the id it gets: the job says why it failed, with its caption (none).
    shown = client.get(
        "/prod/inference/get-inference-job", params={"jobID": refused.json()["inference_id"]}, headers=KEY
    ).json()
    assert (shown["taskType"], shown["status"], shown["caption"]) == ("interrogate_clip", "failed", "")
    assert publisher.published == []
