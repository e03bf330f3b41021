"""Does one big dataset stall everyone's view? The read-model projector under a large dataset.

    .venv/bin/python -m bench.projection_backlog [--items 2000] [--jobs 3]

Starts the local stack with `bench/instant_runtime.py` as the endpoint's
container, registers a checkpoint and deploys an endpoint, then:

1. runs ``--jobs`` inference jobs on a quiet system (the baseline);
2. starts "another user": inference jobs back to back, each timed submit ->
   ``succeed`` visible through the API, and SageMaker's notification ->
   ``succeed`` visible (the part the read-model projection adds);
3. creates a dataset of ``--items`` items (``POST /dataset``), uploads every
   item's file straight to the emulator's bucket and enables the dataset
   (``PUT /dataset``);
4. waits until ``GET /datasets`` lists it Enabled, its data route answers
   every item Enabled and the projector's queue is empty, then stops the jobs;
5. samples the api-gateway projector's queue (visible + in flight) every
   0.25 s throughout, and prints its peak depth, how long it took to drain and
   the drain rate (messages projected per second).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import requests

from api_gateway.resources import RESOURCES as EDGE
from bench.inference_dispatch import Client, run_job, set_up, start_stack
from infra.local.stack import LocalStack


def aws(stack: LocalStack, service: str):
    s = stack.settings
    return boto3.client(
        service,
        endpoint_url=s.emulator_url,
        region_name=s.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


class QueueSampler(threading.Thread):
    """(time, visible + in flight) of the projector's queue, every ``every_s``."""

    def __init__(self, stack: LocalStack, every_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self._sqs = aws(stack, "sqs")
        self._url = self._sqs.get_queue_url(QueueName=EDGE.queue_name(stack.settings.prefix))["QueueUrl"]
        self._every_s = every_s
        self._halt = threading.Event()
        self.samples: list[tuple[float, int]] = []

    def depth(self) -> int:
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self._url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.monotonic(), self.depth()))
            self._halt.wait(self._every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def backlog(self, since: float) -> tuple[int, float]:
        """Peak depth after ``since`` and seconds from the peak until the queue was empty again."""
        window = [(t, d) for t, d in self.samples if t >= since]
        if not window:
            return 0, 0.0
        peak_t, peak = max(window, key=lambda s: s[1])
        empty = next((t for t, d in window if t > peak_t and d == 0), window[-1][0])
        return peak, empty - peak_t


def timed_job(client: Client) -> float:
    return timed_job_parts(client)[0]


def timed_job_parts(client: Client) -> tuple[float, float]:
    """(submit -> succeed visible, SageMaker's notification -> succeed visible) of one job, in seconds."""
    submitted, notified, seen, _ = run_job(client)
    return seen - submitted, seen - notified


def create_dataset(client: Client, name: str, items: int) -> dict:
    body = {
        "dataset_name": name,
        "content": [
            {"filename": f"/home/bench/pictures/img_{i:05}.png", "name": f"img_{i:05}.png", "type": "image"}
            for i in range(items)
        ],
        "params": {"description": "projection backlog bench"},
    }
    return client.send("POST", "/dataset", body)


def bucket_of(presigned_url: str) -> str:
    """The bucket a presigned PUT URL writes to (path-style, as the local stack signs them, or virtual-hosted)."""
    parsed = urlsplit(presigned_url)
    if parsed.hostname and parsed.hostname.count(".") >= 1 and not parsed.hostname[0].isdigit():
        return parsed.hostname.split(".")[0]
    return parsed.path.split("/")[1]


def upload_items(stack: LocalStack, name: str, items: int, bucket: str) -> None:
    s3 = aws(stack, "s3")

    def put(i: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"dataset/{name}/img_{i:05}.png", Body=b"\x89PNG\r\n" + bytes([i % 256]))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(items)))


def wait_until(check, timeout_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    raise TimeoutError("not reached")


class JobLoop(threading.Thread):
    """Another user: one inference job after another, each timed submit -> ``succeed`` visible."""

    def __init__(self, client: Client) -> None:
        super().__init__(daemon=True)
        self._client = client
        self._halt = threading.Event()
        self.latencies: list[float] = []
        self.visible_after_notification: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                total, after_notification = timed_job_parts(self._client)
                self.latencies.append(total)
                self.visible_after_notification.append(after_notification)
            except Exception as exc:
                self.failures.append(repr(exc))
            time.sleep(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=5, help="jobs on the quiet system, for the baseline")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the projection")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), "projection")
        try:
            client = Client(stack)
            set_up(client, 1)
            quiet_jobs = [timed_job_parts(client) for _ in range(args.jobs)]

            sampler = QueueSampler(stack)
            sampler.start()
            jobs = JobLoop(Client(stack))
            jobs.start()
            name = f"bench-{args.items}"
            t0 = time.monotonic()
            created = create_dataset(client, name, args.items)
            create_s = time.monotonic() - t0

            upload_items(stack, name, args.items, bucket_of(next(iter(created["s3PresignUrl"].values()))))
            t1 = time.monotonic()
            enable = requests.put(
                client.base + "/dataset",
                headers=client.headers,
                json={"dataset_name": name, "status": "Enabled"},
                timeout=60,
            ).status_code
            enable_s = time.monotonic() - t1

            def listed() -> bool:
                found = client.get("/datasets", dataset_status="Enabled")["datasets"]
                return name in [d["datasetName"] for d in found]

            def all_items() -> bool:
                data = client.get(f"/dataset/{name}/data")["data"]
                return sum(1 for i in data if i["dataStatus"] == "Enabled") == args.items

            wait_until(listed, args.timeout)
            listed_s = time.monotonic() - t1
            wait_until(all_items, args.timeout)
            items_s = time.monotonic() - t1
            wait_until(lambda: sampler.depth() == 0, args.timeout)
            jobs.stop()
            time.sleep(0.5)
            sampler.stop()
            peak, drain_s = sampler.backlog(t0)
        finally:
            stack.down()

    quiet_ms = [total * 1000 for total, _ in quiet_jobs]
    quiet_lag_ms = [lag * 1000 for _, lag in quiet_jobs]
    busy_ms = [v * 1000 for v in jobs.latencies]
    busy_lag_ms = [v * 1000 for v in jobs.visible_after_notification]
    print(f"dataset of {args.items} items, instant runtime stand-in, another user's jobs back to back meanwhile")
    print(
        f"  quiet system: job submit -> succeed visible  median {statistics.median(quiet_ms):9.1f} ms"
        f"  (n={len(quiet_ms)}); notification -> succeed visible median {statistics.median(quiet_lag_ms):7.1f} ms"
    )
    print(f"  POST /dataset answered in                       {create_s * 1000:9.1f} ms")
    print(f"  PUT /dataset Enabled answered {enable} in           {enable_s * 1000:9.1f} ms")
    print(f"  after the PUT was sent: dataset listed Enabled {listed_s:7.1f} s, every item Enabled {items_s:7.1f} s")
    if busy_ms:
        print(
            f"  jobs while the dataset was projected: submit -> succeed visible"
            f"  median {statistics.median(busy_ms):9.1f} ms"
            f"  max {max(busy_ms):9.1f} ms  (n={len(busy_ms)}, {len(jobs.failures)} failed)"
        )
        print(
            f"  ... of which SageMaker's notification -> succeed visible (the projection)"
            f"  median {statistics.median(busy_lag_ms):9.1f} ms  max {max(busy_lag_ms):9.1f} ms"
        )
    rate = peak / drain_s if drain_s > 0 else float("inf")
    print(f"  projector queue: peak {peak} messages, drained in {drain_s:7.1f} s (~{rate:.1f} messages/s)")


if __name__ == "__main__":
    sys.exit(main())
