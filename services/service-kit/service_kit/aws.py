"""boto3 clients, created once per process and shared.

Endpoints come from the standard AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>
variables that boto3 reads itself; nothing here knows about emulators.

Every call made through these clients is counted by (service, operation);
with ``SDMW_AWS_CALL_COUNTS_DIR`` set, the counts are written there as JSON
when the process exits, for the benchmarks.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=65)
#: For a process that answers people (the HTTP edge): fewer tries and a short connect timeout, so that an
#: unreachable AWS (or emulator) is answered 503 within seconds instead of after the workers' six tries
#: (botocore's ``max_attempts`` counts retries) with back-off (7-24 s, measured), well inside API Gateway's 29 s.
ANSWERING_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=2, read_timeout=20)

_calls: Counter[str] = Counter()
_calls_lock = threading.Lock()


def _count_call(model: Any, **_: Any) -> None:
    with _calls_lock:
        _calls[f"{model.service_model.service_name}.{model.name}"] += 1


def call_counts() -> dict[str, int]:
    with _calls_lock:
        return dict(_calls)


def _counted(made: Any) -> Any:
    made.meta.events.register("before-call", _count_call)
    return made


def answer_fast() -> None:
    """Make this process's shared clients :data:`ANSWERING_CONFIG`'s; call before any is used."""
    global _CLIENT_CONFIG
    _CLIENT_CONFIG = ANSWERING_CONFIG
    client.cache_clear()
    resource.cache_clear()


@functools.cache
def client(service_name: str) -> Any:
    return _counted(boto3.session.Session().client(service_name, config=_CLIENT_CONFIG))


@functools.cache
def resource(service_name: str) -> Any:
    made = boto3.session.Session().resource(service_name, config=_CLIENT_CONFIG)
    _counted(made.meta.client)
    return made


def counted_client(service_name: str, **kwargs: Any) -> Any:
    """A separately configured client (e.g. SigV4 presigning) that is still counted."""
    return _counted(boto3.session.Session().client(service_name, **kwargs))


def write_call_counts() -> None:
    """Write this process's counts to SDMW_AWS_CALL_COUNTS_DIR, if set."""
    directory = os.environ.get("SDMW_AWS_CALL_COUNTS_DIR")
    if not directory or not _calls:
        return
    name = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "process"
    target = Path(directory) / f"{os.environ.get('SDMW_PROCESS_NAME', name)}-{os.getpid()}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(call_counts(), indent=2, sort_keys=True))


atexit.register(write_call_counts)
