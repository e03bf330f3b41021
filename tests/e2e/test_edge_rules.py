"""Rules of the edge that hold for every route: the API key, CORS, ``//`` in paths, and bad input changing nothing."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import ApiClient

pytestmark = pytest.mark.e2e


def documented_routes(api: ApiClient) -> list[tuple[str, str]]:
    spec = api.get("/openapi.json")
    assert spec.status_code == 200
    return [(method.upper(), path) for path, ops in spec.json()["paths"].items() for method in ops]


def test_the_openapi_document_lists_the_routes_under_the_stage(api: ApiClient):
    routes = documented_routes(api)
    assert ("POST", "/prod/inference/deploy-sagemaker-endpoint") in routes
    assert ("GET", "/prod/inference/list-endpoint-deployment-jobs") in routes
    assert all(path.startswith("/prod/") for _, path in routes)


@pytest.mark.parametrize("key", [None, "", "wrong-key", "e2e-key-but-longer"])
def test_every_route_needs_a_valid_api_key(api: ApiClient, key: str | None):
    root = api.base_url.removesuffix("/prod")
    routes = [*documented_routes(api), ("GET", "/prod/openapi.json"), ("GET", "/prod/no/such/route"), ("GET", "/")]
    headers = {} if key is None else {"x-api-key": key}
    for method, path in routes:
        response = requests.request(method, root + path, headers=headers, json={}, timeout=10)
        expected = 401 if key is None else 403
        assert response.status_code == expected, (method, path, response.status_code)


#: API Gateway's CORS answer, as the seed system gave it on every route.
CORS_ALLOWED_HEADERS = "Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token"
ORIGIN = "http://127.0.0.1:7860"  # the WebUI's origin


def concrete(path: str) -> str:
    return path.replace("{dataset_name}", "my%20cats").replace("{", "").replace("}", "")


def test_a_cors_preflight_is_answered_on_every_route_without_a_key(api: ApiClient):
    root = api.base_url.removesuffix("/prod")
    routes = [*documented_routes(api), ("POST", "/prod//dataset"), ("GET", "/prod//dataset/my%20cats/data")]
    for method, path in routes:
        response = requests.options(
            root + concrete(path),
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "content-type,x-api-key",
            },
            timeout=10,
        )
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        assert response.headers["Access-Control-Allow-Origin"] == "*", (method, path)
        assert response.headers["Access-Control-Allow-Headers"] == CORS_ALLOWED_HEADERS, (method, path)
        assert method in response.headers["Access-Control-Allow-Methods"].split(","), (method, path)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": ORIGIN}, {"Access-Control-Request-Method": "POST"}, {"Origin": ORIGIN, "x-api-key": "wrong"}],
    ids=["bare", "origin-only", "method-only", "wrong-key"],
)
def test_only_a_real_preflight_skips_the_key(api: ApiClient, headers):
    expected = 403 if "x-api-key" in headers else 401
    for path in ("/checkpoints", "//dataset", "/inference/deploy-sagemaker-endpoint"):
        response = requests.options(api.base_url + path, headers=headers, timeout=10)
        assert response.status_code == expected, (path, response.status_code)
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_answers_carry_allow_origin_for_browsers(api: ApiClient):
    for headers in ({"x-api-key": api.api_key, "Origin": ORIGIN}, {"x-api-key": api.api_key}, {"Origin": ORIGIN}):
        response = requests.get(api.base_url + "/inference/test-connection", headers=headers, timeout=10)
        assert response.headers["Access-Control-Allow-Origin"] == "*", headers


@pytest.mark.parametrize(
    "path",
    ["//datasets", "//dataset/no-such-dataset/data", "//inference//list-endpoint-deployment-jobs", "///checkpoints"],
)
def test_double_slashes_in_paths_are_single_ones_and_still_need_the_key(api: ApiClient, path: str):
    expected = 404 if "no-such-dataset" in path else 200
    response = api.get(path)
    assert response.status_code == expected, (path, response.text)
    if expected == 404:
        assert "no-such-dataset" in response.json()["error"]
    assert requests.get(api.base_url + path, timeout=10).status_code == 401
    assert requests.get(api.base_url + path, headers={"x-api-key": "wrong"}, timeout=10).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"instance_type": "ml.t2.medium", "initial_instance_count": 1},
        {"instance_type": "ml.g4dn.xlarge", "initial_instance_count": "0"},
        {"instance_type": "ml.g4dn.xlarge", "initial_instance_count": "1", "autoscaling_enabled": "maybe"},
        {"instance_type": "ml.p3.2xlarge", "initial_instance_count": "1"},
        {"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 101},
        {"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 0},
        {"instance_type": "ml.g4dn.xlarge", "initial_instance_count": "many"},
        {"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 1, "endpoint_name": "bad name/../x"},
        {"initial_instance_count": 1},
        [],
    ],
)
def test_a_bad_deploy_body_is_422_and_creates_nothing(api: ApiClient, body):
    before = api.get("/inference/list-endpoint-deployment-jobs").json()
    response = api.post("/inference/deploy-sagemaker-endpoint", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail and all(set(item) == {"loc", "msg", "type"} for item in detail)
    assert api.get("/inference/list-endpoint-deployment-jobs").json() == before


def test_malformed_json_is_422(api: ApiClient):
    response = requests.post(
        api.base_url + "/inference/deploy-sagemaker-endpoint",
        data="{not json",
        headers={"x-api-key": api.api_key, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422


@pytest.mark.parametrize("body", [{}, {"delete_endpoint_list": []}, {"delete_endpoint_list": "a"}])
def test_a_bad_delete_body_is_422(api: ApiClient, body):
    assert api.post("/inference/delete-sagemaker-endpoint", json=body).status_code == 422


def test_a_name_given_twice_to_delete_counts_once(api: ApiClient):
    before = api.get("/inference/list-endpoint-deployment-jobs").json()
    body = {"delete_endpoint_list": ["no-such-endpoint", "no-such-endpoint"]}
    response = api.post("/inference/delete-sagemaker-endpoint", json=body)
    assert response.status_code == 200
    assert (
        response.json() == "Endpoint delete completed; skipped (no such endpoint, or already deleted): no-such-endpoint"
    )
    assert api.get("/inference/list-endpoint-deployment-jobs").json() == before


def test_get_job_without_job_id_is_422(api: ApiClient):
    assert api.get("/inference/get-endpoint-deployment-job").status_code == 422


def test_test_connection(api: ApiClient):
    assert api.get("/inference/test-connection").status_code == 200
