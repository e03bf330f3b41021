"""Uploading checkpoints and datasets through the seed API, as a client would, and the catalogues."""

from __future__ import annotations

import os
import subprocess
import uuid
from urllib.parse import parse_qs, quote, urlparse

import boto3
import pytest
import requests

from tests.e2e.conftest import ApiClient
from tests.model_files import EMBEDDING_SHAPES, LORA_SD1_SHAPES, SD1_SHAPES, safetensors

pytestmark = pytest.mark.e2e
MB = 1024 * 1024


def emulator_s3(stack):
    s = stack.settings
    return boto3.client(
        "s3",
        endpoint_url=s.emulator_url,
        region_name=s.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def start_checkpoint(api: ApiClient, filename: str, parts: int, checkpoint_type: str = "Lora") -> dict:
    response = api.post(
        "/checkpoint",
        json={
            "checkpoint_type": checkpoint_type,
            "filenames": [{"filename": filename, "parts_number": parts}],
            "params": {"new_model_name": "e2e"},
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def with_random_tail(model: bytes, size: int) -> bytes:
    """A model file (its header is what asset-registry checks) padded with random bytes to ``size``."""
    return model + os.urandom(size - len(model))


def put_parts(urls: list[str], chunks: list[bytes], tmp_path) -> list[dict]:
    """Part 1.. with requests.put, the last one with `curl -T`, as both kinds of client do."""
    tags = []
    for number, (url, chunk) in enumerate(zip(urls, chunks, strict=True), start=1):
        if number < len(urls):
            response = requests.put(url, data=chunk, timeout=60)
            assert response.status_code == 200, response.text
            etag = response.headers["ETag"]
        else:
            part = tmp_path / f"part-{number}"
            part.write_bytes(chunk)
            head = subprocess.run(
                ["curl", "-sS", "-i", "-T", str(part), url], capture_output=True, text=True, check=True
            )
            etag = next(
                line.split(":", 1)[1].strip() for line in head.stdout.splitlines() if line.lower().startswith("etag:")
            )
        tags.append({"ETag": etag, "PartNumber": number})
    return tags


def test_checkpoint_upload_in_parts_becomes_active_and_listed(api: ApiClient, stack, tmp_path):
    content = with_random_tail(safetensors(LORA_SD1_SHAPES), 12 * MB + 4321)
    chunks = [content[: 5 * MB], content[5 * MB : 10 * MB], content[10 * MB :]]
    started = start_checkpoint(api, "e2e-lora.safetensors", parts=3)
    checkpoint = started["checkpoint"]
    assert checkpoint["status"] == "Initialed" and checkpoint["type"] == "Lora"
    # The WebUI extension's shape: s3PresignUrl[<file name>] is the list of part URLs...
    assert list(started["s3PresignUrl"]) == ["e2e-lora.safetensors"]
    part_urls = started["s3PresignUrl"]["e2e-lora.safetensors"]
    assert len(part_urls) == 3
    # ...and the seed's list of {upload_id, bucket, key} is multipart_uploads, with the same URLs.
    [upload] = started["multipart_uploads"]
    assert upload["filename"] == "e2e-lora.safetensors" and upload["s3_signed_urls"] == part_urls
    assert upload["upload_id"] and upload["bucket"] and upload["key"].endswith("/e2e-lora.safetensors")

    tags = put_parts(part_urls, chunks, tmp_path)
    done = api.put(
        "/checkpoint",
        json={
            "checkpoint_id": checkpoint["id"],
            "status": "Active",
            "multi_parts_tags": {"e2e-lora.safetensors": tags},
        },
    )
    assert done.status_code == 200, done.text
    assert done.json()["checkpoint"]["status"] == "Active"

    listed = api.get("/checkpoints", params=[("status", "Active"), ("types", "Lora"), ("types", "VAE")]).json()
    mine = [c for c in listed["checkpoints"] if c["id"] == checkpoint["id"]]
    # The extension joins s3Location + "/" + name, so the listing has no trailing "/".
    assert mine and mine[0]["name"] == ["e2e-lora.safetensors"] and mine[0]["type"] == "Lora"
    assert not mine[0]["s3Location"].endswith("/")
    assert mine[0]["s3Location"] + "/" == checkpoint["s3_location"]
    assert mine[0]["s3Location"] + "/" + mine[0]["name"][0] == f"s3://{upload['bucket']}/{upload['key']}"
    assert "e2e-lora.safetensors" in api.get("/inference/get-lora-list").json()
    assert "e2e-lora.safetensors" not in api.get("/inference/get-controlnet-model-list").json()
    stored = emulator_s3(stack).get_object(Bucket=upload["bucket"], Key=upload["key"])["Body"].read()
    assert stored == content


def test_wrong_etags_are_refused_and_leave_the_parts_for_a_retry(api: ApiClient, tmp_path):
    chunks = [with_random_tail(safetensors(EMBEDDING_SHAPES), 5 * MB), os.urandom(1000)]
    started = start_checkpoint(api, "retry.safetensors", parts=2, checkpoint_type="embeddings")
    checkpoint_id = started["checkpoint"]["id"]
    tags = put_parts(started["s3PresignUrl"]["retry.safetensors"], chunks, tmp_path)

    for bad in ([{"ETag": '"deadbeef"', "PartNumber": 1}, tags[1]], tags[:1]):
        refused = api.put(
            "/checkpoint",
            json={"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": {"retry.safetensors": bad}},
        )
        assert refused.status_code == 400, refused.text
        assert "retry.safetensors" in refused.json()["error"]
        listed = api.get("/checkpoints", params={"status": "Initialed"}).json()["checkpoints"]
        assert checkpoint_id in [c["id"] for c in listed]

    fixed = api.put(
        "/checkpoint",
        json={"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": {"retry.safetensors": tags}},
    )
    assert fixed.status_code == 200 and fixed.json()["checkpoint"]["status"] == "Active"
    again = api.put(
        "/checkpoint",
        json={"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": {"retry.safetensors": tags}},
    )
    assert again.status_code == 409
    assert "retry.safetensors" in api.get("/inference/get-texual-inversion-list").json()


def test_a_checkpoint_of_several_files_is_active_only_once_every_file_is_complete(api: ApiClient, stack, tmp_path):
    contents = {
        "unet.safetensors": with_random_tail(safetensors(SD1_SHAPES), 5 * MB + 17),
        "vae.safetensors": with_random_tail(safetensors(SD1_SHAPES), 1000),
    }
    response = api.post(
        "/checkpoint",
        json={
            "checkpoint_type": "Stable-diffusion",
            "filenames": [
                {"filename": "unet.safetensors", "parts_number": 2},
                {"filename": "vae.safetensors", "parts_number": 1},
            ],
        },
    )
    assert response.status_code == 200, response.text
    started = response.json()
    checkpoint_id = started["checkpoint"]["id"]
    urls = started["s3PresignUrl"]
    unet = contents["unet.safetensors"]
    tags = {
        "unet.safetensors": put_parts(urls["unet.safetensors"], [unet[: 5 * MB], unet[5 * MB :]], tmp_path),
        "vae.safetensors": put_parts(urls["vae.safetensors"], [contents["vae.safetensors"]], tmp_path),
    }

    spoiled = {**tags, "vae.safetensors": [{"ETag": '"deadbeef"', "PartNumber": 1}]}
    refused = api.put(
        "/checkpoint", json={"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": spoiled}
    )
    assert refused.status_code == 400 and "vae.safetensors" in refused.json()["error"], refused.text
    listed = api.get("/checkpoints", params={"status": "Initialed"}).json()["checkpoints"]
    assert checkpoint_id in [c["id"] for c in listed]

    done = api.put("/checkpoint", json={"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": tags})
    assert done.status_code == 200 and done.json()["checkpoint"]["status"] == "Active", done.text
    s3 = emulator_s3(stack)
    for upload in started["multipart_uploads"]:
        stored = s3.get_object(Bucket=upload["bucket"], Key=upload["key"])["Body"].read()
        assert stored == contents[upload["filename"]]


def test_unknown_checkpoint_is_404(api: ApiClient):
    response = api.put("/checkpoint", json={"checkpoint_id": str(uuid.uuid4()), "status": "Active"})
    assert response.status_code == 404


def test_disabling_an_abandoned_upload_aborts_it(api: ApiClient, stack):
    started = start_checkpoint(api, "abandoned.safetensors", parts=2, checkpoint_type="hypernetworks")
    upload = started["multipart_uploads"][0]
    disabled = api.put("/checkpoint", json={"checkpoint_id": started["checkpoint"]["id"], "status": "Disabled"})
    assert disabled.status_code == 200 and disabled.json()["checkpoint"]["status"] == "Disabled"
    open_uploads = emulator_s3(stack).list_multipart_uploads(Bucket=upload["bucket"]).get("Uploads", [])
    assert upload["upload_id"] not in [u["UploadId"] for u in open_uploads]
    assert "abandoned.safetensors" not in api.get("/inference/get-hypernetwork-list").json()


@pytest.mark.parametrize(
    "body",
    [
        {"checkpoint_type": "Unknown", "filenames": [{"filename": "a.safetensors", "parts_number": 1}]},
        {"checkpoint_type": "Lora", "filenames": [{"filename": "../a.safetensors", "parts_number": 1}]},
        {"checkpoint_type": "Lora", "filenames": [{"filename": "a.safetensors", "parts_number": 0}]},
        {"checkpoint_type": "Lora", "filenames": []},
        {
            "checkpoint_type": "Lora",
            "filenames": [
                {"filename": "a.safetensors", "parts_number": 1},
                {"filename": "a.safetensors", "parts_number": 1},
            ],
        },
    ],
)
def test_bad_checkpoint_requests_are_422_and_create_nothing(api: ApiClient, body):
    before = api.get("/checkpoints").json()["checkpoints"]
    assert api.post("/checkpoint", json=body).status_code == 422
    assert api.get("/checkpoints").json()["checkpoints"] == before


def png_bytes(seed: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(256) + bytes([seed])


def test_dataset_upload_enable_and_preview(api: ApiClient):
    name = f"pets-{uuid.uuid4().hex[:8]}"
    files = {f"/home/me/pictures/cat_{i}.png": (f"cat_{i}.png", png_bytes(i)) for i in range(3)}
    created = api.post(
        "/dataset",
        json={
            "dataset_name": name,
            "content": [{"filename": path, "name": item, "type": "image"} for path, (item, _) in files.items()],
            "params": {"description": "e2e"},
        },
    )
    assert created.status_code == 200, created.text
    urls = created.json()["s3PresignUrl"]
    assert set(urls) == set(files)

    first_path = next(iter(files))
    assert requests.put(urls[first_path], data=files[first_path][1], timeout=30).status_code == 200
    early = api.put("/dataset", json={"dataset_name": name, "status": "Enabled"})
    assert early.status_code == 400 and "cat_1.png" in early.json()["error"], early.text
    for path, (_, data) in list(files.items())[1:]:
        assert requests.put(urls[path], data=data, timeout=30).status_code == 200

    enabled = api.put("/dataset", json={"dataset_name": name, "status": "Enabled"})
    assert enabled.status_code == 200 and enabled.json() == {
        "statusCode": 200,
        "datasetName": name,
        "status": "Enabled",
    }
    listed = api.get("/datasets", params={"dataset_status": "Enabled"}).json()["datasets"]
    assert name in [d["datasetName"] for d in listed]

    for path in (f"/{name}/data", f"/dataset/{name}/data"):
        data = api.get(path).json()
        assert data["dataset_name"] == name
        by_name = {item["name"]: item for item in data["data"]}
        assert set(by_name) == {item for item, _ in files.values()}
        for item, content in files.values():
            assert by_name[item]["dataStatus"] == "Enabled"
            assert requests.get(by_name[item]["preview_url"], timeout=30).content == content


def test_the_extensions_dataset_calls_with_a_name_holding_spaces(api: ApiClient):
    """Rows 23-25 of the extension's table, as it sends them: its saved URL ends in "/" and it appends
    "/dataset", so every path is /prod//dataset...; the name holds spaces; it reads the description back."""
    url = api.base_url + "/"
    headers = {"x-api-key": api.api_key, "Content-Type": "application/json"}
    name = f"my cats {uuid.uuid4().hex[:6]}"
    files = {f"/home/me/my cats/cat {i}.png": png_bytes(i) for i in range(2)}
    created = requests.post(
        url + "/dataset",
        headers=headers,
        json={
            "dataset_name": name,
            "content": [
                {"filename": path, "name": path.rsplit("/", 1)[1], "type": "image", "params": {}} for path in files
            ],
            "params": {"description": "two cats"},
        },
        timeout=30,
    )
    assert created.status_code == 200, created.text
    urls = created.json()["s3PresignUrl"]
    for filename, url_for_file in urls.items():  # the client does s3PresignUrl.items()
        assert requests.put(url_for_file, data=files[filename], timeout=30).status_code == 200
    assert set(urls) == set(files)

    enabled = requests.put(
        url + "/dataset", headers=headers, json={"dataset_name": name, "status": "Enabled"}, timeout=30
    )
    assert enabled.status_code == 200 and enabled.json()["status"] == "Enabled", enabled.text

    listed = requests.get(url + "datasets", headers=headers, params={"dataset_status": "Enabled"}, timeout=30)
    [found] = [d for d in listed.json()["datasets"] if d["datasetName"] == name]
    assert found["description"] == "two cats" and found["s3"].endswith(f"/dataset/{name}/")
    assert isinstance(found["timestamp"], int) and found["timestamp"] > 0

    data = requests.get(url + f"/dataset/{quote(name)}/data", headers=headers, timeout=30)
    assert data.status_code == 200, data.text
    items = data.json()["data"]
    assert sorted(item["key"] for item in items) == [f"dataset/{name}/cat {i}.png" for i in range(2)]
    for item in items:
        content = files[f"/home/me/my cats/{item['key'].rsplit('/', 1)[1]}"]
        assert requests.get(item["preview_url"], timeout=30).content == content

    # The same name without the double slash (the seed's paths) finds the same dataset. Its presigned URLs
    # are signed anew, maybe in another second: the same objects, not the same signatures.
    again = api.get(f"/{quote(name)}/data").json()["data"]
    assert [unsigned(item) for item in again] == [unsigned(item) for item in items]
    duplicate = {"dataset_name": name, "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]}
    assert requests.post(url + "/dataset", headers=headers, json=duplicate, timeout=30).status_code == 409


def unsigned(item: dict) -> dict:
    """A dataset item with its preview URL's signature (which carries the signing time) left out."""
    return {**item, "preview_url": item["preview_url"].split("?", 1)[0]}


@pytest.mark.parametrize(
    "body",
    [
        {"dataset_name": "../escape", "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]},
        {"dataset_name": "my/cats", "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]},
        {"dataset_name": "my\\cats", "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]},
        {"dataset_name": "my\tcats", "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]},
        {"dataset_name": "my cats ", "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]},
        {"dataset_name": " my cats", "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]},
        {"dataset_name": "ok", "content": [{"filename": "/a.png", "name": "../../a.png", "type": "image"}]},
        {"dataset_name": "ok", "content": [{"filename": "/a.png", "name": "/etc/passwd", "type": "image"}]},
        {
            "dataset_name": "ok",
            "content": [
                {"filename": "/a.png", "name": "a.png", "type": "image"},
                {"filename": "/b.png", "name": "a.png", "type": "image"},
            ],
        },
        {"dataset_name": "ok", "content": []},
    ],
)
def test_bad_dataset_requests_are_422_and_create_nothing(api: ApiClient, body):
    before = api.get("/datasets").json()["datasets"]
    assert api.post("/dataset", json=body).status_code == 422
    assert api.get("/datasets").json()["datasets"] == before


def test_dataset_names_are_unique_and_unknown_ones_404(api: ApiClient):
    name = f"dup-{uuid.uuid4().hex[:8]}"
    body = {"dataset_name": name, "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]}
    assert api.post("/dataset", json=body).status_code == 200
    assert api.post("/dataset", json=body).status_code == 409
    assert api.get("/no-such-dataset/data").status_code == 404
    assert api.put("/dataset", json={"dataset_name": "no-such-dataset", "status": "Enabled"}).status_code == 404


def test_presigned_upload_url_is_limited_to_the_bucket_and_prefixes(api: ApiClient):
    response = api.get("/inference/generate-s3-presigned-url-for-uploading", params={"key": "config/aigc.json"})
    assert response.status_code == 200
    url = response.json()
    assert requests.put(url, data=b'{"a": 1}', timeout=30).status_code == 200
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["3600"]

    short = api.get(
        "/inference/generate-s3-presigned-url-for-uploading", params={"key": "config/x.json", "expires_in": 60}
    )
    assert parse_qs(urlparse(short.json()).query)["X-Amz-Expires"] == ["60"]
    refused = [
        {"key": "config/x.json", "expires_in": 10**7},
        {"key": "checkpoint/Lora/x.safetensors"},
        {"key": "config/x.json", "s3_bucket_name": "someone-elses-bucket"},
    ]
    for params in refused:
        assert api.get("/inference/generate-s3-presigned-url-for-uploading", params=params).status_code == 400, params
    for params in ({"key": "../config/x.json"}, {}):
        assert api.get("/inference/generate-s3-presigned-url-for-uploading", params=params).status_code == 422
