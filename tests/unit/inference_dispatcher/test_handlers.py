"""inference-dispatcher's handlers on test doubles: an in-memory snapshot table, bucket and SageMaker."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aws_lambda_powertools import Logger

from inference_dispatcher.adapters import InvocationRefused
from inference_dispatcher.handlers import ClaimedElsewhere, Dependencies, UnknownJob, router
from inference_dispatcher.jobs import Job
from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import InferenceRequested, ModelMergeRequested
from sdmw_contracts.generation import ControlNetUnit, GenerationParams, InterrogationParams
from sdmw_contracts.runtime import InvocationRequest, MergeSpec, ModelRef, ModelSet
from service_kit.events import RecordingPublisher
from service_kit.messages import BusEvent, SnsNotification
from service_kit.testing import InMemorySnapshotTable

BUCKET = "dispatch-bucket"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BASE = ModelRef(name="base.safetensors", s3_uri=f"s3://{BUCKET}/checkpoint/base.safetensors")
CANNY = ModelRef(name="canny.pth", s3_uri=f"s3://{BUCKET}/checkpoint/canny.pth")
HYPERNET = ModelRef(name="anime.pt", s3_uri=f"s3://{BUCKET}/checkpoint/anime.pt")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@dataclass
class FakeBucket:
    """Test double of the project bucket: objects by URI, and how often it was read."""

    bucket: str = BUCKET
    objects: dict[str, bytes] = field(default_factory=dict)
    reads: int = 0
    broken: bool = False

    def put_json(self, key: str, body: str) -> str:
        if self.broken:
            raise ConnectionError("the bucket is unreachable")
        uri = f"s3://{self.bucket}/{key}"
        self.objects[uri] = body.encode()
        return uri

    def exists(self, key: str) -> bool:
        return f"s3://{self.bucket}/{key}" in self.objects

    def get_bytes(self, uri: str) -> bytes:
        self.reads += 1
        return self.objects[uri]


@dataclass
class FakeSageMakerAsync:
    """Test double of SageMaker's async runtime: the invocations it took, or a refusal."""

    queue_ttl_s: int = 60
    invocation_timeout_s: int = 30
    invocations: list[tuple[str, str, str]] = field(default_factory=list)
    refusal: str | None = None

    def invoke_async(self, endpoint_name: str, input_uri: str, inference_id: str) -> None:
        if self.refusal:
            raise InvocationRefused(self.refusal)
        self.invocations.append((endpoint_name, input_uri, inference_id))


@dataclass
class World:
    deps: Dependencies
    table: InMemorySnapshotTable
    bucket: FakeBucket
    sagemaker: FakeSageMakerAsync
    publisher: RecordingPublisher
    now: list[datetime]

    def dispatch(self, message) -> None:
        router(self.deps).dispatch(message)

    def published_job(self, job_id: str) -> dict:
        return [e["data"] for e in self.publisher.of_type("InferenceJobChanged") if e["data"]["id"] == job_id][-1]

    def sent(self, index: int = -1) -> InvocationRequest:
        _, input_uri, _ = self.sagemaker.invocations[index]
        return InvocationRequest.model_validate_json(self.bucket.objects[input_uri])

    def job(self, job_id: str) -> Job:
        job = self.table.get(Job, job_id)
        assert job is not None
        return job


@pytest.fixture
def world() -> World:
    now = [NOW]
    table, bucket, sagemaker, publisher = (
        InMemorySnapshotTable(),
        FakeBucket(),
        FakeSageMakerAsync(),
        RecordingPublisher(),
    )
    deps = Dependencies(
        jobs=table,
        storage=bucket,
        endpoints=sagemaker,
        publisher=publisher,
        logger=Logger(service="test"),
        grace_s=10,
        claim_lease_s=30,
        clock=lambda: now[0],
    )
    return World(deps, table, bucket, sagemaker, publisher, now)


def bus(command) -> BusEvent:
    envelope = EventEnvelope.wrap(command, producer="api-gateway", correlation_id="c")
    return BusEvent(
        id="e",
        source="sdmw.api-gateway",
        detail_type=command.detail_type(),
        detail=json.loads(envelope.model_dump_json()),
    )


def generation(job_id: str = "job-1", **params) -> BusEvent:
    return bus(
        InferenceRequested(
            job_id=job_id,
            endpoint_name="infer-endpoint-a",
            task_type="txt2img",
            requested_at=NOW,
            models={"Stable-diffusion": ["base.safetensors [6ce0161689]"]},
            resolved=ModelSet(checkpoint=BASE),
            params=GenerationParams(prompt="a cute panda", **params),
        )
    )


def interrogation(job_id: str = "job-i") -> BusEvent:
    return bus(
        InferenceRequested(
            job_id=job_id,
            endpoint_name="infer-endpoint-a",
            task_type="interrogate_clip",
            requested_at=NOW,
            interrogation=InterrogationParams(image=PNG),
        )
    )


def merge(job_id: str = "job-m") -> BusEvent:
    other = ModelRef(name="other.safetensors", s3_uri=f"s3://{BUCKET}/checkpoint/other.safetensors")
    output = f"s3://{BUCKET}/out/{job_id}/result/merged.safetensors"
    return bus(
        ModelMergeRequested(
            job_id=job_id,
            endpoint_name="infer-endpoint-a",
            requested_at=NOW,
            models={"Stable-diffusion": ["base.safetensors", "other.safetensors"]},
            merge=MergeSpec(primary=BASE, secondary=other, output_s3_uri=output),
        )
    )


def notification(job_id: str, completed: bool = True, output: str | None = None) -> SnsNotification:
    raw = {"inferenceId": job_id, "invocationStatus": "Completed" if completed else "Failed"}
    if completed:
        raw["responseParameters"] = {"contentType": "application/json", "outputLocation": output or "s3://x/y.out"}
    else:
        raw["failureReason"] = 'ClientError: Received server error (500) from primary with message "boom"'
    topic = "async-success" if completed else "async-error"
    return SnsNotification(
        message_id=f"m-{job_id}", topic_arn=f"arn:aws:sns:us-east-1:1:sdmw-{topic}", message=json.dumps(raw)
    )


def answer(world: World, uri: str, **body) -> str:
    world.bucket.objects[uri] = json.dumps(body).encode()
    return uri


# ---------------------------------------------------------------- sending


def test_a_request_is_sent_typed_with_its_models_and_where_its_files_go(world):
    unit = ControlNetUnit(enabled=True, model="canny [abc123]", image=PNG)
    command = InferenceRequested(
        job_id="job-1",
        endpoint_name="infer-endpoint-a",
        task_type="txt2img",
        requested_at=NOW,
        models={"Stable-diffusion": ["base.safetensors"]},
        resolved=ModelSet(checkpoint=BASE, controlnets={"canny [abc123]": CANNY}, hypernetworks=[HYPERNET]),
        params=GenerationParams(
            prompt="a cute panda", batch_size=2, n_iter=3, alwayson_scripts={"controlnet": {"args": [unit]}}
        ),
    )
    world.dispatch(bus(command))

    assert [(e, i) for e, _, i in world.sagemaker.invocations] == [("infer-endpoint-a", "job-1")]
    sent = world.sent()
    assert sent.task == "txt2img" and sent.params == command.params
    assert sent.models.checkpoint == BASE and sent.models.controlnets == {"canny [abc123]": CANNY}
    assert sent.models == command.resolved  # as the edge resolved them, hypernetworks included
    assert sent.results.prefix == f"s3://{BUCKET}/out/job-1/result/"
    assert sent.results.images == [f"image_{i}.jpg" for i in range(6)]
    assert sent.results.parameters == "job-1_param.json"
    job = world.job("job-1")
    assert (job.version, job.status, job.claimed_at, job.image_count) == (1, "inprogress", NOW, 6)
    assert job.deadline == NOW + timedelta(seconds=60 + 30 + 10)
    assert world.publisher.published == []  # the edge shows it inprogress already


def test_a_duplicate_while_the_job_is_being_sent_waits(world):
    world.dispatch(generation())
    with pytest.raises(ClaimedElsewhere):
        world.dispatch(generation())
    assert len(world.sagemaker.invocations) == 1


def test_a_command_whose_worker_died_before_sending_is_sent_once_the_claim_lapses(world):
    world.deps.jobs.save(Job.model_validate({**world_claim(), "version": 1}))
    world.now[0] = NOW + timedelta(seconds=31)
    world.dispatch(generation())
    assert len(world.sagemaker.invocations) == 1
    assert world.job("job-1").claimed_at == NOW + timedelta(seconds=31)


def world_claim() -> dict:
    return {
        "id": "job-1",
        "task_type": "txt2img",
        "endpoint_name": "infer-endpoint-a",
        "status": "inprogress",
        "start_time": NOW.isoformat(),
        "claimed_at": NOW.isoformat(),
    }


def test_a_failure_while_sending_releases_the_claim_so_the_retry_goes_at_once(world):
    world.bucket.broken = True
    with pytest.raises(ConnectionError):
        world.dispatch(generation())
    assert world.job("job-1").claimed_at is None
    world.bucket.broken = False
    world.dispatch(generation())
    assert len(world.sagemaker.invocations) == 1


def test_a_duplicate_of_a_finished_job_publishes_it_again_and_sends_nothing(world):
    world.dispatch(generation())
    world.dispatch(notification("job-1"))
    world.publisher.published.clear()
    world.dispatch(generation())
    assert len(world.sagemaker.invocations) == 1
    assert world.published_job("job-1")["status"] == "succeed"


def test_sagemaker_refusing_the_job_fails_it_with_the_reason(world):
    world.sagemaker.refusal = "endpoint infer-endpoint-a does not exist"
    world.dispatch(generation())
    published = world.published_job("job-1")
    assert (published["status"], published["error"]) == ("failed", "endpoint infer-endpoint-a does not exist")


# ---------------------------------------------------------------- SageMaker's answers


def test_a_generation_succeeds_on_the_notification_alone(world):
    world.dispatch(generation(batch_size=2, n_iter=2))
    world.dispatch(notification("job-1"))
    published = world.published_job("job-1")
    assert published["status"] == "succeed"
    assert published["image_names"] == ["image_0.jpg", "image_1.jpg", "image_2.jpg", "image_3.jpg"]
    assert published["param_name"] == "job-1_param.json"
    assert "'invocationStatus': 'Completed'" in published["sagemaker_raw"]
    assert world.bucket.reads == 0  # the runtime wrote the files; nothing is read or re-encoded


def test_an_error_notification_fails_the_job_with_sagemakers_reason(world):
    world.dispatch(generation())
    world.dispatch(notification("job-1", completed=False))
    published = world.published_job("job-1")
    assert published["status"] == "failed" and "boom" in published["error"]
    assert published["image_names"] == []


def test_a_notification_for_an_unknown_job_is_not_dropped(world):
    with pytest.raises(UnknownJob):
        world.dispatch(notification("nobody"))


def test_a_late_notification_does_not_change_a_finished_job(world):
    world.dispatch(generation())
    world.dispatch(notification("job-1", completed=False))
    world.dispatch(notification("job-1"))
    assert world.job("job-1").status == "failed"
    assert world.published_job("job-1")["status"] == "failed"


def test_the_sweep_fails_overdue_jobs_and_reads_only_open_ones(world):
    for n in range(20):
        world.dispatch(generation(f"done-{n}"))
        world.dispatch(notification(f"done-{n}"))
    world.dispatch(generation("late"))
    world.table.items_read = 0
    world.now[0] = NOW + timedelta(seconds=101)
    world.dispatch(bus_schedule())
    assert world.published_job("late")["status"] == "failed"
    assert "timed out" in world.published_job("late")["error"]
    assert world.table.items_read <= 2  # the open job's index entry and row, not the 20 finished ones


def bus_schedule() -> BusEvent:
    return BusEvent(id="s", source="aws.scheduler", detail_type="Scheduled Event", detail={})


def test_the_sweep_leaves_jobs_inside_their_deadline(world):
    world.dispatch(generation())
    world.now[0] = NOW + timedelta(seconds=99)
    world.dispatch(bus_schedule())
    assert world.job("job-1").status == "inprogress"


# ---------------------------------------------------------------- interrogation and merge


def test_an_interrogation_is_sent_with_its_image_and_succeeds_with_the_caption(world):
    world.dispatch(interrogation())
    sent = world.sent()
    assert sent.task == "interrogate_clip" and sent.interrogation.image == PNG and sent.params is None
    assert sent.results.images == []
    out = answer(world, "s3://x/job-i.out", caption="a cat on a couch", parameters={}, info="{}")
    world.dispatch(notification("job-i", output=out))
    published = world.published_job("job-i")
    assert (published["status"], published["caption"], published["image_names"]) == ("succeed", "a cat on a couch", [])


def test_an_interrogation_answer_without_a_caption_fails_the_job(world):
    world.dispatch(interrogation())
    out = answer(world, "s3://x/job-i.out", parameters={}, info="{}")
    world.dispatch(notification("job-i", output=out))
    published = world.published_job("job-i")
    assert published["status"] == "failed" and "no caption" in published["error"]


def test_a_finished_merge_registers_the_merged_checkpoint_once_per_job(world):
    world.dispatch(merge())
    sent = world.sent()
    assert sent.task == "merge" and sent.merge.primary == BASE
    output = sent.merge.output_s3_uri
    out = answer(world, "s3://x/job-m.out", parameters={}, info=json.dumps({"output_s3_uri": output}))
    world.dispatch(notification("job-m", output=out))
    world.dispatch(notification("job-m", output=out))  # redelivered: the same registration again
    registrations = world.publisher.of_type("CheckpointRegistrationRequested")
    assert len({r["data"]["checkpoint_id"] for r in registrations}) == 1  # asset-registry keeps one
    assert registrations[0]["data"]["s3_location"] == f"s3://{BUCKET}/out/job-m/result/"
    assert registrations[0]["data"]["filenames"] == ["merged.safetensors"]


def test_a_generation_registers_nothing_and_keeps_no_caption(world):
    world.dispatch(generation())
    world.dispatch(notification("job-1"))
    assert world.publisher.of_type("CheckpointRegistrationRequested") == []
    assert world.published_job("job-1").get("caption") is None
