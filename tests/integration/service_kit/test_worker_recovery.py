"""Recovery of the local worker after ``kill -9`` (issue 10, item 4).

A killed worker's long poll goes on in the queue: a message that arrives in
the rest of that poll is received for nobody. It used to stay invisible for the
whole visibility timeout (120 s for inference-dispatcher); now it is back
within the receive lease. Messages the killed worker held, one of them half
processed (its idempotency record in progress), are all done within the
visibility timeout plus 10 s of the worker being back.

Scaled down: visibility timeout 12 s, lease 2 s, long poll 10 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

from tests.conftest import create_service_table
from tests.integration.service_kit.test_worker import event_body, wait_until

VISIBILITY_TIMEOUT_S = 12
RECEIVE_LEASE_S = 2
LONG_POLL_S = 10
REPO_ROOT = Path(__file__).resolve().parents[3]


class Workers:
    def __init__(self, queue_url: str, table: str, out: Path) -> None:
        self.out = out
        self._env = {
            **os.environ,
            "QUEUE_URL": queue_url,
            "TABLE": table,
            "OUT_FILE": str(out),
            "VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
            "RECEIVE_LEASE_S": str(RECEIVE_LEASE_S),
            "LONG_POLL_S": str(LONG_POLL_S),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.processes: list[subprocess.Popen] = []

    def start(self, handle_s: float = 0) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.service_kit.recovery_worker"],
            env={**self._env, "HANDLE_S": str(handle_s)},
            cwd=REPO_ROOT,
        )
        self.processes.append(process)
        assert wait_until(lambda: any(n["pid"] == process.pid for n in self.notes("ready")), 30), "worker never started"
        return process

    def notes(self, what: str) -> list[dict]:
        if not self.out.exists():
            return []
        notes = [json.loads(line) for line in self.out.read_text().splitlines() if line]
        return [n for n in notes if n["what"] == what]

    def done_at(self, job: str) -> float | None:
        return next((n["t"] for n in self.notes("done") if n["job"] == job), None)

    def kill(self, process: subprocess.Popen) -> None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def workers(moto_server, tmp_path):
    url = boto3.client("sqs").create_queue(
        QueueName=f"recovery-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT_S)}
    )["QueueUrl"]
    running = Workers(url, create_service_table(f"it-recovery-{uuid.uuid4().hex[:8]}"), tmp_path / "notes.jsonl")
    running.queue_url = url
    yield running
    for process in running.processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def send(queue_url: str, *jobs: str) -> None:
    sqs = boto3.client("sqs")
    for job in jobs:
        sqs.send_message(QueueUrl=queue_url, MessageBody=event_body(job, str(uuid.uuid4())))


def test_message_arriving_during_a_killed_workers_long_poll_is_not_hidden(workers):
    first = workers.start()
    time.sleep(1)  # idle in its long poll
    workers.kill(first)
    send(workers.queue_url, "after-kill")  # taken by the orphaned long poll, for nobody
    workers.start()
    back = time.time()
    assert wait_until(lambda: workers.done_at("after-kill") is not None, VISIBILITY_TIMEOUT_S + 10)
    assert workers.done_at("after-kill") - back <= RECEIVE_LEASE_S + 3, "hidden for the visibility timeout"


def test_messages_a_killed_worker_held_are_done_within_the_visibility_timeout(workers):
    first = workers.start(handle_s=60)
    send(workers.queue_url, "held-1", "held-2", "held-3")
    assert wait_until(lambda: workers.notes("started"), 15), "the worker never started a message"
    workers.kill(first)  # holds three messages, one of them in progress
    workers.start()
    back = time.time()
    jobs = ("held-1", "held-2", "held-3")
    assert wait_until(lambda: all(workers.done_at(job) for job in jobs), VISIBILITY_TIMEOUT_S + 15)
    worst = max(workers.done_at(job) for job in jobs) - back
    assert worst <= VISIBILITY_TIMEOUT_S + 10
    assert sorted(n["job"] for n in workers.notes("done")) == sorted(jobs), "each held message done once"
