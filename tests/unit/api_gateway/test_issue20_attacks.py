"""Issue 20, items 5-7: what an attack on the running system found, each reproduced in-process.

- 5: parallel creations of one dataset name were all answered 200 and all but one silently discarded;
- 6: parameters uploaded through the presigned URLs were read whole, whatever their size;
- 7: one small request could ask for an answer of any number of presigned URLs.
"""

from __future__ import annotations

import json

import pytest

from api_gateway.limits import MAX_BODY_BYTES
from api_gateway.routes.inference import AIGC_PARAMETERS_KEY, MAX_PARAMETERS_BYTES
from sdmw_contracts.events import InferenceJobChanged
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge, ready_to_run

KEY = {"x-api-key": "key"}
ENDPOINT = "infer-endpoint-abc1234"
MODELS = {"Stable-diffusion": ["v1-5.safetensors"]}


@pytest.fixture
def publisher():
    return RecordingPublisher()


@pytest.fixture
def edge(mocked_aws, publisher):
    made = in_process_edge(publisher)
    ready_to_run(made.read_model, ENDPOINT, MODELS)
    return made


# ---------------------------------------------------------------- item 6


class _Counting:
    """An S3 client that counts the body bytes read through it."""

    def __init__(self, s3):
        self._s3 = s3
        self.read: dict[str, int] = {}

    def __getattr__(self, name):
        return getattr(self._s3, name)

    def get_object(self, **kwargs):
        answer = self._s3.get_object(**kwargs)
        body, outer, key = answer["Body"], self, kwargs["Key"]

        class Stream:
            def read(self, amount=None):
                data = body.read(amount)
                outer.read[key] = outer.read.get(key, 0) + len(data)
                return data

            def close(self):
                body.close()

        return {**answer, "Body": Stream()}


def _big_parameters() -> bytes:
    blob = json.dumps({"prompt": "x", "init_images": ["A" * (MAX_BODY_BYTES + 10)]}).encode()
    assert len(blob) > MAX_PARAMETERS_BYTES == MAX_BODY_BYTES
    return blob


def test_v2_parameters_over_the_body_limit_fail_the_job_at_once_unread(edge, publisher):
    counting = _Counting(edge.s3)
    edge.client.app.state.deps.claims._s3 = counting
    v2 = {"sagemaker_endpoint_name": ENDPOINT, "task_type": "txt2img", "models": MODELS}
    inference = edge.client.post("/prod/inference/v2", json=v2, headers=KEY).json()["inference"]
    key = inference["api_params_s3_location"].removeprefix(f"s3://{EDGE_BUCKET}/")
    edge.s3.put_object(Bucket=EDGE_BUCKET, Key=key, Body=_big_parameters())

    run = edge.client.put(f"/prod/inference/v2/{inference['id']}/run", json=v2, headers=KEY)

    assert run.status_code == 200, run.text
    assert run.json()["inference"]["status"] == "failed"
    error = run.json()["inference"]["error"]
    assert "api_params_s3_upload_url" in error and f"{MAX_PARAMETERS_BYTES:,}" in error
    assert counting.read.get(key, 0) == 0
    assert publisher.of_type("InferenceRequested") == []
    job = edge.read_model.get(InferenceJobChanged, inference["id"])
    assert job is not None and job.status == "failed" and "at most" in (job.error or "")


def test_config_aigc_json_over_the_body_limit_fails_the_job_at_once_unread(edge, publisher):
    counting = _Counting(edge.s3)
    edge.client.app.state.deps.claims._s3 = counting
    edge.s3.put_object(Bucket=EDGE_BUCKET, Key=AIGC_PARAMETERS_KEY, Body=_big_parameters())

    run = edge.client.post(
        "/prod/inference/run-sagemaker-inference",
        json={"task_type": "txt2img", "sagemaker_endpoint": ENDPOINT, "models": MODELS},
        headers=KEY,
    )

    assert run.status_code == 200, run.text
    assert run.json()["status"] == "failed"
    assert AIGC_PARAMETERS_KEY in run.json()["error"] and f"{MAX_PARAMETERS_BYTES:,}" in run.json()["error"]
    assert counting.read.get(AIGC_PARAMETERS_KEY, 0) == 0 and publisher.of_type("InferenceRequested") == []


def test_parameters_at_the_limit_are_still_read(edge, publisher):
    params = {"prompt": "a cat", "steps": 3, "width": 64, "height": 64}
    text = json.dumps(params)
    padded = text + " " * (MAX_PARAMETERS_BYTES - len(text))
    edge.s3.put_object(Bucket=EDGE_BUCKET, Key=AIGC_PARAMETERS_KEY, Body=padded.encode())
    run = edge.client.post(
        "/prod/inference/run-sagemaker-inference",
        json={"task_type": "txt2img", "sagemaker_endpoint": ENDPOINT, "models": MODELS},
        headers=KEY,
    )
    assert run.status_code == 200 and run.json()["status"] == "inprogress", run.text
    assert len(publisher.of_type("InferenceRequested")) == 1
