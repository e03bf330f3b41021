"""What a generation job tells while it runs, and whether it should stop: between sampling steps.

diffusers calls ``callback_on_step_end`` after every step of every pipeline
call; the callback made here does nothing but ask the reporter whether a
report is due (a clock read), so a step costs next to nothing. At most about
once a second it reports the step (``InferenceProgressReported``, see
``sd_runtime.progress``) and looks for the job's cancel marker
(``cancel_marker_key``) in the project bucket; when the marker is there it
raises ``JobCancelled`` from the callback, which ends the pipeline call at
once (setting the pipeline's ``_interrupt`` would only skip the remaining
steps and still decode the images), so no file is written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sd_runtime.errors import JobCancelled
from sd_runtime.progress import ProgressReporter
from sdmw_contracts.events.inference import cancel_marker_key
from sdmw_contracts.events.progress import ProgressPhase

logger = logging.getLogger("sd_runtime")

#: The project bucket, where the job's owner puts a cancel marker (SageMaker passes it in the Environment).
BUCKET_VARIABLE = "SDMW_BUCKET"
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


class CancelMarker:
    """Whether the job's owner asked the job to stop: its marker object is in the bucket."""

    def __init__(self, client: Any, bucket: str, job_id: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = cancel_marker_key(job_id)

    def present(self) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=self._key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _MISSING_CODES:
                self._unreadable(error)
            return False
        except BotoCoreError as error:  # no credentials, S3 unreachable
            self._unreadable(error)
            return False
        return True

    def _unreadable(self, error: Exception) -> None:
        # An unreadable marker must not stop a job nobody cancelled: go on, and say so.
        logger.warning("could not look for the cancel marker s3://%s/%s: %s", self._bucket, self._key, error)


def marker_bucket(results_bucket: str, environ: dict[str, str] | None = None) -> str:
    """The project bucket: SDMW_BUCKET, or the results' bucket for a runtime run by hand (the same one)."""
    return (environ if environ is not None else os.environ).get(BUCKET_VARIABLE) or results_bucket


@dataclass(frozen=True)
class SamplingPass:
    """One pipeline call per batch: the first pass, or hires fix's second (``hires``)."""

    phase: ProgressPhase
    steps: int  # as planned; the pipeline's own count of timesteps is what is reported


class JobWatch:
    """One generation job's progress reports and cancel checks."""

    def __init__(
        self,
        reporter: ProgressReporter,
        cancel_requested: Callable[[], bool],
        passes: list[SamplingPass],
        batches: int,
    ) -> None:
        self._reporter = reporter
        self._cancel_requested = cancel_requested
        self._passes = passes
        self._batches = batches
        self._steps_per_batch = max(1, sum(p.steps for p in passes))

    def stop_if_cancelled(self) -> None:
        if self._cancel_requested():
            logger.info("job %s: cancelled, stopping", self._reporter.job_id)
            raise JobCancelled(f"inference job {self._reporter.job_id} was cancelled")

    def loading(self) -> None:
        """Before any model is fetched or loaded (the runtime looked for the cancel marker just before)."""
        self._reporter.report(force=True, phase="loading", step=0, total_steps=0, images=self._batches)

    def saving(self) -> None:
        """Every step is done; the images are being written (always reported)."""
        total = self._passes[-1].steps if self._passes else 0
        self._reporter.report(
            force=True, phase="saving", step=total, total_steps=total, images=self._batches, fraction=1.0
        )

    def step_callback(self, batch: int, pass_index: int) -> dict[str, Any]:
        """The keyword arguments that make one pipeline call (``batch``, 0-based) report and check its steps."""
        sampling = self._passes[pass_index]
        steps_before = batch * self._steps_per_batch + sum(p.steps for p in self._passes[:pass_index])
        reporter = self._reporter

        def on_step_end(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if not reporter.due():  # the only per-step cost
                return tensors
            self.stop_if_cancelled()
            total = int(getattr(pipe, "num_timesteps", 0) or sampling.steps)
            done = steps_before + sampling.steps * (index + 1) / total
            reporter.report(
                phase=sampling.phase,
                step=index + 1,
                total_steps=total,
                image=batch + 1,
                images=self._batches,
                fraction=done / (self._batches * self._steps_per_batch),
            )
            return tensors

        # No tensors asked for: diffusers then builds an empty dict for the callback instead of copying any.
        return {"callback_on_step_end": on_step_end, "callback_on_step_end_tensor_inputs": []}
