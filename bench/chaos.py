"""Faults under load: nothing lost, nothing duplicated, nothing going backwards, and how long recovery takes.

    .venv/bin/python -m bench.chaos [--jobs 200] [--pause-s 30]      # make chaos
    .venv/bin/python -m bench.chaos --jobs 24 --pause-s 5 --rate 1   # the short form CI runs (tests/e2e)

Starts the local stack with the instant runtime (``bench/instant_runtime.py``)
and an endpoint, then submits N txt2img jobs through the API while it, in turn:

1. kills each service worker with SIGKILL (the stack's supervisor restarts it);
2. re-publishes every event seen on the bus so far (a tap queue records them);
3. puts poison messages on every service queue;
4. pauses the emulator (SIGSTOP) for ``--pause-s`` seconds.

Then it waits for every accepted job to end and checks, printing each figure:
N submitted, N terminal, 0 lost, 0 duplicated outputs (one image and one
parameter file per job, one ``succeed`` version per job), 0 status
regressions (a job seen terminal is never seen otherwise), the poison only in
dead-letter queues, and the worst recovery time: after each fault ends (the
worker back, the emulator resumed), how long until every job that was in
flight at the fault had ended. The next fault starts only then (or once the
bound has passed), so each recovery is measured alone while jobs keep coming
at ``--rate`` per second. A kill's bound is the killed service's
hold on a message (its function's timeout) plus 10 s; the pause's is the largest on the inference
path plus 10 s. Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import requests

from bench.inference_dispatch import Client, set_up, start_stack
from infra.catalog import SERVICES
from infra.local.stack import LOCAL_WORKERS, LocalStack
from service_kit.worker import local_hold_s

TERMINAL = {"succeed", "failed"}
#: Local process name of each service's queue worker (the api-gateway's is its projector).
WORKER_PROCESSES = {
    service: service if service != "api-gateway" else "api-gateway-projector" for service in LOCAL_WORKERS
}
#: How long a local worker holds a message (its function's timeout): a killed one's message is back after it.
HOLD_S = {s.service: local_hold_s(s) for s in SERVICES if s.queue}
#: The services an inference job passes through: the emulator's pause delays all of them.
INFERENCE_PATH = ("api-gateway", "inference-dispatcher")
RECOVERY_MARGIN_S = 10.0
POISON = (
    "not json at all",
    json.dumps({"detail-type": "NoSuchEvent", "source": "sdmw.chaos", "detail": {}}),
    json.dumps({"detail-type": "InferenceRequested", "source": "sdmw.api-gateway", "detail": {"data": 42}}),
)


@dataclass
class Fault:
    name: str
    started: float
    ended: float = 0.0
    in_flight: set[str] = field(default_factory=set)
    bound_s: float = 0.0


@dataclass
class Observations:
    """What the client saw: when each job was accepted, every status it was seen in, and when it ended."""

    accepted: dict[str, float] = field(default_factory=dict)
    refused: int = 0
    seen: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    ended: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def in_flight(self) -> set[str]:
        with self.lock:
            return set(self.accepted) - set(self.ended)


class Emulator:
    """boto3 clients on the local stack's emulator."""

    def __init__(self, stack: LocalStack) -> None:
        s = stack.settings
        options = {
            "endpoint_url": s.emulator_url,
            "region_name": s.region,
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        self.sqs = boto3.client("sqs", **options)
        self.events = boto3.client("events", **options)
        self.s3 = boto3.client("s3", **options)
        self.prefix = s.prefix


def tap_the_bus(emulator: Emulator) -> str:
    """A queue that receives every project event, to re-publish them and count facts."""
    url = emulator.sqs.create_queue(QueueName=f"{emulator.prefix}-chaos-tap")["QueueUrl"]
    arn = emulator.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = f"{emulator.prefix}-bus"
    emulator.events.put_rule(
        Name=f"{emulator.prefix}-chaos-tap",
        EventBusName=bus,
        EventPattern=json.dumps({"source": [{"prefix": "sdmw."}]}),
    )
    emulator.events.put_targets(
        Rule=f"{emulator.prefix}-chaos-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}]
    )
    return url


def drain(emulator: Emulator, url: str) -> list[dict]:
    events = []
    while True:
        batch = emulator.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not batch:
            return events
        events.extend(json.loads(m["Body"]) for m in batch)
        emulator.sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )


def republish(emulator: Emulator, events: list[dict]) -> int:
    entries = [
        {
            "Source": e["source"],
            "DetailType": e["detail-type"],
            "Detail": json.dumps(e["detail"]),
            "EventBusName": f"{emulator.prefix}-bus",
        }
        for e in events
    ]
    for start in range(0, len(entries), 10):
        emulator.events.put_events(Entries=entries[start : start + 10])
    return len(entries)


def service_queues(emulator: Emulator) -> dict[str, str]:
    urls = emulator.sqs.list_queues(QueueNamePrefix=f"{emulator.prefix}-").get("QueueUrls", [])
    return {url.rsplit("/", 1)[-1]: url for url in urls}


def poison_every_queue(emulator: Emulator) -> int:
    sent = 0
    for name, url in service_queues(emulator).items():
        if name.endswith("-dlq") or name.endswith("-chaos-tap"):
            continue
        for body in POISON:
            emulator.sqs.send_message(QueueUrl=url, MessageBody=body)
            sent += 1
    return sent


def wait_for_dead_letters(emulator: Emulator, expected: int, timeout_s: float) -> None:
    """Poison reaches a DLQ after maxReceiveCount tries with back-off (about 20 s): wait for it, bounded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waiting = sum(
            int(
                emulator.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            )
            for name, url in service_queues(emulator).items()
            if name.endswith("-dlq")
        )
        if waiting >= expected:
            return
        time.sleep(1.0)


def dead_letters(emulator: Emulator) -> list[str]:
    """Every message in the dead-letter queues, left in place (their visibility only changes)."""
    bodies = []
    for name, url in service_queues(emulator).items():
        if not name.endswith("-dlq"):
            continue
        while True:
            batch = emulator.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                break
            bodies.extend(m["Body"] for m in batch)
    return bodies


def pids(stack: LocalStack) -> dict[str, int]:
    path = stack.settings.run_dir / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def kill_and_wait_for_restart(stack: LocalStack, process: str, timeout_s: float = 60) -> float:
    old = pids(stack)[process]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        new = pids(stack).get(process)
        if new and new != old and alive(new):
            return time.time()
        time.sleep(0.1)
    raise RuntimeError(f"{process} was not restarted within {timeout_s:.0f} s")


def job_body(index: int) -> dict:
    return {
        "task_type": "txt2img",
        "models": {"Stable-diffusion": ["bench.safetensors"]},
        "sagemaker_endpoint_name": "bench-endpoint",
        "prompt": f"chaos job {index}",
    }


def submit(client: Client, observations: Observations, index: int) -> None:
    """As a client would: a refused or unanswered submit is tried again a few times."""
    for attempt in range(5):
        try:
            response = requests.post(
                client.base + "/inference-api/inference", headers=client.headers, json=job_body(index), timeout=60
            )
        except requests.RequestException:
            response = None
        if response is not None and response.status_code == 200:
            with observations.lock:
                observations.accepted[response.json()["inference_id"]] = time.time()
            return
        with observations.lock:
            observations.refused += 1
        time.sleep(1 + attempt)


def poll(client: Client, observations: Observations, stop: threading.Event) -> None:
    while not stop.is_set():
        for job_id in observations.in_flight():
            try:
                response = requests.get(
                    client.base + "/inference/get-inference-job",
                    headers=client.headers,
                    params={"jobID": job_id},
                    timeout=10,
                )
            except requests.RequestException:
                continue
            if response.status_code != 200:
                continue
            status = response.json()["status"]
            with observations.lock:
                observations.seen[job_id].append(status)
                if status in TERMINAL and job_id not in observations.ended:
                    observations.ended[job_id] = time.time()
        stop.wait(0.3)
    # One last look at every job, terminal ones included, for regressions.
    for job_id in list(observations.accepted):
        response = requests.get(
            client.base + "/inference/get-inference-job", headers=client.headers, params={"jobID": job_id}, timeout=10
        )
        if response.status_code == 200:
            observations.seen[job_id].append(response.json()["status"])


def inject_faults(stack: LocalStack, emulator: Emulator, tap: str, observations: Observations, pause_s: float):
    """Each fault in turn; the next starts once the jobs in flight at this one have ended (or its bound passed),
    so each recovery is measured on its own, while jobs keep arriving."""
    faults: list[Fault] = []
    counts: dict = {"republished": 0, "poison": 0, "tapped": []}
    inference_bound = max(HOLD_S[s] for s in INFERENCE_PATH) + RECOVERY_MARGIN_S

    def recorded(name: str, bound_s: float, inject) -> None:
        fault = Fault(name, time.time(), in_flight=observations.in_flight(), bound_s=bound_s)
        fault.ended = inject()
        faults.append(fault)
        wait_for(lambda: not fault.in_flight - set(observations.ended), fault.ended + bound_s)

    for service, process in WORKER_PROCESSES.items():
        recorded(
            f"SIGKILL {process}",
            HOLD_S[service] + RECOVERY_MARGIN_S,
            lambda process=process: kill_and_wait_for_restart(stack, process),
        )

    def republish_all() -> float:
        counts["tapped"] = drain(emulator, tap)
        counts["republished"] = republish(emulator, counts["tapped"])
        return time.time()

    def poison() -> float:
        counts["poison"] = poison_every_queue(emulator)
        return time.time()

    def pause() -> float:
        emulator_pid = pids(stack)["emulator"]
        os.kill(emulator_pid, signal.SIGSTOP)
        try:
            time.sleep(pause_s)
        finally:
            os.kill(emulator_pid, signal.SIGCONT)
        return time.time()

    recorded("re-publish every event", inference_bound, republish_all)
    recorded("poison on every queue", inference_bound, poison)
    recorded(f"emulator paused {pause_s:.0f} s", inference_bound, pause)
    return faults, counts


def wait_for(condition, until: float) -> None:
    while not condition() and time.time() < until:
        time.sleep(0.2)


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def figure(self, label: str, value: object, ok: bool = True) -> None:
        self.lines.append(f"  {label:42} {value}{'' if ok else '   <-- FAILED'}")
        if not ok:
            self.failures.append(f"{label}: {value}")


def outputs_per_job(emulator: Emulator, bucket: str, job_id: str) -> tuple[int, int]:
    keys = [
        o["Key"]
        for page in emulator.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"out/{job_id}/result/")
        for o in page.get("Contents", [])
    ]
    return sum(k.endswith(".jpg") for k in keys), sum(k.endswith("_param.json") for k in keys)


def succeed_versions(events: list[dict]) -> dict[str, set[int]]:
    """Per job, the distinct versions of InferenceJobChanged facts that said ``succeed``."""
    versions: dict[str, set[int]] = defaultdict(set)
    for event in events:
        if event.get("detail-type") != "InferenceJobChanged":
            continue
        data = event["detail"].get("data") or {}
        if data.get("status") == "succeed":
            versions[data.get("id") or data.get("inference_id") or ""].add(data.get("version"))
    return versions


def regressions(observations: Observations) -> list[str]:
    """Jobs seen in another status after they were first seen terminal."""
    found = []
    for job_id, statuses in observations.seen.items():
        first = next((i for i, status in enumerate(statuses) if status in TERMINAL), None)
        if first is not None and any(status != statuses[first] for status in statuses[first:]):
            found.append(job_id)
    return found


def check(emulator, tap, observations, faults, counts, jobs) -> Report:
    report = Report()
    accepted, ended = set(observations.accepted), set(observations.ended)
    report.figure("jobs submitted (accepted)", len(accepted), len(accepted) == jobs)
    report.figure("submits refused or unanswered, then retried", observations.refused)
    report.figure("jobs terminal", len(ended & accepted), ended >= accepted)
    report.figure("jobs lost", len(accepted - ended), not accepted - ended)
    failed = [j for j in accepted if (observations.seen.get(j) or [""])[-1] == "failed"]
    report.figure("jobs failed", len(failed), not failed)
    bucket = f"{emulator.prefix}-bucket"
    duplicated = [j for j in accepted - set(failed) if outputs_per_job(emulator, bucket, j) != (1, 1)]
    tapped = counts["tapped"] + drain(emulator, tap)
    succeeded = succeed_versions(tapped)
    twice = [j for j, versions in succeeded.items() if j in accepted and len(versions) > 1]
    # The duplicate check means something only if the tap saw every job's completion.
    seen_done = len(set(succeeded) & accepted)
    report.figure("jobs whose succeed fact the tap saw", seen_done, seen_done == len(accepted) - len(failed))
    report.figure("jobs with duplicated outputs", len(duplicated) + len(twice), not duplicated and not twice)
    backwards = regressions(observations)
    report.figure("status regressions", len(backwards), not backwards)
    report.figure("events re-published", counts["republished"])
    wait_for_dead_letters(emulator, counts["poison"], timeout_s=90)
    letters = dead_letters(emulator)
    unexpected = [body for body in letters if body not in POISON]
    report.figure(
        "poison messages sent / dead-lettered",
        f"{counts['poison']} / {len(letters) - len(unexpected)}",
        len(letters) - len(unexpected) == counts["poison"],
    )
    report.figure("other messages dead-lettered", len(unexpected), not unexpected)
    worst = (0.0, "")
    for fault in faults:
        last = max((observations.ended.get(j, float("inf")) for j in fault.in_flight), default=fault.ended)
        recovery = max(0.0, last - fault.ended)
        report.figure(
            f"recovery after {fault.name}",
            f"{recovery:.1f} s ({len(fault.in_flight)} in flight, bound {fault.bound_s:.0f} s)",
            recovery <= fault.bound_s,
        )
        worst = max(worst, (recovery, fault.name))
    report.figure("worst recovery", f"{worst[0]:.1f} s ({worst[1]})")
    return report


def run(
    jobs: int = 200, pause_s: float = 30.0, rate: float = 2.0, concurrency: int = 8, settle_s: float = 240.0
) -> Report:
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), "chaos")
        try:
            client = Client(stack)
            set_up(client, instances=2)
            emulator = Emulator(stack)
            tap = tap_the_bus(emulator)
            observations, stop = Observations(), threading.Event()
            poller = threading.Thread(target=poll, args=(client, observations, stop), daemon=True)
            poller.start()
            with ThreadPoolExecutor(concurrency + 1) as pool:
                faulting = pool.submit(inject_faults, stack, emulator, tap, observations, pause_s)
                interval = 1.0 / rate
                submissions = []
                for index in range(jobs):
                    submissions.append(pool.submit(submit, client, observations, index))
                    time.sleep(interval)
                faults, counts = faulting.result()
                for submission in submissions:
                    submission.result()
            deadline = time.monotonic() + settle_s
            while observations.in_flight() and time.monotonic() < deadline:
                time.sleep(0.5)
            stop.set()
            poller.join(timeout=120)
            return check(emulator, tap, observations, faults, counts, jobs)
        finally:
            stack.down(save=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--pause-s", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2.0, help="jobs submitted per second")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    started = time.monotonic()
    report = run(args.jobs, args.pause_s, args.rate, args.concurrency)
    print(f"chaos: {args.jobs} jobs at {args.rate:g}/s, instant runtime, {time.monotonic() - started:.0f} s")
    print("\n".join(report.lines))
    if report.failures:
        print("FAILED: " + "; ".join(report.failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
