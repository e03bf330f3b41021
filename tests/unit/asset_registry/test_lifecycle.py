"""asset-registry's checkpoint lifecycle: judging completed uploads, imports from a URL, rename, deletion
and the sweep of uploads never completed (S3 is moto in-process; imports come from a local HTTP server)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from aws_lambda_powertools import Logger

from asset_registry.handlers import Dependencies, router
from asset_registry.imports import ImportPolicy
from asset_registry.storage import AssetStorage
from sdmw_contracts.events import CheckpointChanged, CheckpointCreationRequested, DatasetChanged
from sdmw_contracts.events.assets import (
    CheckpointDeletionRequested,
    CheckpointImportRequested,
    CheckpointRenameRequested,
    DatasetDeletionRequested,
    FileParts,
)
from service_kit.events import RecordingPublisher
from service_kit.messages import BusEvent
from service_kit.resources import SCHEDULED_EVENT
from service_kit.testing import InMemorySnapshotTable
from tests.model_files import LORA_SD1_SHAPES, SDXL_SHAPES, safetensors
from tests.unit.asset_registry.test_handlers import (
    BUCKET,
    MB,
    NOW,
    activate,
    as_event,
    create_checkpoint,
    create_dataset,
    latest,
    upload_parts,
)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def policy() -> ImportPolicy:
    return ImportPolicy(max_bytes=64 * MB, part_bytes=5 * MB, allow_loopback=True, progress_every_s=0)


@pytest.fixture
def world(mocked_aws, clock, policy):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    publisher = RecordingPublisher()
    snapshots = InMemorySnapshotTable()
    deps = Dependencies(
        snapshots=snapshots,
        storage=AssetStorage(BUCKET, s3),
        publisher=publisher,
        logger=Logger(service="test"),
        imports=policy,
        unfinished_checkpoint_age=timedelta(hours=2),
        clock=clock,
    )
    return s3, publisher, router(deps), snapshots


def upload_file(s3, publisher, route, content: bytes, filename="x.safetensors", checkpoint_type="Lora") -> str:
    checkpoint_id = create_checkpoint(route, files=((filename, 1),), checkpoint_type=checkpoint_type)
    file = latest(publisher, "CheckpointChanged", checkpoint_id)["files"][0]
    etag = s3.upload_part(Bucket=BUCKET, Key=file["key"], UploadId=file["upload_id"], PartNumber=1, Body=content)
    activate(route, checkpoint_id, {filename: [{"ETag": etag["ETag"], "PartNumber": 1}]})
    return checkpoint_id


def keys(s3, prefix: str = "") -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


# ---------------------------------------------------------------- completed uploads are judged


def test_random_bytes_uploaded_as_safetensors_end_failed_with_the_reason(world):
    s3, publisher, route, _ = world
    checkpoint_id = upload_file(s3, publisher, route, os.urandom(3000))
    checkpoint = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert checkpoint["status"] == "Failed"
    assert checkpoint["error"].startswith("x.safetensors: not a safetensors file: its header length")
    statuses = [e["data"]["status"] for e in publisher.of_type("CheckpointChanged")]
    assert "Active" not in statuses and checkpoint["files"][0]["upload_id"] is None


def test_a_file_of_another_type_ends_failed(world):
    s3, publisher, route, _ = world
    checkpoint_id = upload_file(s3, publisher, route, safetensors(LORA_SD1_SHAPES), checkpoint_type="Stable-diffusion")
    checkpoint = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert checkpoint["status"] == "Failed" and "it holds no Stable-diffusion weights" in checkpoint["error"]


def test_an_active_checkpoint_records_its_architecture(world):
    s3, publisher, route, _ = world
    checkpoint_id = upload_file(s3, publisher, route, safetensors(SDXL_SHAPES), checkpoint_type="Stable-diffusion")
    checkpoint = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert checkpoint["status"] == "Active" and checkpoint["params"]["architecture"] == "sdxl"


# ---------------------------------------------------------------- deletion


def test_deleting_a_checkpoint_removes_its_objects_and_hides_it_and_is_safe_to_repeat(world):
    s3, publisher, route, snapshots = world
    checkpoint_id = upload_file(s3, publisher, route, safetensors(LORA_SD1_SHAPES))
    other = upload_file(s3, publisher, route, safetensors(LORA_SD1_SHAPES), filename="other.safetensors")
    assert len(keys(s3, "checkpoint/")) == 2
    command = CheckpointDeletionRequested(checkpoint_id=checkpoint_id, requested_at=NOW)
    route.dispatch(as_event(command))
    deleted = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert deleted["deleted_at"] is not None
    assert keys(s3, "checkpoint/") == [f"checkpoint/Lora/{other}/other.safetensors"]
    assert snapshots.get(CheckpointChanged, checkpoint_id).is_deleted

    route.dispatch(as_event(command))
    again = latest(publisher, "CheckpointChanged", checkpoint_id)
    assert again["version"] == deleted["version"]


def test_deleting_an_initialed_checkpoint_aborts_its_uploads(world):
    s3, publisher, route, _ = world
    checkpoint_id = create_checkpoint(route, files=(("big.safetensors", 3),))
    file = latest(publisher, "CheckpointChanged", checkpoint_id)["files"][0]
    upload_parts(s3, file, [5 * MB])
    route.dispatch(as_event(CheckpointDeletionRequested(checkpoint_id=checkpoint_id, requested_at=NOW)))
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert latest(publisher, "CheckpointChanged", checkpoint_id)["deleted_at"] is not None


def test_deleting_a_dataset_removes_every_object_under_its_prefix(world):
    s3, publisher, route, snapshots = world
    create_dataset(route)
    for name in ("a.png", "b.png"):
        s3.put_object(Bucket=BUCKET, Key=f"dataset/pets/{name}", Body=b"png")
    s3.put_object(Bucket=BUCKET, Key="dataset/pets-other/c.png", Body=b"png")
    route.dispatch(as_event(DatasetDeletionRequested(dataset_name="pets", requested_at=NOW)))
    assert keys(s3, "dataset/") == ["dataset/pets-other/c.png"]
    assert latest(publisher, "DatasetChanged", "pets")["deleted_at"] is not None
    assert snapshots.get(DatasetChanged, "pets").is_deleted


# ---------------------------------------------------------------- the sweep


def sweep(route) -> None:
    route.dispatch(BusEvent(id="s", source="aws.events", detail_type=SCHEDULED_EVENT, detail={}))


def test_the_sweep_deletes_uploads_never_completed_once_they_are_old_enough(world, clock):
    s3, publisher, route, snapshots = world
    stale = create_checkpoint(route, files=(("stale.safetensors", 2),))
    done = upload_file(s3, publisher, route, safetensors(LORA_SD1_SHAPES))
    clock.now = NOW + timedelta(hours=1)
    sweep(route)
    assert snapshots.get(CheckpointChanged, stale).deleted_at is None

    clock.now = NOW + timedelta(hours=2, seconds=1)
    fresh = CheckpointCreationRequested(
        checkpoint_id="fresh",
        checkpoint_type="Stable-diffusion",
        files=[FileParts(filename="fresh.safetensors", parts_number=1)],
        requested_at=clock.now,
    )
    route.dispatch(as_event(fresh))
    sweep(route)
    assert snapshots.get(CheckpointChanged, stale).deleted_at is not None
    assert snapshots.get(CheckpointChanged, done).deleted_at is None
    assert snapshots.get(CheckpointChanged, "fresh").deleted_at is None
    open_keys = [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]
    assert open_keys == ["checkpoint/Stable-diffusion/fresh/fresh.safetensors"]


# ---------------------------------------------------------------- rename


def rename(route, checkpoint_id: str, new_name: str, request_id: str = "r1") -> None:
    route.dispatch(
        as_event(CheckpointRenameRequested(checkpoint_id=checkpoint_id, request_id=request_id, new_name=new_name))
    )


def test_a_renamed_file_answers_to_its_new_name_and_keeps_its_key(world):
    s3, publisher, route, snapshots = world
    checkpoint_id = upload_file(s3, publisher, route, safetensors(LORA_SD1_SHAPES))
    key = latest(publisher, "CheckpointChanged", checkpoint_id)["files"][0]["key"]
    rename(route, checkpoint_id, "y.safetensors")
    checkpoint = CheckpointChanged.model_validate(latest(publisher, "CheckpointChanged", checkpoint_id))
    assert checkpoint.filenames == ["y.safetensors"] and checkpoint.files[0].key == key
    assert [c.id for c in snapshots.named(CheckpointChanged, "Lora/y")] == [checkpoint_id]
    assert snapshots.named(CheckpointChanged, "Lora/x") == []


def test_a_rename_to_a_taken_name_or_another_extension_is_refused(world):
    s3, publisher, route, _ = world
    first = upload_file(s3, publisher, route, safetensors(LORA_SD1_SHAPES), filename="a.safetensors")
    second = upload_file(s3, publisher, route, safetensors(LORA_SD1_SHAPES), filename="b.safetensors")
    rename(route, second, "a.safetensors", request_id="taken")
    refused = latest(publisher, "CheckpointChanged", second)
    assert refused["rejection"] == {
        "request_id": "taken",
        "reason": f"another Lora checkpoint ({first}) is named a.safetensors",
    }
    rename(route, second, "b.ckpt", request_id="suffix")
    refused = latest(publisher, "CheckpointChanged", second)
    assert refused["rejection"]["reason"] == "b.ckpt must end with .safetensors, as b.safetensors does"
    assert refused["files"][0]["filename"] == "b.safetensors"


# ---------------------------------------------------------------- imports


class Files:
    """What the local server serves: path -> body (and whether it says its length)."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.hide_length: set[str] = set()


@pytest.fixture
def server() -> Iterator[tuple[str, Files]]:
    files = Files()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/model.safetensors")
                self.end_headers()
                return
            body = files.bodies.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            if self.path not in files.hide_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()
    httpd.server_close()


def import_from(route, url: str, checkpoint_id: str = "imported", checkpoint_type: str = "Lora") -> None:
    command = CheckpointImportRequested(
        checkpoint_id=checkpoint_id,
        checkpoint_type=checkpoint_type,
        url=url,
        filename="model.safetensors",
        requested_at=NOW,
    )
    route.dispatch(as_event(command))


def test_an_imported_file_is_streamed_into_s3_in_parts_and_becomes_active(world, server):
    s3, publisher, route, _ = world
    base, files = server
    content = safetensors(LORA_SD1_SHAPES, size=12 * MB + 5)
    files.bodies["/model.safetensors"] = content
    import_from(route, base + "/moved")
    checkpoint = latest(publisher, "CheckpointChanged", "imported")
    assert checkpoint["status"] == "Active" and checkpoint["params"]["architecture"] == "sd1"
    assert checkpoint["source_url"] == base + "/moved" and checkpoint["files"][0]["size"] == len(content)
    key = checkpoint["files"][0]["key"]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == content
    assert s3.head_object(Bucket=BUCKET, Key=key, PartNumber=1)["PartsCount"] == 3
    progress = [e["data"]["progress"] for e in publisher.of_type("CheckpointChanged") if e["data"]["progress"]]
    assert progress and {p["phase"] for p in progress} == {"download"}
    assert all(p["total_steps"] == len(content) and 0 < p["step"] <= len(content) for p in progress)


def test_an_import_of_random_bytes_ends_failed(world, server):
    s3, publisher, route, _ = world
    base, files = server
    files.bodies["/model.safetensors"] = os.urandom(1000)
    import_from(route, base + "/model.safetensors")
    checkpoint = latest(publisher, "CheckpointChanged", "imported")
    assert checkpoint["status"] == "Failed" and "not a safetensors file" in checkpoint["error"]


def test_an_import_over_the_size_cap_fails_and_its_upload_is_aborted(world, server, policy):
    s3, publisher, route, _ = world
    base, files = server
    files.bodies["/big.safetensors"] = bytes(policy.max_bytes + 1)
    files.bodies["/sly.safetensors"] = bytes(policy.max_bytes + 1)
    files.hide_length.add("/sly.safetensors")  # it only shows its size while it comes
    import_from(route, base + "/big.safetensors", checkpoint_id="big")
    import_from(route, base + "/sly.safetensors", checkpoint_id="sly")
    for checkpoint_id in ("big", "sly"):
        checkpoint = latest(publisher, "CheckpointChanged", checkpoint_id)
        assert checkpoint["status"] == "Failed" and "more than the 67,108,864 bytes" in checkpoint["error"]
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert keys(s3) == []


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://169.254.169.254/latest/meta-data", "the address 169.254.169.254 is a link-local address"),
        ("http://10.0.0.8/model.safetensors", "the address 10.0.0.8 is a private address"),
        ("/missing.safetensors", "answered HTTP 404"),
    ],
)
def test_an_import_from_a_refused_or_failing_url_ends_failed_with_the_reason(world, server, url, error):
    s3, publisher, route, _ = world
    base, _files = server
    import_from(route, base + url if url.startswith("/") else url)
    checkpoint = latest(publisher, "CheckpointChanged", "imported")
    assert checkpoint["status"] == "Failed" and error in checkpoint["error"]
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_loopback_is_refused_unless_the_local_stack_allows_it(mocked_aws, server):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    publisher = RecordingPublisher()
    deps = Dependencies(InMemorySnapshotTable(), AssetStorage(BUCKET, s3), publisher, Logger(service="test"))
    base, files = server
    files.bodies["/model.safetensors"] = safetensors(LORA_SD1_SHAPES)
    import_from(router(deps), base + "/model.safetensors")
    checkpoint = latest(publisher, "CheckpointChanged", "imported")
    assert checkpoint["status"] == "Failed"
    assert "is a loopback address; checkpoints are only imported from public addresses" in checkpoint["error"]
