"""Which checkpoint a name means, at the edge: never one by chance (the WebUI extension's issue, defect 3).

The extension lists every name a checkpoint answers to and sends back the one the user picked: a diffusers
folder's file names, a name two uploads share, ControlNet titles written ``<title>.pth`` whatever the file.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from api_gateway.catalogue import AmbiguousName, find_model
from api_gateway.read_model import ReadModel
from api_gateway.runnable import CannotRun, Directory, resolve_all
from sdmw_contracts.events import CheckpointChanged
from sdmw_contracts.events.assets import CheckpointFile
from service_kit.snapshots import SnapshotTable
from tests.conftest import create_service_table
from tests.unit.api_gateway.conftest import EDGE_BUCKET, active_checkpoint

FOLDER_FILES = ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors")


@pytest.fixture
def read_model(mocked_aws) -> ReadModel:
    return ReadModel(SnapshotTable(create_service_table("edge"), boto3.resource("dynamodb")))


def folder_checkpoint(checkpoint_id: str, name: str | None) -> CheckpointChanged:
    prefix = f"checkpoint/Stable-diffusion/{checkpoint_id}/"
    return CheckpointChanged(
        id=checkpoint_id,
        version=2,
        checkpoint_type="Stable-diffusion",
        status="Active",
        s3_location=f"s3://{EDGE_BUCKET}/{prefix}",
        files=[
            CheckpointFile(filename=f, key=prefix + f, s3_uri=f"s3://{EDGE_BUCKET}/{prefix}{f}", parts_number=1)
            for f in FOLDER_FILES
        ],
        params={"new_model_name": name} if name else {},
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def same_name_twice(checkpoint_type: str, filename: str) -> list[CheckpointChanged]:
    first = active_checkpoint(checkpoint_type, filename)
    second = first.model_copy(update={"id": f"{first.id}-again", "created_at": datetime(2024, 2, 1, tzinfo=UTC)})
    return [first, second]


def test_a_diffusers_folder_is_meant_by_any_of_its_names_and_is_always_the_folder(read_model):
    read_model.apply(folder_checkpoint("folder-1", "my-model"))
    for title in ("my-model", "model_index.json", "unet/config.json [0123456789]", "model_index"):
        found = find_model(read_model, "Stable-diffusion", title)
        assert found is not None and found.s3_uri == f"s3://{EDGE_BUCKET}/checkpoint/Stable-diffusion/folder-1/", title
        assert found.name in {"my-model"}
    assert find_model(read_model, "Stable-diffusion", "other.safetensors") is None


def test_a_name_two_active_checkpoints_answer_to_is_refused_naming_both(read_model):
    for checkpoint in same_name_twice("Stable-diffusion", "twice.safetensors"):
        read_model.apply(checkpoint)
    with pytest.raises(AmbiguousName) as refused:
        find_model(read_model, "Stable-diffusion", "twice.safetensors [0123456789]")
    message = str(refused.value)
    assert message.startswith("twice.safetensors (Stable-diffusion) is ambiguous: 2 Active checkpoints answer to it: ")
    assert "Stable-diffusion-twice.safetensors (twice.safetensors, created 2024-01-01 00:00)" in message
    assert "Stable-diffusion-twice.safetensors-again (twice.safetensors, created 2024-02-01 00:00)" in message
    assert "Disable all but one" in message


def test_model_index_json_shared_by_two_folders_is_refused(read_model):
    read_model.apply(folder_checkpoint("folder-1", "one"))
    read_model.apply(folder_checkpoint("folder-2", "two"))
    with pytest.raises(AmbiguousName, match=r"model_index\.json .* 2 Active checkpoints"):
        find_model(read_model, "Stable-diffusion", "model_index.json")
    assert find_model(read_model, "Stable-diffusion", "two").s3_uri.endswith("/folder-2/")


def test_a_disabled_twin_does_not_make_a_name_ambiguous(read_model):
    first, second = same_name_twice("Lora", "style.safetensors")
    read_model.apply(first)
    read_model.apply(second.model_copy(update={"status": "Disabled", "version": 3}))
    assert find_model(read_model, "Lora", "style").name == "style.safetensors"


def test_the_job_refusal_names_the_missing_and_the_ambiguous(read_model):
    for checkpoint in same_name_twice("Lora", "style.safetensors"):
        read_model.apply(checkpoint)
    with pytest.raises(CannotRun) as refused:
        resolve_all(Directory(read_model), [("Lora", "style"), ("Lora", "gone.safetensors")])
    assert str(refused.value).startswith("no Active checkpoint for: gone.safetensors (Lora); style (Lora) is ambiguous")


def test_a_controlnet_named_with_pth_by_the_extension_is_its_file_of_that_stem(read_model):
    read_model.apply(active_checkpoint("ControlNet", "control_v11p_sd15_canny.safetensors"))
    found = Directory(read_model).model("ControlNet", "control_v11p_sd15_canny.pth")
    assert found.name == "control_v11p_sd15_canny.safetensors"
    with pytest.raises(CannotRun, match=r"no Active checkpoint for: other\.pth"):
        Directory(read_model).model("ControlNet", "other.pth")
    with pytest.raises(CannotRun, match=r"no Active checkpoint for: control_v11p_sd15_canny\.pth"):
        Directory(read_model).model("Lora", "control_v11p_sd15_canny.pth")
