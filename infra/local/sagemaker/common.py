"""What every part of the local SageMaker shares: its settings, errors worded as SageMaker words them,
and the publisher that puts its state-change events on EventBridge."""

from __future__ import annotations

import logging
import os
import queue
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
