"""The whole system on one machine: ``python -m infra.local.stack up|down|restart|clean|logs|status``.

``up`` starts an embedded AWS emulator (moto in server mode; or LocalStack
when ``SDMW_EMULATOR=localstack``: see ``_start_localstack``), provisions the core stack and every
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
import socket
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
from service_kit.config import IMPORTS_ALLOW_LOOPBACK_VARIABLE, WEBHOOKS_ALLOW_LOOPBACK_VARIABLE

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

#: The AWS services the system calls, all that a LocalStack started here offers (``SERVICES``): any other
#: is answered 501 at once rather than loaded. DynamoDB is not among them (see ``_start_localstack``);
#: Application Auto Scaling is not in LocalStack's free edition.
LOCALSTACK_SERVICES = ("s3", "sqs", "sns", "events", "secretsmanager", "cloudwatch", "logs")
#: Where ``make localstack`` installs LocalStack (infra/localstack/install.sh).
LOCALSTACK_VENV = REPO_ROOT / ".localstack" / "venv"
#: The emulator of stacks built in code (the e2e suite's, bench/chaos.py's): moto or localstack.
TEST_EMULATOR_VARIABLE = "SDMW_TEST_EMULATOR"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _test_emulator() -> str:
    return os.environ.get(TEST_EMULATOR_VARIABLE, "moto")


@dataclass(frozen=True)
class StackSettings:
    api_port: int = 8000
    api_key: str = "local-dev-key"
    stage: str = "prod"
    #: Stacks built in code follow SDMW_TEST_EMULATOR, so that the e2e suite and the benches run on either.
    emulator: str = field(default_factory=_test_emulator)
    emulator_port: int = 4566
    sagemaker_port: int = 4567
    #: Under LocalStack, DynamoDB is an embedded moto server on this port.
    dynamodb_port: int = field(default_factory=_free_port)
    localstack_venv: Path = LOCALSTACK_VENV
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
            dynamodb_port=int(env.get("DYNAMODB_PORT", "4568")),
            localstack_venv=Path(env.get("SDMW_LOCALSTACK_VENV", str(LOCALSTACK_VENV))),
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
    def dynamodb_url(self) -> str:
        return f"http://127.0.0.1:{self.dynamodb_port}" if self.emulator == "localstack" else self.emulator_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/{self.stage}"

    def aws_environment(self) -> dict[str, str]:
        """Standard AWS configuration only: this is all that tells local from cloud."""
        return {
            "AWS_ENDPOINT_URL": self.emulator_url,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url,
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


#: The processes that hold the AWS data: stopped last, after `down` saved it.
EMULATOR_PROCESSES = ("emulator", "dynamodb")


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
        #: Which emulator `up` uses, in words (``make up`` prints it).
        self.emulator_description = ""

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
        emulators = [pids.pop(name) for name in EMULATOR_PROCESSES if name in pids]
        supervisor = pids.pop("supervisor", None)
        if supervisor is not None:
            _signal_group(supervisor, signal.SIGTERM)  # it stops its processes, then itself
            _wait_for_exit([supervisor], grace_s + 5)
        _stop([pid for pid in self._pids().values() if pid not in (*emulators, supervisor)], grace_s)
        saved = None
        if save and self._restored_marker.exists() and self._emulators_answer(emulators):
            saved = self.save_data()
        _stop(emulators, grace_s)
        self._restored_marker.unlink(missing_ok=True)
        self._pid_file.unlink(missing_ok=True)
        return saved

    def clean(self) -> None:
        """Stop everything without saving, and forget the saved data: the next `up` starts empty."""
        self.down(save=False)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def save_data(self) -> dict[str, int]:
        s = self.settings
        # A LocalStack that outlives `down` (Docker) still holds the queued messages: they are taken out,
        # or the next `up` would queue them a second time.
        outlives = s.emulator == "localstack" and "emulator" not in self._pids()
        return data.save(self.data_dir, s.emulator_url, s.region, dynamodb_url=s.dynamodb_url, take_messages=outlives)

    def _emulators_answer(self, pids: list[int]) -> bool:
        """The emulators holding the data: those this stack started alive, and one it found answering."""
        if not pids or not all(_alive(pid) for pid in pids):  # none: this stack never got as far as its emulators
            return False
        return _answers(self._emulator_health_url())

    def _emulator_health_url(self) -> str:
        path = "/_localstack/health" if self.settings.emulator == "localstack" else "/moto-api/"
        return self.settings.emulator_url + path

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
        # LocalStack too: its PERSISTENCE is not in the free edition, so the data goes through the AWS APIs.
        if not self.settings.keep_data:
            return {}
        s = self.settings
        restored = data.restore(self.data_dir, s.emulator_url, s.region, dynamodb_url=s.dynamodb_url)
        self._restored_marker.touch()
        return restored

    def _start_emulator(self, deadline: float) -> None:
        s = self.settings
        if s.emulator == "localstack":
            self._start_localstack(deadline)
            return
        if s.emulator != "moto":
            raise StackError(f"SDMW_EMULATOR must be moto or localstack, not {s.emulator!r}")
        self._start_moto("emulator", s.emulator_port, deadline)
        self.emulator_description = f"{s.emulator_url} (moto, embedded)"

    def _start_moto(self, name: str, port: int, deadline: float) -> None:
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self._start(Process(name, argv, self._base_env()))
        _wait_for_http(f"http://127.0.0.1:{port}/moto-api/", deadline, "moto")

    def _start_localstack(self, deadline: float) -> None:
        """LocalStack for everything but DynamoDB, which an embedded moto server answers.

        LocalStack's DynamoDB is Amazon's DynamoDB Local, a jar it downloads at first use (so never
        offline) whose licence asks for an AWS account: the services reach DynamoDB through
        AWS_ENDPOINT_URL_DYNAMODB instead, with or without Docker. A LocalStack already answering on the
        emulator port (``docker compose -f docker-compose.localstack.yml up -d``) is used as it is;
        otherwise the one ``make localstack`` installed is started here.
        """
        s = self.settings
        self._start_moto("dynamodb", s.dynamodb_port, deadline)
        health = self._emulator_health_url()
        if _answers(health):
            where = "already running there (Docker?); `make down` leaves it running"
        else:
            self._start(self._localstack_process())
            _wait_for_http(health, deadline, f"LocalStack (log: {self._logs / 'emulator.log'})")
            where = f"started here from {s.localstack_venv}"
        version = requests.get(health, timeout=5).json().get("version", "?")
        self.emulator_description = (
            f"{s.emulator_url} (LocalStack {version}, {where}); DynamoDB: {s.dynamodb_url} (moto, embedded)"
        )

    def _localstack_process(self) -> Process:
        s = self.settings
        python = s.localstack_venv / "bin" / "python"
        if not python.exists():
            raise StackError(
                f"SDMW_EMULATOR=localstack: nothing answers at {s.emulator_url} and LocalStack is not installed "
                f"in {s.localstack_venv}. Run `make localstack` (no Docker), or start it in Docker: "
                "docker compose -f docker-compose.localstack.yml up -d"
            )
        root = s.run_dir / "localstack"
        root.mkdir(parents=True, exist_ok=True)
        address = f"127.0.0.1:{s.emulator_port}"
        # A clean environment: LocalStack reads many variables of its own, and none of the caller's AWS ones.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            # Never assume a container (a machine with /.dockerenv would write to /var/lib/localstack).
            "OVERRIDE_IN_DOCKER": "0",
            "FILESYSTEM_ROOT": str(root),
            "GATEWAY_LISTEN": address,
            # Its default server (twisted) ignores GATEWAY_LISTEN's host and listens on every interface.
            "GATEWAY_SERVER": "hypercorn",
            # Queue URLs on this address (by default a *.localstack.cloud name, which needs DNS).
            "LOCALSTACK_HOST": address,
            "SQS_ENDPOINT_STRATEGY": "path",
            "SERVICES": ",".join(LOCALSTACK_SERVICES),
            # Offline: no DNS server of its own, no analytics, no certificate download.
            "DNS_ADDRESS": "0",
            "DISABLE_EVENTS": "1",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
        }
        return Process("emulator", [str(python), "-m", "localstack.runtime.main"], env)

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
        # Likewise a checkpoint import from a file served on this machine.
        imports_loopback = {IMPORTS_ALLOW_LOOPBACK_VARIABLE: "1"}
        extra = {
            "api-gateway": {
                "API_KEY": self.settings.api_key,
                "API_STAGE": self.settings.stage,
                **loopback,
                **imports_loopback,
            },
            "asset-registry": imports_loopback,
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


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


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
        try:
            restored = stack.up()
        except StackError as error:  # says what to do; a traceback would only hide it
            print(error, file=sys.stderr)
            return 1
        s = stack.settings
        print(f"Stack is up in {time.monotonic() - started:.1f}s.")
        if any(restored.values()):
            print(f"  Data kept from the last `make down`: {_counts(restored)}   (`make clean` starts empty)")
        print(f"  API base URL: {s.base_url}")
        print(f"  API key:      {s.api_key}   (send it as the x-api-key header)")
        print(f"  Emulator:     {stack.emulator_description}")
        print(f"  Local SageMaker: {s.sagemaker_url}")
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
