"""What the middleware adds to an inference job, with a runtime that answers at once.

    .venv/bin/python -m bench.inference_dispatch [--jobs 50] [--instances 2]

Starts the local stack with `bench/instant_runtime.py` as the endpoint's
container, registers a checkpoint and deploys an endpoint, then submits N
txt2img jobs one after another and follows each through the public API.
Prints medians and p99 of:

- submit -> InvokeEndpointAsync accepted (the job's ``dispatched_at``);
- SageMaker's notification -> ``succeed`` visible through the API (the
  notification's ``eventTime`` to the first poll that sees ``succeed``; polls
  every 20 ms, so this includes up to 20 ms of polling);
and the AWS API calls the middleware made per job, by operation: a second
stack that does the same set-up but no job gives the baseline to subtract;
reads caused by the client's own polling are left out.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import boto3
import requests

from infra.local.stack import REPO_ROOT, LocalStack, StackSettings
from tests.conftest import free_port

POLL_S = 0.02
#: Reads the edge makes because the client polls: not work the middleware does per job.
CLIENT_DRIVEN = {("api-gateway-http", "dynamodb.GetItem"), ("api-gateway-http", "dynamodb.Query")}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_stack(tmp: Path, name: str) -> LocalStack:
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
        },
    )
    stack = LocalStack(settings)
    stack.up()
    return stack


class Client:
    def __init__(self, stack: LocalStack) -> None:
        self.base = stack.settings.base_url
        self.headers = {"x-api-key": stack.settings.api_key}

    def get(self, path: str, **params: str) -> dict:
        response = requests.get(self.base + path, headers=self.headers, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def send(self, method: str, path: str, body: dict) -> dict:
        response = requests.request(method, self.base + path, headers=self.headers, json=body, timeout=60)
        response.raise_for_status()
        return response.json()


def set_up(client: Client, instances: int) -> None:
    created = client.send(
        "POST",
        "/checkpoint",
        {"checkpoint_type": "Stable-diffusion", "filenames": [{"filename": "bench.safetensors", "parts_number": 1}]},
    )
    url = created["multipart_uploads"][0]["s3_signed_urls"][0]
    etag = requests.put(url, data=b"not really a model", timeout=30).headers["ETag"]
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


def run_job(client: Client) -> tuple[float, float, float, str]:
    body = {
        "task_type": "txt2img",
        "models": {"Stable-diffusion": ["bench.safetensors"]},
        "sagemaker_endpoint_name": "bench-endpoint",
        "prompt": "a cute panda",
    }
    submitted = time.time()
    job_id = client.send("POST", "/inference-api/inference", body)["inference_id"]
    while True:
        job = client.get("/inference/get-inference-job", jobID=job_id)
        if job["status"] != "inprogress":
            seen = time.time()
            break
        time.sleep(POLL_S)
    if job["status"] != "succeed":
        raise RuntimeError(f"job {job_id} failed: {job.get('error')}")
    notification = ast.literal_eval(job["sagemakerRaw"])
    notified = datetime.fromisoformat(notification["eventTime"].replace("Z", "+00:00")).timestamp()
    return submitted, notified, seen, job_id


def call_counts(stack: LocalStack) -> Counter:
    totals: Counter = Counter()
    for path in Path(stack.settings.extra_env["SDMW_AWS_CALL_COUNTS_DIR"]).glob("*.json"):
        process = path.stem.rsplit("-", 1)[0]
        for operation, count in json.loads(path.read_text()).items():
            if (process, operation) not in CLIENT_DRIVEN:
                totals[(process, operation)] += count
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50)
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
            dispatched = dispatched_at(stack, [job_id for *_, job_id in runs])
        finally:
            stack.down()
        to_dispatch = [dispatched[job_id] - submitted for submitted, _, _, job_id in runs]
        to_visible = [seen - notified for _, notified, seen, _ in runs]
        per_job = call_counts(stack) - call_counts(baseline)

    print(f"{args.jobs} jobs, {args.instances} instances, instant runtime stand-in")
    for label, values in (
        ("submit -> InvokeEndpointAsync", to_dispatch),
        ("notification -> succeed visible", to_visible),
    ):
        ms = [v * 1000 for v in values]
        print(f"  {label:34} median {statistics.median(ms):7.1f} ms   p99 {percentile(ms, 0.99):7.1f} ms")
    total = sum(per_job.values()) / args.jobs
    print(f"  AWS API calls by the middleware per job: {total:.1f}")
    for (process, operation), count in sorted(per_job.items(), key=lambda item: -item[1]):
        print(f"    {count / args.jobs:5.2f}  {process:24} {operation}")


def dispatched_at(stack: LocalStack, job_ids: list[str]) -> dict[str, float]:
    """When InvokeEndpointAsync accepted each job, from the dispatcher's own table."""
    s = stack.settings
    table = boto3.resource(
        "dynamodb",
        endpoint_url=s.emulator_url,
        region_name=s.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    ).Table(f"{s.prefix}-inference-dispatcher")
    found = {}
    for job_id in job_ids:
        data = json.loads(table.get_item(Key={"pk": "InferenceJob", "sk": job_id})["Item"]["data"])
        found[job_id] = datetime.fromisoformat(data["dispatched_at"].replace("Z", "+00:00")).timestamp()
    return found


if __name__ == "__main__":
    main()
