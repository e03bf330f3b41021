"""inference-dispatcher: a running job's progress, its cancel, and deleting it once finished (test doubles)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aws_lambda_powertools import Logger

from inference_dispatcher.handlers import Dependencies, router
from inference_dispatcher.jobs import Job
from inference_dispatcher.resources import RESOURCES
from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import InferenceRequested
from sdmw_contracts.events.inference import (
    InferenceCancelRequested,
    InferenceDeletionRequested,
    cancel_marker_key,
)
from sdmw_contracts.events.progress import InferenceProgressReported, JobProgress
from sdmw_contracts.generation import GenerationParams
from sdmw_contracts.runtime import ModelRef, ModelSet
from service_kit.events import RecordingPublisher
from service_kit.messages import BusEvent, SnsNotification
from service_kit.snapshots import StaleWrite
from service_kit.testing import InMemorySnapshotTable

BUCKET = "dispatch-bucket"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BASE = ModelRef(name="base.safetensors", s3_uri=f"s3://{BUCKET}/checkpoint/base.safetensors")
ANSWER = f"s3://{BUCKET}/sagemaker-output/answer-1.out"


@dataclass
class FakeBucket:
    """The project bucket as keys -> bytes, and SageMaker's answers wherever they are."""

    bucket: str = BUCKET
    objects: dict[str, bytes] = field(default_factory=dict)

    def put_json(self, key: str, body: str) -> str:
        self.objects[f"s3://{self.bucket}/{key}"] = body.encode()
        return f"s3://{self.bucket}/{key}"

    def exists(self, key: str) -> bool:
        return f"s3://{self.bucket}/{key}" in self.objects

    def get_bytes(self, uri: str) -> bytes:
        return self.objects[uri]

    def delete(self, uri: str) -> None:
        self.objects.pop(uri, None)

    def delete_prefix(self, prefix: str, keep: frozenset[str] = frozenset()) -> int:
        root = f"s3://{self.bucket}/"
        doomed = [u for u in self.objects if u.startswith(root + prefix) and u.removeprefix(root) not in keep]
        for uri in doomed:
            del self.objects[uri]
        return len(doomed)

    def put(self, key: str) -> None:
        self.objects[f"s3://{self.bucket}/{key}"] = b"x"

    def key_set(self) -> set[str]:
        return {uri.removeprefix(f"s3://{self.bucket}/") for uri in self.objects}


@dataclass
class FakeSageMakerAsync:
    queue_ttl_s: int = 60
    invocation_timeout_s: int = 30
    invocations: list[str] = field(default_factory=list)

    def invoke_async(self, endpoint_name: str, input_uri: str, inference_id: str) -> None:
        self.invocations.append(inference_id)


@dataclass
class World:
    deps: Dependencies
    table: InMemorySnapshotTable
    bucket: FakeBucket
    publisher: RecordingPublisher
    now: list[datetime]

    def dispatch(self, message) -> None:
        router(self.deps).dispatch(message)

    def job(self, job_id: str = "job-1") -> Job:
        job = self.table.get(Job, job_id)
        assert job is not None
        return job

    def published(self, job_id: str = "job-1") -> list[dict]:
        return [e["data"] for e in self.publisher.of_type("InferenceJobChanged") if e["data"]["id"] == job_id]


@pytest.fixture
def world() -> World:
    now = [NOW]
    table, bucket, publisher = InMemorySnapshotTable(), FakeBucket(), RecordingPublisher()
    deps = Dependencies(
        jobs=table,
        storage=bucket,
        endpoints=FakeSageMakerAsync(),
        publisher=publisher,
        logger=Logger(service="test"),
        grace_s=10,
        clock=lambda: now[0],
    )
    return World(deps, table, bucket, publisher, now)


def bus(event, source: str = "sdmw.api-gateway") -> BusEvent:
    envelope = EventEnvelope.wrap(event, producer=source.removeprefix("sdmw."), correlation_id="c")
    return BusEvent(
        id="e", source=source, detail_type=event.detail_type(), detail=json.loads(envelope.model_dump_json())
    )


def started(world: World, job_id: str = "job-1") -> Job:
    command = InferenceRequested(
        job_id=job_id,
        endpoint_name="infer-endpoint-a",
        task_type="txt2img",
        requested_at=NOW,
        models={"Stable-diffusion": ["base.safetensors"]},
        resolved=ModelSet(checkpoint=BASE),
        params=GenerationParams(prompt="a cute panda"),
    )
    world.dispatch(bus(command))
    return world.job(job_id)


def report(sequence: int, step: int, job_id: str = "job-1") -> BusEvent:
    progress = JobProgress(
        phase="txt2img",
        step=step,
        total_steps=20,
        image=1,
        images=1,
        fraction=step / 20,
        elapsed_s=step,
        reported_at=NOW,
    )
    event = InferenceProgressReported(job_id=job_id, sequence=sequence, progress=progress)
    return bus(event, source="sdmw.sd-runtime")


def cancel(job_id: str = "job-1") -> BusEvent:
    return bus(InferenceCancelRequested(job_id=job_id, requested_at=NOW))


def delete(job_id: str = "job-1") -> BusEvent:
    return bus(InferenceDeletionRequested(job_id=job_id, requested_at=NOW))


def notification(job_id: str = "job-1", completed: bool = True) -> SnsNotification:
    raw: dict = {"inferenceId": job_id, "invocationStatus": "Completed" if completed else "Failed"}
    location = "outputLocation" if completed else "failureLocation"
    raw["responseParameters"] = {"contentType": "application/json", location: ANSWER}
    if not completed:
        raw["failureReason"] = "ClientError: Received client error (409) from primary: the job was cancelled"
    topic = "async-success" if completed else "async-error"
    return SnsNotification(
        message_id=f"m-{job_id}", topic_arn=f"arn:aws:sns:us-east-1:1:sdmw-{topic}", message=json.dumps(raw)
    )


def write_outputs(world: World, job_id: str = "job-1") -> None:
    world.bucket.put(f"out/{job_id}/result/image_0.jpg")
    world.bucket.put(f"out/{job_id}/result/{job_id}_param.json")
    world.bucket.objects[ANSWER] = b"{}"


# ---------------------------------------------------------------- progress


def test_a_report_becomes_the_running_jobs_next_snapshot_and_is_published(world):
    before = started(world)
    world.dispatch(report(sequence=0, step=3))

    job = world.job()
    assert job.version == before.version + 1
    assert job.progress is not None and job.progress.step == 3 and job.progress_sequence == 0
    assert world.published()[-1]["progress"]["step"] == 3


def test_a_late_or_repeated_report_changes_nothing(world):
    started(world)
    world.dispatch(report(sequence=5, step=10))
    held = world.job()
    world.dispatch(report(sequence=4, step=8))
    world.dispatch(report(sequence=5, step=10))

    assert world.job() == held
    assert len([p for p in world.published() if p.get("progress")]) == 1


def test_a_report_for_a_finished_or_unknown_job_changes_nothing(world):
    started(world)
    world.dispatch(notification())
    finished = world.job()
    world.dispatch(report(sequence=0, step=20))
    world.dispatch(report(sequence=0, step=1, job_id="nobody"))

    assert world.job() == finished
    assert world.table.get(Job, "nobody") is None


def test_a_report_that_loses_a_race_is_tried_again_on_the_newer_job(world, monkeypatch):
    started(world)
    save = world.table.save
    races = [1]

    def save_losing_once(*snapshots):
        if races:
            races.pop()
            raise StaleWrite("another writer")
        save(*snapshots)

    monkeypatch.setattr(world.table, "save", save_losing_once)
    world.dispatch(report(sequence=0, step=3))
    assert world.job().progress_sequence == 0


def test_a_report_that_keeps_losing_races_is_dropped_without_failing_the_message(world, monkeypatch):
    before = started(world)

    def always_stale(*snapshots):
        raise StaleWrite("another writer")

    monkeypatch.setattr(world.table, "save", always_stale)
    world.dispatch(report(sequence=0, step=3))  # no exception: progress is advisory
    assert world.job() == before


def test_the_runtimes_reports_reach_the_dispatcher_by_its_rules():
    pattern = next(
        rule.event_pattern
        for rule in RESOURCES.rules
        if "InferenceProgressReported" in rule.event_pattern["detail-type"]
    )
    assert pattern["source"] == ["sdmw.sd-runtime"]
    commands = next(
        rule.event_pattern for rule in RESOURCES.rules if "InferenceRequested" in rule.event_pattern["detail-type"]
    )
    assert {"InferenceCancelRequested", "InferenceDeletionRequested"} <= set(commands["detail-type"])


# ---------------------------------------------------------------- cancel


def test_cancelling_a_running_job_writes_the_marker_first_and_ends_it_cancelled(world):
    started(world)
    world.now[0] = NOW + timedelta(seconds=5)
    world.dispatch(cancel())

    job = world.job()
    assert (job.status, job.error, job.complete_time, job.cancel_requested_at) == (
        "cancelled",
        "cancelled by the user",
        NOW + timedelta(seconds=5),
        NOW,
    )
    assert cancel_marker_key("job-1") in world.bucket.key_set()
    assert world.published()[-1]["status"] == "cancelled"


def test_cancelling_again_publishes_the_cancelled_job_again_and_changes_nothing(world):
    started(world)
    world.dispatch(cancel())
    cancelled = world.job()
    world.dispatch(cancel())

    assert world.job() == cancelled
    assert [p["status"] for p in world.published()][-2:] == ["cancelled", "cancelled"]


def test_cancelling_a_finished_job_changes_nothing(world):
    started(world)
    world.dispatch(notification())
    finished, published = world.job(), len(world.published())
    world.dispatch(cancel())

    assert world.job() == finished and finished.status == "succeed"
    assert len(world.published()) == published
    assert cancel_marker_key("job-1") not in world.bucket.key_set()


def test_a_cancel_that_comes_before_its_job_was_claimed_leaves_the_marker_and_the_job_never_runs(world):
    world.dispatch(cancel("not-yet"))  # no error: nothing to retry
    assert cancel_marker_key("not-yet") in world.bucket.key_set()
    job = started(world, "not-yet")
    assert job.status == "cancelled" and world.deps.endpoints.invocations == []
    assert world.published("not-yet")[-1]["status"] == "cancelled"


@pytest.mark.parametrize("completed", [True, False])
def test_sagemakers_answer_for_a_cancelled_job_removes_what_it_left_and_keeps_it_cancelled(world, completed):
    started(world)
    world.dispatch(cancel())
    cancelled = world.job()
    write_outputs(world)
    world.bucket.put("out/job-2/result/image_0.jpg")  # another job's

    world.dispatch(notification(completed=completed))

    assert world.job() == cancelled
    assert not any(key.startswith("out/job-1/") for key in world.bucket.key_set())
    assert ANSWER not in world.bucket.objects
    assert "out/job-2/result/image_0.jpg" in world.bucket.key_set()


def test_the_sweep_leaves_a_cancelled_job_cancelled(world):
    started(world)
    world.dispatch(cancel())
    cancelled = world.job()
    world.now[0] = NOW + timedelta(days=1)
    world.dispatch(BusEvent(id="s", source="aws.events", detail_type="Scheduled Event", detail={}))

    assert world.job() == cancelled


def test_a_report_after_the_cancel_does_not_bring_the_job_back(world):
    started(world)
    world.dispatch(cancel())
    world.dispatch(report(sequence=9, step=12))
    assert world.job().status == "cancelled" and world.job().progress is None


# ---------------------------------------------------------------- delete


def test_deleting_a_finished_job_removes_its_files_and_forgets_it(world):
    started(world)
    write_outputs(world)
    world.dispatch(notification())
    assert world.job().sagemaker_output_uri == ANSWER
    world.bucket.put("out/job-2/result/image_0.jpg")
    world.now[0] = NOW + timedelta(minutes=1)

    world.dispatch(delete())

    job = world.job()
    assert job.is_deleted and job.deleted_at == NOW + timedelta(minutes=1)
    assert world.bucket.key_set() == {"out/job-2/result/image_0.jpg"}  # input, images, params, answer gone
    assert world.published()[-1]["deleted_at"] is not None


def test_deleting_a_cancelled_job_removes_its_input_and_marker(world):
    started(world)
    world.dispatch(cancel())
    world.dispatch(delete())

    assert world.job().is_deleted
    assert world.bucket.key_set() == set()


def test_deleting_a_running_job_changes_nothing(world):
    running = started(world)
    world.dispatch(delete())
    assert world.job() == running and not running.is_deleted
    assert "inference-input/job-1.json" in world.bucket.key_set()


def test_deleting_again_publishes_the_deleted_job_again(world):
    started(world)
    world.dispatch(notification())
    world.dispatch(delete())
    gone = world.job()
    world.dispatch(delete())
    assert world.job() == gone
    assert [p["deleted_at"] is not None for p in world.published()][-2:] == [True, True]


def test_deleting_a_merge_keeps_the_checkpoint_it_registered(world):
    from sdmw_contracts.events import ModelMergeRequested
    from sdmw_contracts.runtime import MergeSpec

    merged = f"s3://{BUCKET}/out/job-m/result/merged.safetensors"
    other = ModelRef(name="other.safetensors", s3_uri=f"s3://{BUCKET}/checkpoint/other.safetensors")
    command = ModelMergeRequested(
        job_id="job-m",
        endpoint_name="infer-endpoint-a",
        requested_at=NOW,
        merge=MergeSpec(primary=BASE, secondary=other, output_s3_uri=merged),
    )
    world.dispatch(bus(command))
    world.bucket.objects[merged] = b"weights"
    world.bucket.put("out/job-m/result/job-m_param.json")
    world.bucket.objects[ANSWER] = json.dumps({"info": json.dumps({"output_s3_uri": merged})}).encode()
    world.dispatch(notification("job-m"))
    assert world.job("job-m").merged_checkpoint_uri == merged

    world.dispatch(delete("job-m"))

    assert world.job("job-m").is_deleted
    assert world.bucket.key_set() == {"out/job-m/result/merged.safetensors"}


def test_deleting_an_unknown_job_changes_nothing(world):
    world.dispatch(delete("nobody"))
    assert world.table.get(Job, "nobody") is None and world.published("nobody") == []
