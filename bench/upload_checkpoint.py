"""Upload a checkpoint through the API's multipart flow and compare with a plain boto3 upload.

    .venv/bin/python -m bench.upload_checkpoint [--size-mib 1024] [--part-mib 64] [--workers 4] [--runs 3]

Starts its own local stack (as `make up` does, on free ports), then per run:
1. the seed's flow: POST /checkpoint, PUT every part to its presigned URL
   (``--workers`` at a time), PUT /checkpoint with the ETags, until Active;
2. the same bytes with boto3's managed multipart upload (what ``aws s3 cp``
   does) straight to the same emulator, same part size and concurrency.
Prints MB/s of each run and the medians, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests
from boto3.s3.transfer import TransferConfig

from infra.local.stack import LocalStack, StackSettings
from tests.conftest import free_port

MIB = 1024 * 1024


def api_upload(base_url: str, key: str, path: Path, part_size: int, workers: int) -> float:
    headers = {"x-api-key": key}
    size = path.stat().st_size
    parts = -(-size // part_size)
    started = time.perf_counter()
    created = requests.post(
        f"{base_url}/checkpoint",
        headers=headers,
        json={"checkpoint_type": "Stable-diffusion", "filenames": [{"filename": path.name, "parts_number": parts}]},
        timeout=120,
    )
    created.raise_for_status()
    checkpoint_id = created.json()["checkpoint"]["id"]
    urls = created.json()["multipart_uploads"][0]["s3_signed_urls"]

    def put_part(number: int) -> dict:
        with path.open("rb") as f:
            f.seek((number - 1) * part_size)
            response = requests.put(urls[number - 1], data=f.read(part_size), timeout=600)
        response.raise_for_status()
        return {"ETag": response.headers["ETag"], "PartNumber": number}

    with ThreadPoolExecutor(workers) as pool:
        tags = list(pool.map(put_part, range(1, parts + 1)))
    done = requests.put(
        f"{base_url}/checkpoint",
        headers=headers,
        json={"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": {path.name: tags}},
        timeout=600,
    )
    done.raise_for_status()
    assert done.json()["checkpoint"]["status"] == "Active", done.text
    return size / MIB / (time.perf_counter() - started)


def boto3_upload(settings: StackSettings, path: Path, part_size: int, workers: int, run: int) -> float:
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.emulator_url,
        region_name=settings.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=workers)
    started = time.perf_counter()
    s3.upload_file(str(path), f"{settings.prefix}-bucket", f"bench/plain-{run}-{path.name}", Config=config)
    return path.stat().st_size / MIB / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--part-mib", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-model.safetensors"
        with path.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MIB))
        settings = StackSettings(
            api_port=free_port(),
            api_key="bench",
            emulator_port=free_port(),
            sagemaker_port=free_port(),
            run_dir=Path(tmp) / "stack",
            extra_env={"TRANSITION_WAIT_S": "600"},
        )
        stack = LocalStack(settings)
        stack.up()
        try:
            via_api, plain = [], []
            for run in range(args.runs):
                via_api.append(api_upload(settings.base_url, settings.api_key, path, args.part_mib * MIB, args.workers))
                plain.append(boto3_upload(settings, path, args.part_mib * MIB, args.workers, run))
                print(
                    f"run {run + 1}: API multipart flow {via_api[-1]:7.1f} MB/s, "
                    f"boto3 upload_file {plain[-1]:7.1f} MB/s"
                )
        finally:
            stack.down()
    api_median, plain_median = statistics.median(via_api), statistics.median(plain)
    print(
        f"{args.size_mib} MiB in {args.part_mib} MiB parts, {args.workers} workers, {args.runs} runs: "
        f"median API flow {api_median:.1f} MB/s, median boto3 {plain_median:.1f} MB/s, "
        f"ratio {api_median / plain_median:.2f}"
    )


if __name__ == "__main__":
    main()
