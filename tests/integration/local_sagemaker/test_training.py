"""Training jobs on the local SageMaker through an unmodified boto3 ``sagemaker`` client.

moto (in server mode, in-process) stands in for S3, EventBridge and SQS: a rule
on the default bus copies every "SageMaker Training Job State Change" event
into a queue the tests read. Jobs run ``stub_trainer.py``, a test double of
``sd_runtime train`` that does what its ``mode`` hyperparameter says.
"""

from __future__ import annotations

import io
import itertools
import json
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.local.sagemaker.common import Settings
from infra.local.sagemaker.server import create_app
from infra.local.sagemaker.state import LocalSageMaker
from infra.local.sagemaker.training import STATE_CHANGE_DETAIL_TYPE, TrainingJob
from tests.integration.local_sagemaker.servers import ThreadedServer, emulated_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
BUCKET = "training-bucket"
OUTPUT_PATH = f"s3://{BUCKET}/jobs"
STUB_TRAINER = Path(__file__).with_name("stub_trainer.py")
STOP_GRACE_S = 1.0
COMPLETED_STEPS = ["Starting", "Downloading", "Training", "Uploading", "Completed"]


class StateChanges:
    """Every "SageMaker Training Job State Change" event the default bus delivered to a queue."""

    def __init__(self) -> None:
        self._sqs = boto3.client("sqs")
        self._queue_url = self._sqs.create_queue(QueueName="training-events")["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])
        events = boto3.client("events")
        pattern = {"source": ["aws.sagemaker"], "detail-type": [STATE_CHANGE_DETAIL_TYPE]}
        events.put_rule(Name="training-events", EventPattern=json.dumps(pattern))
        events.put_targets(
            Rule="training-events", Targets=[{"Id": "queue", "Arn": queue_arn["Attributes"]["QueueArn"]}]
        )
        self.received: list[dict] = []

    def _drain(self) -> None:
        response = self._sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            self.received.append(json.loads(message["Body"]))
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

    def of(self, job_name: str) -> list[dict]:
        return [e for e in self.received if e["detail"]["TrainingJobName"] == job_name]

    def until(self, job_name: str, status: str, timeout_s: float = 10) -> list[dict]:
        """The job's events, in the order they came, up to the first with TrainingJobStatus ``status``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = self.of(job_name)
            statuses = [e["detail"]["TrainingJobStatus"] for e in events]
            if status in statuses:
                return events[: statuses.index(status) + 1]
            self._drain()
        raise AssertionError(f"no {status} event for {job_name}; got {self.of(job_name)}")


@dataclass
class Stack:
    s3: Any
    events: StateChanges
    workdir: Path

    def put(self, key: str, body: str) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())

    def get(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def keys(self, prefix: str) -> list[str]:
        return sorted(item["Key"] for item in self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with emulated_aws(REGION):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield Stack(s3=s3, events=StateChanges(), workdir=tmp_path_factory.mktemp("training"))


class LocalSageMakerServer:
    """The local SageMaker served by uvicorn in a thread, training with the stub trainer."""

    def __init__(self, workdir: Path, patch: pytest.MonkeyPatch, state_dir: Path | None = None) -> None:
        settings = Settings(
            account=ACCOUNT,
            region=REGION,
            runtime_command=(sys.executable, "-c", "raise SystemExit(1)"),  # no endpoints here
            workdir=workdir,
            train_command=(sys.executable, str(STUB_TRAINER)),
            train_stop_grace_s=STOP_GRACE_S,
            stop_grace_s=STOP_GRACE_S,
            state_dir=state_dir,
        )
        app = create_app(settings)
        self.state: LocalSageMaker = app.state.sagemaker
        self._server = ThreadedServer(app)
        patch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", self._server.url)

    def job(self, name: str) -> TrainingJob:
        return self.state.training.job(name)

    def stop(self) -> None:
        """Stop as uvicorn does on SIGTERM; its shutdown stops every running training job."""
        self._server.stop()


@pytest.fixture(scope="module")
def server(stack: Stack) -> Iterator[LocalSageMakerServer]:
    with pytest.MonkeyPatch.context() as patch:
        local = LocalSageMakerServer(stack.workdir / "sagemaker", patch)
        yield local
        local.stop()


def _sagemaker() -> Any:
    return boto3.client("sagemaker")


def _channel(name: str, uri: str, data_type: str = "S3Prefix") -> dict:
    return {"ChannelName": name, "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": uri}}}


def _request(name: str, hyperparameters: dict[str, str] | None = None, **overrides: Any) -> dict:
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "sd-runtime:local", "TrainingInputMode": "File"},
        "HyperParameters": hyperparameters or {"mode": "complete"},
        "OutputDataConfig": {"S3OutputPath": OUTPUT_PATH},
        "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    request.update(overrides)
    return request


def _train(name: str, hyperparameters: dict[str, str] | None = None, **overrides: Any) -> str:
    return _sagemaker().create_training_job(**_request(name, hyperparameters, **overrides))["TrainingJobArn"]


def _wait_until_done(name: str, timeout_s: float = 20) -> dict:
    sm = _sagemaker()
    deadline = time.monotonic() + timeout_s
    while True:
        described = sm.describe_training_job(TrainingJobName=name)
        if described["TrainingJobStatus"] in ("Completed", "Failed", "Stopped") or time.monotonic() > deadline:
            return described
        time.sleep(0.1)


def _wait_for_secondary(name: str, secondary_status: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while _sagemaker().describe_training_job(TrainingJobName=name)["SecondaryStatus"] != secondary_status:
        assert time.monotonic() < deadline, f"{name} never reached {secondary_status}"
        time.sleep(0.05)


def _tar_members(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read() if m.isfile() else None for m in archive.getmembers()}


def _steps(described: dict) -> list[str]:
    return [transition["Status"] for transition in described["SecondaryStatusTransitions"]]


def _error(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def test_job_runs_on_its_channels_and_uploads_model_tar_gz(server: LocalSageMakerServer, stack: Stack) -> None:
    stack.put("data/instance/a.txt", "image a")
    stack.put("data/instance/sub/b.txt", "image b")
    stack.put("models/base.safetensors", "base weights")
    stack.put("data/class/c.txt", "class c")
    hyperparameters = {"mode": "complete", "learning_rate": "5e-06", "instance_prompt": '"a photo of sks dog"'}
    arn = _train(
        "complete-job",
        hyperparameters,
        InputDataConfig=[
            _channel("instance", f"s3://{BUCKET}/data/instance/"),
            _channel("model", f"s3://{BUCKET}/models/base.safetensors"),  # a prefix that names one object
            _channel("class", f"s3://{BUCKET}/data/class"),  # a folder without its trailing slash
        ],
        Environment={"STUB_GREETING": "hello"},
    )
    assert arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/complete-job"

    described = _wait_until_done("complete-job")
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Completed", "Completed")
    assert "FailureReason" not in described
    artifacts = described["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifacts == f"{OUTPUT_PATH}/complete-job/output/model.tar.gz"
    model = _tar_members(stack.get(artifacts))
    assert set(model) == {"received.json", "unet", "unet/weights.bin"}  # the folder's contents, no leading folder
    assert model["unet/weights.bin"] == b"\x00\x01weights"
    assert json.loads(_tar_members(stack.get(f"{OUTPUT_PATH}/complete-job/output/output.tar.gz"))["metrics.json"]) == {
        "loss": 0.25
    }

    received = json.loads(model["received.json"])
    assert received["hyperparameters"] == hyperparameters
    assert received["channels"] == {
        "instance": {"a.txt": "image a", "sub/b.txt": "image b"},
        "model": {"base.safetensors": "base weights"},
        "class": {"c.txt": "class c"},
    }
    job = server.job("complete-job")
    assert received["environment"] == {
        "SD_RUNTIME_ML_ROOT": str(job.directory),
        "TRAINING_JOB_NAME": "complete-job",
        "TRAINING_JOB_ARN": arn,
        "STUB_GREETING": "hello",
    }
    assert received["cwd"] == str(job.directory)
    assert received["inputdataconfig"]["instance"]["TrainingInputMode"] == "File"
    assert received["resourceconfig"]["current_instance_type"] == "ml.g5.2xlarge"
    assert job.directory.is_relative_to(stack.workdir)
    assert json.loads((job.directory / "input" / "config" / "hyperparameters.json").read_text()) == hyperparameters
    assert "training done" in (job.directory / "log.txt").read_text()


def test_describe_records_transitions_and_times(server: LocalSageMakerServer) -> None:
    _train("timed-job", Tags=[{"Key": "team", "Value": "sd"}])
    described = _wait_until_done("timed-job")

    assert described["TrainingJobStatus"] == "Completed"
    assert _steps(described) == COMPLETED_STEPS
    transitions = described["SecondaryStatusTransitions"]
    assert all(t["StatusMessage"] for t in transitions)
    for previous, following in itertools.pairwise(transitions):
        assert previous["EndTime"] == following["StartTime"]
    assert transitions[-1]["EndTime"] == transitions[-1]["StartTime"]
    created, started, ended = (described[m] for m in ("CreationTime", "TrainingStartTime", "TrainingEndTime"))
    assert created <= started <= ended == described["LastModifiedTime"]
    assert transitions[1]["StartTime"] == started  # billed from Downloading on
    assert described["TrainingTimeInSeconds"] >= 1
    assert described["BillableTimeInSeconds"] == described["TrainingTimeInSeconds"]
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 60}
    assert described["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    assert described["HyperParameters"] == {"mode": "complete"}


def test_state_change_events_arrive_in_order(server: LocalSageMakerServer, stack: Stack) -> None:
    arn = _train("evented-job", Tags=[{"Key": "team", "Value": "sd"}])
    described = _wait_until_done("evented-job")

    events = stack.events.until("evented-job", "Completed")
    assert [(e["detail"]["TrainingJobStatus"], e["detail"]["SecondaryStatus"]) for e in events] == [
        ("InProgress", "Starting"),
        ("InProgress", "Downloading"),
        ("InProgress", "Training"),
        ("InProgress", "Uploading"),
        ("Completed", "Completed"),
    ]
    assert all(e["source"] == "aws.sagemaker" and e["resources"] == [arn] for e in events)
    assert {e["detail-type"] for e in events} == {"SageMaker Training Job State Change"}
    detail = events[-1]["detail"]
    assert detail["TrainingJobArn"] == arn
    assert detail["HyperParameters"] == {"mode": "complete"}
    assert detail["ModelArtifacts"] == described["ModelArtifacts"]
    assert detail["OutputDataConfig"] == {"S3OutputPath": OUTPUT_PATH}
    assert detail["Tags"] == {"team": "sd"}
    assert abs(detail["CreationTime"] - described["CreationTime"].timestamp() * 1000) <= 1  # epoch millis
    assert detail["TrainingEndTime"] >= detail["TrainingStartTime"] >= detail["CreationTime"] > 1e12
    assert [t["Status"] for t in detail["SecondaryStatusTransitions"]] == COMPLETED_STEPS
    assert "FailureReason" not in detail


def test_compression_none_puts_the_files_under_output_model(server: LocalSageMakerServer, stack: Stack) -> None:
    _train("uncompressed-job", OutputDataConfig={"S3OutputPath": OUTPUT_PATH + "/", "CompressionType": "NONE"})
    described = _wait_until_done("uncompressed-job")

    assert described["TrainingJobStatus"] == "Completed"
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == f"{OUTPUT_PATH}/uncompressed-job/output/model/"
    assert stack.keys("jobs/uncompressed-job/") == [
        "jobs/uncompressed-job/output/model/received.json",
        "jobs/uncompressed-job/output/model/unet/weights.bin",
        "jobs/uncompressed-job/output/output.tar.gz",
    ]
    assert stack.get(f"{OUTPUT_PATH}/uncompressed-job/output/model/unet/weights.bin") == b"\x00\x01weights"


def test_failing_trainer_reports_its_failure_file(server: LocalSageMakerServer, stack: Stack) -> None:
    long_message = "x" * 2400  # within a hyperparameter's 2500, past FailureReason's 1024
    _train("failing-job", {"mode": "fail", "message": "CUDA out of memory"})
    _train("verbose-failing-job", {"mode": "fail", "message": long_message})
    described = _wait_until_done("failing-job")
    verbose = _wait_until_done("verbose-failing-job")

    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Failed", "Failed")
    assert described["FailureReason"] == "AlgorithmError: CUDA out of memory"
    assert "ModelArtifacts" not in described
    assert _steps(described) == ["Starting", "Downloading", "Training", "Failed"]
    assert verbose["FailureReason"] == ("AlgorithmError: " + long_message)[:1024]
    failed = stack.events.until("failing-job", "Failed")[-1]["detail"]
    assert (failed["SecondaryStatus"], failed["FailureReason"]) == ("Failed", "AlgorithmError: CUDA out of memory")
    assert stack.keys("jobs/failing-job/") == []


def test_exit_without_failure_file_names_the_code_and_the_log(server: LocalSageMakerServer) -> None:
    _train("crashing-job", {"mode": "crash"})
    described = _wait_until_done("crashing-job")

    assert described["TrainingJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert reason.startswith("AlgorithmError: ")
    assert "exited with code 3" in reason
    assert reason.endswith("crash log line 29")
    assert str(server.job("crashing-job").directory) not in reason and "log.txt" not in reason
    assert len(reason) <= 1024


def test_channel_that_cannot_be_downloaded_fails_the_job(server: LocalSageMakerServer, stack: Stack) -> None:
    missing = f"s3://{BUCKET}/data/missing/"
    _train("missing-data-job", InputDataConfig=[_channel("instance", missing)])
    described = _wait_until_done("missing-data-job")

    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Failed", "Failed")
    assert described["FailureReason"].startswith("ClientError: ")
    assert f'"{missing}"' in described["FailureReason"]
    assert _steps(described) == ["Starting", "Downloading", "Failed"]
    assert not (server.job("missing-data-job").directory / "log.txt").exists()  # the trainer never ran
    assert "ClientError" in stack.events.until("missing-data-job", "Failed")[-1]["detail"]["FailureReason"]


def test_stop_training_job_stops_the_process_and_keeps_what_it_saved(
    server: LocalSageMakerServer, stack: Stack
) -> None:
    sm = _sagemaker()
    _train("stopped-job", {"mode": "sleep"})
    _wait_for_secondary("stopped-job", "Training")
    job = server.job("stopped-job")
    deadline = time.monotonic() + 10
    while not (job.directory / "model" / "partial.txt").exists():  # its SIGTERM handler is in place
        assert time.monotonic() < deadline
        time.sleep(0.05)

    sm.stop_training_job(TrainingJobName="stopped-job")
    stopping = sm.describe_training_job(TrainingJobName="stopped-job")
    assert (stopping["TrainingJobStatus"], stopping["SecondaryStatus"]) in {
        ("Stopping", "Stopping"),
        ("Stopped", "Stopped"),
    }
    described = _wait_until_done("stopped-job")

    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert _steps(described) == ["Starting", "Downloading", "Training", "Stopping", "Stopped"]
    assert job.process is not None and job.process.returncode == 0  # it saved, then exited on SIGTERM
    model = _tar_members(stack.get(described["ModelArtifacts"]["S3ModelArtifacts"]))
    assert set(model) == {"partial.txt", "saved-on-sigterm.txt"}
    events = stack.events.until("stopped-job", "Stopped")
    assert [e["detail"]["TrainingJobStatus"] for e in events][-2:] == ["Stopping", "Stopped"]

    with pytest.raises(ClientError) as raised:
        sm.stop_training_job(TrainingJobName="stopped-job")
    assert _error(raised) == (
        "ValidationException",
        "The request was rejected because the training job is in status Stopped.",
    )


def test_max_runtime_stops_the_job_as_max_runtime_exceeded(server: LocalSageMakerServer, stack: Stack) -> None:
    _train("overtime-job", {"mode": "stubborn"}, StoppingCondition={"MaxRuntimeInSeconds": 2})
    described = _wait_until_done("overtime-job")

    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert _steps(described) == ["Starting", "Downloading", "Training", "Stopping", "MaxRuntimeExceeded"]
    assert "FailureReason" not in described
    process = server.job("overtime-job").process
    assert process is not None and process.returncode == -9  # it ignored SIGTERM, so the grace ended in SIGKILL
    assert set(_tar_members(stack.get(described["ModelArtifacts"]["S3ModelArtifacts"]))) == {"partial.txt"}
    last = stack.events.until("overtime-job", "Stopped")[-1]["detail"]
    assert last["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_requests_are_validated_as_sagemaker_does(server: LocalSageMakerServer) -> None:
    sm = _sagemaker()
    arn = _train("unique-job")

    with pytest.raises(ClientError) as raised:
        _train("Unique-Job")
    assert _error(raised) == (
        "ResourceInUse",
        "Training job names must be unique within an AWS account and region, and a training job with this name "
        f"already exists ({arn})",
    )
    refused: list[tuple[dict, str, str]] = [
        ({"TrainingJobName": "bad_name"}, "ValidationException", "at 'trainingJobName'"),
        ({"ResourceConfig": {"InstanceType": "ml.warp.huge", "InstanceCount": 1}}, "ValidationException", "ml.warp"),
        ({"ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2}}, "ResourceLimitExceeded", "2"),
        ({"StoppingCondition": {}}, "ValidationException", "at 'stoppingCondition.maxRuntimeInSeconds'"),
        ({"OutputDataConfig": {"S3OutputPath": "bucket/path"}}, "ValidationException", "outputDataConfig"),
        ({"HyperParameters": {"prompt": "p" * 2501}}, "ValidationException", "hyperParameters.prompt"),
        (
            {"InputDataConfig": [_channel("model", f"s3://{BUCKET}/models/base.safetensors", "S3Object")]},
            "ValidationException",
            "s3DataType",
        ),
        (
            {"InputDataConfig": [_channel("list", f"s3://{BUCKET}/manifest.json", "ManifestFile")]},
            "ValidationException",
            "S3Prefix only",
        ),
    ]
    for index, (overrides, code, part) in enumerate(refused):
        request = _request(f"refused-{index}") | overrides
        with pytest.raises(ClientError) as raised:
            sm.create_training_job(**request)
        assert _error(raised)[0] == code, overrides
        assert part in _error(raised)[1], overrides
    assert not [s for s in sm.list_training_jobs()["TrainingJobSummaries"] if "refused" in s["TrainingJobName"]]

    for call in (sm.describe_training_job, sm.stop_training_job):
        with pytest.raises(ClientError) as raised:
            call(TrainingJobName="no-such-job")
        assert _error(raised) == ("ValidationException", "Requested resource not found.")


def test_list_training_jobs_filters_sorts_and_pages(server: LocalSageMakerServer) -> None:
    sm = _sagemaker()
    before = time.time()
    names = [f"listed-{uuid.uuid4().hex[:6]}-{index}" for index in range(3)]
    for name in names:
        _train(name)
    _train("listed-failing", {"mode": "fail", "message": "no"})
    for name in [*names, "listed-failing"]:
        _wait_until_done(name)

    pages = sm.get_paginator("list_training_jobs").paginate(
        NameContains="LISTED-", StatusEquals="Completed", SortBy="Name", SortOrder="Ascending",
        PaginationConfig={"PageSize": 2},
    )  # fmt: skip
    page_sizes_and_names = [[s["TrainingJobName"] for s in page["TrainingJobSummaries"]] for page in pages]
    assert [len(page) for page in page_sizes_and_names] == [2, 1]
    assert [name for page in page_sizes_and_names for name in page] == sorted(names)

    failed = sm.list_training_jobs(StatusEquals="Failed", NameContains="listed")["TrainingJobSummaries"]
    assert [(s["TrainingJobName"], s["SecondaryStatus"]) for s in failed] == [("listed-failing", "Failed")]
    assert failed[0]["TrainingEndTime"] >= failed[0]["CreationTime"]

    newest_first = sm.list_training_jobs(NameContains="listed", CreationTimeAfter=before)["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in newest_first] == ["listed-failing", *reversed(names)]
    assert sm.list_training_jobs(NameContains="listed", CreationTimeBefore=before)["TrainingJobSummaries"] == []


def test_server_shutdown_stops_running_jobs(stack: Stack) -> None:
    with pytest.MonkeyPatch.context() as patch:
        local = LocalSageMakerServer(stack.workdir / "shutdown-sagemaker", patch)
        try:
            _train("shutdown-job", {"mode": "stubborn"})
            _wait_for_secondary("shutdown-job", "Training")
        finally:
            local.stop()

    job = local.job("shutdown-job")
    assert (job.status, job.secondary_status) == ("Stopped", "Stopped")
    assert job.process is not None and job.process.poll() is not None
    events = stack.events.until("shutdown-job", "Stopped")
    assert [e["detail"]["TrainingJobStatus"] for e in events][-2:] == ["Stopping", "Stopped"]


def test_job_running_when_the_server_stopped_ends_failed_when_it_starts_again(stack: Stack) -> None:
    state_dir = stack.workdir / "kept-state"
    with pytest.MonkeyPatch.context() as patch:
        before = LocalSageMakerServer(stack.workdir / "restart-sagemaker", patch, state_dir)
        try:
            _train("finished-before-restart")
            assert _wait_until_done("finished-before-restart")["TrainingJobStatus"] == "Completed"
            _train("interrupted-job", {"mode": "sleep"})
            _wait_for_secondary("interrupted-job", "Training")
        finally:
            before.stop()  # as `make down` stops it
        assert before.job("interrupted-job").process.poll() is not None
        assert before.job("interrupted-job").status == "InProgress"  # kept as it was, not ended Stopped

        after = LocalSageMakerServer(stack.workdir / "restart-sagemaker", patch, state_dir)
        try:
            described = _sagemaker().describe_training_job(TrainingJobName="interrupted-job")
            finished = _sagemaker().describe_training_job(TrainingJobName="finished-before-restart")
        finally:
            after.stop()

    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Failed", "Failed")
    assert described["FailureReason"] == (
        "InternalServerError: The local stack was stopped while the job ran. Create it again to train."
    )
    assert _steps(described) == ["Starting", "Downloading", "Training", "Failed"]
    events = stack.events.until("interrupted-job", "Failed")
    assert [e["detail"]["TrainingJobStatus"] for e in events] == ["InProgress"] * 3 + ["Failed"]
    assert events[-1]["detail"]["FailureReason"] == described["FailureReason"]
    assert finished["TrainingJobStatus"] == "Completed"
    assert finished["ModelArtifacts"]["S3ModelArtifacts"].endswith("/finished-before-restart/output/model.tar.gz")
