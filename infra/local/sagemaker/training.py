"""Training jobs on the local SageMaker: what CreateTrainingJob starts, run as local processes.

Each job has a thread of its own that does what SageMaker does on a training
instance, in a directory of its own under the workdir laid out as the
container's ``/opt/ml`` (the process finds it in ``SD_RUNTIME_ML_ROOT``):

1. Starting: writes ``input/config/{hyperparameters,inputdataconfig,resourceconfig}.json``
   and makes ``input/data/``, ``model/``, ``output/data/`` and ``checkpoints/``;
2. Downloading: copies each channel from S3 into ``input/data/<channel>/``;
3. Training: runs the training command (by default ``python -m sd_runtime
   train``) with the job's ``Environment``, its output in ``log.txt`` and, as
   on SageMaker, in CloudWatch Logs (``/aws/sagemaker/TrainingJobs``, stream
   ``<job>/algo-1-<epoch>``; see ``log_shipping.py``);
4. Uploading: puts ``model/`` in S3 as ``<S3OutputPath>/<job>/output/model.tar.gz``
   (or the files themselves under ``output/model/`` with ``CompressionType:
   NONE``), and a non-empty ``output/data/`` as ``output.tar.gz`` beside it.

A job ends Completed, Failed (a non-zero exit, with ``output/failure`` as
``AlgorithmError: ...``, or a channel that cannot be read, as ``ClientError:
...``), or Stopped: on StopTrainingJob, and at ``MaxRuntimeInSeconds`` with
SecondaryStatus ``MaxRuntimeExceeded``, as AWS documents. Stopping sends
SIGTERM, then SIGKILL after a grace (SageMaker's is 120 seconds); what the
process saved in ``model/`` by then is uploaded. Every change of
TrainingJobStatus or SecondaryStatus puts a "SageMaker Training Job State
Change" event on the default bus, its detail shaped like DescribeTrainingJob's
answer with times in epoch milliseconds.

When the server stops, running jobs are stopped and end Stopped; when it keeps
its state (``persistence.py``) they are kept as they were instead, and end
Failed when it starts again: their processes are gone and cannot go on.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shlex
import signal
import subprocess
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.local.sagemaker.common import (
    ApiError,
    EventPublisher,
    Settings,
    epoch_millis,
    validation_error,
    without_local_paths,
)
from infra.local.sagemaker.instances import exit_cause
from infra.local.sagemaker.log_shipping import TRAINING_LOG_GROUP, LogShipper, training_log_stream
from sdmw_contracts.s3 import split_s3_uri

log = logging.getLogger(__name__)

STATE_CHANGE_DETAIL_TYPE = "SageMaker Training Job State Change"
ML_ROOT_VARIABLE = "SD_RUNTIME_ML_ROOT"  # where the runtime finds /opt/ml; it defaults to /opt/ml
POLL_S = 0.1
MAX_FAILURE_REASON = 1024  # SageMaker reports the first 1024 characters of output/failure
LOG_TAIL_LINES = 20
HOST = "algo-1"  # SageMaker's name for a job's first (here only) instance
TERMINAL = ("Completed", "Failed", "Stopped")
INTERRUPTED_REASON = "InternalServerError: The local stack was stopped while the job ran. Create it again to train."

# The StatusMessage SageMaker records with each secondary status.
STATUS_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job stopped: it ran longer than MaxRuntimeInSeconds",
}


@functools.cache
def training_instance_types() -> frozenset[str]:
    """The instance types SageMaker training accepts, as botocore's service model lists them."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for("TrainingInstanceType").enum)


@dataclass
class Transition:
    """One entry of SecondaryStatusTransitions."""

    status: str
    start_time: float
    message: str
    end_time: float | None = None

    def describe(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"Status": self.status, "StartTime": self.start_time, "StatusMessage": self.message}
        if self.end_time is not None:
            answer["EndTime"] = self.end_time
        return answer


@dataclass
class TrainingJob:
    """A training job: what was asked for (``spec``, the request less name and tags) and how far it got."""

    name: str
    arn: str
    spec: dict[str, Any]
    tags: dict[str, str]
    creation_time: float
    directory: Path  # the job's /opt/ml
    status: str = "InProgress"
    secondary_status: str = "Starting"
    failure_reason: str | None = None
    last_modified_time: float = 0.0
    training_start_time: float | None = None
    training_end_time: float | None = None
    model_artifacts: str | None = None
    transitions: list[Transition] = field(default_factory=list)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    stop_cause: str = "Stopped"  # the SecondaryStatus a stopped job ends with
    process: subprocess.Popen | None = field(default=None, repr=False)
    thread: threading.Thread | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "log.txt"

    @property
    def output_prefix(self) -> str:
        """Where SageMaker puts this job's output: ``<S3OutputPath>/<job name>/output``."""
        return f"{self.spec['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{self.name}/output"

    def describe(self) -> dict[str, Any]:
        """DescribeTrainingJob's answer (epoch seconds); the caller holds the lock."""
        answer: dict[str, Any] = {
            **self.spec,
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary_status,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified_time,
            "SecondaryStatusTransitions": [transition.describe() for transition in self.transitions],
        }
        if self.failure_reason:
            answer["FailureReason"] = self.failure_reason
        if self.model_artifacts:
            answer["ModelArtifacts"] = {"S3ModelArtifacts": self.model_artifacts}
        if self.training_start_time is not None:
            answer["TrainingStartTime"] = self.training_start_time
        if self.training_start_time is not None and self.training_end_time is not None:
            answer["TrainingEndTime"] = self.training_end_time
            seconds = max(1, round(self.training_end_time - self.training_start_time))
            answer["TrainingTimeInSeconds"] = seconds
            answer["BillableTimeInSeconds"] = seconds  # one instance, not spot
        return answer

    def summary(self) -> dict[str, Any]:
        """ListTrainingJobs' TrainingJobSummary; the caller holds the lock."""
        summary: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified_time,
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary_status,
        }
        if self.training_end_time is not None:
            summary["TrainingEndTime"] = self.training_end_time
        return summary


def state_change_detail(job: TrainingJob) -> dict[str, Any]:
    """The event's detail: DescribeTrainingJob's answer with times in epoch millis, plus Tags, as AWS sends it."""
    detail = job.describe()
    for member in ("CreationTime", "LastModifiedTime", "TrainingStartTime", "TrainingEndTime"):
        if member in detail:
            detail[member] = epoch_millis(detail[member])
    for transition in detail["SecondaryStatusTransitions"]:
        for member in ("StartTime", "EndTime"):
            if member in transition:
                transition[member] = epoch_millis(transition[member])
    detail["Tags"] = dict(job.tags)
    return detail


class TrainingJobs:
    """The training jobs the local SageMaker knows, and their lifecycle (one thread per job)."""

    def __init__(
        self,
        settings: Settings,
        events: EventPublisher,
        arn: Callable[[str, str], str],
        logs: LogShipper | None = None,
    ) -> None:
        self.settings = settings
        self._events = events
        self._arn = arn
        self._logs = logs
        self.lock = threading.RLock()
        self._jobs: dict[str, TrainingJob] = {}
        self._closing = threading.Event()
        self._frozen = False  # the server stops and keeps its jobs: no status changes any more

    def create(self, name: str, spec: dict[str, Any], tags: dict[str, str]) -> TrainingJob:
        with self.lock:
            arn = self._arn("training-job", name)
            if name.lower() in self._jobs:
                raise ApiError(
                    "ResourceInUse",
                    "Training job names must be unique within an AWS account and region, and a training job "
                    f"with this name already exists ({arn})",
                )
            now = time.time()
            directory = self.settings.workdir / "training-jobs" / f"{name}-{int(now * 1000)}"
            job = TrainingJob(name=name, arn=arn, spec=spec, tags=tags, creation_time=now, directory=directory)
            self._jobs[name.lower()] = job
            self._set(job, "InProgress", "Starting")
            job.thread = threading.Thread(target=self._run, args=(job,), name=f"training-{name}", daemon=True)
            job.thread.start()
            return job

    def job(self, name: str) -> TrainingJob:
        with self.lock:
            job = self._jobs.get(name.lower())
        if job is None:
            raise validation_error("Requested resource not found.")
        return job

    def describe(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self.job(name).describe()

    def summaries(self) -> list[dict[str, Any]]:
        with self.lock:
            return [job.summary() for job in self._jobs.values()]

    def stop(self, name: str) -> None:
        """StopTrainingJob: Stopping now, Stopped once the process has gone and its model is uploaded."""
        with self.lock:
            job = self.job(name)
            if job.status == "Stopping":
                return
            if job.status != "InProgress":
                raise validation_error(f"The request was rejected because the training job is in status {job.status}.")
            self._request_stop(job, "Stopped")

    def stop_all(self, keep: bool = False) -> None:
        """Stop every running job, without waiting (``join`` waits); called when the server stops.

        They end Stopped, nothing uploaded; with ``keep`` they end nowhere and stay as they
        are, to be saved and ended by ``restore`` when the server starts again.
        """
        self._closing.set()
        with self.lock:
            self._frozen = keep
            for job in self._jobs.values():
                if keep and job.status not in TERMINAL:
                    job.stop_requested.set()  # its thread stops the process; the job stays as it is
                elif not keep and job.status == "InProgress":
                    self._request_stop(job, "Stopped")

    def join(self) -> None:
        with self.lock:
            threads = [job.thread for job in self._jobs.values() if job.thread is not None]
        for thread in threads:
            thread.join(self.settings.stop_grace_s + 30)

    def jobs(self) -> list[TrainingJob]:
        with self.lock:
            return list(self._jobs.values())

    def restore(self, jobs: list[TrainingJob]) -> None:
        """Put back the jobs a previous server knew; end those it left running, with the usual event."""
        with self.lock:
            for job in jobs:
                self._jobs[job.name.lower()] = job
                if job.status == "InProgress":
                    self._set(job, "Failed", "Failed", INTERRUPTED_REASON)
                elif job.status == "Stopping":
                    self._set(job, "Stopped", job.stop_cause)  # it was asked to stop, and it did

    # Lifecycle (one thread per job)

    def _run(self, job: TrainingJob) -> None:
        try:
            self._work(job)
        except Exception as error:  # a bug here must not leave the job InProgress forever
            log.exception("training job %s failed inside the local SageMaker", job.name)
            self._end(job, "Failed", "Failed", f"InternalServerError: {_in_words(job, str(error))}")

    def _work(self, job: TrainingJob) -> None:
        s3 = self._s3()
        self._prepare(job)
        reason = self._download(job, s3) or self._train(job)
        if reason is None and self._advance(job, "Uploading"):
            reason = self._upload(job, s3)
        elif reason is None and job.process is not None and not self._closing.is_set():
            # Stopped: as in SageMaker, what the algorithm saved before it stopped is kept.
            self._keep_what_was_saved(job, s3)
        if reason is not None:
            self._end(job, "Failed", "Failed", reason)
        elif job.stop_requested.is_set():
            self._end(job, "Stopped", job.stop_cause)
        else:
            self._end(job, "Completed", "Completed")

    def _keep_what_was_saved(self, job: TrainingJob, s3: Any) -> None:
        # A stopped job stays Stopped even when this fails.
        if (failure := self._upload(job, s3)) is not None:
            log.warning("training job %s was stopped and its model not kept: %s", job.name, failure)

    def _s3(self) -> Any:
        # From the standard AWS_ENDPOINT_URL(_S3) variables, as the async inference plane does.
        config = Config(retries={"mode": "standard", "max_attempts": 5})
        return boto3.session.Session().client("s3", region_name=self.settings.region, config=config)

    def _prepare(self, job: TrainingJob) -> None:
        """Lay the job's directory out as the container's /opt/ml."""
        config = job.directory / "input" / "config"
        for directory in (
            config,
            job.directory / "input" / "data",
            job.directory / "model",
            job.directory / "output" / "data",
            job.directory / "checkpoints",
        ):
            directory.mkdir(parents=True, exist_ok=True)
        files = {
            "hyperparameters.json": job.spec.get("HyperParameters") or {},
            "inputdataconfig.json": _input_data_config(job.spec),
            "resourceconfig.json": _resource_config(job.spec["ResourceConfig"]),
        }
        for filename, content in files.items():
            (config / filename).write_text(json.dumps(content, indent=2), encoding="utf-8")

    def _download(self, job: TrainingJob, s3: Any) -> str | None:
        if not self._advance(job, "Downloading"):
            return None
        for channel in job.spec.get("InputDataConfig") or []:
            target = job.directory / "input" / "data" / channel["ChannelName"]
            target.mkdir(parents=True, exist_ok=True)
            reason = self._download_channel(job, s3, channel["DataSource"]["S3DataSource"]["S3Uri"], target)
            if reason is not None or job.stop_requested.is_set():
                return reason
        return None

    def _download_channel(self, job: TrainingJob, s3: Any, uri: str, target: Path) -> str | None:
        """S3Prefix: every object whose key starts with the URI's key, as SageMaker matches it."""
        bucket, prefix = split_s3_uri(uri)
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            keys = [item["Key"] for page in pages for item in page.get("Contents", []) if not item["Key"].endswith("/")]
        except (BotoCoreError, ClientError) as error:
            return f"ClientError: Data download failed: could not list {uri}: {error}"
        if not keys:
            return (
                f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure '
                f"that the bucket exists in the selected region ({self.settings.region}), that objects exist under "
                f'that S3 prefix, and that the role "{job.spec["RoleArn"]}" has "s3:ListBucket" permissions on '
                f'bucket "{bucket}".'
            )
        for key in keys:
            if job.stop_requested.is_set():
                return None
            destination = target / _relative_path(prefix, key)
            if not destination.resolve().is_relative_to(target.resolve()):
                return f"ClientError: Data download failed: s3://{bucket}/{key} names a path outside its channel."
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                s3.download_file(bucket, key, str(destination))
            except (BotoCoreError, ClientError) as error:
                return f"ClientError: Data download failed: could not download s3://{bucket}/{key}: {error}"
        return None

    def _train(self, job: TrainingJob) -> str | None:
        """Run the training process to its end; returns why the job failed, or None."""
        if not self._advance(job, "Training"):
            return None
        command = self.settings.train_command
        try:
            job.process = _start_process(job, command)
        except OSError as error:
            log.error("training job %s: could not start %s: %s", job.name, shlex.join(command), error)
            return f"AlgorithmError: could not start the training container: {_in_words(job, str(error))}"
        if self._logs is not None:
            process = job.process
            stream = training_log_stream(job.name, time.time())
            self._logs.follow(job.log_path, TRAINING_LOG_GROUP, stream, finished=lambda: process.poll() is not None)
        code = self._wait(job, job.process)
        if job.stop_requested.is_set() or code == 0:
            return None
        return _algorithm_error(job, code)

    def _wait(self, job: TrainingJob, process: subprocess.Popen) -> int:
        """Wait for the process; stop it on StopTrainingJob, at MaxRuntimeInSeconds, or at shutdown."""
        started = job.training_start_time or time.time()
        deadline = started + job.spec["StoppingCondition"]["MaxRuntimeInSeconds"]
        while process.poll() is None:
            if job.stop_requested.wait(POLL_S):
                self._terminate(process)
            elif time.time() >= deadline:
                with self.lock:
                    if job.status == "InProgress":
                        log.info("training job %s ran past MaxRuntimeInSeconds", job.name)
                        self._request_stop(job, "MaxRuntimeExceeded")
        return process.wait()

    def _terminate(self, process: subprocess.Popen) -> None:
        """SIGTERM, as SageMaker sends, then SIGKILL once the grace is over (a shorter one at shutdown)."""
        _signal(process, signal.SIGTERM)
        sent = time.monotonic()
        while process.poll() is None:
            grace = self.settings.stop_grace_s if self._closing.is_set() else self.settings.train_stop_grace_s
            if time.monotonic() - sent >= grace:
                _signal(process, signal.SIGKILL)
                process.wait()
                return
            time.sleep(POLL_S)

    def _upload(self, job: TrainingJob, s3: Any) -> str | None:
        """Put model/ (and a non-empty output/data/) in S3; returns why that failed, or None."""
        try:
            artifacts = self._upload_model(job, s3)
            with self.lock:
                job.model_artifacts = artifacts
            data = job.directory / "output" / "data"
            if any(path.is_file() for path in data.rglob("*")):
                self._upload_tarball(s3, data, job.directory / "output.tar.gz", f"{job.output_prefix}/output.tar.gz")
        except (BotoCoreError, ClientError, OSError) as error:
            return f"ClientError: could not upload the output to {job.output_prefix}/: {_in_words(job, str(error))}"
        return None

    def _upload_model(self, job: TrainingJob, s3: Any) -> str:
        model = job.directory / "model"
        if job.spec["OutputDataConfig"].get("CompressionType") == "NONE":
            destination = f"{job.output_prefix}/model/"
            bucket, prefix = split_s3_uri(destination)
            for path in sorted(p for p in model.rglob("*") if p.is_file()):
                s3.upload_file(str(path), bucket, prefix + path.relative_to(model).as_posix())
            return destination
        destination = f"{job.output_prefix}/model.tar.gz"
        self._upload_tarball(s3, model, job.directory / "model.tar.gz", destination)
        return destination

    @staticmethod
    def _upload_tarball(s3: Any, source: Path, tarball: Path, destination: str) -> None:
        """A gzipped tar of the directory's contents (no leading folder), as SageMaker makes it."""
        with tarfile.open(tarball, "w:gz") as archive:
            for child in sorted(source.iterdir()):
                archive.add(child, arcname=child.name)
        bucket, key = split_s3_uri(destination)
        s3.upload_file(str(tarball), bucket, key)

    # Status changes

    def _request_stop(self, job: TrainingJob, cause: str) -> None:
        """Under the lock: Stopping now; the job's thread stops the process and ends it Stopped with ``cause``."""
        job.stop_cause = cause
        job.stop_requested.set()
        self._set(job, "Stopping", "Stopping")

    def _advance(self, job: TrainingJob, secondary_status: str) -> bool:
        """Move an InProgress job on to ``secondary_status``, unless a stop came first."""
        with self.lock:
            if job.status != "InProgress" or job.stop_requested.is_set():
                return False
            self._set(job, "InProgress", secondary_status)
            return True

    def _end(self, job: TrainingJob, status: str, secondary_status: str, reason: str | None = None) -> None:
        with self.lock:
            if job.status not in TERMINAL:
                self._set(job, status, secondary_status, reason)

    def _set(self, job: TrainingJob, status: str, secondary_status: str, reason: str | None = None) -> None:
        if self._frozen:
            return  # the job is kept as it was when the server began to stop
        now = time.time()
        if job.transitions:
            job.transitions[-1].end_time = now
        transition = Transition(secondary_status, now, STATUS_MESSAGES.get(secondary_status, secondary_status))
        if secondary_status == "Downloading":
            job.training_start_time = now  # the instance is ready: billed from here on
        if status in TERMINAL:
            transition.end_time = job.training_end_time = now
        job.transitions.append(transition)
        job.status, job.secondary_status = status, secondary_status
        job.failure_reason = reason or job.failure_reason
        job.last_modified_time = now
        log.info("training job %s is %s (%s)%s", job.name, status, secondary_status, f": {reason}" if reason else "")
        self._publish_state_change(job)

    def _publish_state_change(self, job: TrainingJob) -> None:
        self._events.publish(
            {
                "Source": "aws.sagemaker",
                "DetailType": STATE_CHANGE_DETAIL_TYPE,
                "Detail": json.dumps(state_change_detail(job)),
                "Resources": [job.arn],
                "Time": datetime.fromtimestamp(job.last_modified_time, UTC),
            }
        )


# The /opt/ml contract


def _input_data_config(spec: dict[str, Any]) -> dict[str, Any]:
    """inputdataconfig.json: each channel's settings, as SageMaker writes them."""
    default_mode = spec["AlgorithmSpecification"].get("TrainingInputMode", "File")
    config = {}
    for channel in spec.get("InputDataConfig") or []:
        source = channel["DataSource"]["S3DataSource"]
        entry = {
            "TrainingInputMode": channel.get("InputMode", default_mode),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            entry["ContentType"] = channel["ContentType"]
        config[channel["ChannelName"]] = entry
    return config


def _resource_config(resources: dict[str, Any]) -> dict[str, Any]:
    """resourceconfig.json for the one instance a local job runs on."""
    return {
        "current_host": HOST,
        "current_instance_type": resources["InstanceType"],
        "current_group_name": "homogeneousCluster",
        "hosts": [HOST],
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": resources["InstanceType"], "hosts": [HOST]}
        ],
        "network_interface_name": "eth0",
    }


def _relative_path(prefix: str, key: str) -> str:
    """Where an object lands in its channel: its path below the prefix's folder.

    ``data/train`` and ``data/train/`` both put ``data/train/a.png`` at ``a.png``;
    a prefix that names one object (``data/base.safetensors``) puts it at its name.
    """
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    if prefix.endswith("/") or key[len(prefix)] == "/":
        return key[len(prefix) :].lstrip("/")
    folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return key[len(folder) :]


def _start_process(job: TrainingJob, command: tuple[str, ...]) -> subprocess.Popen:
    """The training container: the job's Environment, SD_RUNTIME_ML_ROOT, and what SageMaker sets itself."""
    environment = {
        **os.environ,
        **(job.spec.get("Environment") or {}),
        ML_ROOT_VARIABLE: str(job.directory),
        "TRAINING_JOB_NAME": job.name,
        "TRAINING_JOB_ARN": job.arn,
    }
    with job.log_path.open("ab") as log_file:
        # A session of its own: a Ctrl-C meant for the server does not reach it, and a
        # stop reaches every process it started.
        return subprocess.Popen(
            list(command),
            cwd=job.directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _signal(process: subprocess.Popen, signum: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)


def _algorithm_error(job: TrainingJob, code: int) -> str:
    """FailureReason for a non-zero exit: output/failure as SageMaker reports it, else the end of the log."""
    failure = job.directory / "output" / "failure"
    if failure.is_file():
        message = failure.read_text(encoding="utf-8", errors="replace").rstrip()
        return f"AlgorithmError: {_in_words(job, message)}"[:MAX_FAILURE_REASON]
    head = f"AlgorithmError: See job logs for more information. The training process {exit_cause(code)}."
    tail = _in_words(job, _log_tail(job.log_path))
    if not tail:
        return head[:MAX_FAILURE_REASON]
    log.info("training job %s: its log is %s", job.name, job.log_path)
    head += " Last lines of its log:\n"
    room = max(0, MAX_FAILURE_REASON - len(head))
    return (head + tail[-room:] if room else head)[:MAX_FAILURE_REASON]


def _in_words(job: TrainingJob, text: str) -> str:
    """What the job's process or the OS said, for FailureReason: the job's directory is the
    container's /opt/ml, as on SageMaker, and no other path of this machine shows."""
    return without_local_paths(text.replace(str(job.directory), "/opt/ml"))


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as log_file:
            return "".join(deque(log_file, maxlen=lines)).strip()
    except OSError:
        return ""
