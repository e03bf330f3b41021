"""moto's server with the CloudFormation gaps bridged: ``python -m infra.aws.emulator.server --port N``.

``gaps.install()`` runs before moto parses any stack, so its models and
patches are the ones used. ``running()`` starts it in a subprocess on a free
port (or the one given) and stops it on exit, for tests and scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests


class EmulatorError(RuntimeError):
    pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    from infra.aws.emulator import gaps

    gaps.install()
    from moto.server import main as moto_main

    moto_main(["--host", args.host, "--port", str(args.port)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmulatorError(f"the emulator exited with {process.returncode}: {log.read_text()[-4000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/moto-api/", timeout=1).ok:
                return
        time.sleep(0.1)
    raise EmulatorError(f"the emulator did not answer on {url} within {timeout_s} s: {log.read_text()[-4000:]}")


@contextlib.contextmanager
def running(log: Path, port: int | None = None, timeout_s: float = 60) -> Iterator[str]:
    """The emulator in a subprocess; yields its URL. Its output goes to ``log``."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MOTO_PORT": str(port)}
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        env.pop(name, None)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.aws.emulator.server", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parents[3],
        )
        try:
            wait_ready(url, process, timeout_s, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
