"""A single A1111-style ``.safetensors`` checkpoint works as its diffusers folder does, with no setting.

The tiny random pipeline is uploaded twice through the public API: as a
diffusers folder and as one file in the original (LDM) key layout. For the
same seed the endpoint draws the same image from both.
"""

from __future__ import annotations

import pytest
import requests

from sd_runtime import testing
from tests.e2e.conftest import ApiClient
from tests.e2e.test_endpoint_deployment import in_service_endpoint
from tests.e2e.test_inference import images_of, upload_folder_checkpoint, wait_for_job

pytestmark = pytest.mark.e2e

FOLDER_NAME = "tiny-sd-folder-twin"
FILE_NAME = "tiny-sd-single.safetensors"
SIZE = 32


def part_urls(answer: dict, filename: str) -> list[str]:
    """The part URLs of ``filename`` in a ``POST /checkpoint`` answer, keyed by file name or listed."""
    presigned = answer["s3PresignUrl"]
    if isinstance(presigned, dict):
        return presigned[filename]
    return next(u["s3_signed_urls"] for u in presigned if u["filename"] == filename)


def upload_single_file(api: ApiClient, path, name: str) -> None:
    started = api.post(
        "/checkpoint",
        json={"checkpoint_type": "Stable-diffusion", "filenames": [{"filename": name, "parts_number": 1}]},
    )
    assert started.status_code == 200, started.text
    [url] = part_urls(started.json(), name)
    put = requests.put(url, data=path.read_bytes(), timeout=120)
    assert put.status_code == 200
    done = api.put(
        "/checkpoint",
        json={
            "checkpoint_id": started.json()["checkpoint"]["id"],
            "status": "Active",
            "multi_parts_tags": {name: [{"ETag": put.headers["ETag"], "PartNumber": 1}]},
        },
    )
    assert done.status_code == 200, done.text


@pytest.fixture(scope="module")
def endpoint(api: ApiClient, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("single-file")
    folder = testing.build_tiny_pipeline_dir(root / "pipeline", seed=5)
    upload_folder_checkpoint(api, folder, FOLDER_NAME)
    upload_single_file(api, testing.write_tiny_single_file(folder, root / FILE_NAME), FILE_NAME)
    with in_service_endpoint(api, "e2e-single-file") as name:
        yield name


def test_the_single_file_draws_the_same_image_as_its_folder(api: ApiClient, endpoint: str):
    pictures = []
    for model in (FOLDER_NAME, FILE_NAME):
        body = {
            "task_type": "txt2img",
            "models": {"Stable-diffusion": [model]},
            "sagemaker_endpoint_name": endpoint,
            "prompt": "a cute panda",
            "steps": 2,
            "width": SIZE,
            "height": SIZE,
            "seed": 99,
        }
        started = api.post("/inference-api/inference", json=body)
        assert started.status_code == 200, started.text
        job = wait_for_job(api, started.json()["inference_id"])
        assert job["status"] == "succeed", job
        [picture] = images_of(api, job["InferenceJobId"])
        pictures.append(picture)
    assert pictures[0].tobytes() == pictures[1].tobytes()
