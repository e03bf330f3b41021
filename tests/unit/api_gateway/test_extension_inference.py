"""The WebUI extension's inference routes in-process: v2's three steps, queries, and the v1.0 path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

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
    client, _, publisher, _ = edge
    refused = client.post("/prod/inference/v2", json={**V2, **change}, headers=KEY)
    assert refused.status_code == 400
    assert refused.json()["status"] == 400 and fragment in refused.json()["error"]
    assert publisher.published == []


def test_v2_refuses_an_endpoint_not_in_service(edge):
    client, read_model, _, _ = edge
    read_model.apply(endpoint("Updating").model_copy(update={"version": 4}))
    refused = client.post("/prod/inference/v2", json=V2, headers=KEY)
    assert refused.status_code == 400 and "not InService" in refused.json()["error"]


def test_running_without_uploaded_parameters_or_with_bad_ones_changes_nothing(edge):
    client, _, publisher, s3 = edge
    inference = client.post("/prod/inference/v2", json=V2, headers=KEY).json()["inference"]
    run = f"/prod/inference/v2/{inference['id']}/run"
    early = client.put(run, json=V2, headers=KEY)
    assert early.status_code == 400 and "upload the parameters" in early.json()["error"]
    key = inference["api_params_s3_location"].removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({**PARAMS, "width": 7}).encode())
    bad = client.put(run, json=V2, headers=KEY)
    assert bad.status_code == 422 and "width" in bad.text
    assert client.put("/prod/inference/v2/unknown-id/run", json=V2, headers=KEY).status_code == 404
    assert publisher.published == []


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
    assert client.post("/prod/inference/query-inference-jobs", json={"limit": 0}, headers=KEY).status_code == 422


def test_the_older_client_runs_with_the_parameters_from_config_aigc_json(edge):
    client, _, publisher, s3 = edge
    body = {"task_type": "txt2img", "sagemaker_endpoint": ENDPOINT, "models": MODELS}
    early = client.post("/prod/inference/run-sagemaker-inference", json=body, headers=KEY)
    assert early.status_code == 400 and "config/aigc.json" in early.json()["error"]
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
    assert refused.status_code == 400 and "interrogate_clip" in refused.json()["error"]
    assert publisher.published == []
