"""The local stack's supervisor: restarts a service process that died, as Lambda would.

``python -m infra.local.supervisor <run dir>`` reads ``<run dir>/processes.json``
(written by ``infra.local.stack up``: each process's name, argv, environment
and, optionally, a port to wait for before starting the next one), starts every
process in that order, each in a session of its own with its log under
``<run dir>/logs``, and records their PIDs in ``<run dir>/pids.json``.

A process that exits is started again: at once the first time, then after
1, 2, 4, ... up to ``MAX_BACKOFF_S`` seconds while it keeps dying within
``STABLE_AFTER_S`` of its start. Each restart is logged (``supervisor.log``)
and counted in ``<run dir>/supervisor.json``. A process killed on purpose by
``stack restart`` (which writes ``<run dir>/restart/<name>`` first) is started
again at once, without back-off. SIGTERM stops every process (SIGTERM to its
process group, SIGKILL after ``STOP_GRACE_S``) and then the supervisor.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

POLL_S = 0.2
STABLE_AFTER_S = 30.0
MAX_BACKOFF_S = 30.0
STOP_GRACE_S = 10.0
PORT_WAIT_S = 30.0


def backoff_s(quick_failures: int) -> float:
    """Delay before restarting a process that died ``quick_failures`` times in a row soon after starting."""
    if quick_failures <= 1:
        return 0.0
    return min(MAX_BACKOFF_S, 2.0 ** (quick_failures - 2))


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    wait_port: int | None = None
    cwd: str | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    quick_failures: int = 0
    restart_at: float | None = None
    last_exit: int | None = None
    history: list[str] = field(default_factory=list)


def write_json(path: Path, value: object) -> None:
    """Atomically: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


def log(message: str) -> None:
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}", flush=True)


class Supervisor:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.pid_file = run_dir / "pids.json"
        self.state_file = run_dir / "supervisor.json"
        self.restart_dir = run_dir / "restart"
        specs = json.loads((run_dir / "processes.json").read_text())
        self.children = [Child(s["name"], s["argv"], s["env"], s.get("wait_port"), s.get("cwd")) for s in specs]
        self.stopping = False

    # --- running ---------------------------------------------------------

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        self.restart_dir.mkdir(parents=True, exist_ok=True)
        log(f"supervisor {os.getpid()} starting {len(self.children)} processes")
        for child in self.children:
            if self.stopping:
                break
            self._start(child)
            if child.wait_port:
                _wait_for_port(child.wait_port, PORT_WAIT_S)
        while not self.stopping:
            self._check()
            time.sleep(POLL_S)
        self._stop_all()
        log("supervisor stopped")

    def _on_stop(self, *_: object) -> None:
        self.stopping = True

    def _check(self) -> None:
        now = time.monotonic()
        changed = False
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                changed = True
                self._exited(child, now)
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                changed = True
                child.restarts += 1
                self._start(child)
        if changed:
            self._write_state()

    def _exited(self, child: Child, now: float) -> None:
        assert child.process is not None
        code = child.process.returncode
        # Whatever the process left in its group (a local SageMaker's instances) goes with it.
        _signal_group(child.process.pid, signal.SIGKILL)
        child.last_exit = code
        child.process = None
        marker = self.restart_dir / child.name
        if marker.exists():
            marker.unlink(missing_ok=True)
            child.quick_failures = 0
            delay = 0.0
            why = "restart requested"
        else:
            lived = now - child.started_at
            child.quick_failures = child.quick_failures + 1 if lived < STABLE_AFTER_S else 1
            delay = backoff_s(child.quick_failures)
            why = f"exited with {code} after {lived:.1f}s"
        child.restart_at = now + delay
        event = f"{child.name}: {why}; restarting in {delay:.0f}s"
        child.history = [*child.history[-9:], event]
        log(event)

    def _start(self, child: Child) -> None:
        log_file = open(self.logs / f"{child.name}.log", "ab")  # noqa: SIM115 - handed to the child
        child.process = subprocess.Popen(
            child.argv,
            env={**child.env, "SDMW_PROCESS_NAME": child.name},
            cwd=child.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopping signals the whole group
        )
        log_file.close()
        child.started_at = time.monotonic()
        child.restart_at = None
        log(f"{child.name}: started, pid {child.process.pid}")
        self._write_state()

    def _write_state(self) -> None:
        pids = json.loads(self.pid_file.read_text()) if self.pid_file.exists() else {}
        for child in self.children:
            if child.process is not None:
                pids[child.name] = child.process.pid
        write_json(self.pid_file, pids)
        write_json(
            self.state_file,
            {
                "pid": os.getpid(),
                "processes": {
                    c.name: {
                        "pid": c.process.pid if c.process else None,
                        "restarts": c.restarts,
                        "last_exit": c.last_exit,
                        "history": c.history,
                    }
                    for c in self.children
                },
            },
        )

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.process is not None]
        log(f"stopping {len(running)} processes")
        started = time.monotonic()
        for child in reversed(running):
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = started + STOP_GRACE_S
        while any(c.process.poll() is None for c in running) and time.monotonic() < deadline:
            time.sleep(0.1)
        late = [c.name for c in running if c.process.poll() is None]
        if late:
            log(f"still running after {STOP_GRACE_S:.0f}s, killed: {', '.join(late)}")
        else:
            log(f"all stopped in {time.monotonic() - started:.1f}s")
        for child in running:
            # The group too: a process may have left children behind (the local SageMaker's instances).
            _signal_group(child.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    log(f"nothing listens on port {port} after {timeout_s:.0f}s; going on")


def main(argv: list[str]) -> int:
    Supervisor(Path(argv[1])).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
