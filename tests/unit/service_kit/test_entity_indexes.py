"""What the entities give the table's indexes (``due_at``, ``lookup_names``), and the lookups built on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api_gateway.catalogue import find_model
from api_gateway.read_model import ReadModel
from sdmw_contracts.events import CheckpointChanged, EndpointDeploymentChanged, ModelChanged
from sdmw_contracts.events.assets import CheckpointFile, model_lookup_name
from service_kit.testing import InMemorySnapshotTable

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def checkpoint(
    checkpoint_id: str,
    filenames: list[str],
    checkpoint_type: str = "Stable-diffusion",
    status: str = "Active",
    **params: str,
) -> CheckpointChanged:
    prefix = f"checkpoint/{checkpoint_type}/{checkpoint_id}/"
    return CheckpointChanged(
        id=checkpoint_id,
        version=1,
        checkpoint_type=checkpoint_type,
        status=status,
        s3_location=f"s3://b/{prefix}",
        files=[CheckpointFile.under("b", prefix, name) for name in filenames],
        params=params,
        created_at=NOW,
    )


@pytest.mark.parametrize("title", ["v1-5.safetensors", "v1-5.safetensors [6ce0161689]", "v1-5", "other.ckpt"])
def test_a_checkpoint_is_indexed_under_every_title_model_named_answers_to(title):
    held = checkpoint("c1", ["v1-5.safetensors", "other.ckpt"])
    assert held.model_named(title) is not None
    assert model_lookup_name("Stable-diffusion", title) in held.lookup_names()
    assert model_lookup_name("Lora", title) not in held.lookup_names()


def test_a_diffusers_folder_is_indexed_under_its_model_name():
    folder = checkpoint("c1", ["model_index.json", "unet/config.json"], new_model_name="my-dog")
    assert folder.model_named("my-dog") is not None
    assert model_lookup_name("Stable-diffusion", "my-dog") in folder.lookup_names()
    plain = checkpoint("c2", ["model.safetensors"], new_model_name="my-dog")
    assert model_lookup_name("Stable-diffusion", "my-dog") not in plain.lookup_names()


def test_find_model_reads_only_the_checkpoints_of_that_name():
    table = InMemorySnapshotTable()
    read_model = ReadModel(table)
    for n in range(50):
        read_model.apply(checkpoint(f"other-{n}", [f"model-{n}.safetensors"]))
    read_model.apply(checkpoint("disabled", ["v1-5.safetensors"], status="Disabled"))
    read_model.apply(checkpoint("lora", ["v1-5.safetensors"], checkpoint_type="Lora"))
    read_model.apply(checkpoint("wanted", ["v1-5.safetensors"]))
    before = table.items_read
    found = find_model(read_model, "Stable-diffusion", "v1-5 [6ce0161689]")
    assert found is not None and found.s3_uri == "s3://b/checkpoint/Stable-diffusion/wanted/v1-5.safetensors"
    assert table.items_read - before == 2 * 2  # the disabled and the active one of that type: index entry and row
    assert find_model(read_model, "Stable-diffusion", "missing.safetensors") is None


def test_the_endpoint_job_of_a_name_is_the_newest_standing_one():
    read_model = ReadModel(InMemorySnapshotTable())

    def job(job_id: str, status: str, started: int, name: str = "infer-a") -> EndpointDeploymentChanged:
        return EndpointDeploymentChanged(
            id=job_id,
            version=1,
            endpoint_name=name,
            instance_type="ml.g4dn.xlarge",
            initial_instance_count=1,
            status=status,
            start_time=NOW + timedelta(minutes=started),
        )

    for entity in (job("old", "deleted", 0), job("failed", "failed", 2), job("live", "success", 1)):
        read_model.apply(entity)
    read_model.apply(job("elsewhere", "success", 5, name="infer-b"))
    assert read_model.endpoint_job_named("infer-a", include_failed=False).id == "live"
    assert read_model.endpoint_job_named("infer-a", include_failed=True).id == "failed"
    assert read_model.endpoint_job_named("infer-c", include_failed=True) is None


@pytest.mark.parametrize(("status", "due"), [("Initialed", False), ("Creating", True), ("Complete", False)])
def test_a_model_is_due_for_the_training_sweep_while_it_is_being_created(status, due):
    model = ModelChanged(
        id="m1",
        version=1,
        model_type="Stable-diffusion",
        name="mine",
        status=status,
        s3_base="s3://b/model/m1/",
        created_at=NOW,
        started_at=NOW + timedelta(minutes=1),
    )
    assert model.due_at() == (NOW + timedelta(minutes=1) if due else None)
