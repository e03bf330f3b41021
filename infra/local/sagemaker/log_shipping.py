"""Containers' output to CloudWatch Logs, as SageMaker ships it.

SageMaker sends a training container's stdout and stderr to the log group
``/aws/sagemaker/TrainingJobs``, stream ``<TrainingJobName>/algo-1-<epoch>``,
and an endpoint instance's to ``/aws/sagemaker/Endpoints/<EndpointName>``,
stream ``<VariantName>/<instance id>``. The local SageMaker's containers
write their output to log files; ``LogShipper`` follows each file from one
background thread and puts its new lines on CloudWatch Logs (the emulator's,
through the standard ``AWS_ENDPOINT_URL`` variables) with one
``PutLogEvents`` call per stream and second at most. A file is followed
until its process has ended and its last lines are shipped.

Shipping is a copy: the files stay where they are, and a line CloudWatch
Logs refuses is logged here and dropped rather than retried for ever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
INTERVAL_S = 1.0
# PutLogEvents takes at most 10,000 events and 1,048,576 bytes (each event counted with 26 more) a call.
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
# A longer line is cut: CloudWatch Logs refuses events over 256 KB.
MAX_MESSAGE_BYTES = 256 * 1024 - EVENT_OVERHEAD_BYTES


def endpoint_log_group(endpoint_name: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint_name}"


def training_log_stream(job_name: str, started: float) -> str:
    return f"{job_name}/algo-1-{int(started)}"


@dataclass
class _Followed:
    path: Path
    group: str
    stream: str
    finished: Callable[[], bool]
    offset: int = 0
    created: bool = False


class LogShipper:
    """Follows log files and puts their lines on CloudWatch Logs from one background thread."""

    def __init__(self, client_factory: Callable[[], Any], interval_s: float = INTERVAL_S) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._followed: list[_Followed] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-shipping", daemon=True)
        self._thread.start()

    @classmethod
    def for_region(cls, region: str) -> LogShipper:
        config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10)
        return cls(lambda: boto3.session.Session().client("logs", region_name=region, config=config))

    def follow(self, path: Path, group: str, stream: str, finished: Callable[[], bool]) -> None:
        """Ship ``path``'s lines to ``group``/``stream`` until ``finished()`` and every line is shipped."""
        with self._lock:
            self._followed.append(_Followed(path, group, stream, finished))

    def close(self, timeout_s: float = 10.0) -> None:
        """Ship what is left of every file, then stop."""
        self._closing.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._closing.wait(self._interval_s):
            self._ship_all(final=False)
        self._ship_all(final=True)

    def _ship_all(self, final: bool) -> None:
        with self._lock:
            followed = list(self._followed)
        for item in followed:
            done = final or item.finished()  # asked before reading, so no line written before the end is missed
            try:
                self._ship(item)
            except Exception:  # one stream's trouble must not stop the others
                log.exception("could not ship %s to %s/%s", item.path.name, item.group, item.stream)
            if done:
                with self._lock:
                    self._followed.remove(item)

    def _ship(self, item: _Followed) -> None:
        lines = _new_lines(item)
        if not lines:
            return
        client = self._client = self._client or self._client_factory()
        if not item.created:
            _create(client, item.group, item.stream)
            item.created = True
        now_ms = int(time.time() * 1000)
        for batch in _batches([{"timestamp": now_ms, "message": line} for line in lines]):
            try:
                client.put_log_events(logGroupName=item.group, logStreamName=item.stream, logEvents=batch)
            except (BotoCoreError, ClientError) as error:
                log.warning("CloudWatch Logs refused %d lines of %s/%s: %s", len(batch), item.group, item.stream, error)


def _new_lines(item: _Followed) -> list[str]:
    """The complete lines written since the last read (a line still being written waits for its end)."""
    try:
        with item.path.open("rb") as file:
            file.seek(item.offset)
            data = file.read()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    if end < 0:
        return []
    item.offset += end + 1
    text = data[:end].decode("utf-8", errors="replace")
    return [_cut(line) for line in text.split("\n") if line.strip()]


def _cut(line: str) -> str:
    encoded = line.rstrip("\r").encode("utf-8")
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return line.rstrip("\r")
    return encoded[:MAX_MESSAGE_BYTES].decode("utf-8", errors="ignore")


def _batches(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for event in events:
        event_size = len(event["message"].encode("utf-8")) + EVENT_OVERHEAD_BYTES
        if len(batches[-1]) >= MAX_BATCH_EVENTS or size + event_size > MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(event)
        size += event_size
    return [batch for batch in batches if batch]


def _create(client: Any, group: str, stream: str) -> None:
    """The group and the stream, as SageMaker makes them on first use; either may be there already."""
    for create, kwargs in (
        (client.create_log_group, {"logGroupName": group}),
        (client.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
    ):
        try:
            create(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
