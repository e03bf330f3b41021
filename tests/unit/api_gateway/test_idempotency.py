"""Idempotency-Key: a retried submit gets the first answer and never makes a second job.

The attack: 16 concurrent submits, the edge killed 1-2 s later; 15 jobs were created whose client got no
answer and would retry, duplicating them, as submitting had no idempotency key.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from api_gateway.idempotency import RUNNING_AT_MOST, IdempotentAnswer
from service_kit.events import PublishError, RecordingPublisher
from tests.unit.api_gateway.conftest import in_process_edge, ready_to_run
from tests.unit.api_gateway.test_hardening import INFERENCE

KEY = {"x-api-key": "key"}


@pytest.fixture
def edge(mocked_aws, publisher):
    edge = in_process_edge(publisher)
    ready_to_run(edge.read_model, INFERENCE["sagemaker_endpoint_name"], INFERENCE["models"])
    return edge


def submit(edge, key: str, body: dict = INFERENCE, api_key: str = "key"):
    headers = {"x-api-key": api_key, "Idempotency-Key": key, "content-type": "application/json"}
    return edge.client.post("/prod/inference-api/inference", content=json.dumps(body), headers=headers)


def submitted(publisher: RecordingPublisher) -> list[dict]:
    return publisher.of_type("InferenceRequested")


def test_a_retry_with_the_same_key_gets_the_first_answer_and_no_second_job(edge, publisher):
    first = submit(edge, "retry-1")
    assert first.status_code == 200, first.text
    again = submit(edge, "retry-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(submitted(publisher)) == 1
    other = submit(edge, "retry-2")  # another key: another job
    assert other.json()["inference_id"] != first.json()["inference_id"]
    assert len(submitted(publisher)) == 2


def test_without_the_header_nothing_changes(edge, publisher):
    for _ in range(2):
        assert edge.client.post("/prod/inference-api/inference", json=INFERENCE, headers=KEY).status_code == 200
    assert len(submitted(publisher)) == 2


def test_the_same_key_for_another_request_is_refused(edge, publisher):
    assert submit(edge, "k").status_code == 200
    refused = submit(edge, "k", {**INFERENCE, "prompt": "another"})
    assert refused.status_code == 422 and "another request" in refused.json()["error"]
    assert len(submitted(publisher)) == 1


def test_keys_of_different_api_keys_never_meet(mocked_aws):
    publisher = RecordingPublisher()
    edge = in_process_edge(publisher, keys=("key", "other"))
    ready_to_run(edge.read_model, INFERENCE["sagemaker_endpoint_name"], INFERENCE["models"])
    a, b = submit(edge, "same", api_key="key"), submit(edge, "same", api_key="other")
    assert a.json()["inference_id"] != b.json()["inference_id"]
    assert len(submitted(publisher)) == 2


def test_concurrent_retries_of_one_key_make_one_job(edge, publisher):
    answers: list = []
    start = threading.Barrier(8)

    def go() -> None:
        start.wait()
        answers.append(submit(edge, "concurrent"))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(submitted(publisher)) == 1
    ok = [a for a in answers if a.status_code == 200]
    assert ok and {a.json()["inference_id"] for a in ok} == {submitted(publisher)[0]["data"]["job_id"]}
    assert all(a.status_code in (200, 409) for a in answers)  # 409: the first was still running


def test_a_claim_whose_request_died_is_free_again_after_a_while(edge, publisher):
    """The edge died holding the claim: a retry within the bound gets 409, after it runs once."""
    entity_id = _claim_of(edge)
    stale = IdempotentAnswer(id=entity_id, version=1, fingerprint=_fingerprint(), started_at=datetime.now(UTC))
    edge.read_model.record(stale)
    assert submit(edge, "died").status_code == 409
    assert submitted(publisher) == []
    edge.read_model.forget(stale)
    older = stale.model_copy(update={"started_at": datetime.now(UTC) - RUNNING_AT_MOST - timedelta(seconds=1)})
    edge.read_model.record(older)
    assert submit(edge, "died").status_code == 200
    assert len(submitted(publisher)) == 1


class FailingOncePublisher(RecordingPublisher):
    """A test double of the bus that refuses the first command, as an unreachable EventBridge would."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    def publish(self, events) -> None:
        if not self.refused:
            self.refused += 1
            raise PublishError("EventBridge is unreachable")
        super().publish(events)


def test_an_answer_not_carried_out_is_not_kept_and_a_retry_runs(mocked_aws):
    publisher = FailingOncePublisher()
    edge = in_process_edge(publisher)
    ready_to_run(edge.read_model, INFERENCE["sagemaker_endpoint_name"], INFERENCE["models"])
    assert submit(edge, "bus-down").status_code == 503
    retried = submit(edge, "bus-down")
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert len(submitted(publisher)) == 1


def test_a_refusal_is_an_answer_kept_and_replayed(edge, publisher):
    body = {**INFERENCE, "sagemaker_endpoint_name": "no-such-endpoint"}
    first, again = submit(edge, "refused", body), submit(edge, "refused", body)
    assert 400 <= first.status_code < 500 or first.json().get("status") == "failed"
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"


def test_a_kept_answer_expires_through_the_tables_ttl(edge):
    assert submit(edge, "ttl").status_code == 200
    items = boto3.resource("dynamodb").Table("edge").scan()["Items"]
    [row] = [i for i in items if i["pk"].startswith("IdempotentAnswer#")]
    assert int(row["expiration"]) > int(datetime.now(UTC).timestamp()) + 23 * 3600


def test_a_malformed_key_is_refused(edge, publisher):
    refused = submit(edge, "x" * 256)
    assert refused.status_code == 400 and "Idempotency-Key" in refused.json()["error"]
    assert submitted(publisher) == []


def _fingerprint() -> str:
    return hashlib.sha256(b"\0".join([b"", json.dumps(INFERENCE).encode()])).hexdigest()


def _claim_of(edge) -> str:
    return hashlib.sha256(b"\0".join([b"key", b"POST", b"/prod/inference-api/inference", b"died"])).hexdigest()
