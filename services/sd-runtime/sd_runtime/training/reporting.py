"""A training job's progress reports: steps, loss, learning rate, epoch and ETA, on the bus and in the log.

training-manager puts the train job's id in the container's environment
(``SDMW_JOB_ID``) and the bus's name (``SDMW_EVENT_BUS``); each report is a
``TrainingProgressReported`` (``sd_runtime.progress``: at most one a second,
sent from a background thread) and one line of the job's log. Saving a
checkpoint and the end of the job are always reported, however soon after
the last report, so the owner's last word on a job is never a stale step.
Without ``SDMW_JOB_ID`` (a job run by hand) the reports are log lines only.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from sd_runtime import progress
from sdmw_contracts.events.progress import TrainingProgressReported

JOB_ID_VARIABLE = "SDMW_JOB_ID"
#: SageMaker names the job in the container's environment; the job's log names it when no id was given.
JOB_NAME_VARIABLE = "TRAINING_JOB_NAME"


class TrainingProgress:
    """One training job's reports; remembers where the job is, so a forced report repeats it."""

    def __init__(self, reporter: progress.ProgressReporter, sink: progress.Sink) -> None:
        self._reporter = reporter
        self._sink = sink
        self._where: dict[str, Any] = {"phase": "loading", "step": 0, "total_steps": 0, "fraction": 0.0}
        self.saved_checkpoints: list[str] = []

    @property
    def job_id(self) -> str:
        return self._reporter.job_id

    def step(self, step: int, total_steps: int, loss: float, learning_rate: float, epoch: int) -> None:
        """After each optimizer step; sent at most once a second."""
        self._where = {
            "phase": "training",
            "step": step,
            "total_steps": total_steps,
            "fraction": step / total_steps if total_steps else 0.0,
            "loss": loss,
            "learning_rate": learning_rate,
            "epoch": epoch,
        }
        if self._reporter.due():
            self._send(force=False)

    def checkpoint_saved(self, name: str) -> None:
        """A checkpoint (the file the job leaves in ``model/``) was written: always reported."""
        self.saved_checkpoints.append(name)
        self._where = {**self._where, "phase": "saving"}
        self._send(force=True, message=f"saved {name}")

    def finished(self, message: str) -> None:
        """The job's end, succeeded or not: always reported, the last report of the job."""
        self._send(force=True, message=message)

    def close(self) -> None:
        """Wait (briefly) for the reports still on their way to the bus."""
        self._sink.close()

    def _send(self, force: bool, message: str = "") -> None:
        self._reporter.report(
            force=force, **self._where, saved_checkpoints=list(self.saved_checkpoints), message=message
        )


def training_progress_from_env(environ: Mapping[str, str] | None = None) -> TrainingProgress:
    """The job's reports as SageMaker's environment says: to the bus when it names a job and a bus."""
    environ = os.environ if environ is None else environ
    _log_reports_to_stdout()
    job_id = environ.get(JOB_ID_VARIABLE)
    sink = progress.sink_from_env(dict(environ)) if job_id else progress.LogOnlySink()
    name = job_id or environ.get(JOB_NAME_VARIABLE) or "local"
    return TrainingProgress(progress.ProgressReporter(name, TrainingProgressReported, sink), sink)


class _StdoutHandler(logging.StreamHandler):
    """Writes each line to ``sys.stdout`` as it is then, not as it was when the handler was made (a job run
    in a process whose stdout was replaced since, a test's capture say, still logs where its prints go)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _log_reports_to_stdout() -> None:
    """The reporter's lines go to stdout with the rest of the job's log (SageMaker ships stdout)."""
    if progress.logger.handlers:
        return
    handler = _StdoutHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress.logger.addHandler(handler)
    progress.logger.setLevel(logging.INFO)
