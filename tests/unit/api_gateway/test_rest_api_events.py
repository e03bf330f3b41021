"""The edge as Lambda sees it behind the REST API: events from execute-api (no stage in the path) and custom domains."""

from __future__ import annotations

import json

import pytest
from mangum import Mangum

from api_gateway.paths import with_stage_in_path
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import in_process_edge


class FakeLambdaContext:
    """Test double of Lambda's context: Mangum reads nothing from it."""


def rest_event(path: str, *, request_path: str, key: str | None = "key", method: str = "GET") -> dict:
    headers = {"host": "abc123.execute-api.us-east-1.amazonaws.com", **({"x-api-key": key} if key else {})}
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"stage": "prod", "path": request_path, "httpMethod": method, "requestId": "r-1"},
        "body": None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def lambda_edge(mocked_aws):
    app = in_process_edge(RecordingPublisher()).client.app
    mangum = Mangum(app, lifespan="off")
    return lambda event: mangum(with_stage_in_path(event), FakeLambdaContext())


def test_an_execute_api_event_without_the_stage_reaches_the_route_under_prod(lambda_edge):
    response = lambda_edge(rest_event("/inference/test-connection", request_path="/prod/inference/test-connection"))
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"]) == {"message": "Success"}


def test_a_custom_domain_event_that_keeps_the_stage_is_left_as_it_is(lambda_edge):
    event = rest_event("/prod/inference/test-connection", request_path="/prod/inference/test-connection")
    assert with_stage_in_path(event) is event
    assert lambda_edge(event)["statusCode"] == 200


def test_the_key_is_still_checked_by_the_edge_behind_api_gateway(lambda_edge):
    missing = lambda_edge(rest_event("/inference/test-connection", request_path="/prod/x", key=None))
    wrong = lambda_edge(rest_event("/inference/test-connection", request_path="/prod/x", key="nope"))
    assert (missing["statusCode"], wrong["statusCode"]) == (401, 403)


def test_a_path_that_only_starts_like_the_stage_still_gets_it():
    event = rest_event("/production/x", request_path="/prod/production/x")
    assert with_stage_in_path(event)["path"] == "/prod/production/x"
