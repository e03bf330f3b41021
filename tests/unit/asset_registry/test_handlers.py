"""asset-registry handlers against S3 (moto in-process) and a fake (test double) of the snapshot table."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import boto3
import pytest
from aws_lambda_powertools import Logger

from asset_registry.handlers import Dependencies, UnknownEntity, router
from asset_registry.storage import AssetStorage
from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import (
    CheckpointCreationRequested,
    CheckpointRegistrationRequested,
    CheckpointUpdateRequested,
    DatasetCreationRequested,
    DatasetUpdateRequested,
)
from sdmw_contracts.events.assets import CheckpointChanged, DatasetItemSpec, FileParts
from sdmw_contracts.runtime import ModelRef
from service_kit.events import RecordingPublisher
from service_kit.messages import BusEvent
from service_kit.storage import UploadRefused
from service_kit.testing import InMemorySnapshotTable
from tests.model_files import model_file, safetensors

BUCKET = "assets-bucket"
MB = 1024 * 1024
NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def snapshots() -> InMemorySnapshotTable:
    return InMemorySnapshotTable()


@pytest.fixture
def world(mocked_aws, snapshots):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    publisher = RecordingPublisher()
    deps = Dependencies(
        snapshots=snapshots,
        storage=AssetStorage(BUCKET, s3),
        publisher=publisher,
        logger=Logger(service="test"),
    )
    return s3, publisher, router(deps)


def as_event(command) -> BusEvent:
    envelope = EventEnvelope.wrap(command, producer="api-gateway", correlation_id="c")
    return BusEvent(
        id="e",
        source="sdmw.api-gateway",
        detail_type=command.detail_type(),
        detail=json.loads(envelope.model_dump_json()),
    )


def latest(publisher: RecordingPublisher, name: str, entity_id: str) -> dict:
    return [e["data"] for e in publisher.of_type(name) if e["data"]["id"] == entity_id][-1]


def create_checkpoint(route, files=(("model.safetensors", 2),), checkpoint_type="Stable-diffusion") -> str:
    checkpoint_id = str(uuid.uuid4())
    route.dispatch(
        as_event(
            CheckpointCreationRequested(
                checkpoint_id=checkpoint_id,
                checkpoint_type=checkpoint_type,
                files=[FileParts(filename=name, parts_number=parts) for name, parts in files],
                requested_at=NOW,
            )
        )
    )
    return checkpoint_id


def upload_parts(s3, file: dict, sizes: list[int], checkpoint_type: str = "Stable-diffusion") -> list[dict]:
    """Parts of these sizes of a file that passes as ``checkpoint_type``."""
    content = model_file(file["filename"], checkpoint_type, size=sum(sizes))
    tags, start = [], 0
    for number, size in enumerate(sizes, start=1):
        body = content[start : start + size]
        start += size
        etag = s3.upload_part(Bucket=BUCKET, Key=file["key"], UploadId=file["upload_id"], PartNumber=number, Body=body)[
            "ETag"
        ]
        tags.append({"ETag": etag, "PartNumber": number})
    return tags


def activate(route, checkpoint_id: str, tags: dict) -> str:
    request_id = str(uuid.uuid4())
    route.dispatch(
        as_event(
            CheckpointUpdateRequested(
                checkpoint_id=checkpoint_id, request_id=request_id, status="Active", multi_parts_tags=tags
            )
        )
    )
    return request_id


def test_creation_opens_one_upload_per_file_under_the_checkpoints_prefix(world):
    s3, publisher, route = world
    checkpoint_id = create_checkpoint(route, files=(("a.safetensors", 2), ("b.safetensors", 1)), checkpoint_type="Lora")
    checkpoint = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert checkpoint["status"] == "Initialed" and checkpoint["version"] == 1
    assert checkpoint["s3_location"] == f"s3://{BUCKET}/checkpoint/Lora/{checkpoint_id}/"
    uploads = s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    assert sorted(u["Key"] for u in uploads) == sorted(f["key"] for f in checkpoint["files"])
    assert all(f["upload_id"] for f in checkpoint["files"])


def test_right_etags_complete_verify_and_activate(world):
    s3, publisher, route = world
    checkpoint_id = create_checkpoint(route)
    file = latest(publisher, "CheckpointChanged", checkpoint_id)["files"][0]
    tags = upload_parts(s3, file, [5 * MB, 123])
    activate(route, checkpoint_id, {"model.safetensors": tags})
    checkpoint = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert checkpoint["status"] == "Active"
    assert checkpoint["files"][0]["size"] == 5 * MB + 123 and checkpoint["files"][0]["upload_id"] is None
    assert s3.head_object(Bucket=BUCKET, Key=file["key"])["ContentLength"] == 5 * MB + 123


@pytest.mark.parametrize(
    "spoil",
    [
        lambda tags: [{"ETag": '"0000"', "PartNumber": 1}, tags[1]],  # wrong ETag
        lambda tags: tags[:1],  # a part missing
        lambda tags: [tags[0], {"ETag": tags[1]["ETag"], "PartNumber": 3}],  # wrong part number
    ],
    ids=["wrong-etag", "missing-part", "wrong-number"],
)
def test_bad_etags_are_refused_and_the_upload_can_be_retried(world, spoil):
    s3, publisher, route = world
    checkpoint_id = create_checkpoint(route)
    file = latest(publisher, "CheckpointChanged", checkpoint_id)["files"][0]
    tags = upload_parts(s3, file, [5 * MB, 1000])
    request_id = activate(route, checkpoint_id, {"model.safetensors": spoil(tags)})
    refused = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert refused["status"] == "Initialed"
    assert refused["rejection"]["request_id"] == request_id and refused["rejection"]["reason"]
    assert len(s3.list_parts(Bucket=BUCKET, Key=file["key"], UploadId=file["upload_id"])["Parts"]) == 2

    activate(route, checkpoint_id, {"model.safetensors": tags})
    assert latest(publisher, "CheckpointChanged", checkpoint_id)["status"] == "Active"


def test_every_file_of_a_checkpoint_is_completed_before_it_is_active(world):
    s3, publisher, route = world
    names = ("a.safetensors", "b.safetensors", "c.safetensors")
    checkpoint_id = create_checkpoint(route, files=[(name, 1) for name in names])
    files = latest(publisher, "CheckpointChanged", checkpoint_id)["files"]
    tags = {file["filename"]: upload_parts(s3, file, [1000 + n]) for n, file in enumerate(files)}
    activate(route, checkpoint_id, tags)
    checkpoint = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert checkpoint["status"] == "Active"
    assert [(f["size"], f["upload_id"]) for f in checkpoint["files"]] == [(1000, None), (1001, None), (1002, None)]
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_refused_file_keeps_the_checkpoint_initialed_and_the_retry_finishes_it(world):
    s3, publisher, route = world
    checkpoint_id = create_checkpoint(route, files=(("good.safetensors", 1), ("bad.safetensors", 1)))
    good, bad = latest(publisher, "CheckpointChanged", checkpoint_id)["files"]
    tags = {"good.safetensors": upload_parts(s3, good, [1000]), "bad.safetensors": upload_parts(s3, bad, [2000])}
    spoiled = {**tags, "bad.safetensors": [{"ETag": '"0000"', "PartNumber": 1}]}
    request_id = activate(route, checkpoint_id, spoiled)
    refused = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert refused["status"] == "Initialed" and refused["rejection"]["request_id"] == request_id
    assert "bad.safetensors" in refused["rejection"]["reason"]
    assert "good.safetensors" not in refused["rejection"]["reason"]
    # What completed stays completed; the refused file's parts stay for the retry.
    assert [(f["filename"], f["upload_id"] is None) for f in refused["files"]] == [
        ("good.safetensors", True),
        ("bad.safetensors", False),
    ]
    assert len(s3.list_parts(Bucket=BUCKET, Key=bad["key"], UploadId=bad["upload_id"])["Parts"]) == 1

    activate(route, checkpoint_id, tags)
    checkpoint = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert checkpoint["status"] == "Active" and [f["size"] for f in checkpoint["files"]] == [1000, 2000]


def test_tags_for_unknown_or_missing_files_are_refused(world):
    s3, publisher, route = world
    checkpoint_id = create_checkpoint(route)
    activate(route, checkpoint_id, {"other.safetensors": [{"ETag": "x", "PartNumber": 1}]})
    reason = latest(publisher, "CheckpointChanged", checkpoint_id)["rejection"]["reason"]
    assert "other.safetensors" in reason
    activate(route, checkpoint_id, {})
    assert "model.safetensors" in latest(publisher, "CheckpointChanged", checkpoint_id)["rejection"]["reason"]


def test_activating_twice_is_refused_the_second_time(world):
    s3, publisher, route = world
    checkpoint_id = create_checkpoint(route, files=(("m.ckpt", 1),))
    file = latest(publisher, "CheckpointChanged", checkpoint_id)["files"][0]
    tags = upload_parts(s3, file, [100])
    activate(route, checkpoint_id, {"m.ckpt": tags})
    activate(route, checkpoint_id, {"m.ckpt": tags})
    checkpoint = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert checkpoint["status"] == "Active" and "not Initialed" in checkpoint["rejection"]["reason"]


def test_disabling_an_initialed_checkpoint_aborts_its_uploads(world):
    s3, publisher, route = world
    checkpoint_id = create_checkpoint(route)
    route.dispatch(as_event(CheckpointUpdateRequested(checkpoint_id=checkpoint_id, request_id="r", status="Disabled")))
    assert latest(publisher, "CheckpointChanged", checkpoint_id)["status"] == "Disabled"
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_redelivered_creation_opens_no_second_upload(world):
    s3, publisher, route = world
    command = CheckpointCreationRequested(
        checkpoint_id="c-1",
        checkpoint_type="VAE",
        files=[FileParts(filename="vae.pt", parts_number=1)],
        requested_at=NOW,
    )
    route.dispatch(as_event(command))
    route.dispatch(as_event(command))
    assert len(s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]) == 1
    events = publisher.of_type("CheckpointChanged")
    assert len({e["metadata"]["event_id"] for e in events}) == 1


def test_update_before_creation_is_retried_not_dropped(world):
    s3, publisher, route = world
    with pytest.raises(UnknownEntity):
        route.dispatch(as_event(CheckpointUpdateRequested(checkpoint_id="nope", request_id="r", status="Active")))


def create_dataset(route, names=("a.png", "b.png")) -> None:
    items = [DatasetItemSpec(name=n, type="image", original_filename=f"/home/me/{n}") for n in names]
    route.dispatch(as_event(DatasetCreationRequested(dataset_name="pets", items=items, requested_at=NOW)))


def update_dataset(route, status: str) -> str:
    request_id = str(uuid.uuid4())
    route.dispatch(as_event(DatasetUpdateRequested(dataset_name="pets", request_id=request_id, status=status)))
    return request_id


def test_dataset_is_enabled_only_when_every_file_arrived(world):
    s3, publisher, route = world
    create_dataset(route)
    assert latest(publisher, "DatasetChanged", "pets")["status"] == "Initialed"
    s3.put_object(Bucket=BUCKET, Key="dataset/pets/a.png", Body=b"png")
    request_id = update_dataset(route, "Enabled")
    refused = latest(publisher, "DatasetChanged", "pets")
    assert refused["status"] == "Initialed"
    assert refused["rejection"] == {"request_id": request_id, "reason": "files not uploaded yet: b.png"}

    s3.put_object(Bucket=BUCKET, Key="dataset/pets/b.png", Body=b"png")
    update_dataset(route, "Enabled")
    assert latest(publisher, "DatasetChanged", "pets")["status"] == "Enabled"
    assert [item["status"] for item in latest(publisher, "DatasetChanged", "pets")["items"]] == ["Enabled"] * 2


def test_dataset_can_be_disabled(world):
    s3, publisher, route = world
    create_dataset(route, names=("a.png",))
    update_dataset(route, "Disabled")
    assert latest(publisher, "DatasetChanged", "pets")["status"] == "Disabled"
    assert latest(publisher, "DatasetChanged", "pets")["items"][0]["status"] == "Disabled"


def test_one_fact_per_dataset_change_carries_every_item(world):
    """Thousands of items are one DatasetChanged per change (stored in parts), not one event per item."""
    s3, publisher, route = world
    names = [f"img_{n:05}.png" for n in range(5000)]
    create_dataset(route, names=names)
    for name in names:
        s3.put_object(Bucket=BUCKET, Key=f"dataset/pets/{name}", Body=b"png")
    update_dataset(route, "Enabled")
    assert [e.detail_type for e in publisher.published] == ["DatasetChanged", "DatasetChanged"]
    enabled = latest(publisher, "DatasetChanged", "pets")
    assert (enabled["version"], enabled["item_count"], len(enabled["items"])) == (2, 5000, 5000)
    assert {item["status"] for item in enabled["items"]} == {"Enabled"}
    # A redelivery finds the stored dataset (read back from its parts) and publishes the same fact again.
    update_dataset(route, "Enabled")
    assert publisher.published[-1].envelope.metadata.event_id == publisher.published[1].envelope.metadata.event_id


def test_a_refusal_names_a_bounded_number_of_missing_files(world):
    s3, publisher, route = world
    create_dataset(route, names=[f"img_{n:05}.png" for n in range(100)])
    update_dataset(route, "Enabled")
    reason = latest(publisher, "DatasetChanged", "pets")["rejection"]["reason"]
    assert reason.startswith("files not uploaded yet: img_00000.png, ") and reason.endswith(" and 80 more")


def test_a_dataset_stored_before_it_carried_its_items_reads_them_from_their_rows(world, snapshots):
    from sdmw_contracts.events import DatasetChanged, DatasetItemChanged

    s3, publisher, route = world
    dataset = DatasetCreationRequested(
        dataset_name="pets",
        items=[DatasetItemSpec(name="a.png", type="image", original_filename="/a.png")],
        requested_at=NOW,
    ).initial_snapshot(BUCKET, version=1)
    legacy_item = DatasetItemChanged(id="pets/a.png", version=1, dataset_name="pets", **dataset.items[0].model_dump())
    snapshots.save(legacy_item, dataset.model_copy(update={"items": []}))
    assert DatasetChanged.model_validate_json(dataset.model_dump_json()).items
    s3.put_object(Bucket=BUCKET, Key="dataset/pets/a.png", Body=b"png")
    update_dataset(route, "Enabled")
    enabled = latest(publisher, "DatasetChanged", "pets")
    assert enabled["status"] == "Enabled" and [i["name"] for i in enabled["items"]] == ["a.png"]


# ---------------------------------------------------------------- registrations


def register(route, location: str, filenames=(), checkpoint_type="Stable-diffusion", checkpoint_id="trained-1"):
    command = CheckpointRegistrationRequested(
        checkpoint_id=checkpoint_id,
        checkpoint_type=checkpoint_type,
        s3_location=location,
        filenames=list(filenames),
        params={"new_model_name": "my-dog"},
        requested_at=NOW,
    )
    route.dispatch(as_event(command))


def test_a_trained_single_file_becomes_an_active_checkpoint_of_that_file_found_by_its_name(world):
    # What training-manager sends for a finished DreamBooth or LoRA job: the one file <output_name>.safetensors.
    s3, publisher, route = world
    location = f"s3://{BUCKET}/train/t1/train-t1/output/model/"
    weights = model_file("my-dog.safetensors")
    s3.put_object(Bucket=BUCKET, Key="train/t1/train-t1/output/model/my-dog.safetensors", Body=weights)
    register(route, location, filenames=["my-dog.safetensors"])
    data = latest(publisher, "CheckpointChanged", "trained-1")
    assert (data["status"], data["checkpoint_type"], data["s3_location"]) == ("Active", "Stable-diffusion", location)
    assert [(f["filename"], f["size"], f["s3_uri"]) for f in data["files"]] == [
        ("my-dog.safetensors", len(weights), location + "my-dog.safetensors")
    ]
    checkpoint = CheckpointChanged.model_validate(data)
    assert checkpoint.filenames == ["my-dog.safetensors"]
    for title in ("my-dog.safetensors", "my-dog", "my-dog.safetensors [0123abcd]"):
        assert checkpoint.model_named(title) == ModelRef(
            name="my-dog.safetensors", s3_uri=location + "my-dog.safetensors"
        )
    assert checkpoint.model_named("model_index.json") is None
    assert checkpoint.lookup_names() == ["Stable-diffusion/my-dog", "Stable-diffusion/my-dog.safetensors"]


def test_a_registration_without_names_takes_every_file_under_its_prefix(world):
    s3, publisher, route = world
    folder = {
        "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}',
        "unet/diffusion_pytorch_model.safetensors": safetensors({"down_blocks.0.resnets.0.conv1.weight": (4,)}),
    }
    for key, body in folder.items():
        s3.put_object(Bucket=BUCKET, Key=f"train/t1/job/output/model/{key}", Body=body)
    register(route, f"s3://{BUCKET}/train/t1/job/output/model/")
    checkpoint = latest(publisher, "CheckpointChanged", "trained-1")
    assert checkpoint["status"] == "Active" and checkpoint["params"]["new_model_name"] == "my-dog"
    assert [(f["filename"], f["size"]) for f in checkpoint["files"]] == [
        ("model_index.json", len(folder["model_index.json"])),
        ("unet/diffusion_pytorch_model.safetensors", len(folder["unet/diffusion_pytorch_model.safetensors"])),
    ]
    register(route, f"s3://{BUCKET}/train/t1/job/output/model/")
    assert [e["data"]["version"] for e in publisher.of_type("CheckpointChanged")] == [1, 1]


def test_a_registration_of_named_files_takes_only_those(world):
    s3, publisher, route = world
    s3.put_object(Bucket=BUCKET, Key="out/j1/result/mix.safetensors", Body=model_file("mix.safetensors"))
    s3.put_object(Bucket=BUCKET, Key="out/j1/result/j1_param.json", Body=b"{}")
    register(route, f"s3://{BUCKET}/out/j1/result/", filenames=["mix.safetensors"], checkpoint_id="merged")
    checkpoint = latest(publisher, "CheckpointChanged", "merged")
    assert [f["filename"] for f in checkpoint["files"]] == ["mix.safetensors"]


@pytest.mark.parametrize(
    ("location", "filenames"),
    [(f"s3://{BUCKET}/train/empty/", ()), (f"s3://{BUCKET}/out/j2/", ("gone.safetensors",)), ("s3://other/x/", ())],
    ids=["nothing-there", "named-file-missing", "other-bucket"],
)
def test_a_registration_of_missing_files_is_retried_and_registers_nothing(world, location, filenames):
    s3, publisher, route = world
    with pytest.raises(UploadRefused):
        register(route, location, filenames=filenames)
    assert publisher.published == []
