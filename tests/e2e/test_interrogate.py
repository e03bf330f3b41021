"""The extension's "Interrogate CLIP" end to end: ``run-sagemaker-inference`` with ``interrogate_clip``.

The stack's local SageMaker runs its instances with ``SD_RUNTIME_CAPTION_MODEL`` naming a prefix in the
project bucket (``tests/e2e/conftest.py``); this test builds a tiny random BLIP, uploads it there, deploys
an endpoint, uploads the image as ``config/aigc.json`` the way the older client does, and reads the
caption from ``get-inference-job``.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import requests
from PIL import Image

from infra.core import CORE
from sd_runtime import testing
from service_kit.resources import physical_name
from tests.e2e.conftest import ApiClient
from tests.e2e.test_assets import emulator_s3
from tests.e2e.test_endpoint_deployment import in_service_endpoint
from tests.e2e.test_inference import wait_for_job

pytestmark = pytest.mark.e2e

ENDPOINT = "e2e-interrogate"
CAPTION_PREFIX = "test-models/blip/"


def upload_folder(s3, folder: Path, bucket: str, prefix: str) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, prefix + path.relative_to(folder).as_posix())


@pytest.fixture(scope="module")
def endpoint(api: ApiClient, stack, tmp_path_factory) -> str:
    bucket = physical_name(stack.settings.prefix, CORE.bucket)
    assert stack.settings.extra_env["SD_RUNTIME_CAPTION_MODEL"] == f"s3://{bucket}/{CAPTION_PREFIX}"
    blip = testing.build_tiny_blip(tmp_path_factory.mktemp("tiny-blip") / "blip")
    upload_folder(emulator_s3(stack), blip, bucket, CAPTION_PREFIX)
    with in_service_endpoint(api, ENDPOINT) as name:
        yield name


def upload_aigc_json(api: ApiClient, params: dict) -> None:
    answer = api.get("/inference/generate-s3-presigned-url-for-uploading", params={"key": "config/aigc.json"})
    assert answer.status_code == 200, answer.text
    assert requests.put(answer.json(), data=json.dumps(params), timeout=30).status_code == 200


def picture_data_url() -> str:
    out = io.BytesIO()
    Image.new("RGB", (48, 40), (30, 160, 90)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def interrogate(api: ApiClient, endpoint: str, task: str) -> dict:
    started = api.post("/inference/run-sagemaker-inference", json={"task_type": task, "sagemaker_endpoint": endpoint})
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "inprogress"
    return wait_for_job(api, started.json()["inference_id"])


def test_interrogate_clip_answers_a_caption(api: ApiClient, endpoint: str):
    upload_aigc_json(api, {"image": picture_data_url()})
    job = interrogate(api, endpoint, "interrogate_clip")
    assert job["status"] == "succeed", job
    assert job["taskType"] == "interrogate_clip" and job["image_names"] == [] and "error" not in job
    assert isinstance(job["caption"], str) and job["caption"].strip()

    [param_url] = api.get("/inference/get-inference-job-param-output", params={"jobID": job["InferenceJobId"]}).json()
    params = requests.get(param_url, timeout=30).json()
    assert json.loads(params["info"])["caption"] == job["caption"]
    assert "image" not in params["parameters"]


def test_interrogate_deepbooru_fails_with_the_runtimes_reason(api: ApiClient, endpoint: str):
    upload_aigc_json(api, {"init_images": [picture_data_url()]})
    job = interrogate(api, endpoint, "interrogate_deepbooru")
    assert job["status"] == "failed" and "no DeepBooru model is configured" in job["error"], job
    assert job["caption"] == ""  # the extension reads an interrogation's caption whatever became of it


def test_no_image_is_refused_at_once(api: ApiClient, endpoint: str):
    upload_aigc_json(api, {"prompt": "no picture here"})
    refused = api.post(
        "/inference/run-sagemaker-inference", json={"task_type": "interrogate_clip", "sagemaker_endpoint": endpoint}
    )
    # The extension follows the id it is answered: the job it will show failed says why.
    assert refused.status_code == 200 and refused.json()["status"] == "failed"
    assert "needs the image" in refused.json()["error"]
    job = api.get("/inference/get-inference-job", params={"jobID": refused.json()["inference_id"]}).json()
    assert job["status"] == "failed" and "needs the image" in job["error"]
