"""A training job's progress reports: what ``python -m sd_runtime train`` puts on the bus and in its log."""

from __future__ import annotations

import pytest

from sd_runtime import progress
from sd_runtime.testing import write_training_images
from sd_runtime.training import reporting
from sd_runtime.training.loop import epoch_of
from sdmw_contracts.events.progress import TrainingProgressReported
from tests.unit.sd_runtime.test_train import FAST, base, job  # noqa: F401 - pytest fixtures

JOB_ID = "3b1f5c2e-0000-4000-8000-000000000001"


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> progress.RecordingSink:
    """Reports to a recording sink, as if SageMaker had given the container a bus and a job id."""
    recording = progress.RecordingSink()
    monkeypatch.setattr(progress, "sink_from_env", lambda environ=None: recording)
    monkeypatch.setenv(reporting.JOB_ID_VARIABLE, JOB_ID)
    return recording


def test_a_lora_job_reports_its_steps_its_checkpoint_and_its_end(job, base, sink):  # noqa: F811
    job.with_base(base)
    write_training_images(job.channel("instance"), 2)
    job.hyperparameters(task="lora", model_name="zwx-style", instance_prompt="a zwx dog", **FAST)

    code, log = job.run()

    assert code == 0, job.failure
    events = sink.events
    assert all(isinstance(e, TrainingProgressReported) and e.job_id == JOB_ID for e in events)
    assert [e.sequence for e in events] == list(range(len(events)))
    first = events[0].progress
    assert (first.phase, first.step, first.total_steps, first.epoch) == ("training", 1, 3, 1)
    assert first.loss is not None and first.loss > 0
    assert first.learning_rate is not None and first.learning_rate > 0
    saved = events[-2].progress
    assert (saved.phase, saved.saved_checkpoints, saved.step) == ("saving", ["zwx-style.safetensors"], 3)
    last = events[-1].progress
    assert (last.message, last.fraction, last.eta_s) == ("finished", 1.0, 0.0)
    assert last.saved_checkpoints == ["zwx-style.safetensors"]
    # One log line per report, naming the job.
    assert log.count(f"job {JOB_ID}: ") == len(events)
    assert f"job {JOB_ID}: training step 1/3 loss " in log


def test_a_failed_job_reports_why_as_its_last_word(job, sink):  # noqa: F811
    job.hyperparameters(task="lora", model_name="no-base", instance_prompt="a zwx dog", **FAST)

    code, _ = job.run()

    assert code == 1
    last = sink.events[-1].progress
    assert last.message.startswith("failed: ")
    assert last.message.removeprefix("failed: ") == job.failure.strip()
    assert last.saved_checkpoints == []


def test_without_a_job_id_reports_are_log_lines_only(monkeypatch):
    monkeypatch.setattr(progress, "sink_from_env", lambda environ=None: pytest.fail("no bus without a job id"))
    reports = reporting.training_progress_from_env({"TRAINING_JOB_NAME": "train-x", "SDMW_EVENT_BUS": "bus"})
    assert reports.job_id == "train-x"


@pytest.mark.parametrize(
    ("step", "accumulation", "batches_per_epoch", "epoch"),
    [(1, 1, 4, 1), (4, 1, 4, 1), (5, 1, 4, 2), (2, 2, 4, 1), (3, 2, 4, 2), (7, 1, 0, 7)],
)
def test_the_epoch_counts_batches_not_steps(step, accumulation, batches_per_epoch, epoch):
    assert epoch_of(step, accumulation, batches_per_epoch) == epoch
