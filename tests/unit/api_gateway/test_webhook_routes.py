"""The edge's side of webhooks: subscriptions (``/webhooks``), the default secret, and a job's own webhook.

No test reaches real DNS: literal addresses need no resolver, and names go to a fake ``getaddrinfo``
given to the edge (``EdgeDependencies.resolve``).
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest

from api_gateway.read_model import ReadModel
from sdmw_contracts.events import (
    ModelChanged,
    WebhookSubscriptionChanged,
    WebhookSubscriptionDeletionRequested,
    WebhookSubscriptionRequested,
)
from sdmw_contracts.events.webhooks import EVENT_KINDS, JobWebhook
from service_kit.events import RecordingPublisher
from service_kit.webhook_secrets import DEFAULT_SUBSCRIPTION, StaticSigningKey
from tests.unit.api_gateway.conftest import EDGE_BUCKET, WEBHOOK_KEY, in_process_edge, ready_to_run

KEY = {"x-api-key": "key"}
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PUBLIC_URL = "https://hooks.example.com/x"
#: What the fake resolver answers: a public name, one that resolves to a private address, and nothing else.
ADDRESSES = {"hooks.example.com": "93.184.216.34", "internal.example.com": "10.1.2.3"}
ENDPOINT = "infer-endpoint-a"
INFERENCE = {
    "sagemaker_endpoint_name": ENDPOINT,
    "task_type": "txt2img",
    "prompt": "a cute panda",
    "models": {"Stable-diffusion": ["v1-5.safetensors"]},
}
MERGE = {"primary_model_name": "v1-5.safetensors", "secondary_model_name": "v1-5.safetensors"}
TRAIN = {"train_type": "lora", "model_id": "m1", "filenames": ["images.tar"]}


def fake_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
    if host not in ADDRESSES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ADDRESSES[host], port))]


class WebhooksStandIn(RecordingPublisher):
    """Records commands and, as the webhooks service would, applies the subscription's next snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self.read_model: ReadModel | None = None
        self.answers = True

    def publish(self, events) -> None:
        super().publish(events)
        assert self.read_model is not None
        for event in events:
            data = json.loads(event.detail_json())["data"]
            if not self.answers:
                continue
            if event.detail_type == WebhookSubscriptionRequested.detail_type():
                command = WebhookSubscriptionRequested.model_validate(data)
                self.read_model.apply(command.initial_snapshot(version=1))
            elif event.detail_type == WebhookSubscriptionDeletionRequested.detail_type():
                command = WebhookSubscriptionDeletionRequested.model_validate(data)
                current = self.read_model.get(WebhookSubscriptionChanged, command.subscription_id)
                assert current is not None
                update = {"status": "deleted", "deleted_at": command.requested_at, "version": current.version + 1}
                self.read_model.apply(current.model_copy(update=update))


def make_edge(loopback: bool = False):
    owner = WebhooksStandIn()
    made = in_process_edge(
        owner, transition_wait_s=0.5, clock=lambda: NOW, webhooks_allow_loopback=loopback, resolve=fake_getaddrinfo
    )
    owner.read_model = made.read_model
    return made, owner


@pytest.fixture
def edge(mocked_aws):
    return make_edge()


def create(client, **body: Any):
    return client.post("/prod/webhooks", json={"url": PUBLIC_URL, **body}, headers=KEY)


# ---------------------------------------------------------------- subscriptions


def test_a_subscription_is_created_with_its_secret_shown_once(edge):
    made, owner = edge
    response = create(made.client, event_types=["inference", "training"], terminal_only=True, description="ci")
    assert response.status_code == 201, response.text
    created = response.json()
    webhook_id = created.pop("id")
    secret = created.pop("secret")
    assert secret.startswith("whsec_") and secret == StaticSigningKey(WEBHOOK_KEY).secret_for(webhook_id)
    assert created == {
        "url": PUBLIC_URL,
        "event_types": ["inference", "training"],
        "terminal_only": True,
        "description": "ci",
        "status": "active",
        "created_at": "2024-05-01T12:00:00Z",
    }
    [command] = owner.of_type("WebhookSubscriptionRequested")
    assert command["metadata"]["correlation_id"] == webhook_id
    assert command["data"]["subscription_id"] == webhook_id
    assert command["data"]["url"] == PUBLIC_URL and command["data"]["event_types"] == ["inference", "training"]
    assert command["data"]["terminal_only"] is True and "secret" not in json.dumps(command)
    shown = made.client.get(f"/prod/webhooks/{webhook_id}", headers=KEY)
    assert shown.status_code == 200 and "secret" not in shown.json()
    assert shown.json() == {"id": webhook_id, **created}
    listed = made.client.get("/prod/webhooks", headers=KEY).json()
    assert listed == {"webhooks": [{"id": webhook_id, **created}]}


def test_a_subscription_is_readable_before_its_owner_answers(edge):
    made, owner = edge
    owner.answers = False
    webhook_id = create(made.client).json()["id"]
    stored = made.read_model.get(WebhookSubscriptionChanged, webhook_id)
    assert stored is not None and (stored.version, stored.status) == (0, "active")
    assert made.client.get(f"/prod/webhooks/{webhook_id}", headers=KEY).status_code == 200


def test_event_types_default_to_every_kind_and_repeats_count_once(edge):
    made, _ = edge
    assert create(made.client).json()["event_types"] == list(EVENT_KINDS)
    twice = create(made.client, event_types=["model", "model", "dataset"]).json()
    assert twice["event_types"] == ["model", "dataset"]


@pytest.mark.parametrize(
    "body",
    [
        {"event_types": ["inference", "nope"]},
        {"event_types": []},
        {"description": "x" * 201},
        {"url": ""},
        {"url": "https://hooks.example.com/" + "x" * 2048},
        {"terminal_only": "sometimes"},
    ],
)
def test_an_invalid_body_is_the_apis_validation_error_and_sends_nothing(edge, body):
    made, owner = edge
    response = create(made.client, **body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert owner.published == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/x", "only http and https"),
        ("hooks.example.com/x", "only http and https"),
        ("http://user:pw@hooks.example.com/", "user name or password"),
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("http://0x7f000001/", "loopback"),
        ("https://internal.example.com/hook", "10.1.2.3, which is a private address"),
        ("https://nowhere.example.com/hook", "does not resolve"),
        ("http://[::1/", "not a valid URL"),
    ],
)
def test_a_refused_url_is_a_400_naming_why_and_nothing_is_recorded_or_sent(edge, url, reason):
    made, owner = edge
    response = create(made.client, url=url)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("url: ") and reason in error, error
    assert owner.published == []
    assert made.read_model.list(WebhookSubscriptionChanged) == []


def test_loopback_targets_are_accepted_when_the_setting_allows_them(mocked_aws):
    made, owner = make_edge(loopback=True)
    response = create(made.client, url="http://127.0.0.1:9000/hook")
    assert response.status_code == 201, response.text
    assert owner.of_type("WebhookSubscriptionRequested")[0]["data"]["url"] == "http://127.0.0.1:9000/hook"
    # Loopback alone: the rest of the private ranges stay refused.
    assert create(made.client, url="http://10.0.0.1/").status_code == 400


def test_an_unknown_webhook_is_404(edge):
    made, _ = edge
    response = made.client.get("/prod/webhooks/0d8cbd27-5c1a-4b5e-9b55-1c64a3b2f7a1", headers=KEY)
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "error": "no webhook 0d8cbd27-5c1a-4b5e-9b55-1c64a3b2f7a1"}
    assert made.client.get("/prod/webhooks/" + "x" * 129, headers=KEY).status_code == 422


def test_delete_waits_for_the_owner_and_the_list_leaves_deleted_ones_out(edge):
    made, owner = edge
    kept = create(made.client, description="kept").json()["id"]
    gone = create(made.client, description="gone").json()["id"]
    response = made.client.delete(f"/prod/webhooks/{gone}", headers=KEY)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "deleted" and response.json()["id"] == gone
    [command] = owner.of_type("WebhookSubscriptionDeletionRequested")
    assert command["data"]["subscription_id"] == gone and command["metadata"]["correlation_id"] == gone
    listed = made.client.get("/prod/webhooks", headers=KEY).json()["webhooks"]
    assert [w["id"] for w in listed] == [kept]
    # Gone by id too, as every deleted entity is; a second delete is a 404 and sends nothing.
    assert made.client.get(f"/prod/webhooks/{gone}", headers=KEY).status_code == 404
    again = made.client.delete(f"/prod/webhooks/{gone}", headers=KEY)
    assert again.status_code == 404 and gone in again.json()["error"]
    assert made.client.delete("/prod/webhooks/unknown-id", headers=KEY).status_code == 404
    assert len(owner.of_type("WebhookSubscriptionDeletionRequested")) == 1


def test_delete_answers_the_subscription_as_it_is_when_the_owner_is_slow(edge):
    made, owner = edge
    webhook_id = create(made.client).json()["id"]
    owner.answers = False
    response = made.client.delete(f"/prod/webhooks/{webhook_id}", headers=KEY)
    assert response.status_code == 200 and response.json()["status"] == "active"
    assert len(owner.of_type("WebhookSubscriptionDeletionRequested")) == 1


def test_the_default_secret_is_the_one_jobs_webhooks_are_signed_with(edge):
    made, owner = edge
    response = made.client.get("/prod/webhooks/default/secret", headers=KEY)
    assert response.status_code == 200
    assert response.json() == {"secret": StaticSigningKey(WEBHOOK_KEY).secret_for(DEFAULT_SUBSCRIPTION)}
    assert owner.published == []


def test_a_dataset_named_webhooks_keeps_its_seed_data_route(edge):
    made, _ = edge
    response = made.client.get("/prod/webhooks/data", headers=KEY)
    assert response.status_code == 404 and response.json()["error"] == "no dataset webhooks"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/prod/webhooks"),
        ("GET", "/prod/webhooks"),
        ("GET", "/prod/webhooks/some-id"),
        ("DELETE", "/prod/webhooks/some-id"),
        ("GET", "/prod/webhooks/default/secret"),
    ],
)
def test_every_webhook_route_needs_a_valid_key(edge, method, path):
    made, owner = edge
    body = {"json": {"url": PUBLIC_URL}} if method == "POST" else {}
    assert made.client.request(method, path, **body).status_code == 401
    assert made.client.request(method, path, headers={"x-api-key": "wrong"}, **body).status_code == 403
    assert owner.published == []


def test_the_openapi_document_lists_the_webhook_routes_and_their_answers(edge):
    made, _ = edge
    paths = made.client.get("/prod/openapi.json", headers=KEY).json()["paths"]
    expected = {
        ("post", "/prod/webhooks"): {"201", "400", "401", "403", "413", "422", "503"},
        ("get", "/prod/webhooks"): {"200", "400", "401", "403", "422"},  # 400: a next_token it did not give
        ("get", "/prod/webhooks/{webhook_id}"): {"200", "401", "403", "404", "422"},
        ("delete", "/prod/webhooks/{webhook_id}"): {"200", "401", "403", "404", "422", "503"},
        ("get", "/prod/webhooks/default/secret"): {"200", "401", "403"},
        ("post", "/prod/inference-api/inference"): {"200", "400", "401", "403", "413", "422", "503"},
        ("post", "/prod/inference/run-model-merge"): {"200", "400", "401", "403", "413", "422", "503"},
        ("post", "/prod/train"): {"200", "400", "401", "403", "404", "409", "413", "422", "503"},
    }
    for (method, path), statuses in expected.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == statuses, (method, path)
        if path.startswith("/prod/webhooks"):
            assert operation["tags"] == ["webhooks"]
    assert "200" not in paths["/prod/webhooks"]["post"]["responses"]
    created = paths["/prod/webhooks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/CreatedWebhook"}


# ---------------------------------------------------------------- a job's own webhook


@pytest.fixture
def ready(edge):
    made, owner = edge
    ready_to_run(made.read_model, ENDPOINT, {"Stable-diffusion": ["v1-5.safetensors"]})
    made.read_model.apply(
        ModelChanged(
            id="m1",
            version=3,
            model_type="Stable-diffusion",
            name="my-model",
            status="Complete",
            s3_base=f"s3://{EDGE_BUCKET}/model/m1/",
            output_s3_location=f"s3://{EDGE_BUCKET}/model/m1/out/",
            created_at=NOW,
        )
    )
    return made, owner


JOB_ROUTES = [
    ("/prod/inference-api/inference", INFERENCE, "InferenceRequested"),
    ("/prod/inference/run-model-merge", MERGE, "ModelMergeRequested"),
    ("/prod/train", TRAIN, "TrainJobRequested"),
]


@pytest.mark.parametrize(("path", "body", "command"), JOB_ROUTES)
def test_a_jobs_own_webhook_reaches_its_command(ready, path, body, command):
    made, owner = ready
    response = made.client.post(
        path, json={**body, "webhook": PUBLIC_URL, "webhook_events_filter": ["completed"]}, headers=KEY
    )
    assert response.status_code == 200, response.text
    [sent] = owner.of_type(command)
    assert JobWebhook.model_validate(sent["data"]["webhook"]) == JobWebhook(url=PUBLIC_URL, events_filter=["completed"])


@pytest.mark.parametrize(("path", "body", "command"), JOB_ROUTES)
def test_a_jobs_webhook_filter_defaults_to_both_and_no_webhook_is_none(ready, path, body, command):
    made, owner = ready
    assert made.client.post(path, json={**body, "webhook": PUBLIC_URL}, headers=KEY).status_code == 200
    assert made.client.post(path, json=body, headers=KEY).status_code == 200
    with_webhook, without = owner.of_type(command)
    assert with_webhook["data"]["webhook"] == {"url": PUBLIC_URL, "events_filter": ["progress", "completed"]}
    assert without["data"]["webhook"] is None


@pytest.mark.parametrize(("path", "body", "command"), JOB_ROUTES)
@pytest.mark.parametrize(
    ("url", "reason"),
    [("http://169.254.169.254/", "link-local"), ("ftp://hooks.example.com/", "only http"), ("http://10.0.0.1/", "")],
)
def test_a_refused_job_webhook_is_a_400_and_nothing_is_recorded_or_sent(ready, path, body, command, url, reason):
    made, owner = ready
    response = made.client.post(path, json={**body, "webhook": url}, headers=KEY)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("webhook: ") and reason in response.json()["error"]
    assert owner.published == []
    listed = made.client.get("/prod/inference/list-inference-jobs", headers=KEY).json()
    assert listed == []
    assert made.client.get("/prod/trains", headers=KEY).json()["trainJobs"] == []


@pytest.mark.parametrize(("path", "body", "command"), JOB_ROUTES)
def test_an_unknown_job_webhook_event_is_a_validation_error(ready, path, body, command):
    made, owner = ready
    sent = {**body, "webhook": PUBLIC_URL, "webhook_events_filter": ["start"]}
    response = made.client.post(path, json=sent, headers=KEY)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "webhook_events_filter", 0]
    assert owner.published == []


def test_the_extensions_inference_ignores_webhook_fields(ready):
    """``PUT /inference/v2/{id}/run`` validates the uploaded parameters as an inference request; a webhook in
    them is not the extension's and is left out (it is neither checked nor sent)."""
    made, owner = ready
    v2 = {key: INFERENCE[key] for key in ("sagemaker_endpoint_name", "task_type", "models")}
    created = made.client.post("/prod/inference/v2", json=v2, headers=KEY)
    assert created.status_code == 200, created.text
    job_id = created.json()["inference"]["id"]
    params = {"prompt": "a cat", "webhook": "http://10.0.0.1/", "webhook_events_filter": ["nope"]}
    made.s3.put_object(Bucket=EDGE_BUCKET, Key=f"inference-v2/{job_id}/api_params.json", Body=json.dumps(params))
    run = made.client.put(f"/prod/inference/v2/{job_id}/run", headers=KEY)
    assert run.status_code == 200, run.text
    [sent] = owner.of_type("InferenceRequested")
    assert sent["data"]["webhook"] is None
