"""The WebUI extension's edge, asset and endpoint calls in-process, as it sends and reads them.

`reference/extension-client.md`: its saved URL ends in ``/`` (so the dataset
calls ask for ``/prod//dataset``), browsers preflight without a key, counts are
strings, upload answers are indexed by file name, and ``endTime`` is absent
until there is one. The owning services are stood in for by a publisher that
applies the owner's next snapshot to the read model when a command is sent.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from fastapi.testclient import TestClient

from api_gateway.cors import ALLOWED_HEADERS
from api_gateway.paths import CollapseSlashesMiddleware
from api_gateway.read_model import ReadModel
from sdmw_contracts.api.endpoints import SUPPORTED_INSTANCE_TYPES
from sdmw_contracts.events import (
    CheckpointChanged,
    CheckpointCreationRequested,
    EndpointDeletionRequested,
    EndpointDeploymentChanged,
)
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge

BUCKET = EDGE_BUCKET
KEY = {"x-api-key": "key", "Content-Type": "application/json"}
NOW = datetime(2024, 1, 1, tzinfo=UTC)
ORIGIN = "http://127.0.0.1:7860"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,x-api-key",
}
#: The extension's saved URL: it always ends in "/".
URL = "/prod/"


class OwnersStandIn(RecordingPublisher):
    """Records commands and, as asset-registry and endpoint-manager would, applies the owner's next snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self.read_model: ReadModel | None = None

    def publish(self, events) -> None:
        super().publish(events)
        assert self.read_model is not None
        for event in events:
            data = json.loads(event.detail_json())["data"]
            if event.detail_type == CheckpointCreationRequested.detail_type():
                command = CheckpointCreationRequested.model_validate(data)
                uploads = {f.filename: f"upload-{f.filename}" for f in command.files}
                self.read_model.apply(command.initial_snapshot(BUCKET, version=1, upload_ids=uploads))
            elif event.detail_type == EndpointDeletionRequested.detail_type():
                command = EndpointDeletionRequested.model_validate(data)
                job = self.read_model.get(EndpointDeploymentChanged, command.job_id)
                update = {"status": "deleted", "endpoint_status": "deleted", "end_time": job.end_time or NOW}
                self.read_model.apply(job.model_copy(update={**update, "version": job.version + 1}))


@pytest.fixture
def edge(mocked_aws):
    owners = OwnersStandIn()
    made = in_process_edge(owners, transition_wait_s=0.5, clock=lambda: NOW)
    owners.read_model = made.read_model
    return made.client, made.read_model, owners


# ---------------------------------------------------------------- CORS and paths


ROUTES = [
    ("GET", "inference/test-connection"),
    ("POST", "inference/deploy-sagemaker-endpoint"),
    ("GET", "inference/list-endpoint-deployment-jobs"),
    ("POST", "checkpoint"),
    ("PUT", "checkpoint"),
    ("GET", "checkpoints"),
    ("POST", "/dataset"),
    ("PUT", "/dataset"),
    ("GET", "/dataset/my%20cats/data"),
    ("GET", "no/such/route"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_preflight_gets_api_gateways_cors_headers_without_a_key(edge, method, path):
    client, _, owners = edge
    response = client.options(URL + path, headers={**PREFLIGHT, "Access-Control-Request-Method": method})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-headers"] == ",".join(ALLOWED_HEADERS)
    assert response.headers["access-control-allow-headers"] == (
        "Content-Type,X-Amz-Date,Authorization,X-Api-Key,X-Amz-Security-Token"
    )
    assert set(response.headers["access-control-allow-methods"].split(",")) >= {"GET", "POST", "PUT", "OPTIONS"}
    assert owners.published == []  # a preflight reaches no route


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Origin": ORIGIN}, 401),
        ({"Access-Control-Request-Method": "GET"}, 401),
        ({"Origin": ORIGIN, "x-api-key": "wrong"}, 403),
        ({"Access-Control-Request-Method": "GET", "x-api-key": "wrong"}, 403),
    ],
    ids=["bare", "origin-only", "method-only", "origin-wrong-key", "method-wrong-key"],
)
def test_an_options_that_is_not_a_preflight_still_needs_the_key(edge, headers, status):
    client, _, _ = edge
    for path in ("checkpoints", "/dataset", "inference/deploy-sagemaker-endpoint"):
        response = client.options(URL + path, headers=headers)
        assert response.status_code == status, (path, response.text)
        # ...and a browser can read the refusal.
        assert response.headers["access-control-allow-origin"] == "*"


def test_an_options_with_a_valid_key_that_is_not_a_preflight_is_not_a_cors_answer(edge):
    client, _, _ = edge
    response = client.options(URL + "checkpoints", headers=KEY)
    assert response.status_code == 405 and "access-control-allow-methods" not in response.headers


@pytest.mark.parametrize("origin", [{"Origin": ORIGIN}, {}], ids=["browser", "no-origin"])
def test_every_answer_carries_allow_origin(edge, origin):
    client, _, _ = edge
    for path, status in (("checkpoints", 200), ("no/such/route", 404)):
        response = client.get(URL + path, headers={**KEY, **origin})
        assert response.status_code == status
        assert response.headers["access-control-allow-origin"] == "*"
    refused = client.post(URL + "inference/deploy-sagemaker-endpoint", json={}, headers={**KEY, **origin})
    assert refused.status_code == 422 and refused.headers["access-control-allow-origin"] == "*"


def test_double_slashes_are_collapsed_in_path_and_raw_path_before_the_app_sees_them():
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    scope = {"type": "http", "path": "/prod//dataset/my cats/data", "raw_path": b"/prod//dataset/my%20cats/data"}
    asyncio.run(CollapseSlashesMiddleware(app)(scope, None, None))
    assert seen["path"] == "/prod/dataset/my cats/data"
    assert seen["raw_path"] == b"/prod/dataset/my%20cats/data"


# ---------------------------------------------------------------- checkpoints (rows 10-11)


def test_checkpoint_answers_part_urls_keyed_by_file_name_and_the_seeds_list_beside_them(edge):
    client, _, _ = edge
    body = {
        "checkpoint_type": "Stable-diffusion",
        "filenames": [{"filename": "v1-5.safetensors", "parts_number": 3}, {"filename": "vae.pt", "parts_number": 1}],
        "params": {"message": "from the extension"},
    }
    response = client.post(URL + "checkpoint", json=body, headers=KEY)
    assert response.status_code == 200, response.text
    answer = response.json()
    checkpoint = answer["checkpoint"]
    assert checkpoint["id"] and checkpoint["status"] == "Initialed"
    assert checkpoint["s3_location"] == f"s3://{BUCKET}/checkpoint/Stable-diffusion/{checkpoint['id']}/"

    urls = answer["s3PresignUrl"]  # the client does s3PresignUrl[<filename>][i]
    assert set(urls) == {"v1-5.safetensors", "vae.pt"}
    assert len(urls["v1-5.safetensors"]) == 3 and len(urls["vae.pt"]) == 1
    for number, url in enumerate(urls["v1-5.safetensors"], start=1):
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        assert parsed.path.endswith(f"/checkpoint/Stable-diffusion/{checkpoint['id']}/v1-5.safetensors")
        assert query["partNumber"] == [str(number)] and query["uploadId"] == ["upload-v1-5.safetensors"]

    # The seed's list form, with the same URLs, under multipart_uploads.
    uploads = {u["filename"]: u for u in answer["multipart_uploads"]}
    assert set(uploads) == set(urls)
    for filename, upload in uploads.items():
        assert upload["s3_signed_urls"] == urls[filename]
        assert upload["bucket"] == BUCKET and upload["upload_id"] == f"upload-{filename}"
        assert upload["key"] == f"checkpoint/Stable-diffusion/{checkpoint['id']}/{filename}"


@pytest.mark.parametrize(
    ("label", "checkpoint_type"),
    [
        ("SD Checkpoints", "Stable-diffusion"),
        ("Textual Inversion", "embeddings"),
        ("LoRA model", "Lora"),
        ("ControlNet model", "ControlNet"),
        ("Hypernetwork", "hypernetworks"),
        ("VAE", "VAE"),
    ],
)
def test_the_laptop_upload_as_the_browser_sends_it(edge, label, checkpoint_type):
    """ "Upload Model to S3 from Laptop": a fetch with a JSON string body (so the browser says text/plain,
    defect 4) and the Model Type dropdown's label as the type."""
    client, _, _ = edge
    body = {
        "checkpoint_type": label,
        "filenames": [{"filename": "model.safetensors", "parts_number": 1}],
        "params": {"message": "placeholder for chkpts upload test"},
    }
    headers = {"x-api-key": "key", "Content-Type": "text/plain;charset=UTF-8", "Origin": ORIGIN}
    response = client.post(URL + "checkpoint", content=json.dumps(body), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["checkpoint"]["s3_location"].startswith(f"s3://{BUCKET}/checkpoint/{checkpoint_type}/")
    assert response.headers["access-control-allow-origin"] == "*"


def test_a_text_plain_body_that_is_not_json_is_still_a_422(edge):
    client, _, owners = edge
    headers = {"x-api-key": "key", "Content-Type": "text/plain"}
    response = client.post(URL + "checkpoint", content=b"checkpoint_type=Lora", headers=headers)
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"
    assert owners.published == []


def test_checkpoints_list_s3_location_without_a_trailing_slash(edge):
    client, read_model, _ = edge
    command = CheckpointCreationRequested(
        checkpoint_id="ck-1",
        checkpoint_type="Lora",
        files=[{"filename": "style.safetensors", "parts_number": 1}],
        requested_at=NOW,
    )
    read_model.apply(command.initial_snapshot(BUCKET, version=3).model_copy(update={"status": "Active"}))
    listed = client.get(
        URL + "checkpoints",
        params=[("status", "Active"), ("types", "Lora"), ("types", "Stable-diffusion")],
        headers=KEY,
    )
    [found] = listed.json()["checkpoints"]
    assert (found["id"], found["type"], found["name"]) == ("ck-1", "Lora", ["style.safetensors"])
    assert not found["s3Location"].endswith("/")
    stored = read_model.get(CheckpointChanged, "ck-1")
    assert found["s3Location"] + "/" + found["name"][0] == stored.files[0].s3_uri


# ---------------------------------------------------------------- datasets (rows 23-25)


def create_dataset(client: TestClient, name: str, **params) -> dict:
    response = client.post(
        URL + "/dataset",
        json={
            "dataset_name": name,
            "content": [
                {"filename": f"/home/me/cats/cat_{i}.png", "name": f"cat_{i}.png", "type": "image", "params": {}}
                for i in range(2)
            ],
            "params": {"description": "two cats", **params},
        },
        headers=KEY,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_dataset_named_with_spaces_through_the_double_slash_paths(edge):
    client, _, _ = edge
    answer = create_dataset(client, "my cats")
    assert answer["datasetName"] == "my cats"
    urls = answer["s3PresignUrl"]  # the client does s3PresignUrl.items(): its file name -> URL
    assert set(urls) == {"/home/me/cats/cat_0.png", "/home/me/cats/cat_1.png"}
    for i in range(2):
        path = urlparse(urls[f"/home/me/cats/cat_{i}.png"]).path
        assert "/dataset/my%20cats/" in path and unquote(path).endswith(f"/dataset/my cats/cat_{i}.png")

    listed = client.get(URL + "datasets", params={"dataset_status": "Initialed"}, headers=KEY).json()["datasets"]
    [found] = listed
    assert found["datasetName"] == "my cats" and found["description"] == "two cats"
    assert found["s3"] == f"s3://{BUCKET}/dataset/my cats/" and isinstance(found["timestamp"], int)

    for path in ("/dataset/my%20cats/data", "/my%20cats/data", "//dataset/my%20cats/data"):
        response = client.get(URL + path, headers=KEY)
        assert response.status_code == 200, (path, response.text)
        data = response.json()["data"]
        assert [item["key"] for item in data] == ["dataset/my cats/cat_0.png", "dataset/my cats/cat_1.png"]
        assert all(urlparse(item["preview_url"]).path.endswith(item["key"].replace(" ", "%20")) for item in data)


def test_a_dataset_listing_merges_the_params_but_never_over_its_own_keys(edge):
    client, _, _ = edge
    create_dataset(client, "cats", datasetName="other", s3="elsewhere", status="Enabled", owner="me")
    [found] = client.get(URL + "datasets", headers=KEY).json()["datasets"]
    assert (found["datasetName"], found["s3"], found["status"]) == ("cats", f"s3://{BUCKET}/dataset/cats/", "Initialed")
    assert (found["description"], found["owner"]) == ("two cats", "me")


def test_a_dataset_name_that_collides_only_by_prefix_lists_only_its_own_items(edge):
    client, _, _ = edge
    create_dataset(client, "my cats")
    create_dataset(client, "my cats 2")
    data = client.get(URL + "/dataset/my%20cats/data", headers=KEY).json()["data"]
    assert {item["key"] for item in data} == {"dataset/my cats/cat_0.png", "dataset/my cats/cat_1.png"}


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "a\\b", "a\tb", "a\nb", " cats", "cats ", " ", "", ".", "a..b", "x" * 129]
)
def test_dataset_names_that_could_escape_their_prefix_are_refused(edge, name):
    client, read_model, owners = edge
    response = client.post(
        URL + "/dataset",
        json={"dataset_name": name, "content": [{"filename": "/a.png", "name": "a.png", "type": "image"}]},
        headers=KEY,
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == "dataset_name"
    assert owners.published == []


@pytest.mark.parametrize("path", ["/dataset/..%5Cx/data", "/dataset/%20cats/data", "/dataset/a%09b/data"])
def test_dataset_paths_with_bad_names_are_422(edge, path):
    client, _, _ = edge
    assert client.get(URL + path, headers=KEY).status_code == 422


# ---------------------------------------------------------------- endpoints (rows 2-5)


def deploy(client: TestClient, **body) -> dict:
    response = client.post(
        URL + "inference/deploy-sagemaker-endpoint",
        json={"endpoint_name": "", "instance_type": "ml.g5.xlarge", "initial_instance_count": "1", **body},
        headers=KEY,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_deploy_as_the_extension_sends_it(edge):
    client, _, owners = edge
    job = deploy(client, initial_instance_count="3", autoscaling_enabled="true")
    assert re.fullmatch(r"infer-endpoint-[0-9a-f]{7}", job["endpoint_name"])
    assert job["endpoint_name"] == f"infer-endpoint-{job['EndpointDeploymentJobId'][:7]}"
    assert (job["initial_instance_count"], job["autoscaling_enabled"], job["status"]) == (3, True, "inprogress")
    assert "endTime" not in job
    [command] = owners.of_type("EndpointDeploymentRequested")
    assert command["data"]["initial_instance_count"] == 3 and command["data"]["autoscaling_enabled"] is True
    assert command["data"]["endpoint_name"] == job["endpoint_name"]


@pytest.mark.parametrize("count", [str(n) for n in range(1, 7)] + [1, 6])
def test_the_counts_the_extension_offers_are_accepted(edge, count):
    client, _, _ = edge
    assert deploy(client, initial_instance_count=count)["initial_instance_count"] == int(count)


@pytest.mark.parametrize("instance_type", SUPPORTED_INSTANCE_TYPES)
def test_every_g4dn_and_g5_size_is_accepted(edge, instance_type):
    client, _, _ = edge
    assert deploy(client, instance_type=instance_type)["instance_type"] == instance_type


def test_the_extensions_instance_families_are_all_there():
    for family in ("g4dn", "g5"):
        for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"):
            assert f"ml.{family}.{size}" in SUPPORTED_INSTANCE_TYPES


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("True", True), ("", False), (None, False)])
def test_autoscaling_may_come_as_a_string(edge, value, expected):
    client, _, _ = edge
    assert deploy(client, autoscaling_enabled=value)["autoscaling_enabled"] is expected


@pytest.mark.parametrize(
    "body",
    [
        {"initial_instance_count": "0"},
        {"initial_instance_count": "101"},
        {"initial_instance_count": "many"},
        {"instance_type": "ml.t2.medium"},
        {"autoscaling_enabled": "maybe"},
        {"endpoint_name": "bad name"},
    ],
)
def test_bad_deploys_are_422_and_send_nothing(edge, body):
    client, _, owners = edge
    base = {"endpoint_name": "", "instance_type": "ml.g5.xlarge", "initial_instance_count": "1"}
    response = client.post(URL + "inference/deploy-sagemaker-endpoint", json={**base, **body}, headers=KEY)
    assert response.status_code == 422, response.text
    assert owners.published == []


def test_end_time_is_absent_until_there_is_one(edge):
    client, read_model, _ = edge
    job_id = deploy(client)["EndpointDeploymentJobId"]
    for path in ("inference/list-endpoint-deployment-jobs", f"inference/get-endpoint-deployment-job?jobID={job_id}"):
        answer = client.get(URL + path, headers=KEY).json()
        shown = answer[0] if isinstance(answer, list) else answer
        assert "endTime" not in shown and shown["startTime"] == "2024-01-01 00:00:00.000000"
        assert {"EndpointDeploymentJobId", "endpoint_name", "endpoint_status", "status", "error"} <= set(shown)
    job = read_model.get(EndpointDeploymentChanged, job_id)
    done = {"status": "success", "endpoint_status": "InService", "end_time": NOW + timedelta(minutes=1)}
    read_model.apply(job.model_copy(update={**done, "version": 2}))
    for path in ("inference/list-endpoint-deployment-jobs", f"inference/get-endpoint-deployment-job?jobID={job_id}"):
        answer = client.get(URL + path, headers=KEY).json()
        shown = answer[0] if isinstance(answer, list) else answer
        assert shown["endTime"] == "2024-01-01 00:01:00.000000"


def test_delete_skips_unknown_already_deleted_and_repeated_names_and_deletes_the_rest(edge):
    client, _, owners = edge
    first = deploy(client)["endpoint_name"]
    second = deploy(client)["endpoint_name"]
    gone = client.post(
        URL + "inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [second]}, headers=KEY
    )
    # The extension shows the answer in a text label: a sentence, as the original middleware answered.
    assert gone.status_code == 200 and gone.json() == f"Endpoint delete completed: {second}"

    names = ["no-such-endpoint", second, first, first]
    response = client.post(
        URL + "inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": names}, headers=KEY
    )
    assert response.status_code == 200, response.text
    assert response.json() == (
        f"Endpoint delete completed: {first}; "
        f"skipped (no such endpoint, or already deleted): no-such-endpoint, {second}"
    )
    assert [c["data"]["endpoint_name"] for c in owners.of_type("EndpointDeletionRequested")] == [second, first]
    # The client's list hides what it shows as deleted.
    listed = client.get(URL + "inference/list-endpoint-deployment-jobs", headers=KEY).json()
    assert {j["endpoint_name"]: j["endpoint_status"] for j in listed} == {first: "deleted", second: "deleted"}
    assert all("endTime" in j for j in listed)


def test_deleting_only_unknown_names_is_200_and_sends_nothing(edge):
    client, _, owners = edge
    body = {"delete_endpoint_list": ["no-such-endpoint", "nor-this-one"]}
    response = client.post(URL + "inference/delete-sagemaker-endpoint", json=body, headers=KEY)
    assert response.status_code == 200
    assert response.json() == (
        "Endpoint delete completed; skipped (no such endpoint, or already deleted): no-such-endpoint, nor-this-one"
    )
    assert owners.published == []


def test_a_deletion_not_done_within_the_wait_is_said_to_be_still_deleting(edge):
    client, _, owners = edge
    name = deploy(client)["endpoint_name"]
    owners.read_model = None  # the owner does not answer
    owners.publish = lambda events: None
    response = client.post(
        URL + "inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [name]}, headers=KEY
    )
    assert response.json() == f"Endpoint delete completed; still deleting: {name}"


def test_the_endpoint_status_is_never_null(edge):
    """The extension shows ``name+endpoint_status+time``: never ``None`` (defect 9)."""
    client, read_model, _ = edge
    job_id = deploy(client)["EndpointDeploymentJobId"]
    shown = lambda: client.get(URL + f"inference/get-endpoint-deployment-job?jobID={job_id}", headers=KEY).json()  # noqa: E731
    listed = lambda: client.get(URL + "inference/list-endpoint-deployment-jobs", headers=KEY).json()[0]  # noqa: E731
    assert shown()["endpoint_status"] == listed()["endpoint_status"] == "Creating"
    job = read_model.get(EndpointDeploymentChanged, job_id)
    failed = {"status": "failed", "error": "ResourceLimitExceeded: quota", "end_time": NOW, "version": 2}
    read_model.apply(job.model_copy(update=failed))
    # ``failed``, the word the extension looks for before it shows the reason.
    assert shown()["endpoint_status"] == listed()["endpoint_status"] == "failed"


def test_a_deployment_job_is_found_by_its_endpoints_name_with_its_reason(edge):
    """The extension asks get-endpoint-deployment-job with the endpoint's name to show why it failed."""
    client, read_model, _ = edge
    job = deploy(client, endpoint_name="my-endpoint")
    stored = read_model.get(EndpointDeploymentChanged, job["EndpointDeploymentJobId"])
    read_model.apply(stored.model_copy(update={"status": "failed", "error": "no capacity", "version": 2}))
    answer = client.get(URL + "inference/get-endpoint-deployment-job", params={"jobID": "my-endpoint"}, headers=KEY)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["EndpointDeploymentJobId"], answer.json()["error"]) == (
        job["EndpointDeploymentJobId"],
        "no capacity",
    )
    missing = client.get(URL + "inference/get-endpoint-deployment-job", params={"jobID": "nothing"}, headers=KEY)
    assert missing.status_code == 404


def test_a_name_in_use_is_a_deployment_that_failed_at_once_with_the_reason(edge):
    """The extension shows any answer as "started": the refusal is a failed job the user can read."""
    client, read_model, owners = edge
    first = deploy(client, endpoint_name="taken")
    refused = deploy(client, endpoint_name="taken")
    assert refused["status"] == refused["endpoint_status"] == "failed"
    assert "taken already exists" in refused["error"] and first["EndpointDeploymentJobId"] in refused["error"]
    assert len(owners.of_type("EndpointDeploymentRequested")) == 1  # nothing sent for the refusal
    # What the extension's endpoint dropdown then shows, and the reason it shows for the failed entry.
    listed = client.get(URL + "inference/list-endpoint-deployment-jobs", headers=KEY).json()
    assert sorted((j["endpoint_name"], j["status"]) for j in listed) == [("taken", "failed"), ("taken", "inprogress")]
    why = client.get(URL + "inference/get-endpoint-deployment-job", params={"jobID": "taken"}, headers=KEY).json()
    assert why["error"] == refused["error"]
    # Deleting the name deletes the endpoint that stands, and the refusal with it, without a command for
    # the refusal (its owner never heard of it).
    gone = client.post(
        URL + "inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": ["taken"]}, headers=KEY
    )
    assert gone.json() == "Endpoint delete completed: taken"
    [deletion] = owners.of_type("EndpointDeletionRequested")
    assert deletion["data"]["job_id"] == first["EndpointDeploymentJobId"]
    listed = client.get(URL + "inference/list-endpoint-deployment-jobs", headers=KEY).json()
    assert {(j["status"], j["endpoint_status"]) for j in listed} == {("deleted", "deleted")}
