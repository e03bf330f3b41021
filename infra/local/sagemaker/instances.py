"""Endpoint instances as local processes.

One instance is one process of the serving container's command (by default
``python -m sd_runtime serve``), listening on a port of its own on 127.0.0.1,
with its output in a log file. SageMaker decides an instance is healthy when it
answers ``GET /ping`` with 200; so does this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.local.sagemaker.common import without_local_paths

PING_TIMEOUT_S = 1.0
LOG_TAIL_LINES = 20
# Health checks go straight to 127.0.0.1, never through a proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def instance_label(variant_name: str, index: int) -> str:
    return f"instance {index + 1} of production variant {variant_name}"


@dataclass
class Instance:
    """One running copy of the serving container for a production variant."""

    variant_name: str
    index: int
    port: int
    log_path: Path
    process: subprocess.Popen = field(repr=False)
    healthy: bool = False

    @property
    def label(self) -> str:
        return instance_label(self.variant_name, self.index)

    @property
    def url(self) -> str:
        """Base URL of the container's HTTP server (``/ping``, ``/invocations``)."""
        return f"http://127.0.0.1:{self.port}"

    def exit_code(self) -> int | None:
        return self.process.poll()

    def ping(self) -> bool:
        try:
            with _DIRECT.open(f"{self.url}/ping", timeout=PING_TIMEOUT_S) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with self.log_path.open(encoding="utf-8", errors="replace") as log:
                return "".join(deque(log, maxlen=lines)).strip()
        except OSError:
            return ""

    def send_signal(self, signum: int) -> None:
        # The instance runs in its own process group, so a wrapper script's children get it too.
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)


def stop_instances(instances: Sequence[Instance], grace_s: float) -> None:
    """SIGTERM to all (as SageMaker sends on shutdown), then SIGKILL to whatever lingers past ``grace_s``."""
    for instance in instances:
        instance.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for instance in instances:
        try:
            instance.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            instance.send_signal(signal.SIGKILL)
            instance.process.wait()


def start_instance(
    command: Sequence[str],
    environment: Mapping[str, str],
    variant_name: str,
    index: int,
    log_path: Path,
) -> Instance:
    """Start one instance, its output in ``log_path``. The container sees the model's environment plus its port."""
    port = free_port()
    env = {**os.environ, **environment, "SAGEMAKER_BIND_TO_PORT": str(port)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        # A session of its own keeps a Ctrl-C meant for the server from reaching
        # the instances; the server stops them itself on shutdown.
        process = subprocess.Popen(
            list(command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Instance(variant_name=variant_name, index=index, port=port, log_path=log_path, process=process)


def exit_cause(code: int) -> str:
    """How a process ended, in words: "exited with code 3", "exited with code -9 (killed by SIGKILL)"."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        signal_name = signal.Signals(-code).name
    except ValueError:
        signal_name = f"signal {-code}"
    return f"exited with code {code} (killed by {signal_name})"


def with_log_tail(reason: str, instance: Instance, lines: int = LOG_TAIL_LINES) -> str:
    """``reason`` and the end of the instance's log: what it said, never where the log is."""
    tail = instance.log_tail(lines)
    return f"{reason} Last lines of its log:\n{without_local_paths(tail)}" if tail else reason


def exit_reason(instance: Instance, code: int, when: str) -> str:
    """Why an instance is no good after it exited, with the end of its log."""
    return with_log_tail(f"The primary container for {instance.label} {exit_cause(code)} {when}.", instance)


def health_check_reason(instance: Instance, timeout_s: float) -> str:
    """Why an instance is no good when it never answered its health check, with the end of its log."""
    reason = (
        f"The primary container for {instance.label} did not pass the ping health check: "
        f"no 200 from GET /ping within {timeout_s:g} seconds."
    )
    return with_log_tail(reason, instance)


def wait_until_healthy(
    instances: Sequence[Instance], timeout_s: float, cancelled: threading.Event, poll_s: float = 0.2
) -> str | None:
    """Ping every instance until all answer 200.

    Returns None when all are healthy, otherwise the failure reason. Returns
    early (None) when ``cancelled`` is set.
    """
    deadline = time.monotonic() + timeout_s
    while not cancelled.is_set():
        for instance in instances:
            if instance.healthy:
                continue
            code = instance.exit_code()
            if code is not None:
                return exit_reason(instance, code, "before it answered /ping")
            instance.healthy = instance.ping()
        if all(instance.healthy for instance in instances):
            return None
        if time.monotonic() > deadline:
            return health_check_reason(next(i for i in instances if not i.healthy), timeout_s)
        cancelled.wait(poll_s)
    return None
