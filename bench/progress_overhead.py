"""What progress reporting and the cancel check cost a sampling step, on the tiny test pipeline.

    python -m bench.progress_overhead                 # 64x64, 60 steps, 5 runs each way
    python -m bench.progress_overhead --size 128 --steps 100 --runs 3

Runs the runtime's own generation path (``sd_runtime.generate.Generator``) on
``sd_runtime.testing``'s tiny pipeline (CPU), once without a watch and once
with the watch a real job has (``sd_runtime.job_watch.JobWatch``): a
``ProgressReporter`` at its one-a-second limit putting events with the real
``EventBridgeSink`` (its background thread, boto3's EventBridge client) and a
``CancelMarker`` asking S3 for the job's marker, both against an embedded moto
server. A step is timed from one UNet call to the next (a forward pre-hook,
present in both runs), so it includes the scheduler's step and the
``callback_on_step_end`` between them. Printed: the median and mean step time
of each way and their ratios, and how many reports went to the bus.

The tiny pipeline's steps take milliseconds, which makes the per-step cost of
the callback as visible as it can be; on a real checkpoint a step takes tens
to hundreds of milliseconds and the same cost is a smaller share of it.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from typing import Any

import boto3
import torch
from moto.server import ThreadedMotoServer

from sd_runtime.generate import Generator, Plan, sampling_passes
from sd_runtime.job_watch import CancelMarker, JobWatch
from sd_runtime.progress import EventBridgeSink, ProgressReporter
from sd_runtime.samplers import resolve_sampler
from sd_runtime.seeds import plan_seeds
from sd_runtime.testing import build_tiny_pipeline
from sdmw_contracts.events.progress import InferenceProgressReported
from tests.conftest import free_port

BUS = "sdmw-bench-bus"
BUCKET = "sdmw-bench-bucket"
REGION = "us-east-1"


class StepTimer:
    """When each UNet call began: the differences are the step times."""

    def __init__(self, unet: Any) -> None:
        self.starts: list[float] = []
        unet.register_forward_pre_hook(lambda module, args: self.starts.append(time.perf_counter()))

    def step_times(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.starts, self.starts[1:], strict=False)]


def plan_for(size: int, steps: int) -> Plan:
    return Plan(
        task="txt2img",
        prompt="a red cube on a table",
        negative_prompt="",
        width=size,
        height=size,
        steps=steps,
        cfg_scale=7.0,
        sampler=resolve_sampler("Euler a"),
        batch_size=1,
        n_iter=1,
        seeds=plan_seeds(1234, -1, 0.0, 1),
    )


class CountingSink(EventBridgeSink):
    """The real sink, counting what it was given."""

    def __init__(self, bus_name: str) -> None:
        super().__init__(bus_name)
        self.count = 0

    def put(self, event: Any) -> None:
        self.count += 1
        super().put(event)


def watch_for(plan: Plan, sink: EventBridgeSink, job_id: str) -> JobWatch:
    reporter = ProgressReporter(job_id, InferenceProgressReported, sink)
    marker = CancelMarker(boto3.client("s3", region_name=REGION), BUCKET, job_id)
    return JobWatch(reporter, marker.present, sampling_passes(plan), batches=plan.n_iter)


def measure(pipe: Any, plan: Plan, runs: int, sink: EventBridgeSink) -> tuple[list[float], list[float]]:
    """Every step time of ``runs`` generations each way (after one warm-up each), unwatched and watched.

    The two ways alternate run by run, so that whatever else the machine does weighs on both alike.
    """
    timer = StepTimer(pipe.unet)
    plain: list[float] = []
    watched: list[float] = []
    for run in range(runs + 1):
        for watch, times in ((None, plain), (watch_for(plan, sink, f"bench-job-{run}"), watched)):
            timer.starts.clear()
            Generator(pipe, pipe.tokenizer, [], watch).run(plan)
            if run:  # the first of each is the warm-up
                times += timer.step_times()
    return plain, watched


def start_moto() -> ThreadedMotoServer:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION=REGION,
    )
    boto3.client("events", region_name=REGION).create_event_bus(Name=BUS)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads (1: steadier on a busy host)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    server = start_moto()
    try:
        pipe = build_tiny_pipeline()
        pipe.set_progress_bar_config(disable=True)
        plan = plan_for(args.size, args.steps)
        sink = CountingSink(BUS)
        plain, watched = measure(pipe, plan, args.runs, sink)
        sink.close()
    finally:
        server.stop()

    setting = f"{args.size}x{args.size}, {args.steps} steps, {args.runs} runs each"
    print(f"tiny pipeline, {setting} (CPU, {args.threads} torch threads)")
    for name, times in (("without progress", plain), ("with progress", watched)):
        print(
            f"  {name:17s} median step {statistics.median(times) * 1000:7.3f} ms, "
            f"mean {statistics.fmean(times) * 1000:7.3f} ms ({len(times)} steps)"
        )
    median_ratio = statistics.median(watched) / statistics.median(plain)
    mean_ratio = statistics.fmean(watched) / statistics.fmean(plain)
    print(f"  ratio with/without: median {median_ratio:.3f}, mean {mean_ratio:.3f}")
    print(f"  reports put on the bus: {sink.count}")


if __name__ == "__main__":
    main()
