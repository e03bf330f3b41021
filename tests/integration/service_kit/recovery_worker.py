"""A worker process for tests/integration/service_kit/test_worker_recovery.py (killed with SIGKILL there).

Runs ``service_kit.worker.Worker`` on ``QUEUE_URL`` with idempotency in ``TABLE``;
the handler appends ``started``/``done`` lines (JSON) to ``OUT_FILE`` and takes
``HANDLE_S`` seconds per message.
"""

from __future__ import annotations

import json
import os
import time

from aws_lambda_powertools import Logger

from service_kit.consumer import Consumer, Router, dynamodb_idempotency
from service_kit.worker import Worker, run_worker


def _note(what: str, job: str) -> None:
    with open(os.environ["OUT_FILE"], "a") as out:
        out.write(json.dumps({"what": what, "job": job, "t": time.time(), "pid": os.getpid()}) + "\n")


def handle(event) -> None:
    job = event.envelope().data["job_id"]
    _note("started", job)
    time.sleep(float(os.environ.get("HANDLE_S", "0")))
    _note("done", job)


def main() -> None:
    logger = Logger(service="recovery", level="WARNING")
    router = Router().on_event("EndpointDeletionRequested", handle)
    consumer = Consumer(router, logger, dynamodb_idempotency(os.environ["TABLE"]))
    worker = Worker(
        consumer,
        os.environ["QUEUE_URL"],
        logger,
        visibility_timeout_s=int(os.environ["VISIBILITY_TIMEOUT_S"]),
        long_poll_s=int(os.environ["LONG_POLL_S"]),
        receive_lease_s=int(os.environ["RECEIVE_LEASE_S"]),
    )
    _note("ready", "")
    run_worker(worker)


if __name__ == "__main__":
    main()
