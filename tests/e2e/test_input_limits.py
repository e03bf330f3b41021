"""Hostile input through real HTTP (issue 10, items 1, 3 and 6): a lone surrogate is a 422 naming the
field and breaks no catalogue; generation parameters are bounded; a body over what one AWS Lambda
invocation carries (about 5.9 MB as the event writes it, not API Gateway's 10 MB) is 413, saying so; ids
are bounded; HEAD answers every GET route; the OpenAPI document says so."""

from __future__ import annotations

import json

import pytest
import requests

from api_gateway.limits import MAX_BODY_BYTES, TOO_LARGE_MESSAGE
from tests.e2e.conftest import ApiClient

pytestmark = pytest.mark.e2e

LONE = "\\ud800"
CHECKPOINT = {"checkpoint_type": "Lora", "filenames": [{"filename": "limits.safetensors", "parts_number": 1}]}
DATASET = {"dataset_name": "limits-cats", "content": [{"filename": "/tmp/a.png", "name": "a.png", "type": "png"}]}
INFERENCE = {
    "sagemaker_endpoint_name": "infer-endpoint-limits",
    "task_type": "txt2img",
    "prompt": "a cute panda",
    "models": {"Stable-diffusion": ["v1-5-pruned-emaonly.safetensors"]},
}
LISTS = [
    "/checkpoints",
    "/inference/get-lora-list",
    "/inference/get-texual-inversion-list",
    "/inference/get-hypernetwork-list",
    "/inference/get-controlnet-model-list",
    "/datasets",
    "/models",
    "/trains",
    "/inference/list-inference-jobs",
]


def raw_post(api: ApiClient, path: str, text: str) -> requests.Response:
    return api.post(path, data=text.encode())


def with_lone(body: dict, key: str, nested: str | None = None) -> str:
    data = json.loads(json.dumps(body))
    if nested:
        data.setdefault(key, {})[nested] = "MARK"
    else:
        data[key] = "a MARK b"
    return json.dumps(data).replace("MARK", LONE)


@pytest.mark.parametrize(
    ("path", "text", "loc"),
    [
        ("/checkpoint", with_lone(CHECKPOINT, "params", "new_model_name"), ["body", "params", "new_model_name"]),
        ("/dataset", with_lone(DATASET, "params", "description"), ["body", "params", "description"]),
        ("/inference-api/inference", with_lone(INFERENCE, "prompt"), ["body", "prompt"]),
        ("/inference-api/inference", with_lone(INFERENCE, "negative_prompt"), ["body", "negative_prompt"]),
        (
            "/inference/run-model-merge",
            with_lone({"primary_model_name": "a.safetensors", "secondary_model_name": "b.safetensors"}, "custom_name"),
            ["body", "custom_name"],
        ),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field_and_every_list_still_answers(api: ApiClient, path, text, loc):
    jobs_before = len(api.get("/inference/list-inference-jobs").json())
    response = raw_post(api, path, text)
    assert response.status_code == 422, response.text
    assert [problem["loc"] for problem in response.json()["detail"]] == [loc]
    for listed in LISTS:
        assert api.get(listed).status_code == 200, listed
    assert len(api.get("/inference/list-inference-jobs").json()) == jobs_before, "no job left inprogress"


def test_a_dataset_after_a_refused_one_is_created_as_usual(api: ApiClient):
    assert raw_post(api, "/dataset", with_lone(DATASET, "params", "x")).status_code == 422
    assert api.post("/dataset", json=DATASET).status_code == 200
    names = [d["datasetName"] for d in api.get("/datasets").json()["datasets"]]
    assert DATASET["dataset_name"] in names


@pytest.mark.parametrize(
    ("field", "value"),
    [("width", 100000), ("height", 100000), ("batch_size", 1000), ("steps", 100000), ("n_iter", 100000)],
)
def test_generation_parameters_past_the_webuis_limits_are_422(api: ApiClient, field, value):
    response = api.post("/inference-api/inference", json={**INFERENCE, field: value})
    assert response.status_code == 422, response.text
    assert [problem["loc"] for problem in response.json()["detail"]] == [["body", field]]


@pytest.mark.parametrize("megabytes", [7, 50])  # between Lambda's 6 MB and API Gateway's 10 MB, and far over
def test_a_body_over_what_lambda_carries_is_413_with_or_without_a_key(api: ApiClient, megabytes):
    big = json.dumps({**INFERENCE, "prompt": "x" * (megabytes * 1024 * 1024)}).encode()
    answer = api.post("/inference-api/inference", data=big)
    assert answer.status_code == 413 and answer.json() == {"message": TOO_LARGE_MESSAGE}
    keyless = requests.post(
        api.base_url + "/inference-api/inference", data=big, headers={"content-type": "application/json"}, timeout=60
    )
    assert keyless.status_code == 413 and keyless.json() == {"message": TOO_LARGE_MESSAGE}
    assert "/inference/v2" in TOO_LARGE_MESSAGE and f"{MAX_BODY_BYTES:,}" in TOO_LARGE_MESSAGE


def test_a_body_whose_escapes_take_it_past_the_limit_is_413(api: ApiClient):
    # 4 MB on the wire, but 8 MB once written as the JSON string in Lambda's event.
    body = json.dumps({**INFERENCE, "prompt": '"' * (2 * 1024 * 1024)}).encode()
    answer = api.post("/inference-api/inference", data=body)
    assert answer.status_code == 413 and answer.json() == {"message": TOO_LARGE_MESSAGE}


def test_params_too_big_for_an_item_are_422(api: ApiClient):
    response = api.post("/checkpoint", json={**CHECKPOINT, "params": {"blob": "x" * 300_000}})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "params"]


def test_a_long_id_is_422_and_not_echoed(api: ApiClient):
    long_id = "x" * 10_000
    response = api.get("/inference/get-inference-job", params={"jobID": long_id})
    assert response.status_code == 422 and long_id not in response.text


def test_head_answers_get_routes_and_the_document_says_what_each_route_answers(api: ApiClient):
    for path in ("/checkpoints", "/datasets", "/inference/list-inference-jobs", "/openapi.json"):
        head = requests.head(api.base_url + path, headers={"x-api-key": api.api_key}, timeout=30)
        assert head.status_code == 200 and head.content == b"", path
    assert requests.head(api.base_url + "/checkpoints", timeout=30).status_code == 401
    paths = api.get("/openapi.json").json()["paths"]
    assert "head" in paths["/prod/checkpoints"]
    answers = paths["/prod/checkpoint"]["post"]["responses"]
    assert {"200", "400", "401", "403", "413", "422", "503", "504"} <= set(answers)
    width = api.get("/openapi.json").json()["components"]["schemas"]["InferenceRequest"]["properties"]["width"]
    assert width["maximum"] == 2048 and width["multipleOf"] == 8
