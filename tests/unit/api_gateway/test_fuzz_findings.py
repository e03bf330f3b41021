"""Defects the schemathesis run of the served OpenAPI (tests/e2e/test_openapi_fuzz.py) found, each reproduced here.

1. A JSON body whose bytes are not UTF-8 text got FastAPI's ``400 {"detail": "There was an error
   parsing the body"}``: undocumented on routes without a 400, and not the documented
   ``{"statusCode", "error"}`` body on routes with one. It is now the 422 ``json_invalid`` that
   malformed JSON text already gets.
2. ``PUT /inference/v2/{job_id}/run`` with an id holding control characters (``%C2%9E%0A``) answered
   500: S3 answers a GET of such a key with a bare 404, not ``NoSuchKey``, and only ``NoSuchKey`` was
   "no such object". Any 404 is now; the route answers its documented 404.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from api_gateway.claims import ClaimCheck
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge

KEY = {"x-api-key": "key"}
JSON_KEY = {**KEY, "content-type": "application/json"}
#: Bytes no JSON decoder can read as text (what the fuzzer sent to /checkpoint).
#: The body the fuzzer sent with the id that broke ``PUT /inference/v2/{job_id}/run``.
V2_RUN = {
    "sagemaker_endpoint_name": "infer-endpoint-cb821ea",
    "task_type": "txt2img",
    "models": {"Stable-diffusion": ["v1-5-pruned-emaonly.safetensors"]},
}
NOT_UTF8 = b"\xff\x02\xfe5Q#}} \xc3\x17\x002\x7f"


def _operations_with_a_body(edge) -> list[tuple[str, str]]:
    document = edge.client.get("/prod/openapi.json", headers=KEY).json()
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]


# ---------------------------------------------------------------- 1: a body that is not text


def test_a_body_that_is_not_utf8_is_a_documented_422_on_every_route_with_a_body(edge, publisher):
    operations = _operations_with_a_body(edge)
    assert len(operations) >= 10
    document = edge.client.get("/prod/openapi.json", headers=KEY).json()
    for method, path in operations:
        answer = edge.client.request(method, path.replace("{job_id}", "some-id"), content=NOT_UTF8, headers=JSON_KEY)
        assert answer.status_code == 422, (method, path, answer.text)
        assert answer.json() == {
            "detail": [
                {"loc": ["body"], "msg": "JSON decode error: the body is not UTF-8 text", "type": "json_invalid"}
            ]
        }
        assert "422" in document["paths"][path][method.lower()]["responses"]
    assert publisher.published == []


def test_malformed_json_text_is_still_the_same_422(edge):
    answer = edge.client.post("/prod/checkpoint", content=b'{"checkpoint_type": ', headers=JSON_KEY)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "json_invalid"


def test_other_http_errors_keep_their_status_and_body(edge):
    assert edge.client.get("/prod/no-such-route", headers=KEY).status_code == 404
    not_allowed = edge.client.delete("/prod/checkpoints", headers=KEY)
    assert not_allowed.status_code == 405
    assert not_allowed.json() == {"detail": "Method Not Allowed"}


# ---------------------------------------------------------------- 2: a bare 404 from S3


def _bare_404(stubber: Stubber) -> None:
    """What the emulator (and S3, for a key it cannot hold) answers: 404 with no error code of its own."""
    stubber.add_client_error("get_object", service_error_code="404", service_message="Not Found", http_status_code=404)


def test_a_bare_404_from_s3_is_no_such_object(mocked_aws):
    s3 = boto3.client("s3")
    stubber = Stubber(s3)
    _bare_404(stubber)
    with stubber:
        assert ClaimCheck(EDGE_BUCKET, s3).get_json("inference-v2/\x9e\n/request.json") is None


def test_other_s3_errors_are_not_taken_for_a_missing_object(mocked_aws):
    s3 = boto3.client("s3")
    stubber = Stubber(s3)
    stubber.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    with stubber, pytest.raises(ClientError):
        ClaimCheck(EDGE_BUCKET, s3).get_json("inference-v2/x/request.json")


def test_running_a_v2_job_whose_id_s3_cannot_hold_is_a_404_not_a_500(mocked_aws, publisher):
    edge = in_process_edge(publisher)
    claims = edge.client.app.state.deps.claims
    stubber = Stubber(claims._s3)
    _bare_404(stubber)
    with stubber:
        answer = edge.client.put("/prod/inference/v2/%C2%9E%0A/run", json=V2_RUN, headers=KEY)
    assert answer.status_code == 404, answer.text
    assert answer.json()["statusCode"] == 404
    assert publisher.published == []
