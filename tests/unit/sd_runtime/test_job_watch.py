"""A generation job's progress reports and its cancel, on the tiny pipeline loaded from (moto) S3."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sd_runtime.errors import JobCancelled
from sd_runtime.invocations import Runtime
from sd_runtime.job_watch import CancelMarker, JobWatch, SamplingPass, marker_bucket
from sd_runtime.progress import ProgressReporter, RecordingSink
from sdmw_contracts.events.inference import cancel_marker_key
from sdmw_contracts.events.progress import InferenceProgressReported
from tests.unit.sd_runtime.conftest import BUCKET, gradient_image, invocation, png_b64


def watched_runtime(world, sink, interval_s: float = 0.0) -> Runtime:
    """The world's runtime, reporting to ``sink``; with no interval every step reports and checks."""
    return Runtime(world.runtime.settings, progress_sink=sink, progress_interval_s=interval_s)


def steps_of(sink: RecordingSink) -> list[tuple[str, int | None, int, int]]:
    return [(e.progress.phase, e.progress.image, e.progress.step, e.progress.total_steps) for e in sink.events]


def files_of(world, job_id: str) -> list[str]:
    listed = world.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"out/{job_id}/")
    return [item["Key"] for item in listed.get("Contents", [])]


@dataclass
class CancellingSink(RecordingSink):
    """Records reports and, once one reaches ``at_step``, puts the job's cancel marker in the bucket
    (as the dispatcher would, while the job runs)."""

    s3: object = None
    at_step: int = 3
    written: bool = field(default=False)

    def put(self, event) -> None:
        super().put(event)
        if not self.written and event.progress.step >= self.at_step and event.progress.phase == "txt2img":
            self.s3.put_object(Bucket=BUCKET, Key=cancel_marker_key(event.job_id), Body=b"{}")
            self.written = True


def test_txt2img_reports_loading_every_step_of_every_batch_then_saving_in_order(world):
    sink = RecordingSink()
    body = invocation(world, steps=3, n_iter=2)
    watched_runtime(world, sink).invoke(body)

    assert steps_of(sink) == [
        ("loading", None, 0, 0),
        *[("txt2img", 1, step, 3) for step in (1, 2, 3)],
        *[("txt2img", 2, step, 3) for step in (1, 2, 3)],
        ("saving", None, 3, 3),
    ]
    assert [e.sequence for e in sink.events] == list(range(8))
    assert all(e.job_id == body["inference_id"] and isinstance(e, InferenceProgressReported) for e in sink.events)
    fractions = [e.progress.fraction for e in sink.events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert fractions[3] == pytest.approx(0.5)  # the first of two batches done
    assert all(e.progress.eta_s is not None for e in sink.events[1:])


def test_hires_fix_is_a_pass_of_its_own(world):
    sink = RecordingSink()
    body = invocation(world, steps=2, enable_hr=True, hr_scale=2, hr_upscaler="Latent", denoising_strength=0.5)
    watched_runtime(world, sink).invoke(body)

    phases = [phase for phase, *_ in steps_of(sink)]
    assert phases == ["loading", "txt2img", "txt2img", "hires", "hires", "saving"]
    assert sink.events[2].progress.fraction == pytest.approx(0.5)  # 2 of 4 planned steps


def test_img2img_reports_the_steps_its_strength_leaves(world):
    sink = RecordingSink()
    body = invocation(world, task="img2img", steps=4, denoising_strength=0.5, init_images=[png_b64(gradient_image())])
    watched_runtime(world, sink).invoke(body)

    assert steps_of(sink)[1:-1] == [("img2img", 1, 1, 2), ("img2img", 1, 2, 2)]


def test_reports_are_throttled_but_the_first_and_the_last_always_go(world):
    sink = RecordingSink()
    watched_runtime(world, sink, interval_s=3600).invoke(invocation(world, steps=5))
    assert [phase for phase, *_ in steps_of(sink)] == ["loading", "saving"]


def test_a_job_cancelled_while_queued_loads_nothing_and_writes_nothing(world):
    sink = RecordingSink()
    runtime = watched_runtime(world, sink)
    body = invocation(world)
    world.s3.put_object(Bucket=BUCKET, Key=cancel_marker_key(body["inference_id"]), Body=b"{}")

    with pytest.raises(JobCancelled, match="cancelled before it started"):
        runtime.invoke(body)

    assert sink.events == []
    assert runtime._pipelines is None  # no checkpoint was fetched or loaded
    assert files_of(world, body["inference_id"]) == []


def test_a_running_job_stops_at_the_next_check_after_its_marker_appears(world):
    sink = CancellingSink(s3=world.s3, at_step=3)
    body = invocation(world, steps=20, n_iter=2)

    with pytest.raises(JobCancelled):
        watched_runtime(world, sink).invoke(body)

    assert steps_of(sink)[-1] == ("txt2img", 1, 3, 20)  # the check after step 4 found it: no report
    assert files_of(world, body["inference_id"]) == []


def test_other_jobs_markers_do_not_stop_a_job(world):
    sink = RecordingSink()
    world.s3.put_object(Bucket=BUCKET, Key=cancel_marker_key("another-job"), Body=b"{}")
    response = watched_runtime(world, sink).invoke(invocation(world))
    assert len(response.files) == 1 and sink.events[-1].progress.phase == "saving"


# ---------------------------------------------------------------- the parts


class BrokenS3:
    def head_object(self, **kwargs):
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "HeadObject")


def test_a_marker_that_cannot_be_read_does_not_stop_the_job():
    assert CancelMarker(BrokenS3(), BUCKET, "job-1").present() is False


def test_the_marker_is_looked_for_in_the_project_bucket_or_else_the_results_bucket():
    assert marker_bucket("results", {"SDMW_BUCKET": "project"}) == "project"
    assert marker_bucket("results", {}) == "results"


class FakePipe:
    num_timesteps = 10


def test_the_step_callback_checks_and_reports_only_when_a_report_is_due():
    now = [0.0]
    checks = []
    sink = RecordingSink()
    reporter = ProgressReporter("job-1", InferenceProgressReported, sink, min_interval_s=1.0, clock=lambda: now[0])
    watch = JobWatch(reporter, lambda: checks.append(now[0]) or False, [SamplingPass("txt2img", 10)], batches=1)
    watch.loading()
    callback = watch.step_callback(0, 0)["callback_on_step_end"]

    for index in range(10):
        now[0] = index * 0.3
        assert callback(FakePipe(), index, 0, {"latents": "kept"}) == {"latents": "kept"}

    assert checks == pytest.approx([1.2, 2.4])  # once a second, not once a step
    assert [e.progress.step for e in sink.events] == [0, 5, 9]
