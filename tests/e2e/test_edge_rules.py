"""Rules of the edge that hold for every route: the API key, and bad input changing nothing."""

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


@pytest.mark.parametrize(
    "body",
    [
        {"instance_type": "ml.t2.medium", "initial_instance_count": 1},
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


@pytest.mark.parametrize("body", [{}, {"delete_endpoint_list": []}, {"delete_endpoint_list": ["a", "a"]}])
def test_a_bad_delete_body_is_422(api: ApiClient, body):
    assert api.post("/inference/delete-sagemaker-endpoint", json=body).status_code == 422


def test_get_job_without_job_id_is_422(api: ApiClient):
    assert api.get("/inference/get-endpoint-deployment-job").status_code == 422


def test_test_connection(api: ApiClient):
    assert api.get("/inference/test-connection").status_code == 200
