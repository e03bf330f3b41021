"""The local stack's supervisor (infra/local/supervisor.py): restarts with back-off, restarts on request, stops all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.local.supervisor import MAX_BACKOFF_S, backoff_s

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_backoff_is_immediate_first_then_doubles_up_to_a_cap():
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [0, 1, 2, 4]
    assert backoff_s(50) == MAX_BACKOFF_S


def wait_for(condition, timeout_s: float = 10):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_supervisor_restarts_crashes_with_backoff_and_requested_restarts_at_once(tmp_path):
    (tmp_path / "logs").mkdir()
    python = sys.executable
    specs = [
        {"name": "crashy", "argv": [python, "-c", "import sys; sys.exit(3)"], "env": dict(os.environ)},
        {"name": "steady", "argv": [python, "-c", "import time; time.sleep(60)"], "env": dict(os.environ)},
    ]
    (tmp_path / "processes.json").write_text(json.dumps(specs))
    supervisor = subprocess.Popen([python, "-m", "infra.local.supervisor", str(tmp_path)], cwd=REPO_ROOT)
    try:
        state = lambda: json.loads((tmp_path / "supervisor.json").read_text())["processes"]  # noqa: E731
        wait_for(lambda: (tmp_path / "supervisor.json").exists() and state()["crashy"]["restarts"] >= 3)
        history = state()["crashy"]["history"]
        assert "exited with 3" in history[0] and "restarting in 0s" in history[0]
        assert "restarting in 1s" in history[1] and "restarting in 2s" in history[2]

        steady = wait_for(lambda: state()["steady"]["pid"])
        (tmp_path / "restart").mkdir(exist_ok=True)
        (tmp_path / "restart" / "steady").touch()
        os.kill(steady, signal.SIGTERM)
        new = wait_for(lambda: state()["steady"]["pid"] not in (None, steady) and state()["steady"]["pid"], 5)
        assert "restart requested" in state()["steady"]["history"][-1]
        assert json.loads((tmp_path / "pids.json").read_text())["steady"] == new
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=20)
    assert supervisor.returncode == 0
    try:
        os.kill(new, 0)
        raise AssertionError("the supervised process outlived the supervisor")
    except ProcessLookupError:
        pass
