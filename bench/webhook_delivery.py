"""How soon subscribers get a job's final state, and whether receivers that hang hold anyone up.

    .venv/bin/python -m bench.webhook_delivery [--jobs 40] [--wait-s 150] [--pollers N]

Starts the local stack with the instant runtime (``bench/instant_runtime.py``) and an endpoint, as
``bench/inference_dispatch.py`` does, and one HTTP server on 127.0.0.1 (a thread per request) whose
paths are the receivers. Every request is verified with the Standard Webhooks reference library and the
secret the API showed at the subscription's creation; failures are counted (there must be none).

1. Healthy only: three receivers answering 200 subscribe to inference facts (``terminal_only``); N jobs
   run one after another. For each delivery: the job's ``complete_time`` (from the delivered, verified
   body) to the moment the receiver got the request. Medians and p99 over all 3 x N deliveries, how
   many arrived and how many ``webhook-id`` repeats. Also each job's submit -> ``succeed`` visible
   through the API (polled every 20 ms).
2. With two receivers that hang: two more subscribers whose receiver sleeps 30 s (longer than the
   delivery attempt's 15 s deadline) before answering; N more jobs. The healthy receivers' latency and the
   jobs' latency again, and the ratios to phase 1. Waits at most ``--wait-s`` after the last job for
   the healthy deliveries; any still missing then are counted as missing, not measured.

``--pollers`` sets the webhooks worker's ``WEBHOOKS_CONCURRENT_DELIVERIES`` (the stack's default, 8,
if left out): locally, each attempt waiting on a hanging receiver holds one poller for the timeout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from standardwebhooks import Webhook

from bench.inference_dispatch import JOB_BODY, Client, percentile, set_up, start_stack, wait_for
from tests.e2e.receivers import OriginPerPath

HEALTHY = ("/ok-1", "/ok-2", "/ok-3")
HANGING = ("/hang-1", "/hang-2")
#: Longer than a delivery attempt's 15 s deadline: every attempt to a hanging receiver is cut off.
HANG_S = 30.0


@dataclass
class Delivery:
    path: str
    webhook_id: str
    job_id: str
    status: str
    type: str
    latency_s: float  # complete_time -> received


@dataclass
class Receivers:
    """A server per path (an origin each, as separate receiving hosts): the healthy ones answer 200 at once,
    the hanging ones after ``HANG_S``."""

    secrets: dict[str, str] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)  # path -> requests that did not verify
    lock: threading.Lock = field(default_factory=threading.Lock)
    origins: OriginPerPath = field(init=False)

    def __post_init__(self) -> None:
        self.origins = OriginPerPath(self.on_post)

    def url(self, path: str) -> str:
        return self.origins.url(path)

    def on_post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        self.receive(path, headers, body, time.time())
        if path in HANGING:
            time.sleep(HANG_S)
        return 200

    def receive(self, path: str, headers: dict[str, str], body: bytes, at: float) -> None:
        with self.lock:
            secret = self.secrets.get(path)
        try:
            if secret is None:
                raise ValueError(f"no subscription for {path}")
            payload = Webhook(secret).verify(body, headers)
            job = payload["data"]
            delivery = Delivery(
                path,
                headers["webhook-id"],
                job["id"],
                job["status"],
                payload["type"],
                at - _epoch(job["complete_time"]),
            )
        except Exception:  # any failure to verify or read the delivery counts as one
            with self.lock:
                self.failures[path] += 1
            return
        with self.lock:
            self.deliveries.append(delivery)

    def of(self, paths: tuple[str, ...], job_ids: set[str]) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.path in paths and d.job_id in job_ids]


def _epoch(value: str) -> float:
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def subscribe(client: Client, state: Receivers, path: str) -> None:
    created = client.send(
        "POST", "/webhooks", {"url": state.url(path), "event_types": ["inference"], "terminal_only": True}
    )
    with state.lock:
        state.secrets[path] = created["secret"]


def run_jobs(client: Client, count: int) -> tuple[set[str], list[float]]:
    """``count`` jobs one after another: their ids and each one's submit -> ``succeed`` visible (seconds)."""
    ids, took = set(), []
    for _ in range(count):
        submitted = time.time()
        job_id = client.send("POST", "/inference-api/inference", JOB_BODY)["inference_id"]
        _, seen = wait_for(client, job_id)
        ids.add(job_id)
        took.append(seen - submitted)
    return ids, took


def wait_deliveries(state: Receivers, job_ids: set[str], timeout_s: float) -> list[Delivery]:
    """The healthy receivers' deliveries of these jobs, once each receiver has one per job or at the deadline."""
    wanted = {(path, job_id) for path in HEALTHY for job_id in job_ids}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if wanted <= {(d.path, d.job_id) for d in state.of(HEALTHY, job_ids)}:
            break
        time.sleep(0.2)
    time.sleep(0.5)  # let a repeat that was on its way arrive, so it is counted
    return state.of(HEALTHY, job_ids)


@dataclass
class Phase:
    label: str
    jobs: int
    job_s: list[float]
    deliveries: list[Delivery]
    seconds: float

    @property
    def first_each(self) -> list[Delivery]:
        seen, first = set(), []
        for delivery in sorted(self.deliveries, key=lambda d: d.latency_s):
            if delivery.webhook_id not in seen:
                seen.add(delivery.webhook_id)
                first.append(delivery)
        return first

    def latencies_ms(self) -> list[float]:
        return [d.latency_s * 1000 for d in self.first_each]

    def report(self) -> None:
        first = self.first_each
        expected = len(HEALTHY) * self.jobs
        pairs = Counter((d.path, d.job_id) for d in first)
        print(f"{self.label}: {self.jobs} jobs in {self.seconds:.1f} s")
        print(
            f"  healthy deliveries: {len(first)} of {expected} "
            f"(missing {expected - len(pairs)}, webhook-id repeats {len(self.deliveries) - len(first)}, "
            f"more than one webhook-id for a job and receiver {sum(n - 1 for n in pairs.values())})"
        )
        kinds = Counter((d.type, d.status) for d in first)
        print("  delivered: " + ", ".join(f"{n} {kind} {status}" for (kind, status), n in sorted(kinds.items())))
        _line("complete_time -> receiver (healthy)", self.latencies_ms())
        if len(pairs) < expected:
            print(f"    (over those that arrived: the {expected - len(pairs)} missing took longer than the wait)")
        _line("submit -> succeed visible (job)", [s * 1000 for s in self.job_s])


def _line(label: str, ms: list[float]) -> None:
    if not ms:
        print(f"  {label:38} no values")
        return
    print(f"  {label:38} median {statistics.median(ms):8.1f} ms   p99 {percentile(ms, 0.99):8.1f} ms")


def _ratio(label: str, after: list[float], before: list[float]) -> None:
    if not after or not before:
        print(f"  {label:38} n/a")
        return
    median = statistics.median(after) / statistics.median(before)
    p99 = percentile(after, 0.99) / percentile(before, 0.99)
    print(f"  {label:38} median x{median:6.2f}        p99 x{p99:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--wait-s", type=float, default=150.0, help="longest wait for deliveries after a phase's jobs")
    parser.add_argument("--pollers", type=int, help="WEBHOOKS_CONCURRENT_DELIVERIES (the stack's default if left out)")
    args = parser.parse_args()
    if args.pollers:  # the stack's processes start with this environment
        os.environ["WEBHOOKS_CONCURRENT_DELIVERIES"] = str(args.pollers)

    state = Receivers()
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), "webhooks")
        try:
            client = Client(stack)
            set_up(client, instances=2)
            phases = []
            for label, added in (("healthy only (3 receivers)", HEALTHY), ("with 2 hanging receivers", HANGING)):
                for path in added:
                    subscribe(client, state, path)
                started = time.monotonic()
                job_ids, job_s = run_jobs(client, args.jobs)
                deliveries = wait_deliveries(state, job_ids, args.wait_s)
                phases.append(Phase(label, args.jobs, job_s, deliveries, time.monotonic() - started))
            with state.lock:
                hanging_requests = [d for d in state.deliveries if d.path in HANGING]
        finally:
            stack.down()
            state.origins.shutdown()

    healthy, hanging = phases
    print(f"webhook delivery: instant runtime stand-in, {args.pollers or 'default'} delivery pollers")
    for phase in phases:
        phase.report()
    print(
        f"  requests to the hanging receivers: {len(hanging_requests)} "
        f"({len({d.webhook_id for d in hanging_requests})} distinct webhook-ids; each attempt is cut off after 15 s)"
    )
    print("ratios, with hanging receivers / healthy only:")
    _ratio("complete_time -> receiver (healthy)", hanging.latencies_ms(), healthy.latencies_ms())
    _ratio("submit -> succeed visible (job)", hanging.job_s, healthy.job_s)
    failures = sum(state.failures.values())
    print(f"signature verification failures: {failures}" + (f" {dict(state.failures)}" if failures else ""))


if __name__ == "__main__":
    main()
