"""Issue 20, items 5-7: what an attack on the running system found, each reproduced in-process.

- 5: parallel creations of one dataset name were all answered 200 and all but one silently discarded;
- 6: parameters uploaded through the presigned URLs were read whole, whatever their size;
- 7: one small request could ask for an answer of any number of presigned URLs.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from api_gateway.limits import MAX_BODY_BYTES, MAX_RESPONSE_BYTES, escaped_size
from api_gateway.routes import assets
from api_gateway.routes.inference import AIGC_PARAMETERS_KEY, MAX_PARAMETERS_BYTES
from sdmw_contracts.events import DatasetChanged, InferenceJobChanged
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge, ready_to_run

KEY = {"x-api-key": "key"}
ENDPOINT = "infer-endpoint-abc1234"
MODELS = {"Stable-diffusion": ["v1-5.safetensors"]}


@pytest.fixture
def edge(mocked_aws, publisher):
    made = in_process_edge(publisher)
    ready_to_run(made.read_model, ENDPOINT, MODELS)
    return made


# ---------------------------------------------------------------- item 6


class _Counting:
    """An S3 client that counts the body bytes read through it."""

    def __init__(self, s3):
        self._s3 = s3
        self.read: dict[str, int] = {}

    def __getattr__(self, name):
        return getattr(self._s3, name)

    def get_object(self, **kwargs):
        answer = self._s3.get_object(**kwargs)
        body, outer, key = answer["Body"], self, kwargs["Key"]

        class Stream:
            def read(self, amount=None):
                data = body.read(amount)
                outer.read[key] = outer.read.get(key, 0) + len(data)
                return data

            def close(self):
                body.close()

        return {**answer, "Body": Stream()}


def _big_parameters() -> bytes:
    blob = json.dumps({"prompt": "x", "init_images": ["A" * (MAX_BODY_BYTES + 10)]}).encode()
    assert len(blob) > MAX_PARAMETERS_BYTES == MAX_BODY_BYTES
    return blob


def test_v2_parameters_over_the_body_limit_fail_the_job_at_once_unread(edge, publisher):
    counting = _Counting(edge.s3)
    edge.client.app.state.deps.claims._s3 = counting
    v2 = {"sagemaker_endpoint_name": ENDPOINT, "task_type": "txt2img", "models": MODELS}
    inference = edge.client.post("/prod/inference/v2", json=v2, headers=KEY).json()["inference"]
    key = inference["api_params_s3_location"].removeprefix(f"s3://{EDGE_BUCKET}/")
    edge.s3.put_object(Bucket=EDGE_BUCKET, Key=key, Body=_big_parameters())

    run = edge.client.put(f"/prod/inference/v2/{inference['id']}/run", json=v2, headers=KEY)

    assert run.status_code == 200, run.text
    assert run.json()["inference"]["status"] == "failed"
    error = run.json()["inference"]["error"]
    assert "api_params_s3_upload_url" in error and f"{MAX_PARAMETERS_BYTES:,}" in error
    assert counting.read.get(key, 0) == 0
    assert publisher.of_type("InferenceRequested") == []
    job = edge.read_model.get(InferenceJobChanged, inference["id"])
    assert job is not None and job.status == "failed" and "at most" in (job.error or "")


def test_config_aigc_json_over_the_body_limit_fails_the_job_at_once_unread(edge, publisher):
    counting = _Counting(edge.s3)
    edge.client.app.state.deps.claims._s3 = counting
    edge.s3.put_object(Bucket=EDGE_BUCKET, Key=AIGC_PARAMETERS_KEY, Body=_big_parameters())

    run = edge.client.post(
        "/prod/inference/run-sagemaker-inference",
        json={"task_type": "txt2img", "sagemaker_endpoint": ENDPOINT, "models": MODELS},
        headers=KEY,
    )

    assert run.status_code == 200, run.text
    assert run.json()["status"] == "failed"
    assert AIGC_PARAMETERS_KEY in run.json()["error"] and f"{MAX_PARAMETERS_BYTES:,}" in run.json()["error"]
    assert counting.read.get(AIGC_PARAMETERS_KEY, 0) == 0 and publisher.of_type("InferenceRequested") == []


def test_parameters_at_the_limit_are_still_read(edge, publisher):
    params = {"prompt": "a cat", "steps": 3, "width": 64, "height": 64}
    text = json.dumps(params)
    padded = text + " " * (MAX_PARAMETERS_BYTES - len(text))
    edge.s3.put_object(Bucket=EDGE_BUCKET, Key=AIGC_PARAMETERS_KEY, Body=padded.encode())
    run = edge.client.post(
        "/prod/inference/run-sagemaker-inference",
        json={"task_type": "txt2img", "sagemaker_endpoint": ENDPOINT, "models": MODELS},
        headers=KEY,
    )
    assert run.status_code == 200 and run.json()["status"] == "inprogress", run.text
    assert len(publisher.of_type("InferenceRequested")) == 1


# ---------------------------------------------------------------- item 5


def _dataset_body(name: str, n: int) -> dict:
    return {
        "dataset_name": name,
        "content": [{"filename": f"/home/user{n}/cat.png", "name": f"cat-{n}.png", "type": "png"}],
    }


def test_parallel_creations_of_one_dataset_name_accept_one_and_refuse_the_others(edge, publisher):
    """Every creation answered 200 is the dataset (its items kept); the others are refused up front."""
    creators, start = 24, threading.Barrier(24)

    def create(n: int):
        start.wait()
        return edge.client.post("/prod/dataset", json=_dataset_body("pets", n), headers=KEY)

    with ThreadPoolExecutor(creators) as pool:
        answers = list(pool.map(create, range(creators)))

    accepted = [n for n, answer in enumerate(answers) if answer.status_code == 200]
    refused = [answer for answer in answers if answer.status_code == 409]
    assert len(accepted) == 1 and len(refused) == creators - 1, [a.status_code for a in answers]
    assert all("pets" in answer.json()["error"] for answer in refused)
    [command] = publisher.of_type("DatasetCreationRequested")
    [winner] = accepted
    assert [item["name"] for item in command["data"]["items"]] == [f"cat-{winner}.png"]
    assert list(answers[winner].json()["s3PresignUrl"]) == [f"/home/user{winner}/cat.png"]
    assert [item.name for item in edge.read_model.dataset_items("pets") or []] == [f"cat-{winner}.png"]


def test_a_creation_after_the_dataset_exists_is_refused(edge, publisher):
    assert edge.client.post("/prod/dataset", json=_dataset_body("pets", 1), headers=KEY).status_code == 200
    again = edge.client.post("/prod/dataset", json=_dataset_body("pets", 2), headers=KEY)
    assert again.status_code == 409 and "pets" in again.json()["error"]
    assert len(publisher.of_type("DatasetCreationRequested")) == 1
    dataset = edge.read_model.get(DatasetChanged, "pets")
    assert dataset is not None and dataset.item_count == 1


def test_a_creation_whose_command_is_not_sent_frees_the_name(mocked_aws):
    class Refusing(RecordingPublisher):
        fail = True

        def publish(self, events):
            if self.fail:
                from service_kit.events import PublishError

                raise PublishError("the bus is down")
            super().publish(events)

    publisher = Refusing()
    made = in_process_edge(publisher)
    assert made.client.post("/prod/dataset", json=_dataset_body("pets", 1), headers=KEY).status_code == 503
    assert made.read_model.get(DatasetChanged, "pets") is None and made.read_model.dataset_items("pets") is None
    publisher.fail = False
    assert made.client.post("/prod/dataset", json=_dataset_body("pets", 2), headers=KEY).status_code == 200
    assert [item.name for item in made.read_model.dataset_items("pets") or []] == ["cat-2.png"]


# ---------------------------------------------------------------- item 7


def _checkpoint(files: list[tuple[str, int]]) -> dict:
    return {
        "checkpoint_type": "Stable-diffusion",
        "filenames": [{"filename": name, "parts_number": parts} for name, parts in files],
        "params": {},
    }


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ([("big.safetensors", 10_000)], f"at most {assets.MAX_UPLOAD_PARTS:,} parts per request"),
        ([(f"m{n}.safetensors", 11) for n in range(100)], f"at most {assets.MAX_UPLOAD_PARTS:,} parts per request"),
        ([(f"m{n}.safetensors", 1) for n in range(300)], f"at most {assets.MAX_UPLOAD_FILES} files per request"),
    ],
    ids=["10000-parts", "1100-parts-over-100-files", "300-files"],
)
def test_a_checkpoint_asking_more_urls_than_an_answer_carries_is_refused_before_anything_starts(
    edge, publisher, files, fragment
):
    refused = edge.client.post("/prod/checkpoint", json=_checkpoint(files), headers=KEY)
    assert refused.status_code == 422 and fragment in refused.json()["error"], refused.text
    assert publisher.published == []


def test_long_names_are_reckoned_in_the_answer_size(edge, publisher, monkeypatch):
    """Names of 800 characters, each percent-encoded three times over in every URL (about 2,750 bytes a URL
    here; more on AWS, where each URL carries a session token): the answer is reckoned from one URL signed
    per file, and refused when over the limit (made smaller here, as the emulator's URLs are shorter)."""
    monkeypatch.setattr(assets, "MAX_RESPONSE_BYTES", 2_000_000)
    files = [(f"{n:03}" + "%" * 797, 100) for n in range(10)]
    refused = edge.client.post("/prod/checkpoint", json=_checkpoint(files), headers=KEY)
    assert refused.status_code == 422 and "2,000,000" in refused.json()["error"], refused.text
    assert publisher.published == []


def _owner_opens_uploads(publisher, edge) -> None:
    """Stands in for the asset registry: answers each checkpoint creation with its version-1 snapshot."""
    from sdmw_contracts.events import CheckpointCreationRequested

    original = publisher.publish

    def publish(events):
        original(events)
        for event in events:
            if event.detail_type == "CheckpointCreationRequested":
                command = CheckpointCreationRequested.model_validate(json.loads(event.detail_json())["data"])
                ids = {f.filename: f"upload-{n}" for n, f in enumerate(command.files)}
                edge.read_model.apply(command.initial_snapshot(EDGE_BUCKET, version=1, upload_ids=ids))

    publisher.publish = publish


def test_the_largest_checkpoint_asked_is_answered_within_the_response_limit(edge, publisher):
    _owner_opens_uploads(publisher, edge)
    files = [("a" * 200 + ".safetensors", assets.MAX_UPLOAD_PARTS - 99)] + [
        (f"{n:03}" + "b" * 200, 1) for n in range(99)
    ]
    answered = edge.client.post("/prod/checkpoint", json=_checkpoint(files), headers=KEY)
    assert answered.status_code == 200, answered.text
    assert sum(len(urls) for urls in answered.json()["s3PresignUrl"].values()) == assets.MAX_UPLOAD_PARTS
    assert len(answered.content) * 2 < MAX_RESPONSE_BYTES


def test_the_web_ui_extension_and_seed_uploads_fit(edge, publisher):
    """The extension asks ceil(size / 1000 MiB) parts for one file; a 30 GB checkpoint is 29 parts."""
    _owner_opens_uploads(publisher, edge)
    for parts in (1, 5, 29):
        answered = edge.client.post("/prod/checkpoint", json=_checkpoint([("v1-5.safetensors", parts)]), headers=KEY)
        assert answered.status_code == 200 and len(answered.json()["s3PresignUrl"]["v1-5.safetensors"]) == parts


def test_a_dataset_of_more_items_than_allowed_is_refused_before_anything_starts(edge, publisher):
    content = [
        {"filename": f"/p/{n}.png", "name": f"{n}.png", "type": "png"} for n in range(assets.MAX_DATASET_ITEMS + 1)
    ]
    refused = edge.client.post("/prod/dataset", json={"dataset_name": "many", "content": content}, headers=KEY)
    assert refused.status_code == 422, refused.text
    assert f"at most {assets.MAX_DATASET_ITEMS:,} items" in refused.json()["error"]
    assert publisher.published == [] and edge.read_model.get(DatasetChanged, "many") is None


def test_a_dataset_whose_answer_would_not_fit_is_refused_and_leaves_the_name_free(edge, publisher):
    long = "%" * 796
    content = [{"filename": f"/p/{n:04}{long}", "name": f"{n:04}{long}", "type": "png"} for n in range(2_000)]
    refused = edge.client.post("/prod/dataset", json={"dataset_name": "wide", "content": content}, headers=KEY)
    assert refused.status_code == 422 and f"{MAX_RESPONSE_BYTES:,}" in refused.json()["error"], refused.text
    assert publisher.published == [] and edge.read_model.get(DatasetChanged, "wide") is None


def test_the_reckoning_is_never_under_the_answer_it_allows(edge, publisher, monkeypatch):
    """An answer of long names, once sent: with the limit one byte under its real size, it is refused."""
    _owner_opens_uploads(publisher, edge)
    files = [(f"{n:03}" + "%" * 797, 50) for n in range(4)]
    answered = edge.client.post("/prod/checkpoint", json=_checkpoint(files), headers=KEY)
    assert answered.status_code == 200, answered.text
    real = escaped_size(answered.json())
    monkeypatch.setattr(assets, "MAX_RESPONSE_BYTES", real - 1)
    refused = edge.client.post("/prod/checkpoint", json=_checkpoint(files), headers=KEY)
    assert refused.status_code == 422, refused.text
