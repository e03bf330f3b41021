"""Seconds from ``PUT /train`` to the trained checkpoint being listed Active, through the public API.

    .venv/bin/python -m bench.train_to_checkpoint [--runs 3] [--steps 2] [--size 32]

Starts the local stack (the real ``sd_runtime train`` under the local
SageMaker, on this machine's CPU), uploads a tiny random base checkpoint and a
dataset of three images, creates the working model, then trains DreamBooth and
LoRA ``--runs`` times each. For each run it prints the time from ``PUT
/train`` to the job's ``Complete`` and to its checkpoint listed in
``GET /checkpoints?status=Active``, and the median of each. The training
itself is a few steps on a tiny model, so the figure is mostly the
middleware, SageMaker's job lifecycle and the container's start-up (importing
torch and diffusers, loading the model).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import boto3

from infra.local.stack import LocalStack, StackSettings
from sd_runtime import testing
from tests.conftest import free_port
from tests.e2e.conftest import ApiClient
from tests.e2e.test_inference import upload_folder_checkpoint
from tests.e2e.test_training import create_dataset, create_model, image_bytes, presigned_urls, start_model

BASE = "bench-train-base"


def phases(sagemaker, job_name: str) -> str:
    """Seconds in each of SageMaker's secondary statuses, from DescribeTrainingJob."""
    transitions = sagemaker.describe_training_job(TrainingJobName=job_name)["SecondaryStatusTransitions"]
    return ", ".join(
        f"{t['Status']} {(t['EndTime'] - t['StartTime']).total_seconds():.2f} s" for t in transitions if "EndTime" in t
    )


def run_once(
    api: ApiClient, sagemaker, model_id: str, dataset: str, train_type: str, steps: int, size: int
) -> tuple[float, float, str]:
    params = {
        "dataset_names": [dataset],
        "instance_prompt": "a photo of sks square",
        "max_train_steps": steps,
        "resolution": size,
        "learning_rate": 1e-4,
    }
    created = api.post(
        "/train", json={"train_type": train_type, "model_id": model_id, "params": {"train_params": params}}
    )
    created.raise_for_status()
    job_id = created.json()["job"]["id"]
    assert presigned_urls(created.json()) == {}
    started = time.monotonic()
    api.put("/train", json={"train_job_id": job_id, "status": "Training"}).raise_for_status()
    complete_s = listed_s = None
    while listed_s is None:
        if time.monotonic() - started > 600:
            raise RuntimeError(f"train job {job_id} did not finish in 600 s")
        job = next(j for j in api.get("/trains").json()["trainJobs"] if j["id"] == job_id)
        if job["status"] == "Fail":
            raise RuntimeError(f"train job {job_id} failed: {job['error']}")
        if job["status"] == "Complete":
            complete_s = complete_s or time.monotonic() - started
            active = api.get("/checkpoints", params={"status": "Active"}).json()["checkpoints"]
            if any(c["id"] == job["checkpoint_id"] for c in active):
                listed_s = time.monotonic() - started
        time.sleep(0.1)
    return complete_s, listed_s, phases(sagemaker, job["sagemakerTrainName"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        settings = StackSettings(
            api_port=free_port(),
            api_key="bench",
            emulator_port=free_port(),
            sagemaker_port=free_port(),
            run_dir=tmp / "stack",
            extra_env={"LOG_LEVEL": "WARNING"},
        )
        stack = LocalStack(settings)
        stack.up()
        try:
            api = ApiClient(settings.base_url, settings.api_key)
            sagemaker = boto3.client(
                "sagemaker",
                endpoint_url=settings.sagemaker_url,
                region_name=settings.region,
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )
            upload_folder_checkpoint(api, testing.build_tiny_pipeline_dir(tmp / "base"), BASE)
            dataset = create_dataset(api, {f"{c}.png": image_bytes(rgb) for c, rgb in _COLOURS.items()})
            model = start_model(api, create_model(api, "bench-model", ckpt_path=BASE)["job"]["id"])
            if model["status"] != "Complete":
                raise RuntimeError(f"model creation failed: {model}")
            print(f"tiny SD model, {args.steps} steps at {args.size}px, 3 images, real sd_runtime train on the CPU")
            for train_type in ("dreambooth", "lora"):
                results = [
                    run_once(api, sagemaker, model["id"], dataset, train_type, args.steps, args.size)
                    for _ in range(args.runs)
                ]
                for index, (complete_s, listed_s, spent) in enumerate(results, 1):
                    print(
                        f"  {train_type:10} run {index}: Complete after {complete_s:6.2f} s,"
                        f" listed after {listed_s:6.2f} s ({spent})"
                    )
                print(
                    f"{train_type:10} median: PUT /train -> Complete {statistics.median(r[0] for r in results):.2f} s,"
                    f" -> checkpoint listed Active {statistics.median(r[1] for r in results):.2f} s"
                )
        finally:
            stack.down()


_COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}

if __name__ == "__main__":
    main()
