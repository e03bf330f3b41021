"""Containers' output reaches CloudWatch Logs (moto's) as SageMaker ships it: a training job's to
``/aws/sagemaker/TrainingJobs``, stream ``<job>/algo-1-<epoch>``."""

from __future__ import annotations

import re
import time
from pathlib import Path

import boto3

from infra.local.sagemaker.log_shipping import LogShipper, endpoint_log_group
from tests.integration.local_sagemaker.servers import emulated_aws
from tests.integration.local_sagemaker.test_training import (  # noqa: F401 - pytest fixtures
    REGION,
    _train,
    _wait_until_done,
    server,
    stack,
)


def messages(group: str, stream_prefix: str, timeout_s: float = 10, wanted: int = 1) -> tuple[list[str], list[str]]:
    """The stream names under the prefix and their lines, once at least ``wanted`` lines are there."""
    logs = boto3.client("logs")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=stream_prefix)["logStreams"]
        except logs.exceptions.ResourceNotFoundException:
            streams = []
        names = [s["logStreamName"] for s in streams]
        lines = [
            event["message"]
            for name in names
            for event in logs.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True)["events"]
        ]
        if len(lines) >= wanted or time.monotonic() > deadline:
            return names, lines
        time.sleep(0.2)


def test_a_training_jobs_output_is_in_its_stream(server, stack):  # noqa: F811
    _train("shipped-crash", {"mode": "crash"})
    assert _wait_until_done("shipped-crash")["TrainingJobStatus"] == "Failed"

    names, lines = messages("/aws/sagemaker/TrainingJobs", "shipped-crash/", wanted=30)

    assert len(names) == 1 and re.fullmatch(r"shipped-crash/algo-1-\d{10}", names[0])
    assert lines == [f"crash log line {n}" for n in range(30)]


def test_the_shipper_batches_lines_and_ships_a_files_last_lines_after_its_end(tmp_path: Path):
    with emulated_aws(REGION):
        calls = []
        real = boto3.client("logs")

        class Counting:
            def __getattr__(self, name):
                return getattr(real, name)

            def put_log_events(self, **kwargs):
                calls.append(len(kwargs["logEvents"]))
                return real.put_log_events(**kwargs)

        path = tmp_path / "instance.log"
        path.write_text("")
        done = []
        shipper = LogShipper(lambda: Counting(), interval_s=0.5)
        group = endpoint_log_group("ep-1")
        shipper.follow(path, group, "AllTraffic/i-0123", finished=lambda: bool(done))
        with path.open("a") as log:
            for n in range(200):  # far more than one a second: shipped in a few calls
                print(f"line {n} for job 4bb1", file=log, flush=True)
            log.write("half a line")  # not shipped until it ends
        time.sleep(1.2)
        with path.open("a") as log:
            log.write(" ends here\n")
        done.append(True)
        shipper.close()

        _, lines = messages(group, "AllTraffic/")
        assert lines == [f"line {n} for job 4bb1" for n in range(200)] + ["half a line ends here"]
        assert len(calls) <= 3
        found = real.filter_log_events(logGroupName=group, filterPattern='"line 199"')["events"]
        assert [e["message"] for e in found] == ["line 199 for job 4bb1"]


def test_blank_lines_are_not_shipped(tmp_path: Path):
    with emulated_aws(REGION):
        path = tmp_path / "blank.log"
        path.write_text("first\n\n   \nlast\n")
        shipper = LogShipper(lambda: boto3.client("logs"), interval_s=0.2)
        shipper.follow(path, "/aws/sagemaker/Endpoints/ep-2", "AllTraffic/i-1", finished=lambda: True)
        shipper.close()
        _, lines = messages("/aws/sagemaker/Endpoints/ep-2", "AllTraffic/")
        assert lines == ["first", "last"]
