"""The WebUI extension's calls, replayed as it makes them (`reference/extension-client.md`), against one stack.

The client keeps the API URL with a trailing ``/`` and appends paths to it
(``<url>inference/...``), except the dataset calls, which append ``/dataset``
(so the path is ``/prod//dataset``). Query lists are repeated parameters,
counts are strings, upload answers are indexed by file name, and refusals are
read from ``status`` and ``error`` in the body. Each test names the rows of the
reference table it replays and checks every field the client reads.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from sd_runtime import testing
from tests.e2e.test_inference import images_of
from tests.e2e.test_training import image_bytes, tar_of

pytestmark = pytest.mark.e2e

SIZE = 32
MODEL_DIR = "tiny-ext"  # the folder model's name (the checkpoint's new_model_name)


class Extension:
    """Requests as the extension sends them: its saved URL ends in '/', and it sends its key and JSON."""

    def __init__(self, stack) -> None:
        self.url = stack.settings.base_url + "/"
        self.headers = {"x-api-key": stack.settings.api_key, "Content-Type": "application/json"}

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers, timeout=60, **kwargs)

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(self.url + path, headers=self.headers, json=body, timeout=60)

    def put(self, path: str, body: dict) -> requests.Response:
        return requests.put(self.url + path, headers=self.headers, json=body, timeout=60)


@pytest.fixture(scope="module")
def ext(stack) -> Extension:
    return Extension(stack)


def wait_until(check, timeout_s: float = 240, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(every_s)
    raise AssertionError(f"not done after {timeout_s}s")


def upload_checkpoint(ext: Extension, folder, checkpoint_type: str = "Stable-diffusion") -> str:
    """Rows 11-12: POST checkpoint, PUT every part to s3PresignUrl[<file name>][i], PUT checkpoint Active."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    names = [str(p.relative_to(folder)) for p in files]
    started = ext.post(
        "checkpoint",
        {
            "checkpoint_type": checkpoint_type,
            "filenames": [{"filename": name, "parts_number": 1} for name in names],
            "params": {"new_model_name": MODEL_DIR, "message": "from the extension"},
        },
    )
    assert started.status_code == 200, started.text
    answer = started.json()
    checkpoint_id = answer["checkpoint"]["id"]
    assert answer["checkpoint"]["s3_location"].startswith("s3://")
    tags = {}
    for name, path in zip(names, files, strict=True):
        [url] = answer["s3PresignUrl"][name]
        put = requests.put(url, data=path.read_bytes(), timeout=60)
        assert put.status_code == 200
        tags[name] = [{"ETag": put.headers["ETag"], "PartNumber": 1}]
    done = ext.put("checkpoint", {"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": tags})
    assert done.status_code == 200, done.text
    return checkpoint_id


@pytest.fixture(scope="module")
def checkpoint(ext: Extension, tmp_path_factory) -> dict:
    folder = testing.build_tiny_pipeline_dir(tmp_path_factory.mktemp("ext") / "pipeline")
    checkpoint_id = upload_checkpoint(ext, folder)
    # Row 10: the client joins s3Location + "/" + name, so s3Location has no trailing '/'.
    listed = ext.get("checkpoints", params=[("status", "Active"), ("types", "Stable-diffusion"), ("types", "Lora")])
    [found] = [c for c in listed.json()["checkpoints"] if c["id"] == checkpoint_id]
    assert found["type"] == "Stable-diffusion" and "model_index.json" in found["name"]
    assert not found["s3Location"].endswith("/")
    return found


@pytest.fixture(scope="module")
def endpoint(ext: Extension, checkpoint) -> str:
    # Row 3: an empty name (the middleware names it), the count as a string.
    deployed = ext.post(
        "inference/deploy-sagemaker-endpoint",
        {
            "endpoint_name": "",
            "instance_type": "ml.g5.xlarge",
            "initial_instance_count": "1",
            "autoscaling_enabled": False,
        },
    )
    assert deployed.status_code == 200, deployed.text

    def in_service():
        # Row 2: the list, as the client reads it.
        jobs = ext.get("inference/list-endpoint-deployment-jobs").json()
        ready = [j for j in jobs if j["status"] == "success" and j["endpoint_status"] == "InService"]
        return ready[0] if ready else None

    job = wait_until(in_service, 120)
    assert (
        job["endpoint_name"].startswith("infer-endpoint-") and len(job["endpoint_name"]) == len("infer-endpoint-") + 7
    )
    # Row 5.
    detail = ext.get("inference/get-endpoint-deployment-job", params={"jobID": job["EndpointDeploymentJobId"]}).json()
    assert detail["EndpointDeploymentJobId"] == job["EndpointDeploymentJobId"] and "error" in detail
    yield job["endpoint_name"]
    # Row 4: unknown names are skipped, the rest deleted; the client then hides it (endpoint_status deleted).
    deleted = ext.post(
        "inference/delete-sagemaker-endpoint", {"delete_endpoint_list": ["no-such-endpoint", job["endpoint_name"]]}
    )
    assert deleted.status_code == 200, deleted.text
    gone = wait_until(
        lambda: [
            j
            for j in ext.get("inference/list-endpoint-deployment-jobs").json()
            if j["endpoint_name"] == job["endpoint_name"] and j["endpoint_status"] == "deleted"
        ],
        60,
    )
    assert gone


def finished_job(ext: Extension, job_id: str) -> dict:
    """Row 8, polled until the job leaves inprogress."""
    return wait_until(
        lambda: (
            (j := ext.get("inference/get-inference-job", params={"jobID": job_id}).json())["status"] != "inprogress"
            and j
        )
    )


def test_connection_and_key(ext: Extension):
    # Row 1.
    answer = ext.get("inference/test-connection")
    assert answer.status_code == 200
    answer.json()
    assert requests.get(ext.url + "inference/test-connection", timeout=30).status_code == 401


def test_generate_the_v2_way_then_read_the_job_its_images_and_its_params(ext: Extension, checkpoint, endpoint):
    # Row 13: check the endpoint and models, get the upload URL.
    title = f"{MODEL_DIR} [0123456789]"
    body = {
        "sagemaker_endpoint_name": endpoint,
        "task_type": "txt2img",
        "models": {"Stable-diffusion": [title]},
        "filters": {"creator": "e2e"},
    }
    created = ext.post("inference/v2", body)
    assert created.status_code == 200, created.text
    inference = created.json()["inference"]
    # Row 13b: the A1111 parameters to the presigned URL.
    params = {"prompt": "a cute panda", "negative_prompt": "", "steps": 2, "width": SIZE, "height": SIZE, "seed": 42}
    uploaded = requests.put(inference["api_params_s3_upload_url"], data=json.dumps(params), timeout=30)
    assert uploaded.status_code == 200
    # Row 13c.
    run = ext.put(f"inference/v2/{inference['id']}/run", body)
    assert run.status_code == 200, run.text
    assert run.json()["inference"]["inference_id"] == inference["id"]
    assert run.json()["inference"]["status"] == "inprogress"

    job = finished_job(ext, inference["id"])
    assert (job["status"], job["taskType"]) == ("succeed", "txt2img"), job
    # Row 7.
    [listed] = [j for j in ext.get("inference/list-inference-jobs").json() if j["InferenceJobId"] == inference["id"]]
    assert (
        listed["taskType"] == "txt2img"
        and listed["status"] == "succeed"
        and (listed["completeTime"] or listed["startTime"])
    )
    # Row 6: filters, some empty, newest first, limited.
    queried = ext.post(
        "inference/query-inference-jobs",
        {
            "status": "succeed",
            "task_type": "txt2img",
            "start_time": "",
            "end_time": "",
            "endpoint": endpoint,
            "checkpoint": title,
            "limit": 10,
        },
    ).json()
    assert inference["id"] in [j["InferenceJobId"] for j in queried]
    # Row 9: URL lists; file name = URL path basename; info is a JSON string with infotexts[0].
    [picture] = images_of(ext_api(ext), inference["id"])
    assert picture.size == (SIZE, SIZE)
    urls = ext.get("inference/get-inference-job-image-output", params={"jobID": inference["id"]}).json()
    assert [u.split("?")[0].rsplit("/", 1)[-1] for u in urls] == ["image_0.jpg"]
    [param_url] = ext.get("inference/get-inference-job-param-output", params={"jobID": inference["id"]}).json()
    info = json.loads(requests.get(param_url, timeout=30).json()["info"])
    assert info["infotexts"][0] and info["seed"] == 42


def test_v2_refusals_are_read_from_the_body(ext: Extension, checkpoint, endpoint):
    body = {
        "sagemaker_endpoint_name": endpoint,
        "task_type": "txt2img",
        "models": {"Stable-diffusion": ["nope.safetensors"]},
    }
    refused = ext.post("inference/v2", body)
    assert refused.json()["status"] != 200 and "nope.safetensors" in refused.json()["error"]


def test_the_older_client_uploads_config_aigc_json_then_runs(ext: Extension, checkpoint, endpoint):
    # Row 16: a presigned URL answered as a JSON string, then a browser PUT to it.
    url = ext.get("inference/generate-s3-presigned-url-for-uploading", params={"key": "config/aigc.json"}).json()
    params = {"prompt": "a red cube", "steps": 2, "width": SIZE, "height": SIZE, "seed": 3}
    assert requests.put(url, data=json.dumps(params), timeout=30).status_code == 200
    # Row 14.
    started = ext.post(
        "inference/run-sagemaker-inference",
        {"task_type": "txt2img", "sagemaker_endpoint": endpoint, "models": {"Stable-diffusion": [MODEL_DIR]}},
    )
    assert started.status_code == 200, started.text
    assert finished_job(ext, started.json()["inference_id"])["status"] == "succeed"


def test_merge_from_the_checkpoint_merger_tab(ext: Extension, checkpoint, endpoint):
    # Row 15: empty strings for the unused models.
    started = ext.post(
        "inference/run-model-merge",
        {
            "primary_model_name": MODEL_DIR,
            "secondary_model_name": MODEL_DIR,
            "tertiary_model_name": "",
            "interp_method": "Weighted sum",
            "multiplier": 0.5,
            "custom_name": "ext-merge",
            "sagemaker_endpoint_name": endpoint,
        },
    )
    assert started.status_code == 200, started.text
    job = finished_job(ext, started.json()["inference_id"])
    assert (job["status"], job["taskType"]) == ("succeed", "merge"), job


def test_datasets_through_the_double_slash_paths(ext: Extension):
    # Rows 23-25: the path is /prod//dataset; names may hold spaces; the description is read back.
    name = f"my cats {int(time.time())}"
    files = {f"/home/me/cats/cat_{i}.png": image_bytes((40 * i, 90, 200)) for i in range(2)}
    created = ext.post(
        "/dataset",
        {
            "dataset_name": name,
            "content": [
                {"filename": path, "name": path.rsplit("/", 1)[-1], "type": "image", "params": {}} for path in files
            ],
            "params": {"description": "two cats"},
        },
    )
    assert created.status_code == 200, created.text
    for path, url in created.json()["s3PresignUrl"].items():
        assert requests.put(url, data=files[path], timeout=30).status_code == 200
    enabled = ext.put("/dataset", {"dataset_name": name, "status": "Enabled"})
    assert enabled.status_code == 200, enabled.text
    listed = ext.get("datasets", params={"dataset_status": "Enabled"}).json()["datasets"]
    [found] = [d for d in listed if d["datasetName"] == name]
    assert found["description"] == "two cats" and found["s3"] and found["timestamp"]
    data = ext.get(f"/dataset/{name}/data").json()["data"]
    assert sorted(item["key"].rsplit("/", 1)[-1] for item in data) == ["cat_0.png", "cat_1.png"]
    for item in data:
        assert requests.get(item["preview_url"], timeout=30).content in files.values()


def test_the_dreambooth_tab(ext: Extension, checkpoint):
    # Row 17, the cloud form, then row 18 with empty tags.
    name = "ext-db-model"
    created = ext.post(
        "model",
        {
            "model_type": "Stable-diffusion",
            "name": name,
            "checkpoint_id": checkpoint["id"],
            "filenames": [],
            "params": {
                "ckpt_from_cloud": True,
                "s3_ckpt_path": f"{checkpoint['s3Location']}/model_index.json",
                "create_model_params": {
                    "new_model_name": name,
                    "ckpt_path": f"{MODEL_DIR} [0123456789]",
                    "from_hub": False,
                    "new_model_url": "",
                    "new_model_token": "",
                    "extract_ema": False,
                    "train_unfrozen": False,
                    "is_512": True,
                    "shared_src": "",
                },
            },
        },
    )
    assert created.status_code == 200, created.text
    model_id = created.json()["job"]["id"]
    assert created.json()["job"]["s3_base"] and isinstance(created.json()["s3PresignUrl"], dict)
    assert ext.put("model", {"model_id": model_id, "status": "Creating", "multi_parts_tags": {}}).status_code == 200

    def complete():
        # Row 19.
        models = ext.get("models", params=[("types", "Stable-diffusion"), ("status", "Complete")]).json()["models"]
        return next((m for m in models if m["id"] == model_id), None)

    model = wait_until(complete)
    assert model["model_name"] == name and model["created"] and model["output_s3_location"]
    config = model["params"]["resp"]["config_dict"]
    config |= {
        "concepts_list": [
            {"instance_data_dir": "home-me-dog", "instance_prompt": "a photo of sks dog", "class_data_dir": ""}
        ],
        "max_train_steps": 2,
        "resolution": SIZE,
    }
    # Row 20: db_config.tar and one data-<dir>.tar, then the uploads to s3PresignUrl.items().
    uploads = {
        "db_config.tar": tar_of(
            {f"models/sagemaker_dreambooth/{name}/db_config_cloud.json": json.dumps(config).encode()}
        ),
        "data-home-me-dog.tar": tar_of({"dog.png": image_bytes((200, 180, 20))}),
    }
    started = ext.post(
        "train",
        {
            "train_type": "Stable-diffusion",
            "model_id": model_id,
            "filenames": list(uploads),
            "params": {
                "training_params": {
                    "s3_model_path": model["output_s3_location"],
                    "model_name": name,
                    "model_type": "Stable-diffusion",
                    "data_tar_list": ["data-home-me-dog.tar"],
                    "class_data_tar_list": [],
                    "s3_data_path_list": [],
                    "s3_class_data_path_list": [],
                    "training_instance_type": "ml.g4dn.2xlarge",
                }
            },
        },
    )
    assert started.status_code == 200, started.text
    train_id = started.json()["job"]["id"]
    for file_name, url in started.json()["s3PresignUrl"].items():
        assert requests.put(url, data=uploads[file_name], timeout=60).status_code == 200
    # Row 21.
    assert ext.put("train", {"train_job_id": train_id, "status": "Training"}).status_code == 200

    def finished():
        # Row 22: sorted by created, id[:6], modelName, status, sagemakerTrainName.
        jobs = ext.get("trains", params=[("types", "Stable-diffusion"), ("types", "Lora")]).json()["trainJobs"]
        found = next((j for j in jobs if j["id"] == train_id), None)
        return found if found and found["status"] in {"Complete", "Fail"} else None

    job = wait_until(finished)
    assert job["status"] == "Complete" and job["modelName"] == name and job["sagemakerTrainName"], job
    assert job["created"] and job["id"][:6]


def ext_api(ext: Extension):
    """The e2e ApiClient over the same stack, for the shared helpers."""
    from tests.e2e.conftest import ApiClient

    return ApiClient(ext.url.rstrip("/"), ext.headers["x-api-key"])
