"""Submitting inference at the edge: parsed once, checked and resolved from the read model, sent typed."""

from __future__ import annotations

import pytest

from api_gateway.runnable import CannotRun, Directory
from sdmw_contracts.events import InferenceJobChanged
from sdmw_contracts.generation import GenerationParams
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import (
    EDGE_BUCKET,
    active_checkpoint,
    in_process_edge,
    in_service_endpoint,
    ready_to_run,
)

KEY = {"x-api-key": "key"}
ENDPOINT = "infer-endpoint-a"
BODY = {
    "sagemaker_endpoint_name": ENDPOINT,
    "task_type": "txt2img",
    "prompt": "a cute panda",
    "models": {"Stable-diffusion": ["v1-5.safetensors [6ce0161689]"]},
}


@pytest.fixture
def edge(mocked_aws):
    publisher = RecordingPublisher()
    made = in_process_edge(publisher)
    ready_to_run(made.read_model, ENDPOINT, {"Stable-diffusion": ["v1-5.safetensors"]})
    return made, publisher


def submit(client, body: dict) -> dict:
    response = client.post("/prod/inference-api/inference", json=body, headers=KEY)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_job_is_sent_with_typed_parameters_and_its_models_resolved(edge):
    made, publisher = edge
    started = submit(made.client, {**BODY, "steps": 12, "batch_size": 2, "n_iter": 3})
    assert started["status"] == "inprogress"
    [command] = publisher.of_type("InferenceRequested")
    data = command["data"]
    assert GenerationParams.model_validate(data["params"]).steps == 12
    assert data["resolved"]["checkpoint"]["s3_uri"].endswith("/v1-5.safetensors")
    assert data["models"] == BODY["models"]  # as named, for queries
    job = made.read_model.get(InferenceJobChanged, started["inference_id"])
    assert (job.version, job.status, job.image_count) == (0, "inprogress", 6)


def test_a_controlnet_unit_names_its_model_as_a1111_does(edge):
    made, publisher = edge
    made.read_model.apply(active_checkpoint("ControlNet", "control_v11p_sd15_canny.pth"))
    unit = {"enabled": True, "model": "control_v11p_sd15_canny [d14c016b]", "image": "iVBORw0KGgo="}
    submit(made.client, {**BODY, "alwayson_scripts": {"controlnet": {"args": [unit]}}})
    [command] = publisher.of_type("InferenceRequested")
    resolved = command["data"]["resolved"]["controlnets"]
    assert list(resolved) == ["control_v11p_sd15_canny [d14c016b]"]
    assert resolved["control_v11p_sd15_canny [d14c016b]"]["name"] == "control_v11p_sd15_canny.pth"


def test_hypernetworks_are_resolved_and_sent_like_loras(edge):
    made, publisher = edge
    made.read_model.apply(active_checkpoint("hypernetworks", "anime.pt"))
    made.read_model.apply(active_checkpoint("Lora", "style.safetensors"))
    models = {**BODY["models"], "hypernetworks": ["anime [1a2b3c4d]"], "Lora": ["style"]}
    submit(made.client, {**BODY, "prompt": "a cute panda <hypernet:anime:0.6>", "models": models})
    [command] = publisher.of_type("InferenceRequested")
    resolved = command["data"]["resolved"]
    assert resolved["hypernetworks"] == [
        {"name": "anime.pt", "s3_uri": f"s3://{EDGE_BUCKET}/checkpoint/hypernetworks/anime.pt/anime.pt"}
    ]
    assert [lora["name"] for lora in resolved["loras"]] == ["style.safetensors"]


def test_an_unknown_hypernetwork_fails_the_job_at_once(edge):
    made, publisher = edge
    models = {**BODY["models"], "hypernetworks": ["missing.pt"]}
    started = submit(made.client, {**BODY, "models": models})
    assert started["status"] == "failed" and "no Active checkpoint for: missing.pt (hypernetworks)" in started["error"]
    assert publisher.published == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"models": {"Stable-diffusion": ["nope.safetensors [abc]"]}}, "no Active checkpoint for: nope.safetensors"),
        ({"models": {**BODY["models"], "Lora": ["a.safetensors", "b.safetensors"]}}, "a.safetensors (Lora), b"),
        ({"sagemaker_endpoint_name": "infer-endpoint-gone"}, "endpoint infer-endpoint-gone does not exist"),
    ],
)
def test_a_job_that_cannot_run_fails_at_once_and_nothing_is_sent(edge, change, reason):
    made, publisher = edge
    started = submit(made.client, {**BODY, **change})
    assert started["status"] == "failed" and reason in started["error"]
    assert publisher.published == []
    shown = made.client.get("/prod/inference/get-inference-job", params={"jobID": started["inference_id"]}, headers=KEY)
    assert shown.json()["status"] == "failed" and reason in shown.json()["error"]


def test_an_endpoint_not_in_service_fails_the_job_at_once(edge):
    made, publisher = edge
    made.read_model.apply(in_service_endpoint("infer-endpoint-b", status="Creating"))
    started = submit(made.client, {**BODY, "sagemaker_endpoint_name": "infer-endpoint-b"})
    assert started["status"] == "failed" and "is Creating, not InService" in started["error"]


def test_a_merge_is_sent_with_its_checkpoints_resolved_and_where_it_goes(edge):
    made, publisher = edge
    made.read_model.apply(active_checkpoint("Stable-diffusion", "other.safetensors"))
    body = {"primary_model_name": "v1-5.safetensors", "secondary_model_name": "other.safetensors", "custom_name": "mix"}
    response = made.client.post("/prod/inference/run-model-merge", json=body, headers=KEY)
    assert response.status_code == 200, response.text
    [command] = publisher.of_type("ModelMergeRequested")
    data, job_id = command["data"], response.json()["inference_id"]
    assert data["endpoint_name"] == ENDPOINT  # none named: any in service
    assert data["merge"]["secondary"]["name"] == "other.safetensors"
    assert data["merge"]["output_s3_uri"] == f"s3://{EDGE_BUCKET}/out/{job_id}/result/mix.safetensors"


def test_a_merge_of_an_unknown_checkpoint_is_refused(edge):
    made, publisher = edge
    body = {"primary_model_name": "v1-5.safetensors", "secondary_model_name": "missing.safetensors"}
    response = made.client.post("/prod/inference/run-model-merge", json=body, headers=KEY)
    assert response.status_code == 400 and "missing.safetensors" in response.text
    assert publisher.published == []


# ---------------------------------------------------------------- the directory's cache


class CountingReadModel:
    """Test double of the read model's two lookups, counting them."""

    def __init__(self) -> None:
        self.endpoints = {ENDPOINT: in_service_endpoint(ENDPOINT)}
        self.checkpoints = [active_checkpoint("Stable-diffusion", "v1-5.safetensors")]
        self.lookups = 0

    def endpoint_job_named(self, name: str, *, include_failed: bool):
        self.lookups += 1
        return self.endpoints.get(name)

    def list(self, model, id_prefix=None):
        self.lookups += 1
        return list(self.checkpoints)


def test_what_was_found_is_kept_for_the_ttl_and_then_read_again(monkeypatch):
    monkeypatch.setattr("api_gateway.runnable.find_model", _find_in(CountingReadModel))
    read_model, now = CountingReadModel(), [0.0]
    directory = Directory(read_model, ttl_s=10, clock=lambda: now[0])
    for _ in range(3):
        directory.endpoint_in_service(ENDPOINT)
        directory.model("Stable-diffusion", "v1-5.safetensors")
    assert read_model.lookups == 2
    now[0] = 10.5
    directory.endpoint_in_service(ENDPOINT)
    assert read_model.lookups == 3


def test_what_was_not_found_is_never_kept(monkeypatch):
    monkeypatch.setattr("api_gateway.runnable.find_model", _find_in(CountingReadModel))
    read_model = CountingReadModel()
    directory = Directory(read_model, ttl_s=10, clock=lambda: 0.0)
    with pytest.raises(CannotRun):
        directory.model("Stable-diffusion", "new.safetensors")
    read_model.checkpoints.append(active_checkpoint("Stable-diffusion", "new.safetensors"))
    assert directory.model("Stable-diffusion", "new.safetensors").name == "new.safetensors"


def _find_in(_: type) -> object:
    def find(read_model, model_type, title):
        for checkpoint in read_model.list(None):
            if checkpoint.checkpoint_type == model_type and (found := checkpoint.model_named(title)):
                return found
        return None

    return find
