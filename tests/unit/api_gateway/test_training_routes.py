"""The training routes in-process: what the edge checks before it sends anything, and what it sends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sdmw_contracts.events import CheckpointChanged, DatasetChanged, ModelChanged
from sdmw_contracts.events.assets import CheckpointFile
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge

BUCKET = EDGE_BUCKET
KEY = {"x-api-key": "key"}
NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def edge(mocked_aws):
    publisher = RecordingPublisher()
    made = in_process_edge(publisher, clock=lambda: NOW)
    return made.client, made.read_model, publisher


def checkpoint(checkpoint_id: str, files: list[str], status: str = "Active", **params) -> CheckpointChanged:
    prefix = f"checkpoint/Stable-diffusion/{checkpoint_id}/"
    return CheckpointChanged(
        id=checkpoint_id,
        version=1,
        checkpoint_type="Stable-diffusion",
        status=status,
        s3_location=f"s3://{BUCKET}/{prefix}",
        files=[
            CheckpointFile(filename=f, key=prefix + f, s3_uri=f"s3://{BUCKET}/{prefix}{f}", parts_number=1)
            for f in files
        ],
        params=params,
        created_at=NOW,
    )


def model(model_id: str = "m1", status: str = "Complete") -> ModelChanged:
    return ModelChanged(
        id=model_id,
        version=3,
        model_type="Stable-diffusion",
        name="my-model",
        status=status,
        s3_base=f"s3://{BUCKET}/model/{model_id}/",
        output_s3_location=f"s3://{BUCKET}/model/{model_id}/out/" if status == "Complete" else None,
        created_at=NOW,
    )


def dataset(name: str, status: str = "Enabled") -> DatasetChanged:
    return DatasetChanged(
        id=name, version=2, status=status, s3_location=f"s3://{BUCKET}/dataset/{name}/", item_count=2, created_at=NOW
    )


def model_body(ckpt_path: str, **extra) -> dict:
    return {
        "model_type": "Stable-diffusion",
        "name": "my-model",
        "params": {"create_model_params": {"new_model_name": "my-model", "ckpt_path": ckpt_path}},
        **extra,
    }


def train_body(**train_params) -> dict:
    return {"train_type": "dreambooth", "model_id": "m1", "params": {"train_params": train_params}}


# ---------------------------------------------------------------- POST /model


def test_a_model_names_its_base_by_file_name_or_folder_model_name(edge):
    client, read_model, publisher = edge
    read_model.apply(checkpoint("c1", ["v1-5.safetensors"]))
    read_model.apply(checkpoint("c2", ["model_index.json", "unet/config.json"], new_model_name="tiny"))
    for ckpt_path, uri in [
        ("v1-5.safetensors [6ce0161689]", f"s3://{BUCKET}/checkpoint/Stable-diffusion/c1/v1-5.safetensors"),
        ("tiny", f"s3://{BUCKET}/checkpoint/Stable-diffusion/c2/"),
    ]:
        response = client.post("/prod/model", json=model_body(ckpt_path), headers=KEY)
        assert response.status_code == 200, response.text
        assert response.json()["job"]["status"] == "Initialed"
        assert publisher.of_type("ModelCreationRequested")[-1]["data"]["base_checkpoint"]["s3_uri"] == uri


def test_the_extensions_cloud_form_names_the_checkpoint_by_id(edge):
    client, read_model, publisher = edge
    read_model.apply(checkpoint("c1", ["a.safetensors", "b.safetensors"]))
    body = model_body("b.safetensors", checkpoint_id="c1", filenames=[])
    body["params"] |= {
        "ckpt_from_cloud": True,
        "s3_ckpt_path": f"s3://{BUCKET}/checkpoint/Stable-diffusion/c1/b.safetensors",
    }
    response = client.post("/prod/model", json=body, headers=KEY)
    assert response.status_code == 200, response.text
    sent = publisher.of_type("ModelCreationRequested")[-1]["data"]
    assert sent["base_checkpoint"]["s3_uri"].endswith("/c1/b.safetensors")


@pytest.mark.parametrize(
    ("setup", "body", "status", "fragment"),
    [
        ([], model_body("nothing.safetensors"), 400, "params.create_model_params.ckpt_path"),
        ([checkpoint("c1", ["a.safetensors"], status="Initialed")], model_body("a.safetensors"), 400, "ckpt_path"),
        ([], model_body("a.safetensors", checkpoint_id="c9"), 404, "checkpoint_id"),
        (
            [checkpoint("c1", ["a.safetensors"], status="Disabled")],
            model_body("a", checkpoint_id="c1"),
            400,
            "Disabled",
        ),
    ],
    ids=["unknown", "not-active", "unknown-id", "disabled-id"],
)
def test_a_model_without_a_usable_base_is_refused_and_nothing_is_sent(edge, setup, body, status, fragment):
    client, read_model, publisher = edge
    for snapshot in setup:
        read_model.apply(snapshot)
    response = client.post("/prod/model", json=body, headers=KEY)
    assert response.status_code == status and fragment in response.json()["error"], response.text
    assert publisher.published == []
    assert client.get("/prod/models", headers=KEY).json()["models"] == []


def test_models_are_listed_with_their_filters_and_a_db_config_when_complete(edge):
    client, read_model, _ = edge
    read_model.apply(model("m1", "Complete"))
    read_model.apply(model("m2", "Creating"))
    listed = client.get("/prod/models", params=[("types", "Stable-diffusion"), ("status", "Complete")], headers=KEY)
    [item] = listed.json()["models"]
    assert (item["id"], item["output_s3_location"]) == ("m1", f"s3://{BUCKET}/model/m1/out/")
    assert item["params"]["resp"]["config_dict"]["model_name"] == "my-model"
    assert len(client.get("/prod/models", headers=KEY).json()["models"]) == 2


# ---------------------------------------------------------------- POST /train


def test_a_train_job_carries_typed_settings_and_resolved_datasets(edge):
    client, read_model, publisher = edge
    read_model.apply(model())
    read_model.apply(dataset("dogs"))
    body = train_body(dataset_names=["dogs"], max_train_steps=7, learning_rate=1e-4, instance_prompt="sks dog")
    response = client.post("/prod/train", json=body, headers=KEY)
    assert response.status_code == 200, response.text
    assert response.json()["job"]["trainType"] == "Stable-diffusion"
    sent = publisher.of_type("TrainJobRequested")[-1]["data"]
    assert sent["hyperparameters"]["max_train_steps"] == 7 and sent["hyperparameters"]["task"] == "dreambooth"
    assert sent["instance_datasets"] == [{"name": "dogs", "s3_uri": f"s3://{BUCKET}/dataset/dogs/"}]
    assert sent["base_model_uri"] == f"s3://{BUCKET}/model/m1/out/" and sent["instance_type"] == "ml.g4dn.2xlarge"
    listed = client.get("/prod/trains", params=[("types", "Stable-diffusion"), ("types", "Lora")], headers=KEY)
    assert [j["status"] for j in listed.json()["trainJobs"]] == ["Initialed"]


def test_uploaded_files_get_a_put_url_each_keyed_by_file_name(edge):
    client, read_model, _ = edge
    read_model.apply(model())
    body = {"train_type": "Lora", "model_id": "m1", "filenames": ["db_config.tar", "data-dog.tar"], "params": {}}
    response = client.post("/prod/train", json=body, headers=KEY)
    assert response.status_code == 200, response.text
    urls = response.json()["s3PresignUrl"]
    assert set(urls) == {"db_config.tar", "data-dog.tar"}
    job_id = response.json()["job"]["id"]
    assert f"/train/{job_id}/input/data-dog.tar" in urls["data-dog.tar"]
    assert response.json()["job"]["trainType"] == "Lora"


@pytest.mark.parametrize(
    ("setup", "body", "status", "fragment"),
    [
        ([], train_body(dataset_names=["dogs"]), 404, "model_id"),
        ([model(status="Creating")], train_body(dataset_names=["dogs"]), 409, "not Complete"),
        ([model()], train_body(dataset_names=["cats"]), 404, "dataset_names"),
        ([model(), dataset("dogs", "Initialed")], train_body(dataset_names=["dogs"]), 409, "not Enabled"),
        ([model()], train_body(), 422, "filenames"),
        ([model(), dataset("dogs")], train_body(dataset_names=["dogs"], learning_rate=-1), 422, "learning_rate"),
        ([model(), dataset("dogs")], train_body(dataset_names=["dogs"], resolution=100), 422, "resolution"),
        (
            [model(), dataset("dogs")],
            train_body(dataset_names=["dogs"], instance_prompt="a" * 1001),
            422,
            "instance_prompt",
        ),
        (
            [model(), dataset("dogs")],
            {**train_body(dataset_names=["dogs"]), "train_type": "textual"},
            422,
            "train_type",
        ),
    ],
    ids=[
        "no-model",
        "model-not-complete",
        "no-dataset",
        "dataset-not-enabled",
        "no-images",
        "rate",
        "size",
        "prompt-length",
        "type",
    ],
)
def test_a_bad_train_request_is_refused_naming_the_field_and_nothing_is_sent(edge, setup, body, status, fragment):
    client, read_model, publisher = edge
    for snapshot in setup:
        read_model.apply(snapshot)
    response = client.post("/prod/train", json=body, headers=KEY)
    assert response.status_code == status, response.text
    assert fragment in response.text
    assert publisher.published == []
    assert client.get("/prod/trains", headers=KEY).json()["trainJobs"] == []


def test_unknown_jobs_and_transitions_that_are_not_allowed_are_refused(edge):
    client, read_model, publisher = edge
    assert client.put("/prod/model", json={"model_id": "nope", "status": "Creating"}, headers=KEY).status_code == 404
    assert (
        client.put("/prod/train", json={"train_job_id": "nope", "status": "Training"}, headers=KEY).status_code == 404
    )
    read_model.apply(model("m1", "Complete"))
    again = client.put("/prod/model", json={"model_id": "m1", "status": "Creating"}, headers=KEY)
    assert again.status_code == 409 and "not Initialed" in again.json()["error"]
    give_up = client.put("/prod/model", json={"model_id": "m1", "status": "Fail"}, headers=KEY)
    assert give_up.status_code == 409 and "cannot be given up" in give_up.json()["error"]
    assert publisher.published == []


def test_a_model_upload_asking_more_part_urls_than_an_answer_carries_is_refused_and_nothing_is_sent(edge):
    """The attack's amplification, through POST /model: one small body asking for 10,000 part URLs."""
    client, _, publisher = edge
    body = model_body("big.safetensors", filenames=[{"filename": "big.safetensors", "parts_number": 10_000}])
    response = client.post("/prod/model", json=body, headers=KEY)
    assert response.status_code == 422 and "parts per request" in response.json()["error"], response.text
    assert publisher.published == []
    assert client.get("/prod/models", headers=KEY).json()["models"] == []
