"""What the middleware adds to an inference job, with a runtime that answers at once.

    .venv/bin/python -m bench.inference_dispatch [--jobs 50] [--load-jobs 500] [--instances 2]

Starts the local stack with `bench/instant_runtime.py` as the endpoint's
container, registers a checkpoint and deploys an endpoint, then:

1. Latency: submits ``--jobs`` txt2img jobs one after another and follows each
   through the public API, printing medians and p99 of
   - submit -> InvokeEndpointAsync accepted (the notification's ``receivedTime``);
   - SageMaker's notification -> ``succeed`` visible through the API (the
     notification's ``eventTime`` to the first poll that sees ``succeed``;
     polls every 20 ms, so this includes up to 20 ms of polling);
   and the AWS API calls the middleware made per job, by process and
   operation. A second stack that does the same set-up but runs no job gives
   the baseline to subtract, and the reads the client's own polls cause (one
   GetItem per poll of get-inference-job) are subtracted by count.
2. Sustained load: submits ``--load-jobs`` jobs from ``--clients`` threads at
   once and waits for all of them; prints jobs per second. Beside it, the
   emulator's own ceiling measured in the same run: AWS calls per second one
   client gets from it (DynamoDB GetItem/PutItem and S3 PutObject in turn), so
   ``jobs/s x calls per job / ceiling`` shows how close the middleware runs
   to the emulator's limit.

`bench/before_after.py` runs this against an earlier commit and this tree in one go.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import boto3
import requests

from inference_dispatcher.resources import RESOURCES
from infra.local.stack import REPO_ROOT, LocalStack, StackSettings
from tests import model_files
from tests.conftest import free_port

POLL_S = 0.02
#: What one poll of get-inference-job costs the edge: the reads the client causes, not the middleware.
POLL_READ = ("api-gateway-http", "dynamodb.GetItem")
JOB_BODY = {
    "task_type": "txt2img",
    "models": {"Stable-diffusion": ["bench.safetensors"]},
    "sagemaker_endpoint_name": "bench-endpoint",
    "prompt": "a cute panda",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_stack(tmp: Path, name: str, extra_env: dict[str, str] | None = None) -> LocalStack:
    """A stack of its own under ``tmp/name`` with the instant runtime; ``extra_env`` goes to its processes."""
    settings = StackSettings(
        api_port=free_port(),
        api_key="bench",
        emulator_port=free_port(),
        sagemaker_port=free_port(),
        run_dir=tmp / name,
        extra_env={
            "LOCAL_SAGEMAKER_RUNTIME_COMMAND": f"{sys.executable} {REPO_ROOT / 'bench' / 'instant_runtime.py'}",
            "SDMW_AWS_CALL_COUNTS_DIR": str(tmp / name / "aws-calls"),
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        },
    )
    stack = LocalStack(settings)
    stack.up()
    return stack


class Client:
    def __init__(self, stack: LocalStack) -> None:
        self.base = stack.settings.base_url
        self.headers = {"x-api-key": stack.settings.api_key}
        self.session = requests.Session()
        self.polls = 0
        self._lock = threading.Lock()

    def get(self, path: str, **params: str) -> dict:
        response = self.session.get(self.base + path, headers=self.headers, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def send(self, method: str, path: str, body: dict) -> dict:
        response = self.session.request(method, self.base + path, headers=self.headers, json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def job(self, job_id: str) -> dict:
        with self._lock:
            self.polls += 1
        return self.get("/inference/get-inference-job", jobID=job_id)


def set_up(client: Client, instances: int) -> None:
    created = client.send(
        "POST",
        "/checkpoint",
        {"checkpoint_type": "Stable-diffusion", "filenames": [{"filename": "bench.safetensors", "parts_number": 1}]},
    )
    url = created["multipart_uploads"][0]["s3_signed_urls"][0]
    # The instant runtime never reads the weights, but asset-registry checks the file's header on completion.
    etag = requests.put(url, data=model_files.safetensors(model_files.SD1_SHAPES), timeout=30).headers["ETag"]
    client.send(
        "PUT",
        "/checkpoint",
        {
            "checkpoint_id": created["checkpoint"]["id"],
            "status": "Active",
            "multi_parts_tags": {"bench.safetensors": [{"ETag": etag, "PartNumber": 1}]},
        },
    )
    job = client.send(
        "POST",
        "/inference/deploy-sagemaker-endpoint",
        {"instance_type": "ml.g5.xlarge", "initial_instance_count": instances, "endpoint_name": "bench-endpoint"},
    )
    while (
        client.get("/inference/get-endpoint-deployment-job", jobID=job["EndpointDeploymentJobId"])["status"]
        == "inprogress"
    ):
        time.sleep(0.1)


def wait_for(client: Client, job_id: str) -> tuple[dict, float]:
    while True:
        job = client.job(job_id)
        if job["status"] != "inprogress":
            seen = time.time()
            break
        time.sleep(POLL_S)
    if job["status"] != "succeed":
        raise RuntimeError(f"job {job_id} failed: {job.get('error')}")
    return job, seen


def run_job(client: Client) -> tuple[float, float, float, float]:
    """When the job was submitted, taken by SageMaker, notified, and seen succeeded (epoch seconds)."""
    submitted = time.time()
    job_id = client.send("POST", "/inference-api/inference", JOB_BODY)["inference_id"]
    job, seen = wait_for(client, job_id)
    notification = ast.literal_eval(job["sagemakerRaw"])
    return submitted, _epoch(notification["receivedTime"]), _epoch(notification["eventTime"]), seen


def _epoch(sagemaker_time: str) -> float:
    return datetime.fromisoformat(sagemaker_time.replace("Z", "+00:00")).timestamp()


def call_counts(stack: LocalStack) -> Counter:
    totals: Counter = Counter()
    for path in Path(stack.settings.extra_env["SDMW_AWS_CALL_COUNTS_DIR"]).glob("*.json"):
        process = path.stem.rsplit("-", 1)[0]
        for operation, count in json.loads(path.read_text()).items():
            totals[(process, operation)] += count
    return totals


def sustained(client: Client, jobs: int, clients: int) -> float:
    """Jobs per second: ``jobs`` submitted by ``clients`` threads at once, until the last one succeeded."""

    def one(_: int) -> None:
        job_id = client.send("POST", "/inference-api/inference", JOB_BODY)["inference_id"]
        wait_for(client, job_id)

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(jobs)))
    return jobs / (time.monotonic() - started)


def emulator_ceiling(stack: LocalStack, seconds: float = 5.0) -> float:
    """AWS calls per second one client gets from the emulator: GetItem, PutItem and PutObject in turn."""
    s = stack.settings
    session = boto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=s.region)
    dynamodb = session.client("dynamodb", endpoint_url=s.emulator_url)
    s3 = session.client("s3", endpoint_url=s.emulator_url)
    table, bucket = RESOURCES.table_name(s.prefix), s3.list_buckets()["Buckets"][0]["Name"]
    key = {"pk": {"S": f"bench-ceiling-{uuid.uuid4()}"}, "sk": {"S": "x"}}
    calls, deadline = 0, time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < deadline:
        dynamodb.put_item(TableName=table, Item={**key, "data": {"S": "{}"}})
        dynamodb.get_item(TableName=table, Key=key)
        s3.put_object(Bucket=bucket, Key="bench-ceiling/object.json", Body=b"{}")
        calls += 3
    return calls / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--load-jobs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--instances", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = start_stack(Path(tmp), "baseline")
        set_up(Client(baseline), args.instances)
        baseline.down()

        stack = start_stack(Path(tmp), "measured")
        client = Client(stack)
        set_up(client, args.instances)
        try:
            runs = [run_job(client) for _ in range(args.jobs)]
        finally:
            stack.down()  # each process writes its call counts as it exits
        per_job = call_counts(stack) - call_counts(baseline)
        per_job[POLL_READ] -= client.polls

        loaded = start_stack(Path(tmp), "load")
        try:
            load_client = Client(loaded)
            set_up(load_client, args.instances)
            jobs_per_s = sustained(load_client, args.load_jobs, args.clients) if args.load_jobs else None
            ceiling = emulator_ceiling(loaded)
        finally:
            loaded.down()
        to_dispatch = [received - submitted for submitted, received, _, _ in runs]
        to_visible = [seen - notified for _, _, notified, seen in runs]

    print(f"{args.jobs} jobs, {args.instances} instances, instant runtime stand-in")
    for label, values in (
        ("submit -> InvokeEndpointAsync", to_dispatch),
        ("notification -> succeed visible", to_visible),
    ):
        ms = [v * 1000 for v in values]
        print(f"  {label:34} median {statistics.median(ms):7.1f} ms   p99 {percentile(ms, 0.99):7.1f} ms")
    calls_per_job = sum(count for count in per_job.values() if count > 0) / args.jobs
    # The workers' own SQS calls (receive, delete) are Lambda's in AWS and are not counted.
    print(f"  AWS API calls by the middleware per job: {calls_per_job:.1f}")
    for (process, operation), count in sorted(per_job.items(), key=lambda item: -item[1]):
        if count > 0:
            print(f"    {count / args.jobs:5.2f}  {process:24} {operation}")
    print(f"  emulator ceiling, one client: {ceiling:.0f} AWS calls/s")
    if jobs_per_s is not None:
        used = jobs_per_s * calls_per_job
        print(
            f"  sustained: {args.load_jobs} jobs from {args.clients} clients: {jobs_per_s:.1f} jobs/s "
            f"= {used:.0f} middleware calls/s, {used / ceiling:.2f} of the one-client ceiling"
        )


if __name__ == "__main__":
    main()
