"""The edge's checkpoint and dataset lifecycle routes: delete (refused while a job uses it), import from a URL
(refused at once for private targets), rename; and the Failed outcome of PUT /checkpoint."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import CheckpointChanged, DatasetChanged, InferenceJobChanged, TrainJobChanged
from sdmw_contracts.events.assets import (
    DIFFUSERS_INDEX,
    CheckpointFile,
    DatasetCreationRequested,
    DatasetItemSpec,
    Rejection,
)
from sdmw_contracts.events.progress import JobProgress
from service_kit.events import Outgoing, RecordingPublisher
from tests.unit.api_gateway.conftest import EDGE_BUCKET, InProcessEdge, active_checkpoint, in_process_edge

NOW = datetime(2024, 1, 1, tzinfo=UTC)
KEY = {"x-api-key": "key"}


@dataclass
class Owner(RecordingPublisher):
    """Keeps what the edge sends and, like asset-registry, answers it in the edge's read model."""

    answers: dict[str, Callable[[EventEnvelope], Any]] = field(default_factory=dict)
    edge: InProcessEdge | None = None

    def publish(self, events: Sequence[Outgoing]) -> None:
        super().publish(events)
        for event in events:
            answer = self.answers.get(event.detail_type)
            if answer and self.edge:
                snapshot = answer(event.envelope)
                if snapshot is not None:
                    self.edge.read_model.apply(snapshot)


@pytest.fixture
def publisher() -> Owner:
    return Owner()


@pytest.fixture
def edge(mocked_aws, publisher: Owner) -> InProcessEdge:
    built = in_process_edge(publisher, resolve=fake_dns)
    publisher.edge = built
    return built


def fake_dns(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    """``models.example`` is public; ``inside.example`` resolves into the private network."""
    addresses = {"models.example": "93.184.216.34", "inside.example": "10.1.2.3"}
    if host not in addresses:
        raise socket.gaierror(socket.EAI_NONAME, host)
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addresses[host], port))]


def deleting(read_model) -> Callable[[EventEnvelope], Any]:
    def answer(envelope: EventEnvelope):
        data = envelope.data
        if "checkpoint_id" in data:
            current = read_model.get(CheckpointChanged, data["checkpoint_id"])
        else:
            current = read_model.get(DatasetChanged, data["dataset_name"])
        return current.as_deleted(NOW)

    return answer


def inference_job(status: str, models: dict[str, list[str]]) -> InferenceJobChanged:
    return InferenceJobChanged(
        id="job-1", version=1, task_type="txt2img", endpoint_name="e", models=models, status=status, start_time=NOW
    )


def training(status: str, **fields: Any) -> TrainJobChanged:
    return TrainJobChanged.model_validate(
        {
            "id": "train-1",
            "version": 1,
            "train_type": "dreambooth",
            "model_id": "m",
            "model_name": "m",
            "status": status,
            "base_model_uri": "s3://elsewhere/model/",
            "instance_type": "ml.g5.xlarge",
            "hyperparameters": {"task": "dreambooth", "model_name": "out"},
            "input_location": "s3://b/train/1/input/",
            "output_path": "s3://b/train/1/output/",
            "created_at": NOW.isoformat(),
            **fields,
        }
    )


# ---------------------------------------------------------------- DELETE /checkpoints/{id}


def test_deleting_an_unknown_checkpoint_is_404(edge):
    assert edge.client.delete("/prod/checkpoints/nope", headers=KEY).status_code == 404


def test_every_lifecycle_route_needs_the_api_key(edge):
    assert edge.client.delete("/prod/checkpoints/x").status_code in (401, 403)
    assert edge.client.delete("/prod/datasets/x").status_code in (401, 403)
    assert edge.client.put("/prod/checkpoints/x/name", json={"name": "a.safetensors"}).status_code in (401, 403)
    body = {"checkpoint_type": "Lora", "url": "https://models.example/a.safetensors"}
    assert edge.client.post("/prod/checkpoints/import", json=body).status_code in (401, 403)


@pytest.mark.parametrize("title", ["detail.safetensors", "detail", "detail.safetensors [abcdef12]"])
def test_a_checkpoint_an_inference_job_in_progress_uses_is_not_deleted(edge, publisher, title):
    checkpoint = active_checkpoint("Lora", "detail.safetensors")
    edge.read_model.apply(checkpoint)
    edge.read_model.apply(inference_job("inprogress", {"Lora": [title]}))
    refused = edge.client.delete(f"/prod/checkpoints/{checkpoint.id}", headers=KEY)
    assert refused.status_code == 409 and "inference job job-1" in refused.json()["error"]
    assert publisher.of_type("CheckpointDeletionRequested") == []


def test_a_finished_job_or_another_type_does_not_hold_a_checkpoint(edge, publisher):
    checkpoint = active_checkpoint("Lora", "detail.safetensors")
    edge.read_model.apply(checkpoint)
    edge.read_model.apply(inference_job("inprogress", {"Stable-diffusion": ["detail.safetensors"]}))
    publisher.answers["CheckpointDeletionRequested"] = deleting(edge.read_model)
    deleted = edge.client.delete(f"/prod/checkpoints/{checkpoint.id}", headers=KEY)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"statusCode": 200, "id": checkpoint.id, "deleted": True}
    assert edge.client.get("/prod/checkpoints", headers=KEY).json()["checkpoints"] == []
    assert edge.client.get("/prod/inference/get-lora-list", headers=KEY).json() == []
    assert edge.client.delete(f"/prod/checkpoints/{checkpoint.id}", headers=KEY).status_code == 404


def test_a_running_training_holds_its_base_model(edge, publisher):
    checkpoint = active_checkpoint("Stable-diffusion", "base.safetensors")
    edge.read_model.apply(checkpoint)
    edge.read_model.apply(training("Training", base_model_uri=checkpoint.files[0].s3_uri))
    refused = edge.client.delete(f"/prod/checkpoints/{checkpoint.id}", headers=KEY)
    assert refused.status_code == 409 and "train job train-1" in refused.json()["error"]


def test_a_deletion_the_owner_has_not_finished_is_504(edge):
    checkpoint = active_checkpoint("Lora", "slow.safetensors")
    edge.read_model.apply(checkpoint)
    assert edge.client.delete(f"/prod/checkpoints/{checkpoint.id}", headers=KEY).status_code == 504


# ---------------------------------------------------------------- DELETE /datasets/{name}


def dataset(name: str = "pets") -> DatasetChanged:
    items = [DatasetItemSpec(name="a.png", type="image", original_filename="/a.png")]
    return DatasetCreationRequested(dataset_name=name, items=items, requested_at=NOW).initial_snapshot(EDGE_BUCKET, 1)


def test_a_dataset_a_running_training_reads_is_not_deleted_then_is(edge, publisher):
    edge.read_model.apply(dataset())
    edge.read_model.apply(training("Training", instance_datasets=[{"name": "pets", "s3_uri": "s3://b/dataset/pets/"}]))
    refused = edge.client.delete("/prod/datasets/pets", headers=KEY)
    assert refused.status_code == 409 and "train job train-1" in refused.json()["error"]

    edge.read_model.apply(
        training("Complete", version=2, instance_datasets=[{"name": "pets", "s3_uri": "s3://b/dataset/pets/"}])
    )
    publisher.answers["DatasetDeletionRequested"] = deleting(edge.read_model)
    deleted = edge.client.delete("/prod/datasets/pets", headers=KEY)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert edge.client.get("/prod/datasets", headers=KEY).json()["datasets"] == []
    assert edge.client.delete("/prod/datasets/pets", headers=KEY).status_code == 404


# ---------------------------------------------------------------- POST /checkpoints/import


def test_an_import_is_accepted_at_once_with_the_checkpoint_initialed(edge, publisher):
    body = {"checkpoint_type": "Lora", "url": "https://models.example/files/detail%20v2.safetensors?sig=1"}
    accepted = edge.client.post("/prod/checkpoints/import", json=body, headers=KEY)
    assert accepted.status_code == 202, accepted.text
    checkpoint = accepted.json()["checkpoint"]
    assert checkpoint["status"] == "Initialed" and checkpoint["type"] == "Lora"
    [sent] = publisher.of_type("CheckpointImportRequested")
    assert sent["data"]["filename"] == "detail v2.safetensors" and sent["data"]["url"] == body["url"]
    assert sent["data"]["checkpoint_id"] == checkpoint["id"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/x.safetensors", "link-local address"),
        ("https://inside.example/x.safetensors", "resolves to 10.1.2.3, which is a private address"),
        ("http://127.0.0.1:8000/x.safetensors", "loopback address"),
        ("ftp://models.example/x.safetensors", "only http and https URLs are accepted"),
        ("https://unknown.example/x.safetensors", "does not resolve"),
    ],
)
def test_an_import_from_a_private_or_odd_url_is_refused_with_400_and_sends_nothing(edge, publisher, url, reason):
    refused = edge.client.post("/prod/checkpoints/import", json={"checkpoint_type": "Lora", "url": url}, headers=KEY)
    assert refused.status_code == 400 and reason in refused.json()["error"], refused.text
    assert publisher.of_type("CheckpointImportRequested") == []


def test_an_import_url_that_names_no_file_needs_a_filename(edge, publisher):
    body = {"checkpoint_type": "Lora", "url": "https://models.example/"}
    refused = edge.client.post("/prod/checkpoints/import", json=body, headers=KEY)
    assert refused.status_code == 400 and "name the file" in refused.json()["error"]
    named = edge.client.post("/prod/checkpoints/import", json={**body, "filename": "a.safetensors"}, headers=KEY)
    assert named.status_code == 202


# ---------------------------------------------------------------- PUT /checkpoints/{id}/name


def test_a_rename_answers_the_checkpoint_under_its_new_name(edge, publisher):
    checkpoint = active_checkpoint("Lora", "old.safetensors")
    edge.read_model.apply(checkpoint)

    def rename(envelope: EventEnvelope):
        file = checkpoint.files[0].model_copy(update={"filename": envelope.data["new_name"]})
        return checkpoint.model_copy(update={"files": [file], "version": checkpoint.version + 1})

    publisher.answers["CheckpointRenameRequested"] = rename
    renamed = edge.client.put(f"/prod/checkpoints/{checkpoint.id}/name", json={"name": "new.safetensors"}, headers=KEY)
    assert renamed.status_code == 200, renamed.text
    assert "new.safetensors" in edge.client.get("/prod/inference/get-lora-list", headers=KEY).json()


def test_a_rename_to_a_name_another_checkpoint_has_is_409(edge, publisher):
    mine, theirs = active_checkpoint("Lora", "a.safetensors"), active_checkpoint("Lora", "b.safetensors")
    edge.read_model.apply(mine)
    edge.read_model.apply(theirs)
    refused = edge.client.put(f"/prod/checkpoints/{mine.id}/name", json={"name": "b.safetensors"}, headers=KEY)
    assert refused.status_code == 409 and theirs.id in refused.json()["error"]
    assert publisher.of_type("CheckpointRenameRequested") == []


def test_a_rename_the_owner_refuses_is_400_with_its_reason(edge, publisher):
    folder = CheckpointChanged(
        id="folder",
        version=1,
        checkpoint_type="Stable-diffusion",
        status="Active",
        s3_location=f"s3://{EDGE_BUCKET}/checkpoint/Stable-diffusion/folder/",
        files=[CheckpointFile.under(EDGE_BUCKET, "checkpoint/Stable-diffusion/folder/", DIFFUSERS_INDEX)],
        params={"new_model_name": "tiny"},
        created_at=NOW,
    )
    edge.read_model.apply(folder)

    def refuse(envelope: EventEnvelope):
        rejection = Rejection(request_id=envelope.data["request_id"], reason="no")
        return folder.model_copy(update={"version": 2, "rejection": rejection})

    publisher.answers["CheckpointRenameRequested"] = refuse
    refused = edge.client.put("/prod/checkpoints/folder/name", json={"name": "bigger"}, headers=KEY)
    assert refused.status_code == 400 and refused.json()["error"] == "no"
    assert edge.client.put("/prod/checkpoints/nope/name", json={"name": "x"}, headers=KEY).status_code == 404
    assert edge.client.put("/prod/checkpoints/folder/name", json={"name": "../x"}, headers=KEY).status_code in (
        400,
        422,
    )


# ---------------------------------------------------------------- PUT /checkpoint ending Failed


def test_an_upload_whose_files_fail_is_answered_400_with_the_reason(edge, publisher):
    checkpoint = active_checkpoint("Lora", "x.safetensors").model_copy(update={"status": "Initialed"})
    edge.read_model.apply(checkpoint)
    error = "x.safetensors: not a safetensors file: its header is not JSON"

    def fail(envelope: EventEnvelope):
        return checkpoint.model_copy(update={"status": "Failed", "error": error, "version": checkpoint.version + 1})

    publisher.answers["CheckpointUpdateRequested"] = fail
    body = {"checkpoint_id": checkpoint.id, "status": "Active", "multi_parts_tags": {}}
    answered = edge.client.put("/prod/checkpoint", json=body, headers=KEY)
    assert answered.status_code == 400 and error in answered.json()["error"]
    listed = edge.client.get("/prod/checkpoints", headers=KEY).json()["checkpoints"]
    assert [(c["status"], c["error"]) for c in listed] == [("Failed", error)]


def test_an_import_shows_its_download_progress_in_the_list_until_it_ends(edge):
    progress = JobProgress(phase="download", step=10, total_steps=40, fraction=0.25, elapsed_s=1.0, reported_at=NOW)
    importing = active_checkpoint("Lora", "big.safetensors").model_copy(
        update={"status": "Initialed", "progress": progress}
    )
    edge.read_model.apply(importing)
    [listed] = edge.client.get("/prod/checkpoints", headers=KEY).json()["checkpoints"]
    assert listed["progress"]["step"] == 10 and listed["progress"]["total_steps"] == 40

    edge.read_model.apply(importing.model_copy(update={"status": "Active", "progress": None, "version": 9}))
    [listed] = edge.client.get("/prod/checkpoints", headers=KEY).json()["checkpoints"]
    assert "progress" not in listed and "error" not in listed
