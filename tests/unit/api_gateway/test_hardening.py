"""Faults found under attack (issue 10, items 1, 3 and 6), each reproduced at the edge in-process.

- a lone surrogate (``"\\ud800"``) anywhere in a body is a 422 naming the field, never a 500 that
  leaves a snapshot behind; the write-then-publish removes what it wrote on any failure; one
  unreadable read-model item never fails a list;
- bodies over what one Lambda invocation carries get 413 (``test_payload_limits`` has the figures), params
  that cannot fit an item 422, ids in paths and queries are bounded;
- HEAD works on every GET route, and the OpenAPI document lists what each route can answer.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from api_gateway.app import served_routes
from api_gateway.limits import MAX_BODY_BYTES, TOO_LARGE_MESSAGE
from sdmw_contracts.events import (
    CheckpointChanged,
    DatasetChanged,
    EndpointDeploymentChanged,
    InferenceJobChanged,
    ModelChanged,
    TrainJobChanged,
)
from service_kit.events import RecordingPublisher
from service_kit.testing import stored_row
from tests.unit.api_gateway.conftest import in_process_edge, ready_to_run

KEY = {"x-api-key": "key"}
JSON_KEY = {**KEY, "content-type": "application/json"}
LONE = "\\ud800"  # as it travels in JSON text: a lone high surrogate

CHECKPOINT = {"checkpoint_type": "Lora", "filenames": [{"filename": "a.safetensors", "parts_number": 1}]}
DATASET = {"dataset_name": "cats", "content": [{"filename": "/tmp/a.png", "name": "a.png", "type": "png"}]}
INFERENCE = {
    "sagemaker_endpoint_name": "infer-endpoint-cb821ea",
    "task_type": "txt2img",
    "prompt": "a cute panda",
    "models": {"Stable-diffusion": ["v1-5-pruned-emaonly.safetensors"]},
}
MERGE = {"primary_model_name": "a.safetensors", "secondary_model_name": "b.safetensors"}


class SerializingPublisher(RecordingPublisher):
    """Serializes each event as EventBridgePublisher does, so what cannot be written fails here too."""

    def publish(self, events) -> None:
        for event in events:
            event.detail_json().encode()
        super().publish(events)


class BrokenPublisher:
    """A publisher failing with something other than PublishError (a dropped connection, a bug)."""

    def publish(self, events) -> None:
        raise ConnectionResetError("connection reset by peer")


@pytest.fixture
def publisher() -> SerializingPublisher:
    return SerializingPublisher()


@pytest.fixture
def runnable_edge(edge):
    """The edge with INFERENCE's endpoint in service and its checkpoint Active."""
    ready_to_run(edge.read_model, INFERENCE["sagemaker_endpoint_name"], INFERENCE["models"])
    return edge


def post_text(edge, path: str, text: str):
    """POST JSON text as is (``json=`` would escape nothing; a lone surrogate must travel as ``\\ud800``)."""
    return edge.client.post("/prod" + path, content=text.encode(), headers=JSON_KEY)


def with_lone_surrogate(body: dict[str, Any], *path: str | int) -> str:
    """``body`` as JSON text with the string at ``path`` replaced by one holding a lone surrogate."""
    marker = "LONE-SURROGATE-HERE"
    data = json.loads(json.dumps(body))
    target = data
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[path[-1]] = f"x{marker}y"
    return json.dumps(data).replace(marker, LONE)


# ---------------------------------------------------------------- item 1: lone surrogates


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/checkpoint", CHECKPOINT, ("params", "new_model_name")),
        ("/checkpoint", CHECKPOINT, ("params", "nested", "deeper")),
        ("/dataset", DATASET, ("params", "description")),
        ("/inference-api/inference", INFERENCE, ("prompt",)),
        ("/inference-api/inference", INFERENCE, ("negative_prompt",)),
        ("/inference-api/inference", INFERENCE, ("override_settings", "sd_vae")),
        ("/inference/run-model-merge", MERGE, ("custom_name",)),
        (
            "/inference/deploy-sagemaker-endpoint",
            {"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 1},
            ("endpoint_name",),
        ),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_the_field_and_changes_nothing(edge, publisher, path, body, field):
    response = post_text(edge, path, with_lone_surrogate(body, *field))
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", *field]
    assert problem["type"] == "lone_surrogate" and "surrogate" in problem["msg"]
    assert publisher.published == []
    for model in (CheckpointChanged, DatasetChanged, InferenceJobChanged, EndpointDeploymentChanged):
        assert edge.read_model.list(model) == []


def test_a_lone_surrogate_in_a_list_item_or_an_object_key_is_named_too(edge):
    text = json.dumps({**INFERENCE, "styles": ["ok", "MARK"]}).replace("MARK", LONE)
    assert post_text(edge, "/inference-api/inference", text).json()["detail"][0]["loc"] == ["body", "styles", 1]
    text = json.dumps({**CHECKPOINT, "params": {"MARK": 1}}).replace("MARK", LONE)
    response = post_text(edge, "/checkpoint", text)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "params", "\\ud800"]


def test_a_proper_surrogate_pair_is_text_and_is_accepted(runnable_edge, publisher):
    edge = runnable_edge
    text = json.dumps({**INFERENCE, "prompt": "a panda MARK"}).replace("MARK", "\\ud83d\\udc3c")
    response = post_text(edge, "/inference-api/inference", text)
    assert response.status_code == 200, response.text
    [command] = publisher.of_type("InferenceRequested")
    assert command["data"]["params"]["prompt"] == "a panda \U0001f43c"


def test_the_catalogues_still_answer_after_such_a_request(edge):
    post_text(edge, "/checkpoint", with_lone_surrogate(CHECKPOINT, "params", "x"))
    post_text(edge, "/dataset", with_lone_surrogate(DATASET, "params", "x"))
    for path in ("/checkpoints", "/datasets", "/inference/get-lora-list", "/inference/list-inference-jobs"):
        assert edge.client.get("/prod" + path, headers=KEY).status_code == 200, path


def test_any_failure_to_publish_removes_what_the_edge_wrote(mocked_aws):
    edge = in_process_edge(BrokenPublisher())
    ready_to_run(edge.read_model, INFERENCE["sagemaker_endpoint_name"], INFERENCE["models"])
    with pytest.raises(ConnectionResetError):
        edge.client.post("/prod/inference-api/inference", json=INFERENCE, headers=KEY)
    with pytest.raises(ConnectionResetError):
        edge.client.post("/prod/dataset", json=DATASET, headers=KEY)
    assert edge.read_model.list(InferenceJobChanged) == []
    assert edge.read_model.list(DatasetChanged) == []
    assert edge.read_model.get(DatasetChanged, "cats") is None


def test_a_failure_to_serialize_the_command_removes_what_the_edge_wrote(mocked_aws, monkeypatch):
    edge = in_process_edge(SerializingPublisher())

    def unserializable(self) -> str:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr("service_kit.events.Outgoing.detail_json", unserializable)
    with pytest.raises(UnicodeEncodeError):
        edge.client.post(
            "/prod/inference/deploy-sagemaker-endpoint",
            json={"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 1},
            headers=KEY,
        )
    assert edge.read_model.list(EndpointDeploymentChanged) == []


LISTS = [
    (CheckpointChanged, "/checkpoints"),
    (CheckpointChanged, "/inference/get-lora-list"),
    (CheckpointChanged, "/inference/get-texual-inversion-list"),
    (CheckpointChanged, "/inference/get-hypernetwork-list"),
    (CheckpointChanged, "/inference/get-controlnet-model-list"),
    (DatasetChanged, "/datasets"),
    (ModelChanged, "/models"),
    (TrainJobChanged, "/trains"),
    (InferenceJobChanged, "/inference/list-inference-jobs"),
    (EndpointDeploymentChanged, "/inference/list-endpoint-deployment-jobs"),
]


@pytest.mark.parametrize(("model", "path"), LISTS, ids=[path for _, path in LISTS])
def test_an_unreadable_item_is_skipped_logged_and_counted_not_a_failed_list(edge, model, path, caplog):
    table = boto3.resource("dynamodb").Table("edge")
    table.put_item(Item=stored_row(model.entity_type(), "bad-1", version=1, data='{"not": "a snapshot"}'))
    table.put_item(Item=stored_row(model.entity_type(), "bad-2", version=1, data="not json at all"))
    response = edge.client.get("/prod" + path, headers=KEY)
    assert response.status_code == 200, response.text
    assert edge.read_model.unreadable_items == 2
    skipped = [r for r in caplog.records if r.getMessage() == "skipped an unreadable read-model item"]
    assert [(r.entity_id, r.unreadable_items_total) for r in skipped] == [("bad-1", 1), ("bad-2", 2)]


def test_readable_items_are_still_listed_beside_an_unreadable_one(edge):
    assert edge.client.post("/prod/dataset", json=DATASET, headers=KEY).status_code == 200
    table = boto3.resource("dynamodb").Table("edge")
    table.put_item(Item={"pk": DatasetChanged.entity_type(), "sk": "bad", "version": 1, "data": "{"})
    listed = edge.client.get("/prod/datasets", headers=KEY).json()["datasets"]
    assert [d["datasetName"] for d in listed] == ["cats"]
    query = edge.client.post("/prod/inference/query-inference-jobs", json={}, headers=KEY)
    assert query.status_code == 200


# ---------------------------------------------------------------- item 3: limits


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 100000),
        ("height", 2056),
        ("width", 100),
        ("batch_size", 1000),
        ("batch_size", 9),
        ("steps", 100000),
        ("steps", 151),
        ("n_iter", 100000),
        ("n_iter", 101),
        ("cfg_scale", 31),
        ("cfg_scale", 0),
        ("denoising_strength", 1.01),
        ("seed", 2**32),
        ("seed", -2),
        ("subseed", 2**70),
        ("hr_scale", 4.5),
        ("hr_second_pass_steps", 151),
        ("hr_resize_x", 4096),
        ("eta", 2),
        ("s_churn", 101),
    ],
)
def test_generation_parameters_are_bounded_as_the_webui_bounds_them(edge, publisher, field, value):
    response = edge.client.post("/prod/inference-api/inference", json={**INFERENCE, field: value}, headers=KEY)
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["detail"]] == [["body", field]]
    assert publisher.published == []


def test_a_hires_fix_upscaling_past_4096_is_refused(edge):
    body = {**INFERENCE, "enable_hr": True, "width": 64, "height": 2048, "hr_resize_x": 2048}
    response = edge.client.post("/prod/inference-api/inference", json=body, headers=KEY)
    assert response.status_code == 422 and "at most 4096" in response.json()["detail"][0]["msg"]


def test_the_webui_maximums_are_accepted(runnable_edge, publisher):
    edge = runnable_edge
    body = {
        **INFERENCE,
        "width": 2048,
        "height": 2048,
        "steps": 150,
        "batch_size": 8,
        "n_iter": 100,
        "cfg_scale": 30,
        "seed": 2**32 - 1,
        "denoising_strength": 1,
    }
    assert edge.client.post("/prod/inference-api/inference", json=body, headers=KEY).status_code == 200
    assert len(publisher.of_type("InferenceRequested")) == 1


@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 8 * 1024 * 1024, 10 * 1024 * 1024])
def test_a_body_over_the_limit_is_413_before_the_key_is_checked(edge, publisher, size):
    big = json.dumps({**INFERENCE, "prompt": "x" * size}).encode()
    for headers in (JSON_KEY, {"content-type": "application/json"}):
        response = edge.client.post("/prod/inference-api/inference", content=big, headers=headers)
        assert response.status_code == 413 and response.json() == {"message": TOO_LARGE_MESSAGE}
    assert publisher.published == []


def test_a_streamed_body_over_the_limit_is_413_too(edge, publisher):
    def chunks():
        yield b'{"prompt": "'
        for _ in range(7):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    response = edge.client.post("/prod/inference-api/inference", content=chunks(), headers=JSON_KEY)
    assert response.status_code == 413 and response.json() == {"message": TOO_LARGE_MESSAGE}
    # Without a key, a chunked body is never read: the key check answers first.
    response = edge.client.post("/prod/inference-api/inference", content=chunks(), headers={})
    assert response.status_code == 401
    assert publisher.published == []


def test_a_body_under_the_limit_is_read(edge):
    body = json.dumps({**CHECKPOINT, "params": {"x": "y" * 300_000}}).encode()
    response = edge.client.post("/prod/checkpoint", content=body, headers=JSON_KEY)
    assert response.status_code == 422  # read and validated: params too big for an item, not a 413


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/checkpoint", {**CHECKPOINT, "params": {"blob": "x" * 300_000}}),
        ("/dataset", {**DATASET, "params": {"blob": "x" * 300_000}}),
        (
            "/model",
            {
                "model_type": "Stable-diffusion",
                "name": "m1",
                "params": {
                    "create_model_params": {"new_model_name": "m1", "ckpt_path": "a.ckpt"},
                    "blob": "x" * 300_000,
                },
            },
        ),
        ("/train", {"train_type": "lora", "model_id": "m", "params": {"blob": "x" * 300_000}}),
    ],
)
def test_params_that_cannot_fit_an_item_are_422_not_500(edge, publisher, path, body):
    response = edge.client.post("/prod" + path, json=body, headers=KEY)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "params"] and "at most 204800 bytes" in problem["msg"]
    assert publisher.published == []


@pytest.mark.parametrize(
    "path",
    [
        "/inference/get-inference-job?jobID=",
        "/inference/get-endpoint-deployment-job?jobID=",
        "/inference/get-inference-job-image-output?jobID=",
        "/inference/get-inference-job-param-output?jobID=",
        "/dataset/{}/data",
        "/{}/data",
    ],
)
def test_ids_in_paths_and_queries_are_bounded_and_not_echoed(edge, path):
    long_id = "a" * 5000
    url = "/prod" + (path.format(long_id) if "{}" in path else path + long_id)
    response = edge.client.get(url, headers=KEY)
    assert response.status_code == 422
    assert long_id not in response.text and len(response.text) < 1000


def test_a_not_found_echoes_the_id_bounded(edge):
    response = edge.client.get("/prod/inference/get-inference-job", params={"jobID": "j" * 128}, headers=KEY)
    assert response.status_code == 404 and "j" * 128 in response.json()["error"]
    response = edge.client.put("/prod/checkpoint", json={"checkpoint_id": "c" * 129, "status": "Active"}, headers=KEY)
    assert response.status_code == 422 and "c" * 129 not in response.text


# ---------------------------------------------------------------- item 6: HEAD and the OpenAPI document


def test_head_answers_every_get_route_without_a_body(edge):
    for method, path in served_routes():
        if method != "GET":
            continue
        url = "/prod" + path.replace("{dataset_name}", "cats")
        get = edge.client.get(url, headers=KEY)
        head = edge.client.head(url, headers=KEY)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        assert head.headers.get("content-type") == get.headers.get("content-type"), path


def test_head_needs_the_key_and_is_not_answered_where_get_is_not(edge):
    assert edge.client.head("/prod/checkpoints").status_code == 401
    assert edge.client.head("/prod/inference/run-model-merge", headers=KEY).status_code == 405


def openapi(edge) -> dict[str, Any]:
    response = edge.client.get("/prod/openapi.json", headers=KEY)
    assert response.status_code == 200
    return response.json()


EXPECTED_STATUSES = {
    ("post", "/prod/inference/deploy-sagemaker-endpoint"): {"413", "422", "503"},
    ("post", "/prod/inference/delete-sagemaker-endpoint"): {"413", "422", "503"},
    ("get", "/prod/inference/get-endpoint-deployment-job"): {"404", "422"},
    ("post", "/prod/inference-api/inference"): {"400", "413", "422", "503"},
    ("post", "/prod/inference/run-model-merge"): {"400", "413", "422", "503"},
    ("get", "/prod/inference/get-inference-job"): {"404", "422"},
    ("put", "/prod/inference/v2/{job_id}/run"): {"404", "503"},
    ("post", "/prod/inference/run-sagemaker-inference"): {"413", "422", "503"},
    ("get", "/prod/inference/generate-s3-presigned-url-for-uploading"): {"400", "422"},
    ("post", "/prod/checkpoint"): {"400", "413", "422", "503", "504"},
    ("put", "/prod/checkpoint"): {"400", "404", "409", "413", "422", "503", "504"},
    ("post", "/prod/dataset"): {"400", "409", "413", "422", "503"},
    ("put", "/prod/dataset"): {"400", "404", "413", "422", "503", "504"},
    ("get", "/prod/{dataset_name}/data"): {"400", "404", "422"},
    ("post", "/prod/model"): {"400", "404", "413", "422", "503", "504"},
    ("put", "/prod/model"): {"400", "404", "409", "413", "422", "503", "504"},
    ("post", "/prod/train"): {"400", "404", "409", "413", "422", "503"},
    ("put", "/prod/train"): {"400", "404", "409", "413", "422", "503", "504"},
    ("get", "/prod/webhooks/{webhook_id}"): {"404", "422"},
    ("delete", "/prod/webhooks/{webhook_id}"): {"404", "422", "503"},
}


def test_the_openapi_document_lists_what_each_route_can_answer(edge):
    paths = openapi(edge)["paths"]
    for (method, path), statuses in EXPECTED_STATUSES.items():
        documented = set(paths[path][method]["responses"])
        assert statuses | {"200", "401", "403"} <= documented, (method, path, documented)
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, path)


def test_every_get_has_a_head_operation(edge):
    paths = openapi(edge)["paths"]
    gets = {path for path, operations in paths.items() if "get" in operations}
    heads = {path for path, operations in paths.items() if "head" in operations}
    assert gets == heads and len(gets) >= 15
    head = paths["/prod/checkpoints"]["head"]
    assert all("content" not in answer for answer in head["responses"].values())


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def test_the_schemas_show_the_enforced_bounds_and_patterns(edge):
    document = openapi(edge)
    inference = _schema(document, "InferenceRequest")["properties"]
    assert (inference["width"]["minimum"], inference["width"]["maximum"], inference["width"]["multipleOf"]) == (
        8,
        2048,
        8,
    )
    assert inference["steps"]["maximum"] == 150 and inference["batch_size"]["maximum"] == 8
    assert inference["n_iter"]["maximum"] == 100 and inference["cfg_scale"]["maximum"] == 30
    assert inference["seed"]["maximum"] == 2**32 - 1 and inference["hr_scale"]["maximum"] == 4
    dataset = _schema(document, "CreateDatasetRequest")["properties"]["dataset_name"]
    assert dataset["pattern"] and dataset["maxLength"] == 128
    filename = _schema(document, "MultipartFile")["properties"]["filename"]
    assert filename["maxLength"] == 887 and "bytes in UTF-8" in filename["description"] and "pattern" in filename
    endpoint = _schema(document, "DeployEndpointRequest")["properties"]["endpoint_name"]
    assert "pattern" in json.dumps(endpoint)
    parameters = document["paths"]["/prod/checkpoint"]["post"]["parameters"]
    [expires_in] = [p for p in parameters if p["name"] == "expires_in"]
    assert "120" in expires_in["description"] and '"maximum": 120' in json.dumps(expires_in["schema"])
    job_id = document["paths"]["/prod/inference/get-inference-job"]["get"]["parameters"][0]
    assert job_id["schema"]["maxLength"] == 128


@pytest.mark.parametrize(
    "url",
    [
        "/prod/inference/get-inference-job?jobID=%ED%A0%80",
        "/prod/dataset/%ED%A0%80/data",
        "/prod/inference/get-endpoint-deployment-job?jobID=a%ED%A0%80b",
    ],
)
def test_undecodable_bytes_in_paths_and_queries_are_no_server_error(edge, url):
    response = edge.client.get(url, headers=KEY)
    assert response.status_code in (404, 422), response.text


def test_run_sagemaker_inference_refuses_models_that_are_not_a_map_of_names(edge):
    edge.s3.put_object(Bucket="edge-bucket", Key="config/aigc.json", Body=json.dumps({"models": ["x"]}).encode())
    body = {"task_type": "txt2img", "sagemaker_endpoint": "infer-endpoint-x"}
    response = edge.client.post("/prod/inference/run-sagemaker-inference", json=body, headers=KEY)
    assert response.status_code == 200 and response.json()["status"] == "failed"
    assert "models must map" in response.json()["error"]
