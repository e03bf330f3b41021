"""The whole system on one machine: ``python -m infra.local.stack up|down|restart|clean|logs|status``.

``up`` starts an embedded AWS emulator (moto in server mode; or uses LocalStack
when ``SDMW_EMULATOR=localstack``), provisions the core stack and every
service's declared resources into it, puts back the data the last ``down``
saved (``infra.local.data``), starts the supervisor (``infra.local.supervisor``),
which starts the local SageMaker and every service process in the background and
restarts any that dies, and returns once the API answers. Processes, their logs
and their PIDs live under the run directory (``.run``); the saved data under
``.run/data``.

``down`` stops the services, saves the emulator's data, then stops the emulator.
``restart <name>`` restarts one service's processes; ``clean`` stops everything
without saving and forgets the saved data.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from infra.catalog import SERVICES
from infra.core import CORE
from infra.local import data
from infra.local.provision import provision
from service_kit.config import WEBHOOKS_ALLOW_LOOPBACK_VARIABLE

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_ACCOUNT = "123456789012"
LOCAL_RUNTIME_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sd-runtime:local"

#: The local long-polling worker of each consuming service (its Lambda in AWS).
LOCAL_WORKERS = {
    "api-gateway": "api_gateway.entrypoints.projector_worker",
    "endpoint-manager": "endpoint_manager.entrypoints.worker",
    "asset-registry": "asset_registry.entrypoints.worker",
    "inference-dispatcher": "inference_dispatcher.entrypoints.worker",
    "training-manager": "training_manager.entrypoints.worker",
    "webhooks": "webhooks.entrypoints.worker",
}


@dataclass(frozen=True)
class StackSettings:
    api_port: int = 8000
    api_key: str = "local-dev-key"
    stage: str = "prod"
    emulator: str = "moto"
    emulator_port: int = 4566
    sagemaker_port: int = 4567
    prefix: str = "sdmw"
    region: str = "us-east-1"
    run_dir: Path = REPO_ROOT / ".run"
    extra_env: dict[str, str] = field(default_factory=dict)
    #: `down` saves the emulator's data and `up` puts it back (``make up``/``make down``; ``SDMW_KEEP_DATA=0``
    #: turns it off). Off by default for stacks built in code: tests' and benches' stacks are thrown away.
    keep_data: bool = False

    @classmethod
    def from_env(cls) -> StackSettings:
        env = os.environ
        return cls(
            api_port=int(env.get("API_PORT", "8000")),
            api_key=env.get("API_KEY", "local-dev-key"),
            stage=env.get("API_STAGE", "prod"),
            emulator=env.get("SDMW_EMULATOR", "moto"),
            emulator_port=int(env.get("EMULATOR_PORT", "4566")),
            sagemaker_port=int(env.get("LOCAL_SAGEMAKER_PORT", "4567")),
            prefix=env.get("SDMW_STACK", "sdmw"),
            region=env.get("AWS_DEFAULT_REGION", "us-east-1"),
            run_dir=Path(env.get("SDMW_RUN_DIR", str(REPO_ROOT / ".run"))),
            keep_data=env.get("SDMW_KEEP_DATA", "1") != "0",
        )

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def sagemaker_url(self) -> str:
        return f"http://127.0.0.1:{self.sagemaker_port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/{self.stage}"

    def aws_environment(self) -> dict[str, str]:
        """Standard AWS configuration only: this is all that tells local from cloud."""
        return {
            "AWS_ENDPOINT_URL": self.emulator_url,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.sagemaker_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }


@dataclass(frozen=True)
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    #: The supervisor starts the next process once this port listens.
    wait_port: int | None = None


class StackError(RuntimeError):
    pass


class LocalStack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self._logs = settings.run_dir / "logs"
        self._pid_file = settings.run_dir / "pids.json"
        self._supervisor_file = settings.run_dir / "supervisor.json"
        self._processes_file = settings.run_dir / "processes.json"
        self.data_dir = settings.run_dir / "data"
        #: Written once the saved data is back in the emulator: only then may `down` save over it.
        self._restored_marker = settings.run_dir / "data-restored"

    # --- lifecycle -------------------------------------------------------

    def up(self, timeout_s: float = 90) -> dict[str, int]:
        """Start everything; answers the counts of saved data put back (objects, items, messages)."""
        if self.running():
            raise StackError(f"already running (see {self._pid_file}); run `make down` first")
        self._logs.mkdir(parents=True, exist_ok=True)
        self._pid_file.unlink(missing_ok=True)
        self._supervisor_file.unlink(missing_ok=True)
        deadline = time.monotonic() + timeout_s
        try:
            self._start_emulator(deadline)
            environments = self._provision()
            restored = self._restore()
            processes = [self._sagemaker_process(), *self._service_processes(environments)]
            self._processes_file.write_text(json.dumps([_spec(p) for p in processes], indent=2))
            self._processes_file.chmod(0o600)  # it holds the processes' environments
            supervisor = [sys.executable, "-m", "infra.local.supervisor", str(self.settings.run_dir)]
            self._start(Process("supervisor", supervisor, self._base_env()))
            self._wait_for_api(deadline, [p.name for p in processes])
        except BaseException:
            self.down(save=False)
            raise
        return restored

    def down(self, grace_s: float = 10, save: bool = True) -> dict[str, int] | None:
        """Stop everything; with ``save``, keep the emulator's data for the next `up` first.

        Answers the counts of data saved, or None if nothing was saved.
        """
        pids = self._pids()
        emulator = pids.pop("emulator", None)
        supervisor = pids.pop("supervisor", None)
        if supervisor is not None:
            _signal_group(supervisor, signal.SIGTERM)  # it stops its processes, then itself
            _wait_for_exit([supervisor], grace_s + 5)
        _stop([pid for pid in self._pids().values() if pid not in (emulator, supervisor)], grace_s)
        saved = None
        if save and emulator is not None and _alive(emulator) and self._restored_marker.exists():
            saved = self.save_data()
        if emulator is not None:
            _stop([emulator], grace_s)
        self._restored_marker.unlink(missing_ok=True)
        self._pid_file.unlink(missing_ok=True)
        return saved

    def clean(self) -> None:
        """Stop everything without saving, and forget the saved data: the next `up` starts empty."""
        self.down(save=False)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def save_data(self) -> dict[str, int]:
        return data.save(self.data_dir, self.settings.emulator_url, self.settings.region)

    def restart(self, service: str, timeout_s: float = 30) -> dict[str, int]:
        """Restart one service's processes (SIGTERM, then the supervisor starts them again); answers new PIDs."""
        if not self.running():
            raise StackError("the stack is not running: `make up`")
        supervised = self._supervised()
        names = [n for n in supervised if n == service or n.startswith(f"{service}-")]
        if not names:
            raise StackError(f"no process named {service!r}; one of: {', '.join(sorted(supervised))}")
        pids = self._pids()
        if not _alive(pids.get("supervisor", -1)):
            raise StackError("the supervisor is not running: `make down` then `make up`")
        old = {name: pids.get(name) for name in names}
        restart_dir = self.settings.run_dir / "restart"
        restart_dir.mkdir(exist_ok=True)
        for name, pid in old.items():
            (restart_dir / name).touch()
            if pid is not None:
                _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pids = self._pids()
            new = {name: pids.get(name) for name in names}
            if all(pid not in (None, old[name]) and _alive(pid) for name, pid in new.items()):
                return new
            time.sleep(0.1)
        raise StackError(f"{', '.join(names)} did not come back in {timeout_s:.0f}s; see {self._logs}")

    def supervision(self) -> dict[str, dict]:
        """Per supervised process: its pid, how often it was restarted, its last exit and restart history."""
        if not self._supervisor_file.exists():
            return {}
        return json.loads(self._supervisor_file.read_text()).get("processes", {})

    def running(self) -> dict[str, bool]:
        return {name: _alive(pid) for name, pid in self._pids().items() if _alive(pid)}

    def status(self) -> dict[str, bool]:
        return {name: _alive(pid) for name, pid in self._pids().items()}

    def log_files(self) -> list[Path]:
        return sorted(self._logs.glob("*.log"))

    # --- the pieces ------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        return {**os.environ, **self.settings.aws_environment(), "PYTHONPATH": path, **self.settings.extra_env}

    def _supervised(self) -> list[str]:
        if not self._processes_file.exists():
            return []
        return [spec["name"] for spec in json.loads(self._processes_file.read_text())]

    def _restore(self) -> dict[str, int]:
        if self.settings.emulator != "moto" or not self.settings.keep_data:  # LocalStack: its own PERSISTENCE=1
            return {}
        restored = data.restore(self.data_dir, self.settings.emulator_url, self.settings.region)
        self._restored_marker.touch()
        return restored

    def _start_emulator(self, deadline: float) -> None:
        if self.settings.emulator == "localstack":
            _wait_for_http(self.settings.emulator_url + "/_localstack/health", deadline, "LocalStack")
            return
        if self.settings.emulator != "moto":
            raise StackError(f"SDMW_EMULATOR must be moto or localstack, not {self.settings.emulator!r}")
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.settings.emulator_port)]
        self._start(Process("emulator", argv, self._base_env()))
        _wait_for_http(self.settings.emulator_url + "/moto-api/", deadline, "moto")

    def _provision(self) -> dict[str, dict[str, str]]:
        saved = dict(os.environ)
        os.environ.update(self.settings.aws_environment())
        try:
            return provision(self.settings.prefix, CORE, SERVICES)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _sagemaker_process(self) -> Process:
        env = {
            **self._base_env(),
            "LOCAL_SAGEMAKER_HOST": "127.0.0.1",
            "LOCAL_SAGEMAKER_PORT": str(self.settings.sagemaker_port),
            "LOCAL_SAGEMAKER_WORKDIR": str(self.settings.run_dir / "sagemaker"),
            "SD_RUNTIME_HOST": "127.0.0.1",
        }
        if self.settings.keep_data:
            # It keeps its endpoints, queued invocations and training jobs there as it stops, and
            # takes them back when it starts; `clean` forgets them with the rest of the data.
            env["LOCAL_SAGEMAKER_STATE_DIR"] = str(self.data_dir / data.SAGEMAKER_DIR)
        return Process(
            "local-sagemaker",
            [sys.executable, "-m", "infra.local.sagemaker.server"],
            env,
            wait_port=self.settings.sagemaker_port,
        )

    def _service_processes(self, environments: dict[str, dict[str, str]]) -> list[Process]:
        base = self._base_env()
        python = sys.executable
        sagemaker_settings = {
            "SD_RUNTIME_IMAGE": LOCAL_RUNTIME_IMAGE,
            "SAGEMAKER_ROLE_ARN": CORE.role_arn(self.settings.prefix, LOCAL_ACCOUNT),
        }
        # A webhook receiver on this machine is accepted locally; on AWS loopback targets are refused.
        loopback = {WEBHOOKS_ALLOW_LOOPBACK_VARIABLE: "1"}
        extra = {
            "api-gateway": {"API_KEY": self.settings.api_key, "API_STAGE": self.settings.stage, **loopback},
            "endpoint-manager": sagemaker_settings,
            "training-manager": sagemaker_settings,
            "webhooks": loopback,
        }
        env = {name: {**base, **service_env, **extra.get(name, {})} for name, service_env in environments.items()}
        workers = [
            Process(name if name != "api-gateway" else "api-gateway-projector", [python, "-m", module], env[name])
            for name, module in LOCAL_WORKERS.items()
        ]
        http = Process(
            "api-gateway-http",
            [
                python,
                "-m",
                "uvicorn",
                "api_gateway.entrypoints.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.settings.api_port),
                "--no-access-log",
            ],
            env["api-gateway"],
        )
        return [*workers, self._scheduler_process(environments), http]

    def _scheduler_process(self, environments: dict[str, dict[str, str]]) -> Process:
        schedules = [
            {
                "rule": resources.rule_name(self.settings.prefix, schedule),
                "queue_url": environments[resources.service]["SDMW_QUEUE_URL"],
                "every_s": schedule.every_s,
            }
            for resources in SERVICES
            for schedule in resources.schedules
        ]
        env = {**self._base_env(), "SDMW_SCHEDULES": json.dumps(schedules)}
        return Process("scheduler", [sys.executable, "-m", "infra.local.scheduler"], env)

    def _start(self, process: Process) -> None:
        log = open(self._logs / f"{process.name}.log", "ab")  # noqa: SIM115 - handed to the child
        child = subprocess.Popen(
            process.argv,
            env={**process.env, "SDMW_PROCESS_NAME": process.name},
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `make up`; `make down` signals the whole group
        )
        log.close()
        pids = self._pids()
        pids[process.name] = child.pid
        self._pid_file.write_text(json.dumps(pids, indent=2))

    def _wait_for_api(self, deadline: float, names: list[str]) -> None:
        url = f"{self.settings.base_url}/inference/test-connection"
        headers = {"x-api-key": self.settings.api_key}
        while time.monotonic() < deadline:
            self._fail_if_any_exited()
            try:
                answered = requests.get(url, headers=headers, timeout=2).status_code == 200
            except requests.RequestException:
                answered = False
            if answered and all(self.supervision().get(name, {}).get("pid") for name in names):
                return
            time.sleep(0.2)
        raise StackError(f"the API did not answer at {url} in time; see {self._logs}")

    def _fail_if_any_exited(self) -> None:
        dead = [name for name, pid in self._pids().items() if not _alive(pid)]
        dead += [name for name, state in self.supervision().items() if state.get("last_exit") is not None]
        if dead:
            raise StackError(f"{', '.join(sorted(set(dead)))} exited during start-up; see {self._logs}")

    def _pids(self) -> dict[str, int]:
        if not self._pid_file.exists():
            return {}
        return json.loads(self._pid_file.read_text())


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass  # not our child (started by an earlier `make up`)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spec(process: Process) -> dict:
    return {
        "name": process.name,
        "argv": process.argv,
        "env": process.env,
        "wait_port": process.wait_port,
        "cwd": str(REPO_ROOT),
    }


def _wait_for_exit(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _stop(pids: list[int], grace_s: float) -> None:
    """SIGTERM each process group, SIGKILL what is left after the grace period."""
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    if not _wait_for_exit(pids, grace_s):
        for pid in pids:
            _signal_group(pid, signal.SIGKILL)
        _wait_for_exit(pids, 5)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _wait_for_http(url: str, deadline: float, what: str) -> None:
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise StackError(f"{what} did not answer at {url} in time")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "up"
    stack = LocalStack(StackSettings.from_env())
    if command == "up":
        started = time.monotonic()
        restored = stack.up()
        s = stack.settings
        print(f"Stack is up in {time.monotonic() - started:.1f}s.")
        if any(restored.values()):
            print(f"  Data kept from the last `make down`: {_counts(restored)}   (`make clean` starts empty)")
        print(f"  API base URL: {s.base_url}")
        print(f"  API key:      {s.api_key}   (send it as the x-api-key header)")
        print(f"  Emulator:     {s.emulator_url} ({s.emulator})   Local SageMaker: {s.sagemaker_url}")
        print(f"  Logs:         make logs   ({stack.settings.run_dir / 'logs'})")
        return 0
    if command == "down":
        saved = stack.down()
        print("Stack stopped." + (f" Data saved for the next `make up`: {_counts(saved)}." if saved else ""))
        return 0
    if command == "clean":
        stack.clean()
        print(f"Stack stopped; saved data removed ({stack.data_dir}).")
        return 0
    if command == "restart":
        if len(argv) < 3:
            print("usage: restart <service>   (make restart SERVICE=<name>)", file=sys.stderr)
            return 2
        try:
            pids = stack.restart(argv[2])
        except StackError as error:
            print(error, file=sys.stderr)
            return 1
        print("Restarted: " + ", ".join(f"{name} (pid {pid})" for name, pid in pids.items()))
        return 0
    if command == "status":
        supervision = stack.supervision()
        for name, alive in stack.status().items():
            restarts = supervision.get(name, {}).get("restarts")
            note = f"   restarted {restarts}x (see logs/supervisor.log)" if restarts else ""
            print(f"{name:24} {'running' if alive else 'stopped'}{note}")
        return 0
    if command == "logs":
        files = [str(f) for f in stack.log_files()]
        if not files:
            print("no logs yet: run `make up`")
            return 1
        os.execvp("tail", ["tail", "-n", "50", "-F", *files])
    print(f"unknown command {command!r}: use up, down, restart, clean, status or logs", file=sys.stderr)
    return 2


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {what}" for what, n in counts.items())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
