"""The edge's cancel and delete of an inference job, and the progress it shows (over moto, with an owner
that answers as inference-dispatcher would, or not at all)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from api_gateway.read_model import ReadModel
from sdmw_contracts.events import InferenceJobChanged
from sdmw_contracts.events.inference import InferenceCancelRequested, InferenceDeletionRequested
from sdmw_contracts.events.progress import JobProgress
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import in_process_edge

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = {"x-api-key": "key"}


class DispatchersStandIn(RecordingPublisher):
    """Records commands and, unless ``silent``, applies the job's next snapshot as the dispatcher would."""

    def __init__(self) -> None:
        super().__init__()
        self.read_model: ReadModel | None = None
        self.silent = False

    def publish(self, events) -> None:
        super().publish(events)
        assert self.read_model is not None
        for event in events:
            data = json.loads(event.detail_json())["data"]
            if self.silent or "job_id" not in data:
                continue
            job = self.read_model.get(InferenceJobChanged, data["job_id"])
            if event.detail_type == InferenceCancelRequested.detail_type():
                update = {"status": "cancelled", "error": "cancelled by the user", "complete_time": NOW}
                self.read_model.apply(job.model_copy(update={**update, "version": job.version + 1}))
            elif event.detail_type == InferenceDeletionRequested.detail_type():
                self.read_model.apply(job.as_deleted(NOW))

    def commands(self, detail_type: str) -> list[dict]:
        return [e["data"] for e in self.of_type(detail_type)]


@pytest.fixture
def edge(mocked_aws):
    owner = DispatchersStandIn()
    made = in_process_edge(owner, transition_wait_s=0.3, clock=lambda: NOW)
    owner.read_model = made.read_model
    return made.client, made.read_model, owner


def job(status: str = "inprogress", version: int = 3, **fields) -> InferenceJobChanged:
    return InferenceJobChanged(
        id="job-1",
        version=version,
        task_type="txt2img",
        endpoint_name="infer-endpoint-a",
        status=status,
        start_time=NOW,
        **fields,
    )


PROGRESS = JobProgress(
    phase="txt2img", step=7, total_steps=20, image=1, images=2, fraction=0.175, elapsed_s=3.5, reported_at=NOW
)


# ---------------------------------------------------------------- progress in the views


def test_a_running_job_shows_its_latest_progress_and_a_job_without_reports_none(edge):
    client, read_model, _ = edge
    read_model.apply(job(progress=PROGRESS, progress_sequence=4))
    read_model.apply(job(version=1).model_copy(update={"id": "job-2"}))

    shown = client.get("/prod/inference/get-inference-job", params={"jobID": "job-1"}, headers=KEY).json()
    assert shown["progress"] == PROGRESS.model_dump(mode="json")
    listed = {
        j["InferenceJobId"]: j.get("progress", "absent")
        for j in client.get("/prod/inference/list-inference-jobs", headers=KEY).json()
    }
    assert listed == {"job-1": PROGRESS.model_dump(mode="json"), "job-2": "absent"}


def test_cancelled_jobs_can_be_queried_by_status(edge):
    client, read_model, _ = edge
    read_model.apply(job(status="cancelled", error="cancelled by the user", complete_time=NOW))
    read_model.apply(job(status="succeed", complete_time=NOW).model_copy(update={"id": "job-2"}))

    found = client.post("/prod/inference/query-inference-jobs", json={"status": "cancelled"}, headers=KEY).json()
    assert [(j["InferenceJobId"], j["status"], j["error"]) for j in found] == [
        ("job-1", "cancelled", "cancelled by the user")
    ]


# ---------------------------------------------------------------- cancel


def test_cancelling_a_running_job_sends_the_command_and_answers_202_with_the_cancelled_job(edge):
    client, read_model, owner = edge
    read_model.apply(job())

    answer = client.post("/prod/inference/job-1/cancel", headers=KEY)

    assert answer.status_code == 202
    assert answer.json()["status"] == "cancelled" and answer.json()["InferenceJobId"] == "job-1"
    assert owner.commands("InferenceCancelRequested") == [
        {"job_id": "job-1", "requested_at": NOW.isoformat().replace("+00:00", "Z")}
    ]


def test_a_slow_owner_gets_202_with_the_job_as_it_still_is(edge):
    client, read_model, owner = edge
    owner.silent = True
    read_model.apply(job())

    answer = client.post("/prod/inference/job-1/cancel", headers=KEY)

    assert answer.status_code == 202 and answer.json()["status"] == "inprogress"
    assert len(owner.commands("InferenceCancelRequested")) == 1


def test_cancelling_a_cancelled_job_answers_200_and_sends_nothing(edge):
    client, read_model, owner = edge
    read_model.apply(job(status="cancelled", error="cancelled by the user", complete_time=NOW))

    answer = client.post("/prod/inference/job-1/cancel", headers=KEY)

    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert owner.published == []


@pytest.mark.parametrize("status", ["succeed", "failed"])
def test_cancelling_a_finished_job_is_409_and_sends_nothing(edge, status):
    client, read_model, owner = edge
    read_model.apply(job(status=status, complete_time=NOW))

    answer = client.post("/prod/inference/job-1/cancel", headers=KEY)

    assert answer.status_code == 409
    assert answer.json() == {"statusCode": 409, "error": f"inference job job-1 is already finished: {status}"}
    assert owner.published == []


def test_cancelling_an_unknown_job_is_404(edge):
    client, _, owner = edge
    answer = client.post("/prod/inference/nobody/cancel", headers=KEY)
    assert answer.status_code == 404 and "nobody" in answer.json()["error"]
    assert owner.published == []


@pytest.mark.parametrize(("method", "path"), [("post", "/inference/job-1/cancel"), ("delete", "/inference/job-1")])
def test_cancel_and_delete_need_the_api_key(edge, method, path):
    client, read_model, owner = edge
    read_model.apply(job(status="succeed"))
    assert getattr(client, method)("/prod" + path).status_code == 401
    assert owner.published == []


# ---------------------------------------------------------------- delete


@pytest.mark.parametrize("status", ["succeed", "failed", "cancelled"])
def test_deleting_a_finished_job_waits_for_its_owner_then_the_job_is_gone(edge, status):
    client, read_model, owner = edge
    read_model.apply(job(status=status, complete_time=NOW))

    answer = client.delete("/prod/inference/job-1", headers=KEY)

    assert answer.status_code == 200 and answer.json() == {"id": "job-1", "deleted": True}
    assert [c["job_id"] for c in owner.commands("InferenceDeletionRequested")] == ["job-1"]
    assert client.get("/prod/inference/get-inference-job", params={"jobID": "job-1"}, headers=KEY).status_code == 404
    assert client.get("/prod/inference/list-inference-jobs", headers=KEY).json() == []


def test_deleting_a_running_job_is_409_and_sends_nothing(edge):
    client, read_model, owner = edge
    read_model.apply(job())

    answer = client.delete("/prod/inference/job-1", headers=KEY)

    assert answer.status_code == 409 and "cancel it first" in answer.json()["error"]
    assert owner.published == []


def test_deleting_an_unknown_job_is_404(edge):
    client, _, _ = edge
    assert client.delete("/prod/inference/nobody", headers=KEY).status_code == 404


def test_a_job_the_edge_refused_itself_is_forgotten_by_the_edge(edge):
    client, read_model, owner = edge
    read_model.apply(job(status="failed", version=0, error="endpoint x is not in service", complete_time=NOW))

    answer = client.delete("/prod/inference/job-1", headers=KEY)

    assert answer.status_code == 200 and owner.published == []  # the dispatcher never had it
    assert client.get("/prod/inference/get-inference-job", params={"jobID": "job-1"}, headers=KEY).status_code == 404


def test_a_deletion_the_owner_has_not_done_in_time_is_504(edge):
    client, read_model, owner = edge
    owner.silent = True
    read_model.apply(job(status="succeed", complete_time=NOW))

    answer = client.delete("/prod/inference/job-1", headers=KEY)

    assert answer.status_code == 504
    assert client.get("/prod/inference/get-inference-job", params={"jobID": "job-1"}, headers=KEY).status_code == 200


def test_the_served_document_has_the_lifecycle_routes_with_their_answers(edge):
    client, _, _ = edge
    paths = client.get("/prod/openapi.json", headers=KEY).json()["paths"]
    cancel = paths["/prod/inference/{job_id}/cancel"]["post"]["responses"]
    delete = paths["/prod/inference/{job_id}"]["delete"]["responses"]
    assert {"200", "202", "401", "403", "404", "409", "503"} <= set(cancel)
    assert {"200", "401", "403", "404", "409", "503", "504"} <= set(delete)
