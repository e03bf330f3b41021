"""Seed scenario "Train a model", end to end over HTTP, on a real (tiny, random) Stable Diffusion.

A base checkpoint and a dataset of small images are uploaded through the
public API; a model is created from the checkpoint; DreamBooth and LoRA train
on it as SageMaker training jobs (the local SageMaker runs the real
``sd_runtime train``); the trained checkpoints are listed Active, each one
file ``<output_name>.safetensors``, and an endpoint generates images with
them by that name. The WebUI extension's way (a model from
a checkpoint already in the cloud, then ``db_config.tar`` and image tars to
the presigned URLs) trains too, and failures end ``Fail`` with their reason.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
import safetensors.torch
from PIL import Image

from sd_runtime import testing
from tests import model_files
from tests.e2e.conftest import ApiClient
from tests.e2e.test_assets import emulator_s3
from tests.e2e.test_endpoint_deployment import in_service_endpoint
from tests.e2e.test_inference import images_of, upload_folder_checkpoint, wait_for_job

pytestmark = pytest.mark.e2e

BASE_MODEL = "tiny-train-base"
SIZE = 32
TRAINING = {"max_train_steps": 2, "resolution": SIZE, "train_batch_size": 1, "learning_rate": 1e-4, "seed": 3}


def image_bytes(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (SIZE + 8, SIZE), color).save(out, format="PNG")
    return out.getvalue()


def presigned_urls(answer: dict) -> dict[str, str]:
    """``s3PresignUrl`` as {file: URL}, whether answered as one object or as a list of them."""
    urls = answer["s3PresignUrl"]
    if isinstance(urls, dict):
        return urls
    return {name: url for entry in urls for name, url in entry.items()}


def create_dataset(api: ApiClient, files: dict[str, bytes]) -> str:
    name = f"train-{uuid.uuid4().hex[:8]}"
    kinds = {".png": "image", ".txt": "text"}
    created = api.post(
        "/dataset",
        json={
            "dataset_name": name,
            "content": [{"filename": f"/data/{item}", "name": item, "type": kinds[item[-4:]]} for item in files],
            "params": {"description": "training images"},
        },
    )
    assert created.status_code == 200, created.text
    for path, url in presigned_urls(created.json()).items():
        assert requests.put(url, data=files[path.rsplit("/", 1)[-1]], timeout=30).status_code == 200
    enabled = api.put("/dataset", json={"dataset_name": name, "status": "Enabled"})
    assert enabled.status_code == 200, enabled.text
    return name


def wait_for(api: ApiClient, path: str, key: str, job_id: str, timeout_s: float = 240) -> dict:
    """List ``path`` until the job ``job_id`` is Complete or Fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = api.get(path)
        assert listed.status_code == 200, listed.text
        job = next(j for j in listed.json()[key] if j["id"] == job_id)
        if job["status"] in {"Complete", "Fail"}:
            return job
        time.sleep(0.5)
    raise AssertionError(f"{path} job {job_id} not finished after {timeout_s}s")


def active_checkpoint(api: ApiClient, checkpoint_id: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = api.get("/checkpoints", params={"status": "Active"}).json()["checkpoints"]
        found = [c for c in listed if c["id"] == checkpoint_id]
        if found:
            return found[0]
        time.sleep(0.3)
    raise AssertionError(f"checkpoint {checkpoint_id} not Active after {timeout_s}s")


def create_model(api: ApiClient, name: str, ckpt_path: str = BASE_MODEL, params: dict | None = None, **extra) -> dict:
    body = {
        "model_type": "Stable-diffusion",
        "name": name,
        "params": {"create_model_params": {"new_model_name": name, "ckpt_path": ckpt_path}, **(params or {})},
        **extra,
    }
    created = api.post("/model", json=body)
    assert created.status_code == 200, created.text
    return created.json()


def start_model(api: ApiClient, model_id: str, tags: dict | None = None) -> dict:
    started = api.put("/model", json={"model_id": model_id, "status": "Creating", "multi_parts_tags": tags or {}})
    assert started.status_code == 200, started.text
    assert started.json()["job"]["jobStatus"] in {"Creating", "Complete"}
    return wait_for(api, "/models", "models", model_id)


def train(api: ApiClient, body: dict, uploads: dict[str, bytes] | None = None) -> dict:
    created = api.post("/train", json=body)
    assert created.status_code == 200, created.text
    job_id = created.json()["job"]["id"]
    for name, url in presigned_urls(created.json()).items():
        assert requests.put(url, data=(uploads or {})[name], timeout=60).status_code == 200
    started = api.put("/train", json={"train_job_id": job_id, "status": "Training"})
    assert started.status_code == 200, started.text
    return wait_for(api, "/trains", "trainJobs", job_id)


def checkpoint_ids(api: ApiClient) -> set[str]:
    return {c["id"] for c in api.get("/checkpoints").json()["checkpoints"]}


@pytest.fixture(scope="module")
def base(api: ApiClient, tmp_path_factory) -> Iterator[str]:
    """The id of the base checkpoint: a tiny diffusers folder named BASE_MODEL, deleted after the module (the
    lifecycle tests use these fixtures too, and two Active checkpoints of one name would be ambiguous)."""
    folder = testing.build_tiny_pipeline_dir(tmp_path_factory.mktemp("tiny-train") / "pipeline")
    before = checkpoint_ids(api)
    upload_folder_checkpoint(api, folder, BASE_MODEL)
    [checkpoint_id] = checkpoint_ids(api) - before
    yield checkpoint_id
    deleted = api.delete(f"/checkpoints/{checkpoint_id}")
    assert deleted.status_code in (200, 409), deleted.text  # 409: a job of the module still uses it


@pytest.fixture(scope="module")
def dataset(api: ApiClient, base) -> str:
    return create_dataset(
        api,
        {
            "red.png": image_bytes((220, 30, 30)),
            "red.txt": b"a photo of sks square",
            "blue.png": image_bytes((30, 30, 220)),
        },
    )


@pytest.fixture(scope="module")
def model(api: ApiClient, base) -> dict:
    created = create_model(api, "tiny-working-model")
    assert created["job"]["status"] == "Initialed" and created["job"]["s3PresignUrl"] == []
    model = start_model(api, created["job"]["id"])
    assert model["status"] == "Complete", model
    assert model["output_s3_location"].endswith("/output/model/")
    return model


@pytest.fixture(scope="module")
def endpoint(api: ApiClient, base) -> str:
    with in_service_endpoint(api, "e2e-training") as name:
        yield name


def generate(api: ApiClient, endpoint: str, models: dict, prompt: str = "a photo of sks square") -> dict:
    body = {
        "task_type": "txt2img",
        "models": models,
        "sagemaker_endpoint_name": endpoint,
        "prompt": prompt,
        "steps": 2,
        "width": SIZE,
        "height": SIZE,
        "seed": 11,
    }
    started = api.post("/inference-api/inference", json=body)
    assert started.status_code == 200, started.text
    return wait_for_job(api, started.json()["inference_id"])


def test_dreambooth_trains_a_checkpoint_that_inference_then_uses(api: ApiClient, stack, model, dataset, endpoint):
    params = {"dataset_names": [dataset], "instance_prompt": "a photo of sks square", "output_name": "tiny-db"}
    job = train(
        api, {"train_type": "dreambooth", "model_id": model["id"], "params": {"train_params": TRAINING | params}}
    )
    assert job["status"] == "Complete", job
    assert (job["trainType"], job["sagemakerTrainName"]) == ("Stable-diffusion", f"train-{job['id']}")
    checkpoint = active_checkpoint(api, job["checkpoint_id"])
    # One A1111 single file, listed (and picked in the WebUI's dropdown) by the name inference resolves.
    assert (checkpoint["type"], checkpoint["name"]) == ("Stable-diffusion", ["tiny-db.safetensors"])
    bucket, _, prefix = checkpoint["s3Location"].removeprefix("s3://").partition("/")
    body = emulator_s3(stack).get_object(Bucket=bucket, Key=f"{prefix}/tiny-db.safetensors")["Body"].read()
    keys = {key.split(".")[0] for key in safetensors.torch.load(body)}
    assert keys == {"model", "first_stage_model", "cond_stage_model"}  # UNet, VAE and text encoder, LDM layout

    pictures = []
    for title in ("tiny-db.safetensors", "tiny-db", "tiny-db.safetensors [0123456789]"):
        result = generate(api, endpoint, {"Stable-diffusion": [title]})
        assert result["status"] == "succeed", (title, result)
        [picture] = images_of(api, result["InferenceJobId"])
        assert picture.size == (SIZE, SIZE)
        pictures.append(picture.tobytes())
    assert len(set(pictures)) == 1  # the same model, whichever way it is named


def test_lora_trains_a_lora_that_changes_the_base_models_images(api: ApiClient, model, dataset, endpoint):
    params = {"dataset_names": [dataset], "instance_prompt": "a photo of sks square", "output_name": "tiny-lora"}
    params |= {"lora_rank": 4, "learning_rate": 0.05}
    job = train(api, {"train_type": "lora", "model_id": model["id"], "params": {"train_params": TRAINING | params}})
    assert job["status"] == "Complete", job
    checkpoint = active_checkpoint(api, job["checkpoint_id"])
    assert (checkpoint["type"], checkpoint["name"]) == ("Lora", ["tiny-lora.safetensors"])
    assert "tiny-lora.safetensors" in api.get("/inference/get-lora-list").json()

    plain = generate(api, endpoint, {"Stable-diffusion": [BASE_MODEL]})
    with_lora = generate(
        api,
        endpoint,
        {"Stable-diffusion": [BASE_MODEL], "Lora": ["tiny-lora.safetensors"]},
        prompt="a photo of sks square <lora:tiny-lora:1>",
    )
    assert plain["status"] == with_lora["status"] == "succeed", (plain, with_lora)
    [a], [b] = images_of(api, plain["InferenceJobId"]), images_of(api, with_lora["InferenceJobId"])
    assert a.tobytes() != b.tobytes()


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def training_log(stack, sagemaker_job_name: str) -> str:
    """The job's log as the local SageMaker keeps it (CloudWatch's /aws/sagemaker/TrainingJobs in AWS)."""
    [log] = (stack.settings.run_dir / "sagemaker" / "training-jobs").glob(f"{sagemaker_job_name}-*/log.txt")
    return log.read_text()


def test_the_webui_extensions_dreambooth_flow_trains_and_registers(api: ApiClient, stack, base):
    # Model from a checkpoint already in the cloud, as the extension's DreamBooth tab sends it.
    [checkpoint] = [c for c in api.get("/checkpoints").json()["checkpoints"] if c["id"] == base]
    name = "ext-model"
    cloud = {"ckpt_from_cloud": True, "s3_ckpt_path": f"{checkpoint['s3Location']}/model_index.json"}
    created = create_model(api, name, ckpt_path="model_index.json", params=cloud, checkpoint_id=base, filenames=[])
    assert created["job"]["params"]["s3_ckpt_path"] == cloud["s3_ckpt_path"]
    model = start_model(api, created["job"]["id"])
    assert model["status"] == "Complete", model
    [listed] = [
        m for m in api.get("/models", params={"types": "Stable-diffusion"}).json()["models"] if m["id"] == model["id"]
    ]
    config = listed["params"]["resp"]["config_dict"]
    config |= {
        "concepts_list": [
            {"instance_data_dir": "home-me-dog", "instance_prompt": "a photo of sks dog", "class_data_dir": ""}
        ],
        "max_train_steps": 2,
        "resolution": SIZE,
        "learning_rate": 1e-4,
        "use_ema": True,  # not supported: must be named in the log, not silently dropped
    }
    db_config = tar_of({f"models/sagemaker_dreambooth/{name}/db_config_cloud.json": json.dumps(config).encode()})
    images = tar_of({"dog1.png": image_bytes((200, 180, 20)), "dog2.png": image_bytes((20, 180, 200))})
    body = {
        "train_type": "Stable-diffusion",
        "model_id": model["id"],
        "filenames": ["db_config.tar", "data-home-me-dog.tar"],
        "params": {
            "training_params": {
                "s3_model_path": model["output_s3_location"],
                "model_name": name,
                "model_type": "Stable-diffusion",
                "data_tar_list": ["data-home-me-dog.tar"],
                "training_instance_type": "ml.g4dn.2xlarge",
                "output_name": "ext-dreambooth",
            },
            "config_params": {},
        },
    }
    job = train(api, body, {"db_config.tar": db_config, "data-home-me-dog.tar": images})
    assert job["status"] == "Complete", job
    listed = api.get("/trains", params=[("types", "Stable-diffusion"), ("types", "Lora")]).json()["trainJobs"]
    assert job["id"] in [j["id"] for j in listed]
    checkpoint = active_checkpoint(api, job["checkpoint_id"])
    assert (checkpoint["type"], checkpoint["name"]) == ("Stable-diffusion", ["ext-dreambooth.safetensors"])
    log = training_log(stack, job["sagemakerTrainName"])
    assert "use_ema" in log and "loss=" in log


def test_training_that_cannot_run_ends_fail_with_its_reason(api: ApiClient, model):
    no_images = create_dataset(api, {"notes.txt": b"no pictures here"})
    params = TRAINING | {"dataset_names": [no_images], "instance_prompt": "x", "output_name": "never"}
    job = train(api, {"train_type": "dreambooth", "model_id": model["id"], "params": {"train_params": params}})
    assert job["status"] == "Fail" and "image" in job["error"].lower(), job
    assert job["checkpoint_id"] is None


def test_a_model_from_a_broken_checkpoint_ends_fail_with_its_reason(api: ApiClient, base):
    started = api.post(
        "/checkpoint",
        json={
            "checkpoint_type": "Stable-diffusion",
            "filenames": [{"filename": "broken.safetensors", "parts_number": 1}],
        },
    )
    [url] = started.json()["s3PresignUrl"]["broken.safetensors"]
    # A file asset-registry takes for a checkpoint (UNet weights named in its header) that holds no model.
    put = requests.put(
        url, data=model_files.safetensors({"model.diffusion_model.input_blocks.0.0.weight": (4,)}), timeout=30
    )
    tags = {"broken.safetensors": [{"ETag": put.headers["ETag"], "PartNumber": 1}]}
    activated = api.put(
        "/checkpoint",
        json={"checkpoint_id": started.json()["checkpoint"]["id"], "status": "Active", "multi_parts_tags": tags},
    )
    assert activated.status_code == 200, activated.text
    created = create_model(api, "from-broken", ckpt_path="broken.safetensors")
    model = start_model(api, created["job"]["id"])
    assert model["status"] == "Fail" and model["params"]["error"], model


def test_bad_training_requests_change_nothing(api: ApiClient, model, dataset):
    before = api.get("/trains").json()["trainJobs"]
    bad = [
        ({"train_type": "dreambooth", "model_id": "no-such-model", "params": {}}, 404),
        ({"train_type": "hypernetwork", "model_id": model["id"], "params": {}}, 422),
        ({"train_type": "lora", "model_id": model["id"], "params": {"train_params": {"dataset_names": ["nope"]}}}, 404),
        (
            {
                "train_type": "lora",
                "model_id": model["id"],
                "params": {"train_params": {"dataset_names": [dataset], "max_train_steps": 0}},
            },
            422,
        ),
    ]
    for body, status in bad:
        assert api.post("/train", json=body).status_code == status, body
    assert api.put("/train", json={"train_job_id": "nope", "status": "Training"}).status_code == 404
    assert api.put("/model", json={"model_id": model["id"], "status": "Creating"}).status_code == 409
    assert api.get("/trains").json()["trainJobs"] == before


def test_a_job_given_up_before_it_starts_ends_fail(api: ApiClient, model, dataset):
    created = api.post(
        "/train",
        json={"train_type": "lora", "model_id": model["id"], "params": {"train_params": {"dataset_names": [dataset]}}},
    )
    job_id = created.json()["job"]["id"]
    given_up = api.put("/train", json={"train_job_id": job_id, "status": "Fail"})
    assert given_up.status_code == 200 and given_up.json()["job"]["status"] == "Fail", given_up.text
    again = api.put("/train", json={"train_job_id": job_id, "status": "Training"})
    assert again.status_code == 409
