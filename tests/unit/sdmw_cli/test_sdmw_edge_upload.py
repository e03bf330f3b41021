"""``sdmw checkpoint upload`` against the real edge in-process, with moto's S3 behind the presigned URLs.

The asset registry is stood in for by a publisher that opens the multipart
uploads in S3 when the checkpoint is created, and completes them with the
client's ETags when it is activated, applying the owner's snapshots as it goes.
"""

from __future__ import annotations

import json
from urllib.parse import unquote, urlparse

import boto3
import httpx
import pytest
from typer.testing import CliRunner

from sdmw_cli import cli, main
from sdmw_cli.client import MIB, Client
from sdmw_contracts.events import CheckpointChanged, CheckpointCreationRequested, CheckpointUpdateRequested
from service_kit.events import RecordingPublisher
from tests.conftest import aws_credentials, fresh_aws_clients, mocked_aws  # noqa: F401 - the repo's moto fixtures
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge


class AssetRegistryStandIn(RecordingPublisher):
    def __init__(self, s3) -> None:
        super().__init__()
        self.s3 = s3
        self.read_model = None

    def publish(self, events) -> None:
        super().publish(events)
        for event in events:
            data = json.loads(event.detail_json())["data"]
            if event.detail_type == CheckpointCreationRequested.detail_type():
                self.open_uploads(CheckpointCreationRequested.model_validate(data))
            elif event.detail_type == CheckpointUpdateRequested.detail_type():
                self.complete_uploads(CheckpointUpdateRequested.model_validate(data))

    def open_uploads(self, command: CheckpointCreationRequested) -> None:
        draft = command.initial_snapshot(EDGE_BUCKET, version=1)
        upload_ids = {
            f.filename: self.s3.create_multipart_upload(Bucket=EDGE_BUCKET, Key=f.key)["UploadId"] for f in draft.files
        }
        self.read_model.apply(command.initial_snapshot(EDGE_BUCKET, version=1, upload_ids=upload_ids))

    def complete_uploads(self, command: CheckpointUpdateRequested) -> None:
        checkpoint = self.read_model.get(CheckpointChanged, command.checkpoint_id)
        for file in checkpoint.files:
            self.s3.complete_multipart_upload(
                Bucket=EDGE_BUCKET,
                Key=file.key,
                UploadId=file.upload_id,
                MultipartUpload={"Parts": [tag.model_dump() for tag in command.multi_parts_tags[file.filename]]},
            )
        self.read_model.apply(checkpoint.model_copy(update={"status": "Active", "version": checkpoint.version + 1}))


def s3_behind_presigned_urls(s3):
    """Hands each presigned part PUT to moto's S3, as the real bucket would take it."""

    def put_part(request: httpx.Request) -> httpx.Response:
        assert request.url.host == f"{EDGE_BUCKET}.s3.amazonaws.com"
        answer = s3.upload_part(
            Bucket=EDGE_BUCKET,
            Key=unquote(urlparse(str(request.url)).path.lstrip("/")),
            UploadId=request.url.params["uploadId"],
            PartNumber=int(request.url.params["partNumber"]),
            Body=request.content,
        )
        return httpx.Response(200, headers={"ETag": answer["ETag"]})

    return httpx.Client(transport=httpx.MockTransport(put_part))


@pytest.fixture
def edge(mocked_aws, monkeypatch, tmp_path):  # noqa: F811 - the imported fixture, requested by name
    registry = AssetRegistryStandIn(boto3.client("s3"))
    made = in_process_edge(registry, keys=("key",), transition_wait_s=2.0)
    registry.read_model = made.read_model
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("SDMW_URL", "http://testserver/prod")
    monkeypatch.setenv("SDMW_API_KEY", "key")
    storage = s3_behind_presigned_urls(made.s3)
    monkeypatch.setattr(cli, "client_factory", lambda s: Client(s.url, s.api_key, http=made.client, storage=storage))
    return made, registry


def test_a_two_part_file_is_uploaded_and_activated_through_the_edge(edge, tmp_path):
    made, registry = edge
    model = tmp_path / "style.safetensors"
    content = bytes(range(256)) * (6 * MIB // 256)  # 6 MiB: a 5 MiB part and a 1 MiB part
    model.write_bytes(content)

    result = CliRunner().invoke(main.app, ["checkpoint", "upload", str(model), "--type", "Lora", "--part-mib", "5"])

    assert result.exit_code == 0, result.output
    checkpoint_id = result.stdout.strip()
    [created] = registry.of_type("CheckpointCreationRequested")
    assert created["data"]["files"] == [{"filename": "style.safetensors", "parts_number": 2}]
    [activated] = registry.of_type("CheckpointUpdateRequested")
    assert [t["PartNumber"] for t in activated["data"]["multi_parts_tags"]["style.safetensors"]] == [1, 2]
    stored = made.read_model.get(CheckpointChanged, checkpoint_id)
    assert stored.status == "Active"
    uploaded = made.s3.get_object(Bucket=EDGE_BUCKET, Key=stored.files[0].key)["Body"].read()
    assert uploaded == content


def test_a_wrong_key_against_the_edge_exits_3(edge, monkeypatch, tmp_path):
    monkeypatch.setenv("SDMW_API_KEY", "wrong")
    assert CliRunner().invoke(main.app, ["checkpoint", "list"]).exit_code == cli.EXIT_UNREACHABLE
