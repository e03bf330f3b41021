"""Upload a checkpoint through the API's multipart flow and compare with a plain boto3 upload.

    .venv/bin/python -m bench.upload_checkpoint [--size-mib 1024] [--part-mib 64] [--workers 4] [--runs 3]

Starts its own local stack (as `make up` does, on free ports), then per run:
1. the seed's flow: POST /checkpoint, PUT every part to its presigned URL
   (``--workers`` at a time), PUT /checkpoint with the ETags, until Active;
2. the same bytes with boto3's managed multipart upload (what ``aws s3 cp``
   does) straight to the same emulator, same part size and concurrency;
3. the same again with boto3's checksums off, as a reference: boto3 asks for
   CRC32 checksums per part, which a client PUTting parts to presigned URLs
   does not send, and moto completes an upload without them more slowly (it
   copies the whole object again to compute a full-object CRC over it).
Prints MB/s of each run and the medians, the ratio of the API flow to each
boto3 upload, and the median time of each phase of every flow: create
(POST /checkpoint; CreateMultipartUpload), parts (every part uploaded) and
complete (PUT /checkpoint until Active; CompleteMultipartUpload).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from infra.local.stack import LocalStack, StackSettings
from tests.conftest import free_port

MIB = 1024 * 1024


@dataclass(frozen=True)
class Phases:
    """Seconds each phase of one upload took."""

    create: float
    parts: float
    complete: float

    @property
    def total(self) -> float:
        return self.create + self.parts + self.complete


def api_upload(base_url: str, key: str, path: Path, part_size: int, workers: int) -> Phases:
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
    uploading = time.perf_counter()

    def put_part(number: int) -> dict:
        with path.open("rb") as f:
            f.seek((number - 1) * part_size)
            response = requests.put(urls[number - 1], data=f.read(part_size), timeout=600)
        response.raise_for_status()
        return {"ETag": response.headers["ETag"], "PartNumber": number}

    with ThreadPoolExecutor(workers) as pool:
        tags = list(pool.map(put_part, range(1, parts + 1)))
    completing = time.perf_counter()
    done = requests.put(
        f"{base_url}/checkpoint",
        headers=headers,
        json={"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": {path.name: tags}},
        timeout=600,
    )
    done.raise_for_status()
    assert done.json()["checkpoint"]["status"] == "Active", done.text
    finished = time.perf_counter()
    return Phases(create=uploading - started, parts=completing - uploading, complete=finished - completing)


class _CallClock:
    """When boto3's client made its Create- and CompleteMultipartUpload calls, from its own event hooks."""

    def __init__(self, s3) -> None:
        self.marks: dict[str, float] = {}
        for operation in ("CreateMultipartUpload", "CompleteMultipartUpload"):
            s3.meta.events.register(f"before-call.s3.{operation}", self._mark(f"{operation}-before"))
            s3.meta.events.register(f"after-call.s3.{operation}", self._mark(f"{operation}-after"))

    def _mark(self, name: str):
        def mark(**_: object) -> None:
            self.marks[name] = time.perf_counter()

        return mark


def boto3_upload(
    settings: StackSettings, path: Path, part_size: int, workers: int, key: str, checksums: bool = True
) -> Phases:
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.emulator_url,
        region_name=settings.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(request_checksum_calculation="when_supported" if checksums else "when_required"),
    )
    clock = _CallClock(s3)
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=workers)
    started = time.perf_counter()
    s3.upload_file(str(path), f"{settings.prefix}-bucket", key, Config=config)
    finished = time.perf_counter()
    created, completing = clock.marks["CreateMultipartUpload-after"], clock.marks["CompleteMultipartUpload-before"]
    return Phases(create=created - started, parts=completing - created, complete=finished - completing)


def _mb_s(size_mib: int, phases: Phases) -> float:
    return size_mib / phases.total


def _median_phases(runs: list[Phases]) -> str:
    def median(field: str) -> float:
        return statistics.median(getattr(p, field) for p in runs)

    return f"create {median('create'):6.3f} s, parts {median('parts'):6.3f} s, complete {median('complete'):6.3f} s"


FLOWS = ("API multipart flow", "boto3 upload_file", "boto3, checksums off")


def one_run(settings: StackSettings, path: Path, part_size: int, workers: int, run: int) -> dict[str, Phases]:
    """Each flow once, in the same order every run."""
    return {
        FLOWS[0]: api_upload(settings.base_url, settings.api_key, path, part_size, workers),
        FLOWS[1]: boto3_upload(settings, path, part_size, workers, f"bench/plain-{run}-{path.name}"),
        FLOWS[2]: boto3_upload(settings, path, part_size, workers, f"bench/bare-{run}-{path.name}", checksums=False),
    }


def report(args: argparse.Namespace, runs: list[dict[str, Phases]]) -> None:
    medians = {flow: statistics.median(_mb_s(args.size_mib, run[flow]) for run in runs) for flow in FLOWS}
    api = medians[FLOWS[0]]
    print(
        f"{args.size_mib} MiB in {args.part_mib} MiB parts, {args.workers} workers, {args.runs} runs: "
        f"median API flow {api:.1f} MB/s, median boto3 {medians[FLOWS[1]]:.1f} MB/s, "
        f"ratio {api / medians[FLOWS[1]]:.2f}; boto3 with checksums off {medians[FLOWS[2]]:.1f} MB/s, "
        f"ratio {api / medians[FLOWS[2]]:.2f}"
    )
    print("median time of each phase:")
    for flow in FLOWS:
        print(f"  {flow:<21} {_median_phases([run[flow] for run in runs])}")


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
            runs = []
            for run in range(args.runs):
                runs.append(one_run(settings, path, args.part_mib * MIB, args.workers, run))
                print(
                    f"run {run + 1}: " + ", ".join(f"{f} {_mb_s(args.size_mib, runs[-1][f]):7.1f} MB/s" for f in FLOWS)
                )
        finally:
            stack.down()
    report(args, runs)


if __name__ == "__main__":
    main()
