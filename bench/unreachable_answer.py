"""How long the edge takes to answer when AWS (the emulator) cannot be reached: the HTTP edge's clients
(``service_kit.aws.answer_fast``) against the workers' (six tries with back-off).

    .venv/bin/python -m bench.unreachable_answer

Each configuration runs in a process of its own (the shared clients are made once per process): the edge
app with its real adapters, every AWS endpoint a closed local port, five GET requests of a list route.
Prints the median and the spread of the time to the 503 answer.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time

TRIES = 5


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(answer_fast: bool) -> None:
    """In this process: the edge over an unreachable AWS; prints one JSON line of timings."""
    from fastapi.testclient import TestClient

    from service_kit import aws

    if answer_fast:
        aws.answer_fast()
    from api_gateway.bootstrap import http_app

    client = TestClient(http_app(), raise_server_exceptions=False)
    timings, statuses = [], set()
    for _ in range(TRIES):
        started = time.monotonic()
        response = client.get("/prod/inference/list-endpoint-deployment-jobs", headers={"x-api-key": "bench"})
        timings.append(time.monotonic() - started)
        statuses.add(response.status_code)
    print(json.dumps({"timings": timings, "statuses": sorted(statuses)}))


def run(answer_fast: bool) -> dict:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "API_KEY": "bench",
        "SDMW_EVENT_BUS": "bench",
        "SDMW_BUCKET": "bench",
        "SDMW_TABLE": "bench",
        "SDMW_WEBHOOK_SIGNING_KEY_SECRET": "bench",
    }
    mode = "fast" if answer_fast else "workers"
    done = subprocess.run(
        [sys.executable, "-m", "bench.unreachable_answer", mode], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1:
        measure(sys.argv[1] == "fast")
        return
    for label, answer_fast in (("edge (answer_fast: 3 tries)", True), ("workers' clients (6 tries)", False)):
        result = run(answer_fast)
        timings = result["timings"]
        print(
            f"{label}: answers {result['statuses']} in a median {statistics.median(timings):.1f} s "
            f"(from {min(timings):.1f} to {max(timings):.1f} s, {len(timings)} requests)"
        )


if __name__ == "__main__":
    main()
