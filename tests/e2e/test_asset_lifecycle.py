"""Checkpoints from upload or import to deletion, end to end over HTTP: nothing unusable becomes Active.

- a random-bytes ``x.safetensors`` upload fails at completion, saying why, and is listed Failed;
- a tiny real single-file checkpoint imported from an HTTP server on this machine (the local stack allows
  loopback imports; AWS never does) becomes Active, is read as SD 1.x and draws an image;
- while an inference job in progress uses it, deleting it is refused (409); once the job ended, deleting it
  removes its S3 object and its list entry;
- an import from the instance metadata address (link-local) is refused at once with 400.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from sd_runtime import testing
from tests.e2e.conftest import ApiClient
from tests.e2e.test_assets import emulator_s3
from tests.e2e.test_endpoint_deployment import in_service_endpoint
from tests.e2e.test_inference import images_of, wait_for_job

pytestmark = pytest.mark.e2e

IMPORTED_NAME = "tiny-imported.safetensors"
SIZE = 32


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[str]:
    """An HTTP server on loopback serving a tiny real single-file SD 1.x checkpoint; its base URL."""
    root = tmp_path_factory.mktemp("served")
    pipeline = testing.build_tiny_pipeline_dir(root / "pipeline", seed=11)
    testing.write_tiny_single_file(pipeline, root / "files" / IMPORTED_NAME)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root / "files")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def checkpoint_listed(api: ApiClient, checkpoint_id: str) -> dict | None:
    listed = api.get("/checkpoints", params={"limit": 1000}).json()["checkpoints"]
    return next((c for c in listed if c["id"] == checkpoint_id), None)


def wait_until_settled(api: ApiClient, checkpoint_id: str, timeout_s: float = 120) -> dict:
    """The checkpoint once it is no longer Initialed (its import finished)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = checkpoint_listed(api, checkpoint_id)
        if found and found["status"] != "Initialed":
            return found
        time.sleep(0.5)
    raise AssertionError(f"checkpoint {checkpoint_id} still Initialed after {timeout_s}s")


def test_random_bytes_uploaded_as_safetensors_fail_at_completion_with_the_reason(api: ApiClient):
    started = api.post(
        "/checkpoint",
        json={"checkpoint_type": "Stable-diffusion", "filenames": [{"filename": "x.safetensors", "parts_number": 1}]},
    )
    assert started.status_code == 200, started.text
    checkpoint_id = started.json()["checkpoint"]["id"]
    [url] = started.json()["s3PresignUrl"]["x.safetensors"]
    put = requests.put(url, data=os.urandom(64 * 1024), timeout=60)
    assert put.status_code == 200
    done = api.put(
        "/checkpoint",
        json={
            "checkpoint_id": checkpoint_id,
            "status": "Active",
            "multi_parts_tags": {"x.safetensors": [{"ETag": put.headers["ETag"], "PartNumber": 1}]},
        },
    )
    assert done.status_code == 400, done.text
    assert "x.safetensors: not a safetensors file: its header length" in done.json()["error"]
    listed = checkpoint_listed(api, checkpoint_id)
    assert listed["status"] == "Failed" and listed["error"].startswith("x.safetensors: not a safetensors file")
    active = api.get("/checkpoints", params={"status": "Active", "limit": 1000}).json()["checkpoints"]
    assert checkpoint_id not in [c["id"] for c in active]


def test_an_import_from_a_link_local_address_is_refused_at_once(api: ApiClient):
    body = {"checkpoint_type": "Lora", "url": "http://169.254.169.254/latest/meta-data/x.safetensors"}
    refused = api.post("/checkpoints/import", json=body)
    assert refused.status_code == 400, refused.text
    assert "169.254.169.254 is a link-local address" in refused.json()["error"]


@pytest.fixture(scope="module")
def imported(api: ApiClient, served: str) -> dict:
    accepted = api.post(
        "/checkpoints/import", json={"checkpoint_type": "Stable-diffusion", "url": f"{served}/{IMPORTED_NAME}"}
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["checkpoint"]["status"] == "Initialed"
    return wait_until_settled(api, accepted.json()["checkpoint"]["id"])


def test_an_imported_checkpoint_is_used_for_an_image_and_deleted_only_once_no_job_uses_it(
    api: ApiClient, stack, imported: dict
):
    assert imported["status"] == "Active", imported
    assert imported["name"] == [IMPORTED_NAME]
    checkpoint_id = imported["id"]
    bucket, _, prefix = imported["s3Location"].removeprefix("s3://").partition("/")
    s3 = emulator_s3(stack)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]] == [
        f"{prefix}/{IMPORTED_NAME}"
    ]

    with in_service_endpoint(api, "e2e-asset-lifecycle") as endpoint:
        body = {
            "task_type": "txt2img",
            "models": {"Stable-diffusion": [IMPORTED_NAME]},
            "sagemaker_endpoint_name": endpoint,
            "prompt": "a red square",
            "steps": 30,
            "width": SIZE,
            "height": SIZE,
            "seed": 3,
        }
        started = api.post("/inference-api/inference", json=body)
        assert started.status_code == 200, started.text
        job_id = started.json()["inference_id"]
        refused = api.delete(f"/checkpoints/{checkpoint_id}")
        assert refused.status_code == 409, refused.text
        assert job_id in refused.json()["error"]

        job = wait_for_job(api, job_id)
        assert job["status"] == "succeed", job
        [picture] = images_of(api, job["InferenceJobId"])
        assert picture.size == (SIZE, SIZE)

    deleted = api.delete(f"/checkpoints/{checkpoint_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] is True
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", []) == []
    assert checkpoint_listed(api, checkpoint_id) is None
    assert api.delete(f"/checkpoints/{checkpoint_id}").status_code == 404


def test_deleting_a_dataset_removes_its_files(api: ApiClient, stack):
    created = api.post(
        "/dataset",
        json={"dataset_name": "e2e-doomed", "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]},
    )
    assert created.status_code == 200, created.text
    put = requests.put(created.json()["s3PresignUrl"]["/a.png"], data=b"png", timeout=60)
    assert put.status_code == 200
    [listed] = [d for d in api.get("/datasets").json()["datasets"] if d["datasetName"] == "e2e-doomed"]
    bucket, _, prefix = listed["s3"].removeprefix("s3://").partition("/")
    s3 = emulator_s3(stack)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]] == [prefix + "a.png"]

    deleted = api.delete("/datasets/e2e-doomed")
    assert deleted.status_code == 200, deleted.text
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []) == []
    assert "e2e-doomed" not in [d["datasetName"] for d in api.get("/datasets").json()["datasets"]]
    assert api.delete("/datasets/e2e-doomed").status_code == 404
