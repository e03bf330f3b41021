"""What every part of the local SageMaker shares: its settings, errors worded as SageMaker words them,
and the publisher that puts its state-change events on EventBridge."""

from __future__ import annotations

import logging
import os
import queue
import re
import shlex
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "123456789012"  # moto's default account, so ARNs agree with the emulator's
DEFAULT_REGION = "us-east-1"


class ApiError(Exception):
    """An error SageMaker answers with: its code (e.g. ValidationException) and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationException", message)


@dataclass(frozen=True)
class Settings:
    account: str
    region: str
    runtime_command: tuple[str, ...]
    workdir: Path
    startup_timeout_s: float = 120.0
    max_instances: int = 8
    stop_grace_s: float = 5.0
    # Training jobs: the training container's command (``LOCAL_SAGEMAKER_TRAIN_COMMAND``), and how
    # long a stopped job may take to save its model after SIGTERM (SageMaker gives 120 seconds).
    train_command: tuple[str, ...] = (sys.executable, "-m", "sd_runtime", "train")
    train_stop_grace_s: float = 120.0
    # Where models, endpoint configs, endpoints, queued async invocations and training jobs are kept
    # across a restart (``LOCAL_SAGEMAKER_STATE_DIR``). Without it they are forgotten when the server
    # stops, and what is queued then fails.
    state_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        default_command = f"{shlex.quote(sys.executable)} -m sd_runtime serve"
        default_train_command = f"{shlex.quote(sys.executable)} -m sd_runtime train"
        workdir = environ.get("LOCAL_SAGEMAKER_WORKDIR") or tempfile.mkdtemp(prefix="local-sagemaker-")
        return cls(
            account=environ.get("LOCAL_SAGEMAKER_ACCOUNT", DEFAULT_ACCOUNT),
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
            runtime_command=tuple(shlex.split(environ.get("LOCAL_SAGEMAKER_RUNTIME_COMMAND", default_command))),
            workdir=Path(workdir),
            startup_timeout_s=float(environ.get("LOCAL_SAGEMAKER_STARTUP_TIMEOUT_S", 120)),
            max_instances=int(environ.get("LOCAL_SAGEMAKER_MAX_INSTANCES", 8)),
            train_command=tuple(shlex.split(environ.get("LOCAL_SAGEMAKER_TRAIN_COMMAND", default_train_command))),
            train_stop_grace_s=float(environ.get("LOCAL_SAGEMAKER_TRAIN_STOP_GRACE_S", 120)),
            state_dir=Path(state_dir) if (state_dir := environ.get("LOCAL_SAGEMAKER_STATE_DIR")) else None,
        )


class EventPublisher:
    """Puts events on EventBridge from one background thread.

    One thread keeps the events in the order the status changes happened, and
    keeps a slow or absent emulator from blocking the API.
    """

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._client_factory = client_factory
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sagemaker-events", daemon=True)
        self._thread.start()

    @classmethod
    def for_region(cls, region: str) -> EventPublisher:
        # Endpoints come from the standard AWS_ENDPOINT_URL(_EVENTS) variables, as in AWS.
        config = Config(retries={"mode": "standard", "max_attempts": 5})
        return cls(lambda: boto3.session.Session().client("events", region_name=region, config=config))

    def publish(self, entry: dict[str, Any]) -> None:
        self._queue.put(entry)

    def close(self, timeout_s: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        client = None
        while (entry := self._queue.get()) is not None:
            try:
                client = client or self._client_factory()
                response = client.put_events(Entries=[entry])
                if response.get("FailedEntryCount"):
                    log.error("EventBridge refused %s: %s", entry["DetailType"], response["Entries"])
            except Exception:
                log.exception("could not put %s on EventBridge", entry["DetailType"])


def epoch_millis(timestamp: float) -> float:
    return float(round(timestamp * 1000))


# An absolute path of two names or more that is not part of a URL (s3://bucket/key, http://host/path).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])(?:/[\w.@+-]+)+/([\w.@+-]+)")
# Paths inside a SageMaker container mean the same on AWS; they tell nothing about this machine.
_CONTAINER_ROOT = "/opt/ml"


def without_local_paths(text: str) -> str:
    """``text`` with each absolute path cut to its last name (a traceback's ``File "serve.py"``).

    Failure reasons reach users (async inference notifications, FailureReason); where
    this machine keeps its files is none of theirs, and means nothing where they read it.
    """

    def shorten(match: re.Match[str]) -> str:
        path = match.group(0)
        return path if path == _CONTAINER_ROOT or path.startswith(_CONTAINER_ROOT + "/") else match.group(1)

    return _ABSOLUTE_PATH.sub(shorten, text)
