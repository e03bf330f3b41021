"""The whole system on one machine: ``python -m infra.local.stack up|down|logs|status``.

``up`` starts an embedded AWS emulator (moto in server mode; or uses LocalStack
when ``SDMW_EMULATOR=localstack``), provisions the core stack and every
service's declared resources into it, starts the local SageMaker and every
service process in the background, and returns once the API answers.
Processes, their logs and their PIDs live under the run directory (``.run``).
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
from pathlib import Path

import requests

from infra.catalog import SERVICES
from infra.core import CORE
from infra.local.provision import provision

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


class StackError(RuntimeError):
    pass


class LocalStack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self._logs = settings.run_dir / "logs"
        self._pid_file = settings.run_dir / "pids.json"

    # --- lifecycle -------------------------------------------------------

    def up(self, timeout_s: float = 90) -> None:
        if self.running():
            raise StackError(f"already running (see {self._pid_file}); run `make down` first")
        self._logs.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout_s
        try:
            self._start_emulator(deadline)
            environments = self._provision()
            self._start(self._sagemaker_process())
            _wait_for_port(self.settings.sagemaker_port, deadline, "local SageMaker")
            for process in self._service_processes(environments):
                self._start(process)
            self._wait_for_api(deadline)
        except BaseException:
            self.down()
            raise

    def down(self, grace_s: float = 10) -> None:
        pids = self._pids()
        for pid in pids.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids.values():
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
        self._pid_file.unlink(missing_ok=True)

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
        return Process("local-sagemaker", [sys.executable, "-m", "infra.local.sagemaker.server"], env)

    def _service_processes(self, environments: dict[str, dict[str, str]]) -> list[Process]:
        base = self._base_env()
        python = sys.executable
        sagemaker_settings = {
            "SD_RUNTIME_IMAGE": LOCAL_RUNTIME_IMAGE,
            "SAGEMAKER_ROLE_ARN": CORE.role_arn(self.settings.prefix, LOCAL_ACCOUNT),
        }
        extra = {
            "api-gateway": {"API_KEY": self.settings.api_key, "API_STAGE": self.settings.stage},
            "endpoint-manager": sagemaker_settings,
            "training-manager": sagemaker_settings,
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

    def _wait_for_api(self, deadline: float) -> None:
        url = f"{self.settings.base_url}/inference/test-connection"
        headers = {"x-api-key": self.settings.api_key}
        while time.monotonic() < deadline:
            self._fail_if_any_exited()
            try:
                if requests.get(url, headers=headers, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise StackError(f"the API did not answer at {url} in time; see {self._logs}")

    def _fail_if_any_exited(self) -> None:
        dead = [name for name, pid in self._pids().items() if not _alive(pid)]
        if dead:
            raise StackError(f"{', '.join(dead)} exited during start-up; see {self._logs}")

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


def _wait_for_port(port: int, deadline: float, what: str) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise StackError(f"{what} did not listen on port {port} in time")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "up"
    stack = LocalStack(StackSettings.from_env())
    if command == "up":
        started = time.monotonic()
        stack.up()
        s = stack.settings
        print(f"Stack is up in {time.monotonic() - started:.1f}s.")
        print(f"  API base URL: {s.base_url}")
        print(f"  API key:      {s.api_key}   (send it as the x-api-key header)")
        print(f"  Emulator:     {s.emulator_url} ({s.emulator})   Local SageMaker: {s.sagemaker_url}")
        print(f"  Logs:         make logs   ({stack.settings.run_dir / 'logs'})")
        return 0
    if command == "down":
        stack.down()
        print("Stack stopped.")
        return 0
    if command == "status":
        for name, alive in stack.status().items():
            print(f"{name:24} {'running' if alive else 'stopped'}")
        return 0
    if command == "logs":
        files = [str(f) for f in stack.log_files()]
        if not files:
            print("no logs yet: run `make up`")
            return 1
        os.execvp("tail", ["tail", "-n", "50", "-F", *files])
    print(f"unknown command {command!r}: use up, down, status or logs", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
