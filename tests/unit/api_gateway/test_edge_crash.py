"""An edge killed in the middle of a creating request leaves nothing that no owner will move on (issue 20, 1).

The attack: 16 concurrent submits, then ``kill -9`` of the edge; 8 jobs stayed ``inprogress`` forever, with
no owner record, because the edge had written the job's first record and died before sending the command.
A kill runs no cleanup, so the tests look at every instant a kill could hit: at the moment the command is
sent nothing is recorded yet, and a retry of a request whose command was sent names the same job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from api_gateway.names import HELD_AT_MOST, NameHold
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import in_process_edge, ready_to_run
from tests.unit.api_gateway.test_hardening import DATASET, INFERENCE, KEY

#: The edge's own rows, which no list shows and which expire: only the entities' rows matter here.
EDGE_OWN_ROWS = ("IdempotentAnswer#", "NameHold#")

CREATING_REQUESTS = [
    ("/prod/inference-api/inference", INFERENCE),
    ("/prod/inference/deploy-sagemaker-endpoint", {"instance_type": "ml.g5.xlarge", "initial_instance_count": 1}),
    ("/prod/webhooks", {"url": "https://hooks.example.com/a", "event_types": ["inference"]}),
    ("/prod/dataset", DATASET),
]


def entity_rows() -> set[str]:
    items = boto3.resource("dynamodb").Table("edge").scan()["Items"]
    return {item["pk"] for item in items if not item["pk"].startswith(EDGE_OWN_ROWS)}


class RowsAtSendPublisher(RecordingPublisher):
    """A test double of the bus that notes which entity rows exist at the instant each command is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.rows_at_send: list[set[str]] = []

    def publish(self, events) -> None:
        self.rows_at_send.append(entity_rows())
        super().publish(events)


class EdgeDied(BaseException):
    """The edge process ending right after the command went out (no answer, no later write)."""


class DiesAfterSendingPublisher(RecordingPublisher):
    """A test double of the bus whose first send succeeds and then the edge dies."""

    def __init__(self) -> None:
        super().__init__()
        self.died = False

    def publish(self, events) -> None:
        super().publish(events)
        if not self.died:
            self.died = True
            raise EdgeDied


@pytest.fixture
def publisher():
    return RowsAtSendPublisher()


@pytest.fixture
def edge(mocked_aws, publisher):
    edge = in_process_edge(publisher, resolve=lambda *a, **k: [(2, 1, 6, "", ("93.184.216.34", 443))])
    ready_to_run(edge.read_model, INFERENCE["sagemaker_endpoint_name"], INFERENCE["models"])
    return edge


@pytest.mark.parametrize(("path", "body"), CREATING_REQUESTS, ids=lambda v: v if isinstance(v, str) else "")
def test_nothing_is_recorded_before_its_command_is_sent(edge, publisher, path, body):
    """Killed at any instant before the send, the request leaves no row; after it, the owner has the command."""
    before = entity_rows()
    answer = edge.client.post(path, json=body, headers=KEY)
    assert answer.status_code in (200, 201), answer.text
    assert publisher.rows_at_send == [before]
    assert entity_rows() > before  # and a read right after the answer finds what was created


def test_a_retry_after_the_edge_died_between_send_and_answer_names_the_same_job(mocked_aws):
    publisher = DiesAfterSendingPublisher()
    edge = in_process_edge(publisher)
    ready_to_run(edge.read_model, INFERENCE["sagemaker_endpoint_name"], INFERENCE["models"])
    headers = {**KEY, "Idempotency-Key": "sent-then-died"}
    with pytest.raises(EdgeDied):
        edge.client.post("/prod/inference-api/inference", json=INFERENCE, headers=headers)
    retried = edge.client.post("/prod/inference-api/inference", json=INFERENCE, headers=headers)
    assert retried.status_code == 200, retried.text
    first, second = publisher.of_type("InferenceRequested")
    # The same command again: the owner takes it as a redelivery, so one job runs, the one answered.
    assert first["data"]["job_id"] == second["data"]["job_id"] == retried.json()["inference_id"]


def test_ids_without_a_key_are_new_each_time_and_with_one_differ_by_request(edge, publisher):
    for body in (INFERENCE, INFERENCE, {**INFERENCE, "prompt": "another"}):
        edge.client.post(
            "/prod/inference-api/inference", json=body, headers={**KEY, "Idempotency-Key": "k-" + body["prompt"]}
        )
    edge.client.post("/prod/inference-api/inference", json=INFERENCE, headers=KEY)
    edge.client.post("/prod/inference-api/inference", json=INFERENCE, headers=KEY)
    ids = [command["data"]["job_id"] for command in publisher.of_type("InferenceRequested")]
    assert len(ids) == len(set(ids)) == 4  # the replayed retry sent nothing; the others are all distinct


def test_a_dataset_name_held_by_a_request_that_died_is_free_again_after_a_while(edge, publisher):
    """The edge died holding the name, before sending: nothing is listed, and the name frees itself."""
    held = NameHold(id="dataset:" + DATASET["dataset_name"], version=1, held_at=datetime.now(UTC))
    edge.read_model.record(held)
    assert edge.client.get("/prod/datasets", headers=KEY).json()["datasets"] == []
    assert edge.client.post("/prod/dataset", json=DATASET, headers=KEY).status_code == 409
    edge.read_model.forget(held)
    edge.read_model.record(held.model_copy(update={"held_at": datetime.now(UTC) - HELD_AT_MOST - timedelta(seconds=1)}))
    assert edge.client.post("/prod/dataset", json=DATASET, headers=KEY).status_code == 200
    assert len(publisher.of_type("DatasetCreationRequested")) == 1
