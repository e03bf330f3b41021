"""What fits one AWS Lambda invocation, enforced the same way locally: the 413 for bodies the proxy event
cannot carry, list answers in pages that fit the response (and a continuation to the rest), and
presigned URLs granted no longer than the credentials that sign them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials

from api_gateway import limits
from api_gateway.limits import (
    EVENT_ENVELOPE_ALLOWANCE_BYTES,
    LAMBDA_SYNC_PAYLOAD_BYTES,
    LAMBDA_SYNC_RESPONSE_BYTES,
    MAX_BODY_BYTES,
    MAX_RESPONSE_BYTES,
    TOO_LARGE_MESSAGE,
    escaped_size,
    event_bytes,
)
from api_gateway.pages import ITEMS_BUDGET_BYTES, MAX_TOKEN_CHARS, NEXT_TOKEN_HEADER, paginate
from api_gateway.presign import (
    EXPIRES_IN_HEADER,
    TEMPORARY_CREDENTIALS_MAX_EXPIRY_S,
    ExpiryTooLong,
    Presigner,
    temporary_cap_s,
)
from sdmw_contracts.events import (
    CheckpointChanged,
    DatasetChanged,
    EndpointDeploymentChanged,
    InferenceJobChanged,
    ModelChanged,
    TrainJobChanged,
    WebhookSubscriptionChanged,
)
from sdmw_contracts.events.assets import CheckpointFile, DatasetItem
from tests.unit.api_gateway.conftest import EDGE_BUCKET

KEY = {"x-api-key": "key"}
JSON_KEY = {**KEY, "content-type": "application/json"}
T0 = datetime(2024, 1, 1, tzinfo=UTC)
INFERENCE = {
    "sagemaker_endpoint_name": "infer-endpoint-cb821ea",
    "task_type": "txt2img",
    "prompt": "",
    "models": {"Stable-diffusion": ["v1-5-pruned-emaonly.safetensors"]},
}


def lambda_response_size(response) -> int:
    """What ``response`` would take in a Lambda proxy response's ``body`` string, at most."""
    return escaped_size(response.json())


# ---------------------------------------------------------------- the figures


def test_the_body_budget_is_lambdas_payload_less_what_the_event_wraps_it_in():
    assert LAMBDA_SYNC_PAYLOAD_BYTES == 6_291_456  # "Request must be smaller than 6291456 bytes"
    assert MAX_BODY_BYTES == LAMBDA_SYNC_PAYLOAD_BYTES - EVENT_ENVELOPE_ALLOWANCE_BYTES == 6_160_384
    # Headers three times and the URL twice, every copy escaped (doubled at worst), and the request context.
    worst_envelope = (
        2 * (3 * limits.API_GATEWAY_HEADERS_BYTES + 2 * limits.API_GATEWAY_URL_CHARS) + limits.EVENT_CONTEXT_BYTES
    )
    assert worst_envelope <= EVENT_ENVELOPE_ALLOWANCE_BYTES
    assert MAX_BODY_BYTES < limits.API_GATEWAY_PAYLOAD_BYTES


def test_the_response_budget_fits_lambdas_response_and_api_gateways_payload():
    assert LAMBDA_SYNC_RESPONSE_BYTES == 6_291_556  # "exceeded maximum allowed payload size (6291556 bytes)"
    assert MAX_RESPONSE_BYTES == LAMBDA_SYNC_RESPONSE_BYTES - limits.RESPONSE_ENVELOPE_ALLOWANCE_BYTES
    assert MAX_RESPONSE_BYTES < LAMBDA_SYNC_PAYLOAD_BYTES < limits.API_GATEWAY_PAYLOAD_BYTES


@pytest.mark.parametrize(
    "text",
    ['{"prompt": "a cute panda"}', 'quotes " and \\ backslashes', "lines\n\ttabs\r\b\f", "\x00\x01\x1f\x7f", ""],
)
def test_an_ascii_body_counts_as_lambda_carries_it_in_a_json_string(text):
    assert event_bytes(text.encode()) == len(json.dumps(text)) - 2


@pytest.mark.parametrize("text", ["熊猫 🐼", "é" * 10, "a\u2028b", '\U0001d518 "quoted"'])
def test_a_non_ascii_body_counts_no_less_than_either_way_lambda_may_carry_it(text):
    counted = event_bytes(text.encode())
    assert counted >= len(json.dumps(text)) - 2  # every non-ASCII character as \u escapes
    assert counted >= len(json.dumps(text, ensure_ascii=False).encode()) - 2  # as UTF-8


def test_the_413_says_the_limit_and_names_the_routes_that_take_large_images_through_s3():
    assert f"{MAX_BODY_BYTES:,} bytes" in TOO_LARGE_MESSAGE
    for path in ("/inference/v2", "api_params_s3_upload_url", "/inference/run-sagemaker-inference", "config/aigc.json"):
        assert path in TOO_LARGE_MESSAGE
    assert json.loads(limits.TOO_LARGE_BODY) == {"message": TOO_LARGE_MESSAGE}


# ---------------------------------------------------------------- bodies


def padded(size: int) -> bytes:
    """An inference request whose body takes exactly ``size`` bytes in the Lambda event."""
    base = json.dumps(INFERENCE).encode()
    body = json.dumps({**INFERENCE, "prompt": "x" * (size - event_bytes(base))}).encode()
    assert event_bytes(body) == size
    return body


def test_a_body_that_just_fits_the_event_is_read_and_one_byte_more_is_413(edge, publisher):
    at_limit = edge.client.post("/prod/inference-api/inference", content=padded(MAX_BODY_BYTES), headers=JSON_KEY)
    # Read and answered by the route: no such endpoint here, so the job failed at once.
    assert at_limit.status_code == 200 and at_limit.json()["status"] == "failed", at_limit.text[:300]
    over = edge.client.post("/prod/inference-api/inference", content=padded(MAX_BODY_BYTES + 1), headers=JSON_KEY)
    assert over.status_code == 413 and over.json() == {"message": TOO_LARGE_MESSAGE}
    assert publisher.published == []


def test_a_body_under_the_limit_whose_escapes_take_it_over_is_413_and_runs_nothing(edge, publisher):
    # 4 MB of \" on the wire: 8 MB once Lambda's event writes it as a JSON string.
    body = json.dumps({"instance_type": "ml.g4dn.xlarge", "endpoint_name": '"' * (2 * 1024 * 1024)}).encode()
    assert len(body) < MAX_BODY_BYTES < event_bytes(body)
    response = edge.client.post("/prod/inference/deploy-sagemaker-endpoint", content=body, headers=JSON_KEY)
    assert response.status_code == 413 and response.json() == {"message": TOO_LARGE_MESSAGE}
    # Its Content-Length fits, so the key is checked first, as for any body read before it is judged.
    keyless = edge.client.post("/prod/inference/deploy-sagemaker-endpoint", content=body, headers={})
    assert keyless.status_code == 401
    assert publisher.published == []


#: Creating routes with a body that is a valid request on its own (issue: "3 of 3 routes tried" ran it anyway).
STREAMED_CREATIONS = {
    "/prod/inference/deploy-sagemaker-endpoint": {"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 1},
    "/prod/inference-api/inference": {"task_type": "txt2img", "models": {"Stable-diffusion": ["m.safetensors"]}},
    "/prod/webhooks": {"url": "https://hooks.example.com/sdmw"},
}


@pytest.mark.parametrize("path", list(STREAMED_CREATIONS))
def test_a_streamed_body_over_the_limit_never_runs_the_route_on_what_was_read(edge, publisher, path):
    def chunks():
        yield json.dumps(STREAMED_CREATIONS[path]).encode()
        for _ in range(7):
            yield b" " * (1024 * 1024)  # still valid JSON, were it cut here

    response = edge.client.post(path, content=chunks(), headers=JSON_KEY)
    assert response.status_code == 413 and response.json() == {"message": TOO_LARGE_MESSAGE}
    assert publisher.published == []
    assert edge.client.get("/prod/inference/list-endpoint-deployment-jobs", headers=KEY).json() == []
    assert edge.client.get("/prod/webhooks", headers=KEY).json()["webhooks"] == []


def test_the_document_gives_the_413_its_figure(edge):
    document = edge.client.get("/prod/openapi.json", headers=KEY).json()
    too_large = document["paths"]["/prod/inference-api/inference"]["post"]["responses"]["413"]["description"]
    assert f"{MAX_BODY_BYTES:,}" in too_large and "10 MB" in too_large


# ---------------------------------------------------------------- pages: the cut itself


def test_a_page_is_cut_by_bytes_and_the_token_goes_on_after_its_last_item():
    items = [{"id": f"{n:03}", "blob": "x" * 100} for n in range(30)]
    one = escaped_size(items[0]) + 1
    page = paginate(
        items,
        list_name="t",
        key=lambda i: (i["id"],),
        view=dict,
        descending=False,
        limit=None,
        next_token=None,
        budget_bytes=10 * one,
    )
    assert [i["id"] for i in page.items] == [f"{n:03}" for n in range(10)] and page.next_token
    rest = paginate(
        items,
        list_name="t",
        key=lambda i: (i["id"],),
        view=dict,
        descending=False,
        limit=None,
        next_token=page.next_token,
        budget_bytes=10 * one,
    )
    assert rest.items[0]["id"] == "010"


def test_a_page_holds_one_item_even_when_it_alone_is_over_the_budget():
    items = [{"id": str(n), "blob": "x" * 1000} for n in range(3)]
    page = paginate(
        items,
        list_name="t",
        key=lambda i: (i["id"],),
        view=dict,
        descending=True,
        limit=None,
        next_token=None,
        budget_bytes=10,
    )
    assert [i["id"] for i in page.items] == ["2"] and page.next_token


@pytest.mark.parametrize("limit", [None, -1, 0])
def test_no_count_limit_leaves_only_the_byte_budget(limit):
    items = list(range(100))
    page = paginate(items, list_name="t", key=lambda i: (i,), view=str, descending=False, limit=limit, next_token=None)
    assert page.items == [str(i) for i in items] and page.next_token is None


# ---------------------------------------------------------------- pages: every list route


def job(n: int, raw: str = "") -> InferenceJobChanged:
    return InferenceJobChanged(
        id=f"job-{n:03}",
        version=1,
        task_type="txt2img",
        endpoint_name="infer-endpoint-cb821ea",
        status="succeed",
        start_time=T0 + timedelta(seconds=n),
        sagemaker_raw=raw,
    )


def all_pages(get, first: dict[str, Any] | None = None) -> list:
    """Every page of a list, following the continuation; the pages' items in order."""
    pages, params = [], dict(first or {})
    while True:
        response = get(params)
        assert response.status_code == 200, response.text[:300]
        assert lambda_response_size(response) <= MAX_RESPONSE_BYTES
        pages.append(response)
        token = response.headers.get(NEXT_TOKEN_HEADER)
        if token is None:
            return pages
        params = {**params, "next_token": token}


def test_inference_jobs_over_one_lambda_response_come_in_pages_that_each_fit(edge):
    # Each job's sagemakerRaw is 150,000 quotes: 300 KB of JSON, 600 KB once written as Lambda's body string.
    for n in range(14):
        edge.read_model.apply(job(n, raw='"' * 150_000))
    assert sum(escaped_size(json.dumps({"sagemakerRaw": '"' * 150_000})) for _ in range(14)) > MAX_RESPONSE_BYTES
    pages = all_pages(lambda params: edge.client.get("/prod/inference/list-inference-jobs", params=params, headers=KEY))
    assert len(pages) == 2
    ids = [item["InferenceJobId"] for page in pages for item in page.json()]
    assert ids == [f"job-{n:03}" for n in reversed(range(14))]  # newest first, each once, none left out


def test_a_list_that_fits_answers_as_before_without_a_token(edge):
    for n in range(3):
        edge.read_model.apply(job(n))
    response = edge.client.get("/prod/inference/list-inference-jobs", headers=KEY)
    assert NEXT_TOKEN_HEADER not in response.headers
    assert [item["InferenceJobId"] for item in response.json()] == ["job-002", "job-001", "job-000"]


def test_query_inference_jobs_keeps_its_limit_and_gives_a_token_for_the_rest(edge):
    for n in range(25):
        edge.read_model.apply(job(n))

    def query(params: dict[str, Any]):
        return edge.client.post("/prod/inference/query-inference-jobs", json={"limit": 10, **params}, headers=KEY)

    pages = all_pages(query)
    assert [len(page.json()) for page in pages] == [10, 10, 5]
    assert [i["InferenceJobId"] for p in pages for i in p.json()] == [f"job-{n:03}" for n in reversed(range(25))]
    for show_all in (-1, 0, "-1", ""):  # the extension's "Show All", and an empty field
        everything = edge.client.post("/prod/inference/query-inference-jobs", json={"limit": show_all}, headers=KEY)
        assert len(everything.json()) == 25 and NEXT_TOKEN_HEADER not in everything.headers


def test_a_page_goes_on_after_its_last_item_whatever_was_added_meanwhile(edge):
    for n in range(6):
        edge.read_model.apply(job(n))
    first = edge.client.get("/prod/inference/list-inference-jobs", params={"limit": 3}, headers=KEY)
    edge.read_model.apply(job(99))  # a newer job: it belongs before the first page, not in the second
    rest = edge.client.get(
        "/prod/inference/list-inference-jobs", params={"next_token": first.headers[NEXT_TOKEN_HEADER]}, headers=KEY
    )
    assert [i["InferenceJobId"] for i in first.json() + rest.json()] == [f"job-{n:03}" for n in (5, 4, 3, 2, 1, 0)]


def test_datasets_with_large_params_come_in_pages_with_the_token_in_the_body_too(edge):
    # Each description is 100,000 quotes: 200 KB of JSON, 400 KB as Lambda's body string; 18 of them, 7.2 MB.
    for n in range(18):
        edge.read_model.apply(
            DatasetChanged(
                id=f"cats-{n:02}",
                version=1,
                status="Enabled",
                s3_location=f"s3://{EDGE_BUCKET}/dataset/cats-{n:02}/",
                item_count=0,
                params={"description": '"' * 100_000},
                created_at=T0 + timedelta(seconds=n),
            )
        )
    pages = all_pages(lambda params: edge.client.get("/prod/datasets", params=params, headers=KEY))
    assert len(pages) == 2
    assert pages[0].json()["next_token"] == pages[0].headers[NEXT_TOKEN_HEADER]
    assert "next_token" not in pages[-1].json()
    names = [d["datasetName"] for page in pages for d in page.json()["datasets"]]
    assert names == [f"cats-{n:02}" for n in reversed(range(18))]


def checkpoint(n: int, filename: str | None = None, checkpoint_type: str = "Lora") -> CheckpointChanged:
    name = filename or f"lora-{n:03}.safetensors"
    return CheckpointChanged(
        id=f"checkpoint-{n:03}",
        version=2,
        checkpoint_type=checkpoint_type,
        status="Active",
        s3_location=f"s3://{EDGE_BUCKET}/checkpoint/{n}/",
        files=[CheckpointFile(filename=name, key=f"checkpoint/{n}/{name}", s3_uri=f"s3://x/{name}", parts_number=1)],
        created_at=T0 + timedelta(seconds=n),
    )


@pytest.mark.parametrize(
    ("path", "listed", "ids"),
    [
        ("/prod/checkpoints", "checkpoints", lambda items: [c["id"] for c in items]),
        ("/prod/inference/get-lora-list", None, lambda items: items),
    ],
)
def test_a_count_limit_pages_through_checkpoints_and_catalogues(edge, path, listed, ids):
    for n in range(5):
        edge.read_model.apply(checkpoint(n))
    pages = all_pages(lambda params: edge.client.get(path, params=params, headers=KEY), {"limit": 2})
    found = [ids(page.json()[listed] if listed else page.json()) for page in pages]
    assert [len(items) for items in found] == [2, 2, 1]
    everything = edge.client.get(path, headers=KEY).json()
    assert [item for items in found for item in items] == ids(everything[listed] if listed else everything)
    if listed:
        assert set(everything) == {"statusCode", listed}  # no next_token when nothing is left: as before


def test_a_catalogue_token_stays_short_with_the_longest_names(edge):
    names = ["🐼" * 1000 + f"{n}.safetensors" for n in range(3)]  # 1,014 characters, 4 bytes each
    for n, name in enumerate(names):
        edge.read_model.apply(checkpoint(n, name))
    pages = all_pages(
        lambda params: edge.client.get("/prod/inference/get-lora-list", params=params, headers=KEY), {"limit": 1}
    )
    assert all(len(page.headers.get(NEXT_TOKEN_HEADER, "")) <= MAX_TOKEN_CHARS for page in pages)
    listed = [item for page in pages for item in page.json()]
    # Alike in their first 256 characters, they are ordered by a digest of the rest: each comes once.
    assert len(pages) == 3 and sorted(listed) == sorted(names)


def test_models_trains_endpoints_and_webhooks_page_too(edge):
    for n in range(3):
        edge.read_model.apply(
            ModelChanged(
                id=f"model-{n}",
                version=1,
                model_type="Stable-diffusion",
                name=f"m{n}",
                status="Complete",
                s3_base="s3://b/model/",
                created_at=T0 + timedelta(seconds=n),
            )
        )
        edge.read_model.apply(
            TrainJobChanged.model_validate(
                {
                    "id": f"train-{n}",
                    "version": 1,
                    "train_type": "dreambooth",
                    "model_id": "model-0",
                    "model_name": "m0",
                    "status": "Complete",
                    "created_at": (T0 + timedelta(seconds=n)).isoformat(),
                    "input_location": "s3://b/train/",
                    "base_model_uri": "s3://b/model/",
                    "instance_type": "ml.g4dn.2xlarge",
                    "hyperparameters": {"task": "dreambooth", "model_name": "m"},
                    "output_path": "s3://b/train/out/",
                }
            )
        )
        edge.read_model.apply(
            EndpointDeploymentChanged(
                id=f"deployment-{n}",
                version=1,
                endpoint_name=f"endpoint-{n}",
                instance_type="ml.g5.xlarge",
                initial_instance_count=1,
                status="success",
                start_time=T0 + timedelta(seconds=n),
            )
        )
        edge.read_model.apply(
            WebhookSubscriptionChanged(
                id=f"webhook-{n}",
                version=1,
                url="https://example.com/hook",
                event_types=["inference"],
                status="active",
                created_at=T0 + timedelta(seconds=n),
            )
        )
    for path, listed, newest in [
        ("/prod/models", "models", "model-2"),
        ("/prod/trains", "trainJobs", "train-2"),
        ("/prod/inference/list-endpoint-deployment-jobs", None, "deployment-2"),
        ("/prod/webhooks", "webhooks", "webhook-2"),
    ]:
        pages = all_pages(lambda params, path=path: edge.client.get(path, params=params, headers=KEY), {"limit": 2})
        items = [i for p in pages for i in (p.json()[listed] if listed else p.json())]
        assert [len(p.json()[listed] if listed else p.json()) for p in pages] == [2, 1], path
        first = items[0].get("id") or items[0].get("EndpointDeploymentJobId")
        assert first == newest and len({json.dumps(i, sort_keys=True) for i in items}) == 3, path


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "e30",  # {}
        "eyJsaXN0IjoiY2hlY2twb2ludHMiLCJhZnRlciI6WyJ4IiwxXX0",  # another list's
        "eyJsaXN0IjoiaW5mZXJlbmNlLWpvYnMiLCJhZnRlciI6WyJ4IiwieSJdfQ",  # this list's name, a key of other types
    ],
)
def test_a_token_the_list_did_not_give_is_400(edge, token):
    edge.read_model.apply(job(1))
    response = edge.client.get("/prod/inference/list-inference-jobs", params={"next_token": token}, headers=KEY)
    assert response.status_code == 400 and "next_token" in response.json()["error"]


def test_the_document_describes_the_pages(edge):
    paths = edge.client.get("/prod/openapi.json", headers=KEY).json()["paths"]
    listed = paths["/prod/inference/list-inference-jobs"]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {"limit", "next_token"}
    assert NEXT_TOKEN_HEADER in listed["responses"]["200"]["headers"]
    assert NEXT_TOKEN_HEADER in listed["description"]


def test_a_browser_may_read_the_continuation(edge):
    response = edge.client.get("/prod/checkpoints", headers={**KEY, "Origin": "http://127.0.0.1:7860"})
    assert NEXT_TOKEN_HEADER in response.headers["access-control-expose-headers"]


# ---------------------------------------------------------------- presigned URLs


class SigningStub:
    """Stands in for the S3 client where only the expiry is looked at."""

    def generate_presigned_url(self, *args: Any, **kwargs: Any) -> str:
        raise AssertionError("not signed here")


def presigner(token: str | None, default_s: int = 7200, max_s: int = 12 * 3600) -> Presigner:
    return Presigner("b", default_s, max_s, SigningStub(), credentials=lambda: Credentials("AKIA", "secret", token))


def test_with_temporary_credentials_no_url_is_granted_more_than_an_hour():
    signer = presigner(token="session-token")
    assert signer.expiry(None) == TEMPORARY_CREDENTIALS_MAX_EXPIRY_S == 3600
    assert signer.expiry(10_000) == 3600
    assert signer.expiry(600) == 600
    with pytest.raises(ExpiryTooLong):
        signer.expiry(12 * 3600 + 1)  # past the configured maximum: still refused


def test_with_long_term_keys_the_expiry_is_as_asked():
    signer = presigner(token=None)
    assert signer.expiry(None) == 7200 and signer.expiry(10_000) == 10_000 and signer.expiry(12 * 3600) == 12 * 3600


def test_credentials_that_say_when_they_expire_cap_the_expiry_at_what_they_have_left():
    class Expiring(Credentials):
        _expiry_time = T0 + timedelta(minutes=20)

    assert temporary_cap_s(Expiring("AKIA", "secret", "token"), now=T0) == 20 * 60
    assert temporary_cap_s(Expiring("AKIA", "secret", "token"), now=T0 + timedelta(hours=2)) == 1
    assert temporary_cap_s(Credentials("AKIA", "secret"), now=T0) is None and temporary_cap_s(None) is None


def expires_of(url: str) -> int:
    return int(parse_qs(urlparse(url).query)["X-Amz-Expires"][0])


@pytest.mark.parametrize(("session_token", "granted"), [("session-token", 3600), (None, 7200)])
def test_the_answer_reports_the_expiry_its_urls_carry(edge, session_token, granted):
    signer = boto3.client(
        "s3",
        aws_access_key_id="AKIA",
        aws_secret_access_key="secret",
        aws_session_token=session_token,
        config=Config(signature_version="s3v4"),
    )
    edge.client.app.state.deps.presigner = Presigner(EDGE_BUCKET, 3600, 12 * 3600, signer)
    response = edge.client.get(
        "/prod/inference/generate-s3-presigned-url-for-uploading",
        params={"key": "config/aigc.json", "expires_in": 7200},
        headers=KEY,
    )
    assert response.status_code == 200
    assert expires_of(response.json()) == granted == int(response.headers[EXPIRES_IN_HEADER])


class CountingS3:
    """The S3 client, counting the URLs it signs."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.signed = 0

    def generate_presigned_url(self, *args: Any, **kwargs: Any) -> str:
        self.signed += 1
        return self._s3.generate_presigned_url(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def test_urls_are_signed_afresh_on_each_read_of_a_job_or_a_dataset(edge):
    counting = CountingS3(edge.s3)
    edge.client.app.state.deps.presigner = Presigner(EDGE_BUCKET, 60, 120, counting)
    done = job(1).model_copy(update={"image_names": ["image_0.png", "image_1.png"], "param_name": "p.json"})
    edge.read_model.apply(done)
    items = [
        DatasetItem(
            name=f"{n}.png",
            type="png",
            key=f"dataset/d/{n}.png",
            s3_uri="s3://x",
            original_filename="a",
            status="Enabled",
        )
        for n in range(5)
    ]
    edge.read_model.apply(
        DatasetChanged(
            id="d", version=1, status="Enabled", s3_location="s3://x/", item_count=5, items=items, created_at=T0
        )
    )
    for _ in range(2):
        assert len(edge.client.get("/prod/inference/get-inference-job-image-output?jobID=job-001", headers=KEY).json())
        assert edge.client.get("/prod/inference/get-inference-job-param-output?jobID=job-001", headers=KEY).json()
    assert counting.signed == 2 * (2 + 1)
    page = edge.client.get("/prod/dataset/d/data", params={"limit": 2}, headers=KEY)
    assert counting.signed == 6 + 2  # only the page's items are signed
    rest = edge.client.get("/prod/dataset/d/data", params={"next_token": page.json()["next_token"]}, headers=KEY)
    assert [i["name"] for i in page.json()["data"] + rest.json()["data"]] == [f"{n}.png" for n in range(5)]
    assert counting.signed == 6 + 5 and page.headers[EXPIRES_IN_HEADER] == "60"


def test_the_document_says_how_long_urls_are_granted(edge):
    paths = edge.client.get("/prod/openapi.json", headers=KEY).json()["paths"]
    checkpoint_post = paths["/prod/checkpoint"]["post"]
    assert EXPIRES_IN_HEADER in checkpoint_post["responses"]["200"]["headers"]
    [expires_in] = [p for p in checkpoint_post["parameters"] if p["name"] == "expires_in"]
    assert str(TEMPORARY_CREDENTIALS_MAX_EXPIRY_S) in expires_in["description"]


def test_the_item_budget_leaves_room_for_what_wraps_the_items():
    assert ITEMS_BUDGET_BYTES < MAX_RESPONSE_BYTES
