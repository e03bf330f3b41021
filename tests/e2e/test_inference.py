"""Seed scenario "Do Inference", end to end over HTTP, on a real (tiny, random) Stable Diffusion.

The test builds a tiny randomly initialised pipeline, uploads it as a
checkpoint through the asset routes, deploys an endpoint whose instance is the
real sd-runtime, and runs txt2img and img2img through the public API.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from sd_runtime import testing
from tests.e2e.conftest import ApiClient
from tests.e2e.test_assets import emulator_s3
from tests.e2e.test_endpoint_deployment import in_service_endpoint

pytestmark = pytest.mark.e2e

MODEL_NAME = "tiny-sd-e2e"
SIZE = 64


def upload_folder_checkpoint(api: ApiClient, folder: Path, name: str) -> str:
    """Uploads the diffusers folder as an Active checkpoint called ``name``; its id."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    relative = [str(p.relative_to(folder)) for p in files]
    started = api.post(
        "/checkpoint",
        json={
            "checkpoint_type": "Stable-diffusion",
            "filenames": [{"filename": r, "parts_number": 1} for r in relative],
            "params": {"new_model_name": name},
        },
    )
    assert started.status_code == 200, started.text
    tags = {}
    # s3PresignUrl is {file name: [part URLs]}, as the WebUI extension indexes it.
    part_urls = started.json()["s3PresignUrl"]
    assert set(part_urls) == set(relative)
    for filename in relative:
        [url] = part_urls[filename]
        put = requests.put(url, data=(folder / filename).read_bytes(), timeout=120)
        assert put.status_code == 200, put.text
        tags[filename] = [{"ETag": put.headers["ETag"], "PartNumber": 1}]
    checkpoint_id = started.json()["checkpoint"]["id"]
    done = api.put("/checkpoint", json={"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": tags})
    assert done.status_code == 200, done.text
    return checkpoint_id


@pytest.fixture(scope="module")
def endpoint(api: ApiClient, tmp_path_factory) -> str:
    folder = testing.build_tiny_pipeline_dir(tmp_path_factory.mktemp("tiny-sd") / "pipeline")
    checkpoint_id = upload_folder_checkpoint(api, folder, MODEL_NAME)
    with in_service_endpoint(api, "e2e-inference") as name:
        yield name
    # Other modules use this fixture on the same stack: a second checkpoint of the name would make it
    # ambiguous (refused, as it should be), so this one goes when its module is done.
    disabled = api.put("/checkpoint", json={"checkpoint_id": checkpoint_id, "status": "Disabled"})
    assert disabled.status_code == 200, disabled.text


def infer(api: ApiClient, endpoint: str, **overrides) -> dict:
    body = {
        "task_type": "txt2img",
        "models": {"Stable-diffusion": [MODEL_NAME]},
        "sagemaker_endpoint_name": endpoint,
        "prompt": "a cute panda",
        "steps": 2,
        "width": SIZE,
        "height": SIZE,
        "seed": 1234,
        **overrides,
    }
    response = api.post("/inference-api/inference", json=body)
    assert response.status_code == 200, response.text
    started = response.json()
    assert started["status"] == "inprogress" and started["endpoint_name"] == body["sagemaker_endpoint_name"]
    right_after = api.get("/inference/get-inference-job", params={"jobID": started["inference_id"]})
    assert right_after.status_code == 200 and right_after.json()["status"] == "inprogress"
    return wait_for_job(api, started["inference_id"])


def wait_for_job(api: ApiClient, job_id: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.get("/inference/get-inference-job", params={"jobID": job_id}).json()
        if job["status"] != "inprogress":
            return job
        time.sleep(0.5)
    raise AssertionError(f"inference job {job_id} still inprogress after {timeout_s}s")


def images_of(api: ApiClient, job_id: str) -> list[Image.Image]:
    urls = api.get("/inference/get-inference-job-image-output", params={"jobID": job_id}).json()
    pictures = []
    for url in urls:
        picture = Image.open(io.BytesIO(requests.get(url, timeout=30).content))
        picture.load()
        pictures.append(picture)
    return pictures


def test_txt2img_gives_jpegs_of_the_requested_size_and_count(api: ApiClient, endpoint: str):
    job = infer(api, endpoint, batch_size=2, n_iter=1)
    assert job["status"] == "succeed", job
    assert job["taskType"] == "txt2img" and job["image_names"] == ["image_0.jpg", "image_1.jpg"]
    assert "'invocationStatus': 'Completed'" in job["sagemakerRaw"] and "error" not in job
    pictures = images_of(api, job["InferenceJobId"])
    assert [(p.format, p.size) for p in pictures] == [("JPEG", (SIZE, SIZE))] * 2

    [param_url] = api.get("/inference/get-inference-job-param-output", params={"jobID": job["InferenceJobId"]}).json()
    params = requests.get(param_url, timeout=30).json()
    assert params["parameters"]["prompt"] == "a cute panda"
    assert json.loads(params["info"])["seed"] == 1234
    listed = api.get("/inference/list-inference-jobs").json()
    assert job["InferenceJobId"] in [j["InferenceJobId"] for j in listed]


def test_the_same_seed_gives_the_same_image_and_another_seed_does_not(api: ApiClient, endpoint: str):
    first, again, other = (infer(api, endpoint, seed=seed) for seed in (77, 77, 78))
    assert {first["status"], again["status"], other["status"]} == {"succeed"}
    [a], [b], [c] = (images_of(api, job["InferenceJobId"]) for job in (first, again, other))
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_img2img_from_an_uploaded_image(api: ApiClient, endpoint: str):
    source = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE), (200, 40, 40)).save(source, format="PNG")
    job = infer(
        api,
        endpoint,
        task_type="img2img",
        init_images=[base64.b64encode(source.getvalue()).decode()],
        denoising_strength=0.5,
    )
    assert job["status"] == "succeed", job
    [picture] = images_of(api, job["InferenceJobId"])
    assert (picture.format, picture.size) == ("JPEG", (SIZE, SIZE))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"models": {"Stable-diffusion": ["no-such-model.safetensors [6ce0161689]"]}}, "no-such-model.safetensors"),
        ({"sagemaker_endpoint_name": "no-such-endpoint"}, "endpoint no-such-endpoint does not exist"),
    ],
    ids=["unknown-model", "unknown-endpoint"],
)
def test_a_request_that_cannot_run_is_answered_failed_at_once(api: ApiClient, endpoint: str, overrides, reason):
    body = {"task_type": "txt2img", "models": {"Stable-diffusion": [MODEL_NAME]}, "sagemaker_endpoint_name": endpoint}
    response = api.post("/inference-api/inference", json={**body, "prompt": "a cute panda", **overrides})
    assert response.status_code == 200, response.text
    started = response.json()
    assert started["status"] == "failed" and reason in started["error"]
    job = api.get("/inference/get-inference-job", params={"jobID": started["inference_id"]}).json()
    assert job["status"] == "failed" and reason in job["error"]
    assert api.get("/inference/get-inference-job-image-output", params={"jobID": job["InferenceJobId"]}).json() == []


def test_a_request_the_runtime_refuses_ends_failed_with_its_reason(api: ApiClient, endpoint: str):
    job = infer(api, endpoint, sampler_name="Sampler That Does Not Exist")
    assert job["status"] == "failed", job
    assert "Sampler That Does Not Exist" in job["error"]
    assert api.get("/inference/get-inference-job-image-output", params={"jobID": job["InferenceJobId"]}).json() == []


def test_bad_inference_bodies_are_422(api: ApiClient, endpoint: str):
    before = api.get("/inference/list-inference-jobs").json()
    bad = [
        {"task_type": "txt2img", "sagemaker_endpoint_name": endpoint, "prompt": "x", "models": {}},
        {
            "task_type": "img2img",
            "sagemaker_endpoint_name": endpoint,
            "prompt": "x",
            "models": {"Stable-diffusion": [MODEL_NAME]},
        },
        {
            "task_type": "paint",
            "sagemaker_endpoint_name": endpoint,
            "prompt": "x",
            "models": {"Stable-diffusion": [MODEL_NAME]},
        },
    ]
    for body in bad:
        assert api.post("/inference-api/inference", json=body).status_code == 422, body
    assert api.get("/inference/list-inference-jobs").json() == before


def test_model_merge_writes_the_merged_checkpoint(api: ApiClient, endpoint: str, stack, tmp_path):
    other = testing.build_tiny_pipeline_dir(tmp_path / "other", seed=7)
    upload_folder_checkpoint(api, other, "tiny-sd-other")
    started = api.post(
        "/inference/run-model-merge",
        json={
            "primary_model_name": MODEL_NAME,
            "secondary_model_name": "tiny-sd-other",
            "interp_method": "Weighted sum",
            "multiplier": 0.5,
            "custom_name": "tiny-mix",
            "sagemaker_endpoint_name": endpoint,
        },
    )
    assert started.status_code == 200, started.text
    assert started.json()["primary_model_name"] == MODEL_NAME and started.json()["status"] == "inprogress"
    job = wait_for_job(api, started.json()["inference_id"])
    assert job["status"] == "succeed" and job["taskType"] == "merge", job
    [param_url] = api.get("/inference/get-inference-job-param-output", params={"jobID": job["InferenceJobId"]}).json()
    info = json.loads(requests.get(param_url, timeout=30).json()["info"])
    assert info["output_s3_uri"].endswith(f"out/{job['InferenceJobId']}/result/tiny-mix.safetensors")
    bucket, key = info["output_s3_uri"].removeprefix("s3://").split("/", 1)
    merged = emulator_s3(stack).head_object(Bucket=bucket, Key=key)
    assert merged["ContentLength"] > 0
