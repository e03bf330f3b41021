"""Faults under load: nothing lost, nothing duplicated, nothing going backwards, and how long recovery takes.

    .venv/bin/python -m bench.chaos [--jobs 200] [--pause-s 30] [--edge-rounds 6] [--trickle-jobs 40]
                                    [--deploy-pairs 20]                  # make chaos
    .venv/bin/python -m bench.chaos --jobs 24 --pause-s 5 --rate 1 --edge-rounds 3 --trickle-jobs 8 \
                                    --deploy-pairs 5                     # the short form CI runs (tests/e2e)

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
path plus 10 s.

Then, on the same stack, one after another (each one's size 0 leaves it out):

5. The edge killed during concurrent submits (``--edge-rounds``): each round sends 16 submits at
   once, each with an ``Idempotency-Key`` of its own and a prompt of its own, and SIGKILLs the HTTP
   edge 1-2 s later. Clients retry what got no answer with the same key and body (for up to 90 s: a
   claim left by a request that died with the edge is free after 60 s). Every job created must end
   within 120 s of the last kill; each submit must have at most one job, and every answer (replays
   included) must name it; no job may exist that no submit accounts for.
6. A trickling webhook receiver (``--trickle-jobs``): one origin answering 200 one byte every 2.5 s,
   subscribed on 4 paths, beside a healthy receiver on another origin; jobs run, and the healthy
   receiver's deliveries must arrive at most 20 s after their event.
7. Concurrent deploys of one endpoint name (``--deploy-pairs``): two requests at once per name (1 and
   2 instances); within 90 s one job per name must be ``success`` and the other ``failed``, the live
   endpoint must have the winner's instance count, and no SageMaker model or endpoint config may be
   left that no endpoint uses. The endpoints are deleted afterwards.

Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import boto3
import requests

from bench.inference_dispatch import Client, set_up, start_stack
from bench.trickling_receiver import serve_trickling
from infra.catalog import SERVICES
from infra.local.stack import LOCAL_WORKERS, LocalStack
from service_kit.worker import local_hold_s
from tests.e2e.receivers import serve_receivers

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
    """boto3 clients on the local stack's emulator, and on its local SageMaker."""

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
        self.sagemaker = boto3.client("sagemaker", **{**options, "endpoint_url": s.sagemaker_url})
        self.prefix = s.prefix


def tap_the_bus(emulator: Emulator, name: str = "", pattern: dict | None = None) -> str:
    """A queue that receives every project event (or those ``pattern`` also matches), to re-publish them
    and count facts. Its name ends with ``-chaos-tap``, so the poison leaves it alone."""
    rule = "-".join(part for part in (emulator.prefix, name, "chaos-tap") if part)
    url = emulator.sqs.create_queue(QueueName=rule)["QueueUrl"]
    arn = emulator.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = f"{emulator.prefix}-bus"
    emulator.events.put_rule(
        Name=rule,
        EventBusName=bus,
        EventPattern=json.dumps({"source": [{"prefix": "sdmw."}], **(pattern or {})}),
    )
    emulator.events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
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

    def section(self, title: str) -> None:
        self.lines.append(title)

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
    report.section(f"{jobs} jobs under worker kills, re-published events, poison and a paused emulator")
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


# ---------------------------------------------------------------- 5. the edge killed during concurrent submits

#: Clients submitting at once in each round; the edge is killed 1-2 s after they start.
EDGE_SUBMITS_PER_ROUND = 16
#: How long a client retries a submit that got no answer: the edge frees a claim left by a request that
#: died with it after 60 s (``api_gateway.idempotency.RUNNING_AT_MOST``), so a retry gets through by then.
EDGE_RETRY_FOR_S = 90.0
#: The next round starts once this one's submits are answered, or after this long.
EDGE_ROUND_GAP_S = 10.0
#: Every job created under the kills must have ended this long after the last one.
EDGE_SETTLE_BOUND_S = 120.0


@dataclass
class KeyedSubmit:
    """One logical submit, as a careful client makes it: its own key and prompt, tried until answered."""

    key: str
    prompt: str
    tries: int = 0
    replays: int = 0  # tries sent after it was answered, to see the answer kept
    answers: list[str] = field(default_factory=list)  # the job id of each 200, replays included
    refused: str = ""  # a final answer that is neither 200 nor worth a retry

    def body(self) -> dict:
        return {**job_body(0), "prompt": self.prompt}


def send_keyed(client: Client, submit: KeyedSubmit) -> requests.Response | None:
    """One try; a fresh connection each time, as one kept alive may lead to the edge that was killed."""
    submit.tries += 1
    try:
        return requests.post(
            client.base + "/inference-api/inference",
            headers={**client.headers, "Idempotency-Key": submit.key},
            json=submit.body(),
            timeout=30,
        )
    except requests.RequestException:
        return None


def submit_until_answered(client: Client, submit: KeyedSubmit) -> None:
    """Retries with the same key and body what got no answer, a 409 (the first try still holds the key)
    or a 5xx, every second, for up to ``EDGE_RETRY_FOR_S``."""
    give_up_at = time.monotonic() + EDGE_RETRY_FOR_S
    while time.monotonic() < give_up_at:
        response = send_keyed(client, submit)
        if response is not None and response.status_code == 200:
            submit.answers.append(response.json()["inference_id"])
            return
        if response is not None and response.status_code != 409 and response.status_code < 500:
            submit.refused = f"{response.status_code} {response.text[:200]}"
            return
        time.sleep(1.0)


def list_jobs(client: Client) -> list[dict]:
    """Every txt2img job, through the API: query-inference-jobs, page after page."""
    jobs, token = [], None
    while True:
        response = requests.post(
            client.base + "/inference/query-inference-jobs",
            headers=client.headers,
            json={"task_type": "txt2img", "limit": 1000, "next_token": token},
            timeout=30,
        )
        response.raise_for_status()
        jobs += response.json()
        token = response.headers.get("x-next-token")
        if not token:
            return jobs


def submit_back_to_back(client: Client, name: str, stop: threading.Event, submits: list[KeyedSubmit]) -> None:
    """One of a round's clients: a submit after another until ``stop``; the one under way is seen through."""
    while not stop.is_set():
        submit = KeyedSubmit(str(uuid.uuid4()), f"chaos edge kill {name}-{len(submits)} {uuid.uuid4().hex[:8]}")
        submits.append(submit)
        submit_until_answered(client, submit)


def kill_edge_rounds(stack: LocalStack, client: Client, rounds: int) -> tuple[list[KeyedSubmit], float]:
    """Each round: 16 clients submitting back to back, so that 16 requests are in flight when the edge is
    killed 1-2 s later. Returns the submits, once every one was answered or gave up, and when the API
    answered again after the last kill."""
    submits: list[list[KeyedSubmit]] = []
    with ThreadPoolExecutor(EDGE_SUBMITS_PER_ROUND * rounds) as pool:
        pending = []
        for round_number in range(rounds):
            stop = threading.Event()
            this_round = []
            for index in range(EDGE_SUBMITS_PER_ROUND):
                submits.append([])
                this_round.append(
                    pool.submit(submit_back_to_back, client, f"{round_number}-{index}", stop, submits[-1])
                )
            pending += this_round
            time.sleep(random.uniform(1.0, 2.0))
            stop.set()  # no new submit after the kill: those under way are the ones it hits
            kill_and_wait_for_restart(stack, "api-gateway-http")
            edge_back = wait_for_api(client)
            wait_for_futures(this_round, timeout=EDGE_ROUND_GAP_S)
        for future in pending:
            future.result()
    return [submit for one_client in submits for submit in one_client], edge_back


def wait_for_api(client: Client, timeout_s: float = 60.0) -> float:
    """When the API answered again (a restarted edge takes a few seconds to listen)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            requests.get(client.base + "/inference/test-connection", headers=client.headers, timeout=5)
            return time.time()
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"the API did not answer within {timeout_s:.0f} s")


def replay_answered(client: Client, submits: list[KeyedSubmit]) -> None:
    """Sends each answered submit once more: the edge must answer the same job again."""
    for submit in submits:
        if submit.answers:
            submit.replays += 1
            response = send_keyed(client, submit)
            if response is not None and response.status_code == 200:
                submit.answers.append(response.json()["inference_id"])


def wait_for_terminal(client: Client, job_ids: set[str], until: float) -> dict[str, float]:
    """When each job ended (its ``completeTime``, to the second), looking every second until all have or
    ``until``."""
    ended: dict[str, float] = {}
    while True:
        for job in list_jobs(client):
            if job["InferenceJobId"] in job_ids and job["status"] in TERMINAL:
                completed = datetime.strptime(job["completeTime"], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
                ended[job["InferenceJobId"]] = completed.timestamp()
        if set(ended) >= job_ids or time.time() > until:
            return ended
        time.sleep(1.0)


def requested_prompts(emulator: Emulator, tap: str) -> dict[str, str]:
    """The prompt of every job the edge asked inference-dispatcher for (its InferenceRequested commands)."""
    return {
        event["detail"]["data"]["job_id"]: event["detail"]["data"]["params"]["prompt"] for event in drain(emulator, tap)
    }


def edge_kill_during_submits(
    stack: LocalStack, client: Client, emulator: Emulator, report: Report, rounds: int
) -> None:
    report.section(
        f"edge SIGKILLed during concurrent submits ({rounds} rounds, {EDGE_SUBMITS_PER_ROUND} clients submitting)"
    )
    tap = tap_the_bus(emulator, "requests", {"detail-type": ["InferenceRequested"]})
    before = {job["InferenceJobId"] for job in list_jobs(client)}
    submits, edge_back = kill_edge_rounds(stack, client, rounds)
    replay_answered(client, submits)
    created = {job["InferenceJobId"] for job in list_jobs(client)} - before
    ended = wait_for_terminal(client, created, until=edge_back + EDGE_SETTLE_BOUND_S)
    prompt_of = requested_prompts(emulator, tap)

    answered = [s for s in submits if s.answers]
    report.figure("submits (one key each)", len(submits))
    report.figure("submits answered", len(answered), len(answered) == len(submits))
    refused = [s.refused for s in submits if s.refused]
    report.figure("submits refused", len(refused) if not refused else f"{len(refused)}: {refused[0]}", not refused)
    report.figure("submits retried (same key and body)", sum(s.tries - s.replays > 1 for s in submits))
    report.figure("requests in all (tries, retries, replays)", sum(s.tries for s in submits))
    report.figure("jobs created", len(created))
    late = {job_id for job_id, at in ended.items() if at - edge_back > EDGE_SETTLE_BOUND_S}
    not_terminal = created - set(ended) | late
    report.figure(
        f"jobs not terminal {EDGE_SETTLE_BOUND_S:.0f} s after the last kill", len(not_terminal), not not_terminal
    )
    latest = max((at - edge_back for at in ended.values()), default=0.0)
    report.figure("last created job ended, after the last kill", f"{max(0.0, latest):.0f} s (to the second)")
    jobs_of: dict[str, set[str]] = defaultdict(set)
    for job_id in created:
        jobs_of[prompt_of.get(job_id, "")].add(job_id)
    more_than_one = [s for s in submits if len(jobs_of[s.prompt]) > 1]
    report.figure("keys with more than one job", len(more_than_one), not more_than_one)
    # Every answer to a key, replays included, must name the one job that key made.
    misanswered = [s for s in submits if s.answers and set(s.answers) != jobs_of[s.prompt]]
    report.figure("keys answered other than with their one job", len(misanswered), not misanswered)
    submitted = {s.prompt for s in submits}
    unaccounted = [j for j in created if prompt_of.get(j) not in submitted]
    report.figure("jobs no submit accounts for", len(unaccounted), not unaccounted)


# ---------------------------------------------------------------- 6. a trickling webhook receiver

#: Paths of the trickling origin, each a subscription: four of them, as issue 20 item 4 found.
TRICKLING_PATHS = ("/trickle-1", "/trickle-2", "/trickle-3", "/trickle-4")
#: A healthy receiver's deliveries must arrive within this of their event, whatever the trickling one does.
HEALTHY_DELIVERY_BOUND_S = 20.0
#: The jobs are spread over this long: three attempts' deadlines (15 s), so that the trickling receiver's
#: attempts hold their slots (and its origin is paused and probed) while the healthy one's deliveries go on.
TRICKLE_SPREAD_S = 45.0


@dataclass
class HealthyReceiver:
    """Each delivery's event (the body's ``timestamp``) and when it arrived."""

    deliveries: list[tuple[str, dict, float]] = field(default_factory=list)  # (webhook-id, body, arrived)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.deliveries.append((headers.get("webhook-id", ""), json.loads(body), time.time()))
        return 200

    def lateness_s(self, job_ids: set[str]) -> list[float]:
        """Arrival minus event time, of each delivery's first arrival, for these jobs."""
        first: dict[str, float] = {}
        with self.lock:
            for webhook_id, body, arrived in self.deliveries:
                if body["data"]["id"] in job_ids and webhook_id not in first:
                    first[webhook_id] = arrived - _epoch(body["timestamp"])
        return list(first.values())

    def final_states(self, job_ids: set[str]) -> set[str]:
        with self.lock:
            return {b["data"]["id"] for _, b, _ in self.deliveries if b["data"]["status"] in TERMINAL} & job_ids


def _epoch(value: str) -> float:
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def subscribe(client: Client, url: str) -> str:
    """A subscription to every change of inference jobs; its id."""
    return client.send("POST", "/webhooks", {"url": url, "event_types": ["inference"], "terminal_only": False})["id"]


def run_jobs(client: Client, count: int, spread_s: float, timeout_s: float = 120.0) -> set[str]:
    """``count`` jobs submitted evenly over ``spread_s``; their ids, once each has ended (or at the timeout)."""
    ids = set()
    for index in range(count):
        body = {**job_body(index), "prompt": f"chaos trickle {index}"}
        ids.add(client.send("POST", "/inference-api/inference", body)["inference_id"])
        time.sleep(spread_s / count)
    deadline = time.monotonic() + timeout_s
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        pending = {job_id for job_id in pending if client.job(job_id)["status"] not in TERMINAL}
        time.sleep(0.5)
    return ids


def wait_for_final_states(healthy: HealthyReceiver, job_ids: set[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while healthy.final_states(job_ids) != job_ids and time.monotonic() < deadline:
        time.sleep(0.5)


def trickling_receiver(client: Client, report: Report, jobs: int) -> None:
    report.section(
        f"a receiver trickling its 200 (1 byte / 2.5 s) on {len(TRICKLING_PATHS)} paths of one origin, "
        f"a healthy one on another ({jobs} jobs over {TRICKLE_SPREAD_S:.0f} s)"
    )
    trickling, healthy = serve_trickling(byte_every_s=2.5), HealthyReceiver()
    healthy_server = serve_receivers(healthy.on_post)
    subscriptions = [subscribe(client, trickling.origin + path) for path in TRICKLING_PATHS]
    subscriptions.append(subscribe(client, f"http://127.0.0.1:{healthy_server.server_address[1]}/healthy"))
    try:
        # Subscriptions take effect once the webhooks service has taken them in: one job delivered to the
        # healthy receiver, subscribed last, shows they all have. It is not measured.
        wait_for_final_states(healthy, run_jobs(client, 1, spread_s=0), timeout_s=60)
        job_ids = run_jobs(client, jobs, spread_s=TRICKLE_SPREAD_S)
        wait_for_final_states(healthy, job_ids, timeout_s=HEALTHY_DELIVERY_BOUND_S + 30)
        lateness = healthy.lateness_s(job_ids)
        missing = job_ids - healthy.final_states(job_ids)
        report.figure("requests to the trickling receiver", trickling.received())
        report.figure("healthy deliveries", len(lateness))
        report.figure("jobs whose final state the healthy one missed", len(missing), not missing)
        median = statistics.median(lateness) if lateness else float("nan")
        worst = max(lateness, default=float("inf"))
        report.figure("healthy delivery after its event, median", f"{median:.2f} s")
        report.figure(
            "healthy delivery after its event, worst",
            f"{worst:.2f} s (bound {HEALTHY_DELIVERY_BOUND_S:.0f} s)",
            worst <= HEALTHY_DELIVERY_BOUND_S,
        )
    finally:
        for subscription in subscriptions:
            client.session.delete(client.base + f"/webhooks/{subscription}", headers=client.headers, timeout=60)
        trickling.shutdown()
        healthy_server.shutdown()


# ---------------------------------------------------------------- 7. concurrent deploys of one endpoint name

#: Both requests of a pair name the same endpoint; they ask for different counts, so the live endpoint
#: shows whose configuration it got.
DEPLOY_COUNTS = (1, 2)
#: Each deployment job must have ended (``success`` or ``failed``) this long after the requests.
DEPLOY_BOUND_S = 90.0


def deploy(client: Client, name: str, count: int, start: threading.Barrier) -> dict:
    """The deployment job as the edge answered it, the request sent at the same moment as its pair's."""
    start.wait()
    response = requests.post(  # not the client's session: requests' sessions are not for threads
        client.base + "/inference/deploy-sagemaker-endpoint",
        headers=client.headers,
        json={"instance_type": "ml.g5.xlarge", "initial_instance_count": count, "endpoint_name": name},
        timeout=60,
    )
    response.raise_for_status()
    return response.json()


def deploy_pairs_at_once(client: Client, names: list[str]) -> dict[str, list[dict]]:
    """Every pair's two requests at once: name -> the two deployment jobs as answered."""
    with ThreadPoolExecutor(len(DEPLOY_COUNTS) * len(names)) as pool:
        futures = {}
        for name in names:
            start = threading.Barrier(len(DEPLOY_COUNTS))
            futures[name] = [pool.submit(deploy, client, name, count, start) for count in DEPLOY_COUNTS]
        return {name: [future.result() for future in pair] for name, pair in futures.items()}


def wait_for_deployments(client: Client, job_ids: list[str], until: float) -> dict[str, dict]:
    """Each deployment job as it is once all ended (success or failed) or at ``until``."""
    while True:
        jobs = {job_id: client.get("/inference/get-endpoint-deployment-job", jobID=job_id) for job_id in job_ids}
        if all(job["status"] in ("success", "failed") for job in jobs.values()) or time.time() > until:
            return jobs
        time.sleep(1.0)


def sagemaker_names(emulator: Emulator) -> tuple[set[str], set[str]]:
    """The local SageMaker's models and endpoint configs."""
    sagemaker = emulator.sagemaker
    models = {m["ModelName"] for page in sagemaker.get_paginator("list_models").paginate() for m in page["Models"]}
    configs = {
        c["EndpointConfigName"]
        for page in sagemaker.get_paginator("list_endpoint_configs").paginate()
        for c in page["EndpointConfigs"]
    }
    return models, configs


def live_endpoint(emulator: Emulator, name: str) -> tuple[int, str, set[str]] | None:
    """The endpoint's instance count (as configured), its config and that config's models; None if none."""
    try:
        endpoint = emulator.sagemaker.describe_endpoint(EndpointName=name)
    except emulator.sagemaker.exceptions.ClientError:
        return None
    config = endpoint["EndpointConfigName"]
    variants = emulator.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    count = sum(v["DesiredInstanceCount"] for v in endpoint["ProductionVariants"])
    return count, config, {v["ModelName"] for v in variants}


def delete_endpoints(client: Client, emulator: Emulator, names: list[str]) -> int:
    """Deletes them through the API, a few at a time (the route waits for each); how many are left after 60 s."""
    for start in range(0, len(names), 5):
        client.send("POST", "/inference/delete-sagemaker-endpoint", {"delete_endpoint_list": names[start : start + 5]})
    deadline = time.monotonic() + 60
    while True:
        left = [n for n in names if live_endpoint(emulator, n) is not None]
        if not left or time.monotonic() > deadline:
            return len(left)
        time.sleep(1.0)


def live_resources(emulator: Emulator, names: list[str]) -> tuple[dict[str, int], set[str], set[str]]:
    """Of the endpoints so named that stand: each one's instance count, and the configs and models they use."""
    counts, configs, models = {}, set(), set()
    for name in names:
        live = live_endpoint(emulator, name)
        if live is not None:
            counts[name] = live[0]
            configs.add(live[1])
            models |= live[2]
    return counts, configs, models


def same_name_deploys(client: Client, emulator: Emulator, report: Report, pairs: int) -> None:
    counts = " and ".join(str(count) for count in DEPLOY_COUNTS)
    report.section(f"concurrent deploys of one endpoint name ({pairs} pairs, asking for {counts} instances)")
    models_before, configs_before = sagemaker_names(emulator)
    names = [f"chaos-deploy-{i}-{uuid.uuid4().hex[:6]}" for i in range(pairs)]
    answered = deploy_pairs_at_once(client, names)
    job_ids = [job["EndpointDeploymentJobId"] for pair in answered.values() for job in pair]
    jobs = wait_for_deployments(client, job_ids, until=time.time() + DEPLOY_BOUND_S)
    ended = {name: [jobs[job["EndpointDeploymentJobId"]] for job in pair] for name, pair in answered.items()}
    models_now, configs_now = sagemaker_names(emulator)
    live_counts, live_configs, live_models = live_resources(emulator, names)

    report.figure("pairs", pairs)
    both_accepted = sum(all(job["status"] != "failed" for job in pair) for pair in answered.values())
    report.figure("pairs both accepted by the edge", both_accepted)
    outcomes = Counter("/".join(sorted(job["status"] for job in pair)) for pair in ended.values())
    report.figure("outcomes (per pair)", ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())))
    odd = [name for name, pair in ended.items() if sorted(j["status"] for j in pair) != ["failed", "success"]]
    # The first such name's jobs and their errors, to read why without the logs.
    example = "; ".join(f"{j['status']} {j['error'][:160]!r}" for j in ended[odd[0]]) if odd else ""
    report.figure(
        "names without one success and one failure", f"{len(odd)} ({odd[0]}: {example})" if odd else 0, not odd
    )
    stuck = [job for job in jobs.values() if job["status"] not in ("success", "failed")]
    report.figure(f"jobs not ended {DEPLOY_BOUND_S:.0f} s after the requests (stuck)", len(stuck), not stuck)
    mismatched = [
        name
        for name, pair in ended.items()
        for job in pair
        if job["status"] == "success" and live_counts.get(name) != job["initial_instance_count"]
    ]
    report.figure("instance count mismatches (job / live endpoint)", len(mismatched), not mismatched)
    leaked_models = models_now - models_before - live_models
    leaked_configs = configs_now - configs_before - live_configs
    report.figure(
        "leaked models / endpoint configs",
        f"{len(leaked_models)} / {len(leaked_configs)}",
        not leaked_models and not leaked_configs,
    )
    report.figure("endpoints left 60 s after deleting them", delete_endpoints(client, emulator, names))


def under_load(
    stack: LocalStack,
    client: Client,
    emulator: Emulator,
    jobs: int,
    pause_s: float,
    rate: float,
    concurrency: int,
    settle_s: float,
) -> Report:
    """Faults 1-4, while ``jobs`` jobs come in at ``rate`` per second."""
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


def run(
    jobs: int = 200,
    pause_s: float = 30.0,
    rate: float = 2.0,
    concurrency: int = 8,
    settle_s: float = 240.0,
    edge_rounds: int = 6,
    trickle_jobs: int = 40,
    deploy_pairs: int = 20,
) -> Report:
    """Every fault on one stack, in turn; a size of 0 leaves that fault out."""
    with tempfile.TemporaryDirectory() as tmp:
        # The local SageMaker's quota of endpoint instances (8) must not be what refuses a deploy: the
        # bench endpoint's 2, and room for both requests of every pair.
        quota = {"LOCAL_SAGEMAKER_MAX_INSTANCES": str(2 + sum(DEPLOY_COUNTS) * deploy_pairs + 8)}
        stack = start_stack(Path(tmp), "chaos", extra_env=quota)
        try:
            client = Client(stack)
            set_up(client, instances=2)
            emulator = Emulator(stack)
            report = Report()
            if jobs:
                report = under_load(stack, client, emulator, jobs, pause_s, rate, concurrency, settle_s)
            if edge_rounds:
                edge_kill_during_submits(stack, client, emulator, report, edge_rounds)
            if trickle_jobs:
                trickling_receiver(client, report, trickle_jobs)
            if deploy_pairs:
                same_name_deploys(client, emulator, report, deploy_pairs)
            return report
        finally:
            stack.down(save=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200, help="jobs under faults 1-4 (0: leave them out)")
    parser.add_argument("--pause-s", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2.0, help="jobs submitted per second")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--edge-rounds", type=int, default=6, help="rounds of submits the edge is killed in")
    parser.add_argument("--trickle-jobs", type=int, default=40, help="jobs run beside the trickling receiver")
    parser.add_argument("--deploy-pairs", type=int, default=20, help="endpoint names deployed twice at once")
    args = parser.parse_args()
    started = time.monotonic()
    report = run(
        args.jobs,
        args.pause_s,
        args.rate,
        args.concurrency,
        edge_rounds=args.edge_rounds,
        trickle_jobs=args.trickle_jobs,
        deploy_pairs=args.deploy_pairs,
    )
    print(
        f"chaos: {args.jobs} jobs at {args.rate:g}/s, {args.edge_rounds} edge kills, {args.trickle_jobs} jobs "
        f"beside a trickling receiver, {args.deploy_pairs} deploy pairs; instant runtime, "
        f"{time.monotonic() - started:.0f} s"
    )
    print("\n".join(report.lines))
    if report.failures:
        print("FAILED: " + "; ".join(report.failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
