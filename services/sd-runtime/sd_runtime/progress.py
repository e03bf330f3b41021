"""Progress reports from the GPU to the bus, at most about one a second per job.

SageMaker async inference and training jobs have no progress channel of their
own, so the runtime puts ``InferenceProgressReported`` and
``TrainingProgressReported`` (``sdmw_contracts.events.progress``) on the
project's bus itself, with the execution role's ``events:PutEvents``; the
job's owner turns each into the job's next snapshot.

Reporting must not slow the GPU work: ``ProgressReporter.report`` is called
at every step but only builds an event when a second has passed since the
last one (or when told the report matters, ``force``), and the event goes to
EventBridge from a background thread (``EventBridgeSink``), so a step never
waits for the network. A report that cannot be delivered is logged and
dropped: progress is advisory, the job's result travels SageMaker's own way.
Every report is also one log line naming the job, which is how a job's log
reads on CloudWatch Logs.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events.progress import (
    RUNTIME_PRODUCER,
    InferenceProgressReported,
    JobProgress,
    TrainingProgressReported,
)

logger = logging.getLogger("sd_runtime")

#: The bus the runtime reports to; SageMaker passes it in the model's (or training job's) Environment.
EVENT_BUS_VARIABLE = "SDMW_EVENT_BUS"
#: At most one report a second per job (the issue's bound, and EventBridge's cost).
MIN_INTERVAL_S = 1.0

ProgressEvent = InferenceProgressReported | TrainingProgressReported


class Sink(Protocol):
    def put(self, event: ProgressEvent) -> None: ...

    def close(self, timeout_s: float = ...) -> None: ...


class EventBridgeSink:
    """Puts reports on the bus from one background thread, in the order they were made."""

    def __init__(self, bus_name: str, client_factory: Callable[[], Any] | None = None) -> None:
        self._bus = bus_name
        self._client_factory = client_factory or _events_client
        self._queue: queue.Queue[ProgressEvent | None] = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, name="progress-reports", daemon=True)
        self._thread.start()

    def put(self, event: ProgressEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:  # the bus is unreachable or slow: drop the report rather than stall the GPU
            logger.warning("progress report for job %s dropped: the bus is not keeping up", event.job_id)

    def close(self, timeout_s: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        client = None
        while (event := self._queue.get()) is not None:
            try:
                client = client or self._client_factory()
                response = client.put_events(Entries=[self._entry(event)])
                if response.get("FailedEntryCount"):
                    logger.warning("EventBridge refused a progress report: %s", response.get("Entries"))
            except Exception as error:  # progress is advisory: log and go on
                logger.warning("could not report progress of job %s: %s", event.job_id, error)

    def _entry(self, event: ProgressEvent) -> dict[str, Any]:
        envelope = EventEnvelope.wrap(event, producer=RUNTIME_PRODUCER, correlation_id=event.job_id)
        return {
            "EventBusName": self._bus,
            "Source": f"sdmw.{RUNTIME_PRODUCER}",
            "DetailType": event.detail_type(),
            "Detail": envelope.model_dump_json(),
        }


def _events_client() -> Any:
    import boto3  # only where reports really go to AWS
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
    return boto3.session.Session().client("events", config=config)


class LogOnlySink:
    """Where reports go when no bus is configured (a runtime run by hand): the log lines only."""

    def put(self, event: ProgressEvent) -> None:
        pass

    def close(self, timeout_s: float = 0.0) -> None:
        pass


@dataclass
class RecordingSink:
    """Test double: keeps the reports that would have gone to the bus."""

    events: list[ProgressEvent] = field(default_factory=list)

    def put(self, event: ProgressEvent) -> None:
        self.events.append(event)

    def close(self, timeout_s: float = 0.0) -> None:
        pass


def sink_from_env(environ: dict[str, str] | None = None) -> Sink:
    bus = (environ if environ is not None else os.environ).get(EVENT_BUS_VARIABLE)
    return EventBridgeSink(bus) if bus else LogOnlySink()


def eta_s(elapsed_s: float, fraction: float) -> float | None:
    """Seconds left if the rest goes as fast as what is done; None until something is done."""
    if fraction <= 0:
        return None
    return max(0.0, elapsed_s * (1 - fraction) / fraction)


class ProgressReporter:
    """One job's reports: throttled, numbered, timed from the job's start on the GPU."""

    def __init__(
        self,
        job_id: str,
        event_type: type[ProgressEvent],
        sink: Sink,
        min_interval_s: float = MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self._event_type = event_type
        self._sink = sink
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._started = clock()
        self._last_sent: float | None = None
        self.sequence = 0

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def due(self) -> bool:
        """Whether a report made now would be sent (cheap: call it before building one)."""
        return self._last_sent is None or self._clock() - self._last_sent >= self._min_interval_s

    def report(self, force: bool = False, **fields: Any) -> bool:
        """Send a report of ``fields`` (``JobProgress``'s, less the timing) if one is due or ``force``."""
        if not force and not self.due():
            return False
        elapsed = self.elapsed_s
        fraction = min(1.0, max(0.0, float(fields.pop("fraction", 0.0))))
        fields.setdefault("eta_s", eta_s(elapsed, fraction))
        progress = JobProgress(fraction=fraction, elapsed_s=elapsed, reported_at=datetime.now(UTC), **fields)
        self._sink.put(self._event_type(job_id=self.job_id, sequence=self.sequence, progress=progress))
        self.sequence += 1
        self._last_sent = self._clock()
        logger.info("job %s: %s", self.job_id, describe(progress))
        return True


def describe(progress: JobProgress) -> str:
    """One line for a job's log: ``txt2img image 1/2 step 7/20, 3.2s elapsed, ~15s left``."""
    parts = [progress.phase]
    if progress.image is not None and progress.images is not None:
        parts.append(f"image {progress.image}/{progress.images}")
    if progress.total_steps:
        parts.append(f"step {progress.step}/{progress.total_steps}")
    if progress.loss is not None:
        parts.append(f"loss {progress.loss:.4g}")
    if progress.learning_rate is not None:
        parts.append(f"lr {progress.learning_rate:.3g}")
    text = " ".join(parts) + f", {progress.elapsed_s:.1f}s elapsed"
    if progress.eta_s is not None:
        text += f", ~{progress.eta_s:.0f}s left"
    if progress.message:
        text += f": {progress.message}"
    return text
