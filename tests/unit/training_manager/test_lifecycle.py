"""training-manager while a job runs and after: progress reports, cancelling, deleting jobs and models."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import TrainJobUpdateRequested
from sdmw_contracts.events.progress import JobProgress, TrainingProgressReported
from sdmw_contracts.events.training import ModelDeletionRequested, TrainJobCancelRequested, TrainJobDeletionRequested
from service_kit.messages import BusEvent
from service_kit.snapshots import StaleWrite
from tests.unit.training_manager import test_handlers
from tests.unit.training_manager.test_handlers import (
    BUCKET,
    NOW,
    SETTINGS,
    World,
    complete_model,
    create_model,
    start_model,
    train_request,
)
from training_manager.handlers import UnknownEntity, router
from training_manager.jobs import Model, TrainJob
from training_manager.sagemaker import SageMakerTraining, TrainingSettings, TrainingState

world = test_handlers.world  # the same fixture: fakes of SageMaker and the table, a mocked bucket

OUTPUT = f"s3://{BUCKET}/train/t1/train-t1/output/model/"


def training(world: World, job_id: str = "t1") -> None:
    world.send(train_request(job_id), job_id)
    world.send(TrainJobUpdateRequested(train_job_id=job_id, request_id="r1", status="Training"), job_id)


def report(world: World, sequence: int, step: int, job_id: str = "t1", **fields) -> None:
    progress = JobProgress(
        phase="training", step=step, total_steps=5, fraction=step / 5, elapsed_s=step, reported_at=NOW, **fields
    )
    event = TrainingProgressReported(job_id=job_id, sequence=sequence, progress=progress)
    envelope = EventEnvelope.wrap(event, producer="sd-runtime", correlation_id=job_id)
    message = BusEvent(
        id=f"p{sequence}",
        source="sdmw.sd-runtime",
        detail_type=event.detail_type(),
        detail=json.loads(envelope.model_dump_json()),
    )
    router(world.deps).dispatch(message)


def stored(world: World, job_id: str = "t1") -> TrainJob:
    return world.deps.snapshots.get(TrainJob, job_id)


# ---------------------------------------------------------------- progress


def test_a_progress_report_becomes_the_running_jobs_next_snapshot(world):
    training(world)
    report(world, 0, step=2, loss=0.25, learning_rate=1e-4, epoch=1)
    job = world.last("TrainJobChanged")
    assert job["progress"]["step"] == 2 and job["progress"]["loss"] == 0.25 and job["progress_sequence"] == 0
    assert job["status"] == "Training"


def test_late_and_repeated_reports_change_nothing(world):
    training(world)
    report(world, 3, step=4)
    published = len(world.publisher.published)
    report(world, 2, step=3)
    report(world, 3, step=4)
    assert len(world.publisher.published) == published
    assert stored(world).progress.step == 4


def test_reports_of_jobs_not_training_or_unknown_are_dropped(world):
    world.send(train_request(), "t1")  # Initialed
    report(world, 0, step=1)
    report(world, 0, step=1, job_id="nobody")
    assert stored(world).progress is None
    world.send(TrainJobUpdateRequested(train_job_id="t1", request_id="r1", status="Training"), "t1")
    world.sagemaker_says("train-t1", TrainingState("Completed", "Completed", artifacts=OUTPUT))
    report(world, 1, step=5)
    assert stored(world).status == "Complete" and stored(world).progress is None


def test_a_report_that_loses_a_race_is_applied_to_the_fresh_snapshot(world, monkeypatch):
    training(world)
    table = world.deps.snapshots
    real_save, raced = table.save, []

    def save_after_someone_else(*snapshots):
        if not raced:  # another writer got to the next version first
            raced.append(True)
            real_save(stored(world).model_copy(update={"version": stored(world).version + 1}))
            raise StaleWrite("raced")
        real_save(*snapshots)

    monkeypatch.setattr(table, "save", save_after_someone_else)
    report(world, 0, step=1)
    assert stored(world).progress.step == 1


def test_a_completion_that_races_a_report_still_completes_the_job(world, monkeypatch):
    training(world)
    table = world.deps.snapshots
    real_save, raced = table.save, []

    def save_after_a_report(*snapshots):
        if not raced:
            raced.append(True)
            report(world, 0, step=5)
            raise StaleWrite("raced")
        real_save(*snapshots)

    monkeypatch.setattr(table, "save", save_after_a_report)
    world.sagemaker_says("train-t1", TrainingState("Completed", "Completed", artifacts=OUTPUT))
    job = stored(world)
    assert job.status == "Complete" and job.progress.step == 5


# ---------------------------------------------------------------- cancel


def test_cancelling_a_running_job_stops_it_and_it_ends_fail_cancelled(world):
    training(world)
    world.send(TrainJobCancelRequested(train_job_id="t1", requested_at=NOW), "t1")
    assert world.training.stopped == ["train-t1"]
    job = world.last("TrainJobChanged")
    assert job["status"] == "Training" and job["cancel_requested_at"] is not None
    world.sagemaker_says("train-t1", TrainingState("Stopped", "Stopped"))
    job = world.last("TrainJobChanged")
    assert (job["status"], job["error"]) == ("Fail", "cancelled")


def test_cancelling_twice_is_one_cancel(world):
    training(world)
    world.send(TrainJobCancelRequested(train_job_id="t1", requested_at=NOW), "t1")
    version = stored(world).version
    world.send(TrainJobCancelRequested(train_job_id="t1", requested_at=NOW), "t1")
    assert stored(world).version == version


def test_a_job_not_started_on_sagemaker_is_cancelled_at_once(world):
    world.send(train_request(), "t1")
    world.send(TrainJobCancelRequested(train_job_id="t1", requested_at=NOW), "t1")
    assert world.training.stopped == []
    job = world.last("TrainJobChanged")
    assert (job["status"], job["error"]) == ("Fail", "cancelled")


def test_cancelling_a_finished_job_changes_nothing(world):
    training(world)
    world.sagemaker_says("train-t1", TrainingState("Completed", "Completed", artifacts=OUTPUT))
    before = stored(world)
    world.send(TrainJobCancelRequested(train_job_id="t1", requested_at=NOW), "t1")
    assert world.training.stopped == [] and stored(world) == before


def test_a_job_that_completes_before_the_stop_takes_effect_stays_complete(world):
    training(world)
    world.send(TrainJobCancelRequested(train_job_id="t1", requested_at=NOW), "t1")
    world.sagemaker_says("train-t1", TrainingState("Completed", "Completed", artifacts=OUTPUT))
    assert stored(world).status == "Complete"


def test_a_cancel_before_the_job_is_known_is_retried(world):
    with pytest.raises(UnknownEntity):
        world.send(TrainJobCancelRequested(train_job_id="t9", requested_at=NOW), "t9")


# ---------------------------------------------------------------- delete


def put(world: World, *keys: str) -> None:
    for key in keys:
        world.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")


def keys(world: World, prefix: str) -> set[str]:
    return {o["Key"] for o in world.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])}


def test_deleting_a_finished_job_removes_its_files_but_not_its_checkpoint(world):
    training(world)
    checkpoint = "train/t1/train-t1/output/model/my-dog.safetensors"
    put(world, "train/t1/input/db_config.tar", "train/t1/train-t1/output/output.tar.gz", checkpoint, "train/t10/x")
    world.sagemaker_says("train-t1", TrainingState("Completed", "Completed", artifacts=OUTPUT))
    registrations = len(world.publisher.of_type("CheckpointRegistrationRequested"))

    world.send(TrainJobDeletionRequested(train_job_id="t1", requested_at=NOW), "t1")

    assert keys(world, "train/") == {checkpoint, "train/t10/x"}
    job = world.last("TrainJobChanged")
    assert job["deleted_at"] == "2024-01-01T00:00:00Z"  # when the owner deleted it
    assert stored(world).is_deleted
    # A deleted job's checkpoint is asset-registry's: it is not registered again.
    assert len(world.publisher.of_type("CheckpointRegistrationRequested")) == registrations


def test_deleting_a_failed_job_removes_all_its_files(world):
    training(world)
    put(world, "train/t1/input/a.png", "train/t1/train-t1/output/model/half.safetensors")
    world.sagemaker_says("train-t1", TrainingState("Failed", "Failed", failure_reason="AlgorithmError: x"))
    world.send(TrainJobDeletionRequested(train_job_id="t1", requested_at=NOW), "t1")
    assert keys(world, "train/") == set()


def test_a_repeated_deletion_publishes_the_same_deleted_snapshot(world):
    training(world)
    world.sagemaker_says("train-t1", TrainingState("Failed", "Failed", failure_reason="x"))
    for _ in range(2):
        world.send(TrainJobDeletionRequested(train_job_id="t1", requested_at=NOW), "t1")
    last_two = [e["data"] for e in world.publisher.of_type("TrainJobChanged")][-2:]
    assert last_two[0] == last_two[1] and last_two[0]["deleted_at"]


def test_a_running_job_is_not_deleted(world):
    training(world)
    put(world, "train/t1/input/a.png")
    world.send(TrainJobDeletionRequested(train_job_id="t1", requested_at=NOW), "t1")
    assert not stored(world).is_deleted and keys(world, "train/t1/") == {"train/t1/input/a.png"}


def test_deleting_a_model_removes_its_files_and_aborts_its_uploads(world):
    complete_model(world, "m1")
    put(world, "model/m1/model-m1/output/model/unet.bin", "model/m10/keep")
    world.s3.create_multipart_upload(Bucket=BUCKET, Key="model/m1/input/base.tar")
    world.send(ModelDeletionRequested(model_id="m1", requested_at=NOW), "m1")
    assert keys(world, "model/") == {"model/m10/keep"}
    assert world.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert world.last("ModelChanged")["deleted_at"] and world.deps.snapshots.get(Model, "m1").is_deleted


def test_a_model_being_created_is_not_deleted(world):
    world.send(create_model(), "m1")
    start_model(world)
    world.send(ModelDeletionRequested(model_id="m1", requested_at=NOW), "m1")
    assert not world.deps.snapshots.get(Model, "m1").is_deleted


def test_a_deleted_model_is_never_started(world):
    world.send(create_model(), "m1")
    world.send(ModelDeletionRequested(model_id="m1", requested_at=NOW), "m1")
    start_model(world, request_id="late")
    assert world.training.started == []
    assert world.last("ModelChanged")["rejection"] == {"request_id": "late", "reason": "Model m1 was deleted"}


# ---------------------------------------------------------------- SageMaker throttling


class ThrottledSageMaker:
    def create_training_job(self, **_):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "CreateTrainingJob")


def test_a_throttled_start_is_retried_not_failed(world):
    world.deps.training = SageMakerTraining(SETTINGS, sagemaker=ThrottledSageMaker(), logs=object())
    world.send(train_request(), "t1")
    with pytest.raises(ClientError):
        world.send(TrainJobUpdateRequested(train_job_id="t1", request_id="r1", status="Training"), "t1")
    assert stored(world).status == "Initialed"


def test_training_jobs_get_their_job_id_in_the_environment():
    from training_manager.sagemaker import create_request, training_spec

    job = train_request().initial_snapshot(BUCKET, version=1)
    settings = TrainingSettings(**{**SETTINGS.__dict__, "container_environment": {"SDMW_EVENT_BUS": "bus"}})
    environment = create_request(training_spec(job), settings)["Environment"]
    assert environment == {"SDMW_EVENT_BUS": "bus", "SDMW_JOB_ID": "t1"}


def test_a_throttled_describe_skips_one_job_in_the_sweep_not_the_others(world):
    training(world, "t1")
    training(world, "t2")
    world.training.states["train-t2"] = TrainingState("Completed", "Completed", artifacts=OUTPUT)
    real_describe = world.training.describe

    def throttled_for_t1(name):
        if name == "train-t1":
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Describe")
        return real_describe(name)

    world.training.describe = throttled_for_t1
    world.sweep()
    assert stored(world, "t1").status == "Training" and stored(world, "t2").status == "Complete"
