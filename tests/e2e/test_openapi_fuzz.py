"""A schemathesis run of the served OpenAPI document against the whole local stack, with the key.

The document is the one the edge serves (``GET /prod/openapi.json`` with ``x-api-key``), loaded once
the session's stack is up. Every operation in it is fuzzed, HEAD ones included, over real HTTP, with
the key on every request; one test per operation, so a failure names it:

- bounded: ``MAX_EXAMPLES`` cases per operation, drawn from the document's own examples, valid data
  (positive) and invalid data (negative); no shrinking and no example database, so a failure reports
  the first case that failed and a run's length does not depend on what it finds;
- reproducible: derandomized (Hypothesis derives the cases from the test, not from a clock), so CI
  sends the same requests on every run;
- each request has ``REQUEST_TIMEOUT_S`` to be answered;
- checks: no 5xx (``not_a_server_error``); every answered status is documented
  (``status_code_conformance``), with the documented content type (``content_type_conformance``) and
  a body that conforms to its schema (``response_schema_conformance``).

The operations are the routes the app serves (``served_routes``); ``test_every_served_route_is_fuzzed``
holds the served document to the same list, so nothing the edge answers escapes the run. (Schemathesis'
own ``from_fixture(...).parametrize()`` would do this too, but 4.32.5's lazy form does not run under
pytest 9.2: it renames ``Function._nodeid``, which pytest 9.2 no longer has.)

Nothing is excluded. ``POST /inference/deploy-sagemaker-endpoint`` is kept although a valid body
deploys an endpoint, which the local SageMaker runs as ``sd_runtime serve`` processes: the stack's
instance quota (``LOCAL_INSTANCE_QUOTA``) bounds how many run at once (a deployment over it fails as
SageMaker's ``ResourceLimitExceeded`` would: a job status, not an HTTP error), and every endpoint the
run deployed is deleted afterwards, so the tests that share the stack get the quota back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api_gateway.app import DOCUMENT_PATHS, served_routes
from infra.local.stack import LocalStack
from tests.e2e.conftest import ApiClient

pytestmark = pytest.mark.e2e

STAGE = "/prod"
#: Cases per operation.
MAX_EXAMPLES = 15
#: Seconds a request may take to be answered (a route that waits for its owning service waits at most
#: TRANSITION_WAIT_S, 20 s in the e2e stack, then answers 504).
REQUEST_TIMEOUT_S = 30
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: (METHOD, path) of every operation the document must hold: every route the edge serves but the document's own.
OPERATIONS = sorted((method, STAGE + path) for method, path in served_routes() if path not in DOCUMENT_PATHS)


def _deployment_jobs(api: ApiClient) -> list[dict]:
    listed = api.get("/inference/list-endpoint-deployment-jobs")
    assert listed.status_code == 200, listed.text
    return listed.json()


def _delete_endpoints_deployed_since(api: ApiClient, before: set[str]) -> None:
    """Deletes every endpoint deployed after ``before`` was taken, and waits until SageMaker has let them go."""
    names = sorted(
        {job["endpoint_name"] for job in _deployment_jobs(api) if job["EndpointDeploymentJobId"] not in before}
    )
    if not names:
        return
    deleted = api.post("/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": names})
    assert deleted.status_code == 200, deleted.text
    deadline = time.monotonic() + 60
    left: list[dict] = []
    while time.monotonic() < deadline:
        left = [
            job
            for job in _deployment_jobs(api)
            if job["EndpointDeploymentJobId"] not in before and job["status"] not in ("deleted", "failed")
        ]
        if not left:
            return
        time.sleep(0.5)
    raise AssertionError(f"endpoints the fuzz run deployed are not deleted after 60 s: {left}")


@pytest.fixture(scope="module")
def served_openapi(stack: LocalStack, api: ApiClient) -> Iterator[schemathesis.BaseSchema]:
    """The document as the edge serves it, sent to the stack; deletes the endpoints the run deployed."""
    schema = schemathesis.openapi.from_url(
        f"{stack.settings.base_url}/openapi.json",
        headers={"x-api-key": stack.settings.api_key},
        timeout=REQUEST_TIMEOUT_S,
    )
    # The document's paths carry the stage; the origin is the base URL.
    schema.config.update(base_url=stack.settings.base_url.removesuffix(STAGE), request_timeout=REQUEST_TIMEOUT_S)
    before = {job["EndpointDeploymentJobId"] for job in _deployment_jobs(api)}
    yield schema
    _delete_endpoints_deployed_since(api, before)


def test_every_served_route_is_fuzzed(served_openapi: schemathesis.BaseSchema):
    documented = sorted(
        (operation.method.upper(), operation.path)
        for operation in (r.ok() for r in served_openapi.get_all_operations())
    )
    assert documented == OPERATIONS


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_served_openapi_holds(served_openapi: schemathesis.BaseSchema, stack: LocalStack, method: str, path: str):
    operation = served_openapi[path][method]
    cases = st.one_of(
        *operation.get_strategies_from_examples(),
        *(operation.as_strategy(generation_mode=mode) for mode in schemathesis.GenerationMode),
    )
    key = {"x-api-key": stack.settings.api_key}

    with requests.Session() as session:

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def holds(case: schemathesis.Case) -> None:
            case.call_and_validate(session=session, headers=key, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

        holds()
