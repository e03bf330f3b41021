"""training-manager handlers over fakes (test doubles) of SageMaker and of the snapshot table, and a real (mocked)
bucket."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import boto3
import pytest
from aws_lambda_powertools import Logger

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import (
    ModelCreationRequested,
    ModelUpdateRequested,
    TrainJobRequested,
    TrainJobUpdateRequested,
)
from sdmw_contracts.events.assets import FileParts
from sdmw_contracts.events.training import DataRef, model_job_name, train_job_name
from sdmw_contracts.runtime import ModelRef
from sdmw_contracts.training import TrainingHyperparameters
from service_kit.events import RecordingPublisher
from service_kit.messages import BusEvent
from service_kit.storage import S3Storage
from service_kit.testing import InMemorySnapshotTable
from training_manager.files import S3JobFiles
from training_manager.handlers import Dependencies, UnknownEntity, router
from training_manager.jobs import TrainJob, checkpoint_id_for
from training_manager.sagemaker import (
    TrainingJobSpec,
    TrainingRefused,
    TrainingSettings,
    TrainingState,
    create_request,
)

BUCKET = "training-bucket"
NOW = datetime(2024, 1, 1, tzinfo=UTC)
SETTINGS = TrainingSettings(image_uri="123.dkr.ecr/sd-runtime:1", execution_role_arn="arn:aws:iam::1:role/sm")


@dataclass
class FakeTraining:
    """Test double of the SageMaker training gateway: remembers calls, answers scripted states."""

    started: list[TrainingJobSpec] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    described: list[str] = field(default_factory=list)
    states: dict[str, TrainingState] = field(default_factory=dict)
    refuse_with: str | None = None

    def start(self, spec: TrainingJobSpec) -> None:
        if self.refuse_with:
            raise TrainingRefused(self.refuse_with)
        if spec.name not in self.states:
            self.started.append(spec)
            self.states[spec.name] = TrainingState("InProgress", "Starting")

    def describe(self, name: str) -> TrainingState | None:
        self.described.append(name)
        return self.states.get(name)

    def stop(self, name: str) -> None:
        self.stopped.append(name)
        self.states[name] = TrainingState("Stopped", "Stopped")


@dataclass
class World:
    deps: Dependencies
    training: FakeTraining
    publisher: RecordingPublisher
    s3: object

    def send(self, command, correlation_id: str) -> None:
        envelope = EventEnvelope.wrap(command, producer="api-gateway", correlation_id=correlation_id)
        event = BusEvent(
            id="e",
            source="sdmw.api-gateway",
            detail_type=command.detail_type(),
            detail=json.loads(envelope.model_dump_json()),
        )
        router(self.deps).dispatch(event)

    def sagemaker_says(self, name: str, state: TrainingState) -> None:
        self.training.states[name] = state
        detail = {"TrainingJobName": name, "TrainingJobStatus": state.status}
        event = BusEvent(
            id="aws-1", source="aws.sagemaker", detail_type="SageMaker Training Job State Change", detail=detail
        )
        router(self.deps).dispatch(event)

    def sweep(self) -> None:
        router(self.deps).dispatch(BusEvent(id="s", source="aws.events", detail_type="Scheduled Event", detail={}))

    def last(self, detail_type: str) -> dict:
        return self.publisher.of_type(detail_type)[-1]["data"]


@pytest.fixture
def world(mocked_aws) -> World:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    training = FakeTraining()
    publisher = RecordingPublisher()
    deps = Dependencies(
        snapshots=InMemorySnapshotTable(),
        storage=S3Storage(BUCKET, s3),
        training=training,
        settings=SETTINGS,
        publisher=publisher,
        logger=Logger(service="test"),
        files=S3JobFiles(BUCKET, s3),
        clock=lambda: NOW,
    )
    return World(deps, training, publisher, s3)


BASE = ModelRef(name="base-model", s3_uri=f"s3://{BUCKET}/checkpoint/Stable-diffusion/c1/")


def create_model(model_id: str = "m1", files: list[FileParts] | None = None) -> ModelCreationRequested:
    return ModelCreationRequested(
        model_id=model_id,
        model_type="Stable-diffusion",
        name="my-model",
        files=files or [],
        base_checkpoint=None if files else BASE,
        params={"create_model_params": {"ckpt_path": "base-model"}},
        requested_at=NOW,
    )


def start_model(world: World, model_id: str = "m1", request_id: str = "r1", **tags) -> None:
    world.send(ModelUpdateRequested(model_id=model_id, request_id=request_id, status="Creating", **tags), model_id)


def complete_model(world: World, model_id: str = "m1") -> str:
    world.send(create_model(model_id), model_id)
    start_model(world, model_id)
    output = f"s3://{BUCKET}/model/{model_id}/{model_job_name(model_id)}/output/model/"
    world.sagemaker_says(model_job_name(model_id), TrainingState("Completed", "Completed", artifacts=output))
    return output


def train_request(job_id: str = "t1", train_type: str = "dreambooth", filenames: list[str] | None = None):
    return TrainJobRequested(
        train_job_id=job_id,
        train_type=train_type,
        model_id="m1",
        model_name="my-model",
        base_model_uri=f"s3://{BUCKET}/model/m1/out/",
        instance_type="ml.g5.2xlarge",
        hyperparameters=TrainingHyperparameters(task=train_type, model_name="my-dog", max_train_steps=5),
        instance_datasets=[DataRef(name="dogs", s3_uri=f"s3://{BUCKET}/dataset/dogs/")],
        filenames=filenames or [],
        requested_at=NOW,
    )


# ---------------------------------------------------------------- models


def test_a_model_from_an_active_checkpoint_starts_a_create_model_job_on_its_files(world):
    world.send(create_model(), "m1")
    assert world.last("ModelChanged")["status"] == "Initialed"
    start_model(world)
    [spec] = world.training.started
    assert spec.name == "model-m1" and spec.channels == {"model": BASE.s3_uri}
    assert spec.hyperparameters.task == "create-model" and spec.hyperparameters.model_name == "my-model"
    assert spec.output_path == f"s3://{BUCKET}/model/m1/"
    model = world.last("ModelChanged")
    assert (model["status"], model["sagemaker_job_name"]) == ("Creating", "model-m1")


def test_a_completed_creation_makes_the_model_complete_with_its_output(world):
    output = complete_model(world)
    model = world.last("ModelChanged")
    assert (model["status"], model["output_s3_location"]) == ("Complete", output)


def test_a_failed_creation_fails_the_model_with_sagemakers_reason(world):
    world.send(create_model(), "m1")
    start_model(world)
    world.sagemaker_says("model-m1", TrainingState("Failed", "Failed", failure_reason="AlgorithmError: bad file"))
    model = world.last("ModelChanged")
    assert (model["status"], model["error"]) == ("Fail", "AlgorithmError: bad file")


def test_an_uploaded_base_is_completed_from_the_clients_parts_then_created_from(world):
    world.send(create_model(files=[FileParts(filename="base.safetensors.tar", parts_number=1)]), "m1")
    model = world.last("ModelChanged")
    [file] = model["files"]
    assert file["upload_id"] and file["key"] == "model/m1/input/base.safetensors.tar"
    part = world.s3.upload_part(
        Bucket=BUCKET, Key=file["key"], UploadId=file["upload_id"], PartNumber=1, Body=b"tar bytes"
    )
    start_model(world, multi_parts_tags={"base.safetensors.tar": [{"ETag": part["ETag"], "PartNumber": 1}]})
    [spec] = world.training.started
    assert spec.channels == {"model": f"s3://{BUCKET}/model/m1/input/base.safetensors.tar"}
    model = world.last("ModelChanged")
    assert model["status"] == "Creating" and model["files"][0]["size"] == len(b"tar bytes")


def test_wrong_parts_refuse_the_request_and_start_nothing(world):
    world.send(create_model(files=[FileParts(filename="base.tar", parts_number=1)]), "m1")
    start_model(world, multi_parts_tags={"base.tar": [{"ETag": "not-the-etag", "PartNumber": 1}]})
    model = world.last("ModelChanged")
    assert model["status"] == "Initialed" and model["rejection"]["request_id"] == "r1"
    assert "part 1 was not uploaded" in model["rejection"]["reason"]
    assert world.training.started == []


def test_a_refused_training_job_fails_the_model_with_the_reason(world):
    world.training.refuse_with = "SageMaker refused the training job: ResourceLimitExceeded: quota"
    world.send(create_model(), "m1")
    start_model(world)
    model = world.last("ModelChanged")
    assert model["status"] == "Fail" and "ResourceLimitExceeded" in model["error"]


def test_giving_up_a_creating_model_stops_its_job(world):
    world.send(create_model(), "m1")
    start_model(world)
    world.send(ModelUpdateRequested(model_id="m1", request_id="r2", status="Fail"), "m1")
    assert world.training.stopped == ["model-m1"]
    assert world.last("ModelChanged")["status"] == "Fail"


def test_a_redelivered_start_starts_one_job_and_publishes_the_same_snapshot(world):
    world.send(create_model(), "m1")
    start_model(world)
    start_model(world)
    assert len(world.training.started) == 1
    changes = world.publisher.of_type("ModelChanged")
    assert changes[-1]["metadata"]["event_id"] == changes[-2]["metadata"]["event_id"]


def test_an_update_before_the_creation_is_retried(world):
    with pytest.raises(UnknownEntity):
        start_model(world, model_id="nobody")


# ---------------------------------------------------------------- train jobs


def test_training_starts_with_the_model_and_dataset_channels(world):
    world.send(train_request(), "t1")
    world.send(TrainJobUpdateRequested(train_job_id="t1", request_id="r1", status="Training"), "t1")
    [spec] = world.training.started
    assert spec.name == "train-t1"
    assert spec.channels == {"model": f"s3://{BUCKET}/model/m1/out/", "instance": f"s3://{BUCKET}/dataset/dogs/"}
    request = create_request(spec, SETTINGS)
    assert request["HyperParameters"]["task"] == '"dreambooth"' and request["HyperParameters"]["max_train_steps"] == "5"
    assert request["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/train/t1/", "CompressionType": "NONE"}
    assert request["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    job = world.last("TrainJobChanged")
    assert (job["status"], job["sagemaker_job_name"]) == ("Training", "train-t1")


def test_training_waits_for_every_uploaded_file(world):
    world.send(train_request(filenames=["db_config.tar", "data-dog.tar"]), "t1")
    world.s3.put_object(Bucket=BUCKET, Key="train/t1/input/db_config.tar", Body=b"x")
    world.send(TrainJobUpdateRequested(train_job_id="t1", request_id="r1", status="Training"), "t1")
    job = world.last("TrainJobChanged")
    assert job["status"] == "Initialed" and job["rejection"]["reason"] == "files not uploaded yet: data-dog.tar"
    world.s3.put_object(Bucket=BUCKET, Key="train/t1/input/data-dog.tar", Body=b"x")
    world.send(TrainJobUpdateRequested(train_job_id="t1", request_id="r2", status="Training"), "t1")
    [spec] = world.training.started
    assert spec.channels["upload"] == f"s3://{BUCKET}/train/t1/input/"


@pytest.mark.parametrize(("train_type", "checkpoint_type"), [("dreambooth", "Stable-diffusion"), ("lora", "Lora")])
def test_a_finished_job_registers_its_output_as_a_checkpoint(world, train_type, checkpoint_type):
    world.send(train_request(train_type=train_type), "t1")
    world.send(TrainJobUpdateRequested(train_job_id="t1", request_id="r1", status="Training"), "t1")
    output = f"s3://{BUCKET}/train/t1/train-t1/output/model/"
    world.sagemaker_says("train-t1", TrainingState("Completed", "Completed", artifacts=output))
    job = world.last("TrainJobChanged")
    assert job["status"] == "Complete" and job["output_s3_location"] == output
    registration = world.last("CheckpointRegistrationRequested")
    assert registration["checkpoint_id"] == job["checkpoint_id"]
    assert (registration["checkpoint_type"], registration["s3_location"]) == (checkpoint_type, output)
    assert registration["filenames"] == ["my-dog.safetensors"]  # the job's one file, <output_name>.safetensors
    assert registration["params"]["new_model_name"] == "my-dog"


def test_a_repeated_completion_registers_the_same_checkpoint(world):
    world.send(train_request(), "t1")
    world.send(TrainJobUpdateRequested(train_job_id="t1", request_id="r1", status="Training"), "t1")
    done = TrainingState("Completed", "Completed", artifacts=f"s3://{BUCKET}/train/t1/train-t1/output/model/")
    world.sagemaker_says("train-t1", done)
    world.sagemaker_says("train-t1", done)
    ids = {r["data"]["checkpoint_id"] for r in world.publisher.of_type("CheckpointRegistrationRequested")}
    assert len(ids) == 1
    assert [j["data"]["version"] for j in world.publisher.of_type("TrainJobChanged")][-2:] == [3, 3]


def test_a_stopped_job_fails_with_why(world):
    world.send(train_request(), "t1")
    world.send(TrainJobUpdateRequested(train_job_id="t1", request_id="r1", status="Training"), "t1")
    world.sagemaker_says("train-t1", TrainingState("Stopped", "MaxRuntimeExceeded"))
    job = world.last("TrainJobChanged")
    assert job["status"] == "Fail" and "MaxRuntimeExceeded" in job["error"]


def test_the_sweep_finishes_jobs_whose_event_was_missed_and_fails_vanished_ones(world):
    world.send(train_request("t1"), "t1")
    world.send(train_request("t2"), "t2")
    for job_id in ("t1", "t2"):
        world.send(TrainJobUpdateRequested(train_job_id=job_id, request_id="r", status="Training"), job_id)
    world.training.states["train-t1"] = TrainingState("Failed", "Failed", failure_reason="AlgorithmError: oom")
    del world.training.states["train-t2"]
    world.sweep()
    jobs = {e["data"]["id"]: e["data"] for e in world.publisher.of_type("TrainJobChanged")}
    assert (jobs["t1"]["status"], jobs["t1"]["error"]) == ("Fail", "AlgorithmError: oom")
    assert jobs["t2"]["status"] == "Fail" and "no training job train-t2" in jobs["t2"]["error"]


def test_the_sweep_leaves_running_jobs_alone(world):
    world.send(train_request(), "t1")
    world.send(TrainJobUpdateRequested(train_job_id="t1", request_id="r1", status="Training"), "t1")
    before = len(world.publisher.published)
    world.sweep()
    assert len(world.publisher.published) == before


def test_the_sweep_reads_and_asks_about_the_running_jobs_only(world):
    """Finished jobs, however many, cost the sweep nothing: they are not in the table's due index."""
    complete_model(world, "m1")
    done = TrainingState("Completed", "Completed", artifacts=f"s3://{BUCKET}/train/out/")
    for n in range(20):
        world.send(train_request(f"done-{n}"), f"done-{n}")
        world.send(TrainJobUpdateRequested(train_job_id=f"done-{n}", request_id="r", status="Training"), f"done-{n}")
        world.sagemaker_says(train_job_name(f"done-{n}"), done)
    world.send(train_request("running"), "running")
    world.send(TrainJobUpdateRequested(train_job_id="running", request_id="r", status="Training"), "running")
    world.training.described.clear()
    reads_before = world.deps.snapshots.items_read
    world.sweep()
    assert world.training.described == ["train-running"]
    assert world.deps.snapshots.items_read - reads_before == 2  # its entry in the due index, and its row


def test_events_of_other_training_jobs_are_ignored(world):
    world.sagemaker_says("someone-elses-job", TrainingState("Completed", "Completed", artifacts="s3://x/y/"))
    assert world.publisher.published == []


def test_the_checkpoint_id_is_fixed_per_job(world):
    world.send(train_request(), "t1")
    job = world.deps.snapshots.get(TrainJob, "t1")
    assert checkpoint_id_for(job) == checkpoint_id_for(job.model_copy(update={"version": 9}))
    assert train_job_name("t1") == "train-t1"
