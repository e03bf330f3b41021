"""The edge in-process: keys, trace headers into commands, and a failed publish changing nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api_gateway.app import served_routes
from api_gateway.auth import key_is_valid
from sdmw_contracts.api.routes import DATASET_DATA_ALIAS, SEED_ROUTES
from service_kit.events import PublishError, RecordingPublisher
from tests.unit.api_gateway.conftest import in_process_edge

DEPLOY = {"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 1}


class RefusingPublisher:
    """Test double: EventBridge refusing every event."""

    def publish(self, events) -> None:
        raise PublishError("EventBridge refused events: InternalFailure")


def edge(publisher) -> TestClient:
    return in_process_edge(publisher, keys=("key-one", "key-two"), transition_wait_s=0.5).client


def test_every_configured_key_works_and_others_do_not():
    keys = ("key-one", "key-two")
    assert key_is_valid("key-one", keys) and key_is_valid("key-two", keys)
    assert not key_is_valid("key-on", keys) and not key_is_valid("", keys) and not key_is_valid("key-one ", keys)


def test_the_request_trace_header_travels_in_the_command(mocked_aws):
    publisher = RecordingPublisher()
    client = edge(publisher)
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    response = client.post(
        "/prod/inference/deploy-sagemaker-endpoint",
        json=DEPLOY,
        headers={"x-api-key": "key-two", "X-Amzn-Trace-Id": header},
    )
    assert response.status_code == 200
    [command] = publisher.of_type("EndpointDeploymentRequested")
    assert command["metadata"]["trace_header"] == header
    assert command["metadata"]["correlation_id"] == response.json()["EndpointDeploymentJobId"]


def test_without_a_trace_header_each_request_gets_its_own_root(mocked_aws):
    publisher = RecordingPublisher()
    client = edge(publisher)
    for _ in range(2):
        client.post("/prod/inference/deploy-sagemaker-endpoint", json=DEPLOY, headers={"x-api-key": "key-one"})
    roots = [c["metadata"]["trace_header"].split(";")[0] for c in publisher.of_type("EndpointDeploymentRequested")]
    assert len(set(roots)) == 2 and all(r.startswith("Root=1-") for r in roots)


def test_a_command_that_cannot_be_published_is_503_and_leaves_no_job(mocked_aws):
    client = edge(RefusingPublisher())
    response = client.post("/prod/inference/deploy-sagemaker-endpoint", json=DEPLOY, headers={"x-api-key": "key-one"})
    assert response.status_code == 503 and "not accepted" in response.json()["error"]
    listed = client.get("/prod/inference/list-endpoint-deployment-jobs", headers={"x-api-key": "key-one"})
    assert listed.json() == []


@pytest.mark.parametrize("expires_in", [121, 10**9])
def test_presigned_expiry_cannot_exceed_the_maximum(mocked_aws, expires_in):
    client = edge(RecordingPublisher())
    response = client.get(
        "/prod/inference/generate-s3-presigned-url-for-uploading",
        params={"key": "config/a.json", "expires_in": expires_in},
        headers={"x-api-key": "key-one"},
    )
    assert response.status_code == 400 and "at most 120" in response.json()["error"]


PREFLIGHT = {"Origin": "http://127.0.0.1:7860", "Access-Control-Request-Method": "POST"}


@pytest.mark.parametrize("path", ["/prod/inference/v2", "/prod//dataset", "/prod/checkpoints", "/prod/no-such-route"])
def test_a_cors_preflight_is_answered_without_a_key(mocked_aws, path):
    client = edge(RecordingPublisher())
    response = client.options(path, headers={**PREFLIGHT, "Access-Control-Request-Headers": "content-type,x-api-key"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "x-api-key" in response.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "http://127.0.0.1:7860"}, {"Access-Control-Request-Method": "POST"}],
    ids=["bare", "origin-only", "method-only"],
)
def test_only_a_real_preflight_skips_the_key(mocked_aws, headers):
    client = edge(RecordingPublisher())
    assert client.options("/prod/checkpoints", headers=headers).status_code == 401
    assert client.get("/prod/checkpoints", headers=headers).status_code == 401


def test_answers_carry_cors_headers_for_browsers(mocked_aws):
    client = edge(RecordingPublisher())
    response = client.get("/prod/checkpoints", headers={"x-api-key": "key-one", "Origin": "http://127.0.0.1:7860"})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"


def test_double_slashes_in_paths_are_single_ones(mocked_aws):
    client = edge(RecordingPublisher())
    for path in ("/prod//datasets", "/prod//inference//list-inference-jobs", "/prod///checkpoints"):
        response = client.get(path, headers={"x-api-key": "key-one"})
        assert response.status_code == 200, (path, response.text)
    assert client.get("/prod//datasets").status_code == 401


# ---------------------------------------------------------------- the seed's routes, as the app serves them


def test_the_app_serves_every_seed_route_and_route_29s_second_path():
    served = set(served_routes())
    assert [route for route in SEED_ROUTES if (route.method, route.path) not in served] == []
    assert ("GET", DATASET_DATA_ALIAS) in served


def test_the_served_openapi_gives_every_seed_route_its_models(mocked_aws):
    """What the seed's routes take and answer comes from the app: its OpenAPI document names a model for each."""
    document = edge(RecordingPublisher()).get("/prod/openapi.json", headers={"x-api-key": "key-one"}).json()
    for route in SEED_ROUTES:
        operation = document["paths"][f"/prod{route.path}"][route.method.lower()]
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer, route
        if route.method == "GET":
            assert "requestBody" not in operation, route
        else:
            assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"], route


# ---------------------------------------------------------------- query and path parameters

KEY = {"x-api-key": "key-one"}
UPLOAD = "/prod/inference/generate-s3-presigned-url-for-uploading"
SEED_JOB_ID = "1f9679f3-25b8-4c44-8345-0a845da30094"


@pytest.mark.parametrize(
    ("url", "params", "status"),
    [
        ("/prod/inference/get-inference-job", {"jobID": SEED_JOB_ID}, 404),
        ("/prod/inference/get-inference-job-image-output", {"jobID": SEED_JOB_ID}, 404),
        ("/prod/inference/get-inference-job-param-output", {}, 200),
        ("/prod/inference/get-endpoint-deployment-job", {"jobID": SEED_JOB_ID}, 404),
        (UPLOAD, {"key": "config/aigc.json"}, 200),
        (UPLOAD, {"key": "config/aigc.json", "s3_bucket_name": "edge-bucket"}, 200),
        ("/prod/checkpoints", [("status", "Active"), ("types", "Stable-diffusion"), ("types", "Lora")], 200),
        ("/prod/datasets", [("dataset_status", "Enabled"), ("dataset_status", "Disabled")], 200),
        ("/prod/models", [("types", "Stable-diffusion"), ("status", "Complete")], 200),
        ("/prod/trains", [("types", "Stable-diffusion"), ("types", "Lora"), ("status", "Complete")], 200),
        ("/prod/test_dataset/data", {}, 404),
        ("/prod/dataset/my%20cats/data", {}, 404),
    ],
)
def test_the_seeds_query_and_path_examples_are_accepted(mocked_aws, url, params, status):
    response = edge(RecordingPublisher()).get(url, params=params, headers=KEY)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("url", "params", "field", "fragment"),
    [
        ("/prod/inference/get-inference-job", {"jobID": ""}, "jobID", "at least 1 character"),
        ("/prod/inference/get-endpoint-deployment-job", {"jobID": ""}, "jobID", "at least 1 character"),
        (UPLOAD, {}, "key", "required"),
        (UPLOAD, {"key": "/etc/passwd"}, "key", "start with '/'"),
        (UPLOAD, {"key": "config/../../x"}, "key", "'..'"),
        (UPLOAD, {"key": "config/a.json", "s3_bucket_name": "Bad_Bucket"}, "s3_bucket_name", "pattern"),
        (UPLOAD, {"key": "config/a.json", "s3_bucket_name": "ab"}, "s3_bucket_name", "pattern"),
        ("/prod/dataset/%2E%2E/data", {}, "dataset_name", "'..'"),
        ("/prod/%2E%2E/data", {}, "dataset_name", "'..'"),
        ("/prod/dataset/%20cats/data", {}, "dataset_name", "inner space"),
    ],
)
def test_bad_query_and_path_parameters_are_422_naming_them(mocked_aws, url, params, field, fragment):
    response = edge(RecordingPublisher()).get(url, params=params, headers=KEY)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"][-1] == field and fragment in problem["msg"], problem


def test_a_well_formed_bucket_other_than_the_projects_is_400(mocked_aws):
    params = {"key": "config/a.json", "s3_bucket_name": "someone-elses-bucket"}
    response = edge(RecordingPublisher()).get(UPLOAD, params=params, headers=KEY)
    assert response.status_code == 400 and "project's bucket" in response.json()["error"]


def test_the_openapi_document_shows_the_seeds_examples_and_the_bucket_rule(mocked_aws):
    paths = edge(RecordingPublisher()).get("/prod/openapi.json", headers=KEY).json()["paths"]

    def parameter(path: str, name: str) -> dict:
        [found] = [p for p in paths[path]["get"]["parameters"] if p["name"] == name]
        return found

    def answer_example(path: str):
        return paths[path]["get"]["responses"]["200"]["content"]["application/json"]["example"]

    for path in ("/prod/inference/get-inference-job", "/prod/inference/get-endpoint-deployment-job"):
        assert parameter(path, "jobID")["schema"]["examples"] == [SEED_JOB_ID]
    assert parameter(UPLOAD, "key")["examples"]["seed"]["value"] == "config/aigc.json"
    bucket = parameter(UPLOAD, "s3_bucket_name")["schema"]
    assert bucket["anyOf"][0]["pattern"] == "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    assert bucket["examples"] == ["stable-diffusion-aws-extension-aigcbucket"]
    assert parameter("/prod/checkpoints", "types")["schema"]["examples"] == [["Stable-diffusion", "Lora"]]
    assert parameter("/prod/datasets", "dataset_status")["schema"]["examples"] == [["Enabled"]]
    assert parameter("/prod/models", "status")["schema"]["examples"] == [["Complete"]]
    assert parameter("/prod/trains", "types")["schema"]["examples"] == [["Stable-diffusion"]]
    assert parameter("/prod/{dataset_name}/data", "dataset_name")["examples"]["seed"]["value"] == "test_dataset"
    assert answer_example(UPLOAD).endswith("/config/aigc.json?XXX")
    assert answer_example("/prod/inference/get-lora-list") == ["raidenshogun1-000009.safetensors"]
    for path in ("/prod/inference/get-inference-job-image-output", "/prod/inference/get-inference-job-param-output"):
        assert answer_example(path)[0].endswith(f"/out/{SEED_JOB_ID}/result/image_0.jpg")
    assert paths[UPLOAD]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "string"
