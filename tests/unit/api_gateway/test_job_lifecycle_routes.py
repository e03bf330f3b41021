"""The edge's routes that act on a job after it was submitted: cancel and delete a training job, delete a
model or a deployment job's record, read a job's log lines (CloudWatch Logs: moto's)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import boto3
import pytest

from api_gateway.read_model import ReadModel
from sdmw_contracts.events import EndpointDeploymentChanged, InferenceJobChanged, ModelChanged, TrainJobChanged
from sdmw_contracts.events.progress import JobProgress
from sdmw_contracts.training import TrainingHyperparameters
from service_kit.events import Outgoing, RecordingPublisher
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge

KEY = {"x-api-key": "key"}
NOW = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class OwnerDouble(RecordingPublisher):
    """Records the commands and answers each as its owner would, in the read model (set ``answers``)."""

    answers: dict[str, Callable[[dict], None]] = field(default_factory=dict)

    def publish(self, events: list[Outgoing]) -> None:
        super().publish(events)
        for event in events:
            if (answer := self.answers.get(event.detail_type)) is not None:
                answer(json.loads(event.detail_json())["data"])


@dataclass
class Edge:
    client: object
    read_model: ReadModel
    owner: OwnerDouble

    def answer(self, command: str, make: Callable[[dict], object]) -> None:
        self.owner.answers[command] = lambda data: self.read_model.apply(make(data))


@pytest.fixture
def edge(mocked_aws) -> Edge:
    owner = OwnerDouble()
    made = in_process_edge(owner, clock=lambda: NOW, transition_wait_s=0.3)
    return Edge(made.client, made.read_model, owner)


def train_job(job_id: str = "t1", status: str = "Training", **changes) -> TrainJobChanged:
    return TrainJobChanged(
        id=job_id,
        version=changes.pop("version", 3),
        train_type="lora",
        model_id="m1",
        model_name="my-model",
        status=status,
        base_model_uri=f"s3://{EDGE_BUCKET}/model/m1/out/",
        instance_type="ml.g5.2xlarge",
        hyperparameters=TrainingHyperparameters(task="lora", model_name="my-lora"),
        input_location=f"s3://{EDGE_BUCKET}/train/{job_id}/input/",
        output_path=f"s3://{EDGE_BUCKET}/train/{job_id}/",
        sagemaker_job_name=f"train-{job_id}" if status != "Initialed" else None,
        created_at=NOW,
        **changes,
    )


def a_model(status: str = "Complete") -> ModelChanged:
    return ModelChanged(
        id="m1",
        version=3,
        model_type="Stable-diffusion",
        name="my-model",
        status=status,
        s3_base=f"s3://{EDGE_BUCKET}/model/m1/",
        created_at=NOW,
    )


def deployment(status: str) -> EndpointDeploymentChanged:
    return EndpointDeploymentChanged(
        id="d1",
        version=4,
        endpoint_name="ep-1",
        instance_type="ml.g5.xlarge",
        initial_instance_count=1,
        status=status,
        start_time=NOW,
    )


PROGRESS = JobProgress(
    phase="training", step=3, total_steps=10, fraction=0.3, elapsed_s=6, eta_s=14, loss=0.12, reported_at=NOW
)


# ---------------------------------------------------------------- progress in /trains


def test_trains_show_each_jobs_latest_progress(edge):
    edge.read_model.apply(train_job(progress=PROGRESS, progress_sequence=4))
    edge.read_model.apply(train_job("t2", status="Initialed"))
    jobs = {j["id"]: j for j in edge.client.get("/prod/trains", headers=KEY).json()["trainJobs"]}
    assert jobs["t1"]["progress"]["step"] == 3 and jobs["t1"]["progress"]["loss"] == 0.12
    assert jobs["t2"]["progress"] is None


# ---------------------------------------------------------------- cancel


def test_cancel_sends_the_command_and_answers_the_job_once_the_owner_took_it(edge):
    edge.read_model.apply(train_job())
    edge.answer("TrainJobCancelRequested", lambda data: train_job(version=4, cancel_requested_at=NOW))

    answer = edge.client.post("/prod/trains/t1/cancel", headers=KEY)

    assert answer.status_code == 202, answer.text
    assert answer.json()["job"]["id"] == "t1" and answer.json()["job"]["status"] == "Training"
    [command] = edge.owner.of_type("TrainJobCancelRequested")
    assert command["data"]["train_job_id"] == "t1"


def test_cancelling_a_job_not_started_answers_it_cancelled(edge):
    edge.read_model.apply(train_job(status="Initialed"))
    edge.answer(
        "TrainJobCancelRequested",
        lambda data: train_job(status="Fail", error="cancelled", version=4, cancel_requested_at=NOW),
    )
    job = edge.client.post("/prod/trains/t1/cancel", headers=KEY).json()["job"]
    assert (job["status"], job["error"]) == ("Fail", "cancelled")


def test_cancelling_a_cancelled_job_again_changes_nothing(edge):
    edge.read_model.apply(train_job(status="Fail", error="cancelled"))
    answer = edge.client.post("/prod/trains/t1/cancel", headers=KEY)
    assert answer.status_code == 202 and answer.json()["job"]["error"] == "cancelled"
    assert edge.owner.published == []


@pytest.mark.parametrize("status", ["Complete", "Fail"])
def test_a_finished_job_cannot_be_cancelled(edge, status):
    edge.read_model.apply(train_job(status=status, error="boom" if status == "Fail" else ""))
    answer = edge.client.post("/prod/trains/t1/cancel", headers=KEY)
    assert answer.status_code == 409
    assert answer.json() == {"statusCode": 409, "error": f"training job t1 is already finished: {status}"}
    assert edge.owner.published == []


def test_cancelling_an_unknown_job_is_404(edge):
    assert edge.client.post("/prod/trains/nope/cancel", headers=KEY).status_code == 404
    assert edge.owner.published == []


def test_every_new_route_needs_the_key(edge):
    edge.read_model.apply(train_job(status="Complete"))
    for method, path in [
        ("POST", "/prod/trains/t1/cancel"),
        ("DELETE", "/prod/trains/t1"),
        ("DELETE", "/prod/models/m1"),
        ("DELETE", "/prod/inference/endpoint-deployment-jobs/d1"),
        ("GET", "/prod/jobs/t1/logs"),
    ]:
        assert edge.client.request(method, path).status_code in (401, 403), path
    assert edge.owner.published == []


# ---------------------------------------------------------------- delete


def test_deleting_a_finished_job_answers_once_the_owner_deleted_it(edge):
    edge.read_model.apply(train_job(status="Complete"))
    edge.answer("TrainJobDeletionRequested", lambda data: train_job(status="Complete", version=4).as_deleted(NOW))

    answer = edge.client.delete("/prod/trains/t1", headers=KEY)

    assert answer.status_code == 200 and answer.json() == {"id": "t1", "deleted": True}
    assert edge.client.delete("/prod/trains/t1", headers=KEY).status_code == 404
    assert "t1" not in [j["id"] for j in edge.client.get("/prod/trains", headers=KEY).json()["trainJobs"]]


def test_a_running_job_cannot_be_deleted(edge):
    edge.read_model.apply(train_job(status="Training"))
    answer = edge.client.delete("/prod/trains/t1", headers=KEY)
    assert answer.status_code == 409 and "cancel it first" in answer.json()["error"]
    assert edge.owner.published == []


def test_a_deletion_the_owner_is_slow_to_do_is_504(edge):
    edge.read_model.apply(train_job(status="Fail", error="x"))
    assert edge.client.delete("/prod/trains/t1", headers=KEY).status_code == 504


def test_deleting_a_model(edge):
    edge.read_model.apply(a_model())
    edge.answer("ModelDeletionRequested", lambda data: a_model().model_copy(update={"version": 4}).as_deleted(NOW))
    answer = edge.client.delete("/prod/models/m1", headers=KEY)
    assert answer.status_code == 200 and answer.json() == {"id": "m1", "deleted": True}
    assert edge.client.get("/prod/models", headers=KEY).json()["models"] == []


def test_a_model_being_created_or_trained_on_is_not_deleted(edge):
    edge.read_model.apply(a_model("Creating"))
    answer = edge.client.delete("/prod/models/m1", headers=KEY)
    assert answer.status_code == 409 and "Creating" in answer.json()["error"]
    edge.read_model.apply(a_model().model_copy(update={"version": 5}))
    edge.read_model.apply(train_job("t7", status="Training"))
    answer = edge.client.delete("/prod/models/m1", headers=KEY)
    assert answer.status_code == 409 and "t7" in answer.json()["error"]
    assert edge.client.delete("/prod/models/nope", headers=KEY).status_code == 404
    assert edge.owner.published == []


@pytest.mark.parametrize("status", ["deleted", "failed"])
def test_a_deployment_job_without_an_endpoint_is_forgotten(edge, status):
    edge.read_model.apply(deployment(status))
    edge.answer(
        "EndpointRecordDeletionRequested",
        lambda data: deployment(status).model_copy(update={"version": 5}).as_deleted(NOW),
    )
    answer = edge.client.delete("/prod/inference/endpoint-deployment-jobs/d1", headers=KEY)
    assert answer.status_code == 200 and answer.json() == {"id": "d1", "deleted": True}
    assert edge.client.get("/prod/inference/list-endpoint-deployment-jobs", headers=KEY).json() == []


@pytest.mark.parametrize("status", ["inprogress", "success"])
def test_a_deployment_job_with_an_endpoint_is_kept(edge, status):
    edge.read_model.apply(deployment(status))
    answer = edge.client.delete("/prod/inference/endpoint-deployment-jobs/d1", headers=KEY)
    assert answer.status_code == 409 and "delete the endpoint first" in answer.json()["error"]
    assert edge.client.delete("/prod/inference/endpoint-deployment-jobs/nope", headers=KEY).status_code == 404
    assert edge.owner.published == []


# ---------------------------------------------------------------- logs


def put_lines(group: str, stream: str, lines: list[str], at_ms: int | None = None) -> None:
    logs = boto3.client("logs")
    for create, kwargs in (
        (logs.create_log_group, {"logGroupName": group}),
        (logs.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
    ):
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            create(**kwargs)
    at_ms = at_ms or int(time.time() * 1000)
    events = [{"timestamp": at_ms, "message": line} for line in lines]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def logs_of(edge: Edge, job_id: str, **params) -> dict:
    answer = edge.client.get(f"/prod/jobs/{job_id}/logs", headers=KEY, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_training_jobs_lines_page_and_follow(edge):
    edge.read_model.apply(train_job())
    put_lines("/aws/sagemaker/TrainingJobs", "train-t1/algo-1-1700000000", [f"step {n}" for n in range(5)])
    put_lines("/aws/sagemaker/TrainingJobs", "train-t10/algo-1-1700000000", ["another job's line"])

    first = logs_of(edge, "t1", limit=3)
    assert [line["message"] for line in first["lines"]] == ["step 0", "step 1", "step 2"]
    assert first["job_id"] == "t1" and first["lines"][0]["timestamp"].endswith("Z")
    rest = logs_of(edge, "t1", next_token=first["next_token"])
    assert [line["message"] for line in rest["lines"]] == ["step 3", "step 4"]
    assert logs_of(edge, "t1", next_token=rest["next_token"])["lines"] == []

    put_lines("/aws/sagemaker/TrainingJobs", "train-t1/algo-1-1700000000", ["step 5"])
    later = logs_of(edge, "t1", next_token=rest["next_token"])
    assert [line["message"] for line in later["lines"]] == ["step 5"]


def test_an_inference_jobs_lines_are_those_of_its_endpoint_naming_it(edge):
    job = InferenceJobChanged.model_validate(
        {
            "id": "4bb1c0de-0000-4000-8000-000000000001",
            "version": 2,
            "task_type": "txt2img",
            "status": "inprogress",
            "endpoint_name": "ep-1",
            "start_time": NOW,
        }
    )
    edge.read_model.apply(job)
    put_lines(
        "/aws/sagemaker/Endpoints/ep-1",
        "AllTraffic/i-0123",
        [f"job {job.id}: txt2img step 1/20", "job 9999: txt2img step 1/20", f"job {job.id}: done"],
    )
    lines = logs_of(edge, job.id)["lines"]
    assert [line["message"] for line in lines] == [f"job {job.id}: txt2img step 1/20", f"job {job.id}: done"]
    # An endpoint that has logged nothing yet has no log group: no lines, not an error.
    edge.read_model.apply(job.model_copy(update={"id": "j2", "endpoint_name": "ep-silent"}))
    assert logs_of(edge, "j2") == {"job_id": "j2", "lines": [], "next_token": None}


def test_a_job_without_a_log_yet_has_no_lines(edge):
    edge.read_model.apply(train_job("t2", status="Initialed"))
    edge.read_model.apply(train_job("t3"))  # started, nothing written yet
    for job_id in ("t2", "t3"):
        assert logs_of(edge, job_id) == {"job_id": job_id, "lines": [], "next_token": None}


def test_unknown_jobs_and_bad_tokens_are_refused(edge):
    edge.read_model.apply(train_job())
    assert edge.client.get("/prod/jobs/nope/logs", headers=KEY).status_code == 404
    bad = edge.client.get("/prod/jobs/t1/logs", headers=KEY, params={"next_token": "not-a-token"})
    assert bad.status_code == 400 and "next_token" in bad.json()["error"]
    assert edge.client.get("/prod/jobs/t1/logs", headers=KEY, params={"limit": 0}).status_code == 422


def test_the_logs_route_is_in_the_openapi_document(edge):
    paths = edge.client.get("/prod/openapi.json", headers=KEY).json()["paths"]
    assert "get" in paths["/prod/jobs/{job_id}/logs"]
    assert "post" in paths["/prod/trains/{train_job_id}/cancel"]
    assert "delete" in paths["/prod/trains/{train_job_id}"] and "delete" in paths["/prod/models/{model_id}"]
    assert "delete" in paths["/prod/inference/endpoint-deployment-jobs/{job_id}"]
