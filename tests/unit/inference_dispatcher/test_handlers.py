"""inference-dispatcher handlers: a fake SageMaker (test double), real S3 and DynamoDB (moto in-process)."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from PIL import Image

from inference_dispatcher.adapters import S3Storage
from inference_dispatcher.handlers import Dependencies, NotYetKnown, UnknownJob, router
from inference_dispatcher.lookups import Lookups
from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import CheckpointChanged, EndpointDeploymentChanged, InferenceRequested, ModelMergeRequested
from sdmw_contracts.events.assets import CheckpointFile
from sdmw_contracts.runtime import InvocationRequest
from service_kit.events import RecordingPublisher
from service_kit.messages import BusEvent, SnsNotification
from service_kit.snapshots import SnapshotTable
from tests.conftest import create_service_table

BUCKET = "dispatch-bucket"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeSageMakerAsync:
    """Test double of SageMaker: endpoint states and the async invocations it was asked for."""

    queue_ttl_s: int = 60
    invocation_timeout_s: int = 30
    states: dict[str, str] = field(default_factory=lambda: {"infer-endpoint-a": "InService"})
    invocations: list[tuple[str, str, str]] = field(default_factory=list)
    refuse: bool = False

    def status(self, endpoint_name: str) -> str | None:
        return self.states.get(endpoint_name)

    def invoke_async(self, endpoint_name: str, input_uri: str, inference_id: str) -> str:
        if self.refuse:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "busy"}}, "InvokeEndpointAsync")
        self.invocations.append((endpoint_name, input_uri, inference_id))
        return f"s3://{BUCKET}/sagemaker_output/{inference_id}.out"


@dataclass
class World:
    s3: object
    deps: Dependencies
    sagemaker: FakeSageMakerAsync
    publisher: RecordingPublisher

    def dispatch(self, message) -> None:
        router(self.deps).dispatch(message)

    def job(self, job_id: str) -> dict:
        return [e["data"] for e in self.publisher.of_type("InferenceJobChanged") if e["data"]["id"] == job_id][-1]


@pytest.fixture
def world(mocked_aws) -> World:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    table = SnapshotTable(create_service_table("dispatch"), boto3.resource("dynamodb"))
    sagemaker = FakeSageMakerAsync()
    publisher = RecordingPublisher()
    deps = Dependencies(
        jobs=table,
        lookups=Lookups(table),
        storage=S3Storage(BUCKET, s3),
        endpoints=sagemaker,
        publisher=publisher,
        logger=Logger(service="test"),
        grace_s=10,
        model_arrival_grace_s=15,
        clock=lambda: NOW,
    )
    world = World(s3, deps, sagemaker, publisher)
    deps.lookups.apply(checkpoint("Stable-diffusion", "base.safetensors"))
    deps.lookups.apply(checkpoint("Lora", "style.safetensors"))
    return world


def checkpoint(kind: str, filename: str, status: str = "Active") -> CheckpointChanged:
    key = f"checkpoint/{kind}/{filename}/{filename}"
    return CheckpointChanged(
        id=f"{kind}-{filename}",
        version=2,
        checkpoint_type=kind,
        status=status,
        s3_location=f"s3://{BUCKET}/checkpoint/{kind}/{filename}/",
        files=[CheckpointFile(filename=filename, key=key, s3_uri=f"s3://{BUCKET}/{key}", parts_number=1)],
        created_at=NOW,
    )


def bus(command) -> BusEvent:
    envelope = EventEnvelope.wrap(command, producer="api-gateway", correlation_id="c")
    return BusEvent(
        id="e",
        source="sdmw.api-gateway",
        detail_type=command.detail_type(),
        detail=json.loads(envelope.model_dump_json()),
    )


def inference(job_id="job-1", endpoint="infer-endpoint-a", models=None, requested_at=NOW, **payload) -> BusEvent:
    body = {"prompt": "a cute panda", "models": models or {"Stable-diffusion": ["base.safetensors"]}, **payload}
    return bus(
        InferenceRequested(
            job_id=job_id, endpoint_name=endpoint, task_type="txt2img", requested_at=requested_at, payload=body
        )
    )


def notification(job_id: str, completed: bool = True, output: str | None = None) -> SnsNotification:
    raw = {
        "inferenceId": job_id,
        "invocationStatus": "Completed" if completed else "Failed",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if completed:
        raw["responseParameters"] = {"contentType": "application/json", "outputLocation": output}
    else:
        raw["failureReason"] = 'ClientError: Received server error (500) from primary with message "boom"'
    topic = "async-success" if completed else "async-error"
    return SnsNotification(
        message_id=f"m-{job_id}", topic_arn=f"arn:aws:sns:us-east-1:1:sdmw-{topic}", message=json.dumps(raw)
    )


def png_b64(color: str, size=(16, 24)) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_a_request_is_sent_with_models_resolved_to_s3(world):
    world.dispatch(inference(models={"Stable-diffusion": ["base.safetensors"], "Lora": ["style.safetensors"]}))
    [(endpoint, input_uri, inference_id)] = world.sagemaker.invocations
    assert (endpoint, inference_id) == ("infer-endpoint-a", "job-1")
    request = InvocationRequest.model_validate_json(
        world.s3.get_object(Bucket=BUCKET, Key=input_uri.split("/", 3)[3])["Body"].read()
    )
    assert request.checkpoint.s3_uri.endswith("checkpoint/Stable-diffusion/base.safetensors/base.safetensors")
    assert [lora.name for lora in request.loras] == ["style.safetensors"]
    assert request.payload["prompt"] == "a cute panda"
    job = world.job("job-1")
    assert job["status"] == "inprogress" and job["output_location"].endswith("job-1.out")


def test_a_redelivered_request_is_not_sent_twice(world):
    world.dispatch(inference())
    world.dispatch(inference())
    assert len(world.sagemaker.invocations) == 1


@pytest.mark.parametrize(
    ("endpoint", "state", "reason"),
    [("missing-endpoint", None, "does not exist"), ("infer-endpoint-a", "Creating", "is Creating, not InService")],
)
def test_an_endpoint_not_in_service_fails_the_job(world, endpoint, state, reason):
    if state:
        world.sagemaker.states[endpoint] = state
    world.dispatch(inference(endpoint=endpoint))
    job = world.job("job-1")
    assert job["status"] == "failed" and reason in job["error"]
    assert world.sagemaker.invocations == []


def test_an_unknown_model_is_retried_while_fresh_then_fails(world):
    with pytest.raises(NotYetKnown):
        world.dispatch(inference(models={"Stable-diffusion": ["nope.safetensors"]}))
    world.dispatch(
        inference(
            job_id="job-2", models={"Stable-diffusion": ["nope.safetensors"]}, requested_at=NOW - timedelta(minutes=5)
        )
    )
    job = world.job("job-2")
    assert job["status"] == "failed" and "nope.safetensors" in job["error"]


def test_a_disabled_checkpoint_is_not_used(world):
    world.deps.lookups.apply(
        checkpoint("Lora", "style.safetensors", status="Disabled").model_copy(update={"version": 3})
    )
    world.dispatch(
        inference(
            models={"Stable-diffusion": ["base.safetensors"], "Lora": ["style.safetensors"]},
            requested_at=NOW - timedelta(minutes=5),
        )
    )
    assert "style.safetensors" in world.job("job-1")["error"]


def test_sagemaker_refusing_the_call_fails_the_job(world):
    world.sagemaker.refuse = True
    world.dispatch(inference())
    assert "SageMaker refused the request" in world.job("job-1")["error"]


def test_success_notification_writes_jpegs_and_params(world):
    world.dispatch(inference())
    output = f"s3://{BUCKET}/sagemaker_output/job-1.out"
    answer = {"images": [png_b64("red"), png_b64("blue")], "parameters": {"seed": 7}, "info": '{"seed": 7}'}
    world.s3.put_object(Bucket=BUCKET, Key="sagemaker_output/job-1.out", Body=json.dumps(answer).encode())
    world.dispatch(notification("job-1", output=output))
    job = world.job("job-1")
    assert job["status"] == "succeed" and job["image_names"] == ["image_0.jpg", "image_1.jpg"]
    assert "'invocationStatus': 'Completed'" in job["sagemaker_raw"]
    picture = Image.open(
        io.BytesIO(world.s3.get_object(Bucket=BUCKET, Key="out/job-1/result/image_1.jpg")["Body"].read())
    )
    assert picture.format == "JPEG" and picture.size == (16, 24)
    params = json.loads(world.s3.get_object(Bucket=BUCKET, Key="out/job-1/result/job-1_param.json")["Body"].read())
    assert params == {"parameters": {"seed": 7}, "info": '{"seed": 7}'}


def test_error_notification_fails_the_job_with_sagemakers_reason(world):
    world.dispatch(inference())
    world.dispatch(notification("job-1", completed=False))
    job = world.job("job-1")
    assert job["status"] == "failed" and "boom" in job["error"]


def test_an_unreadable_answer_fails_the_job_instead_of_looping(world):
    world.dispatch(inference())
    world.s3.put_object(Bucket=BUCKET, Key="sagemaker_output/job-1.out", Body=b'{"images": ["not an image"]}')
    world.dispatch(notification("job-1", output=f"s3://{BUCKET}/sagemaker_output/job-1.out"))
    job = world.job("job-1")
    assert job["status"] == "failed" and "not a readable picture" in job["error"]


def test_a_notification_for_an_unknown_job_is_not_dropped(world):
    with pytest.raises(UnknownJob):
        world.dispatch(notification("who-knows", completed=False))


def test_a_late_notification_does_not_change_a_finished_job(world):
    world.dispatch(inference())
    world.dispatch(notification("job-1", completed=False))
    versions = len(world.publisher.published)
    world.dispatch(notification("job-1", output="s3://x/y"))
    assert world.job("job-1")["status"] == "failed"
    assert len(world.publisher.published) == versions + 1  # the current snapshot again, unchanged
    assert (
        world.publisher.published[-1].envelope.metadata.event_id
        == world.publisher.published[-2].envelope.metadata.event_id
    )


def test_the_sweep_fails_overdue_jobs_only(world):
    world.dispatch(inference(job_id="old", requested_at=NOW - timedelta(hours=1)))
    world.deps.clock = lambda: NOW - timedelta(hours=1)
    world.dispatch(inference(job_id="stuck"))
    world.deps.clock = lambda: NOW
    world.dispatch(inference(job_id="fresh"))
    world.dispatch(BusEvent(id="s", source="aws.events", detail_type="Scheduled Event", detail={}))
    assert world.job("stuck")["status"] == "failed" and "timed out" in world.job("stuck")["error"]
    assert world.job("fresh")["status"] == "inprogress"


def test_merge_goes_to_any_in_service_endpoint(world):
    world.deps.lookups.apply(
        EndpointDeploymentChanged(
            id="dep-1",
            version=3,
            endpoint_name="infer-endpoint-a",
            instance_type="ml.g5.xlarge",
            initial_instance_count=1,
            status="success",
            endpoint_status="InService",
            start_time=NOW,
        )
    )
    world.deps.lookups.apply(checkpoint("Stable-diffusion", "other.safetensors"))
    payload = {
        "primary_model_name": "base.safetensors",
        "secondary_model_name": "other.safetensors",
        "interp_method": "Weighted sum",
        "multiplier": 0.25,
        "custom_name": "mix",
    }
    world.dispatch(bus(ModelMergeRequested(job_id="merge-1", requested_at=NOW, payload=payload)))
    [(endpoint, input_uri, _)] = world.sagemaker.invocations
    request = InvocationRequest.model_validate_json(
        world.s3.get_object(Bucket=BUCKET, Key=input_uri.split("/", 3)[3])["Body"].read()
    )
    assert endpoint == "infer-endpoint-a" and request.task == "merge"
    assert request.merge.multiplier == 0.25 and request.merge.output_s3_uri.endswith(
        "out/merge-1/result/mix.safetensors"
    )


def test_a_finished_merge_registers_the_merged_checkpoint_once_per_job(world):
    test_merge_goes_to_any_in_service_endpoint(world)
    merged = f"s3://{BUCKET}/out/merge-1/result/mix.safetensors"
    answer = {"images": [], "parameters": {}, "info": json.dumps({"output_s3_uri": merged, "merged_keys": 3})}
    world.s3.put_object(Bucket=BUCKET, Key="sagemaker_output/merge-1.out", Body=json.dumps(answer).encode())
    for _ in range(2):  # a redelivered notification registers the same checkpoint again
        world.dispatch(notification("merge-1", output=f"s3://{BUCKET}/sagemaker_output/merge-1.out"))
    assert world.job("merge-1")["status"] == "succeed"
    registrations = [r["data"] for r in world.publisher.of_type("CheckpointRegistrationRequested")]
    assert len({r["checkpoint_id"] for r in registrations}) == 1
    assert registrations[0]["s3_location"] == f"s3://{BUCKET}/out/merge-1/result/"
    assert (registrations[0]["filenames"], registrations[0]["checkpoint_type"]) == (
        ["mix.safetensors"],
        "Stable-diffusion",
    )


def test_a_plain_inference_registers_nothing(world):
    test_success_notification_writes_jpegs_and_params(world)
    assert world.publisher.of_type("CheckpointRegistrationRequested") == []


def interrogation(job_id="job-i", task="interrogate_clip", **payload) -> BusEvent:
    body = {"image": png_b64("green"), "task_type": task, "sagemaker_endpoint_name": "infer-endpoint-a", **payload}
    return bus(
        InferenceRequested(
            job_id=job_id, endpoint_name="infer-endpoint-a", task_type=task, requested_at=NOW, payload=body
        )
    )


def test_an_interrogation_is_sent_with_its_image_and_no_models(world):
    world.dispatch(interrogation())
    [(endpoint, input_uri, inference_id)] = world.sagemaker.invocations
    assert (endpoint, inference_id) == ("infer-endpoint-a", "job-i")
    request = InvocationRequest.model_validate_json(
        world.s3.get_object(Bucket=BUCKET, Key=input_uri.split("/", 3)[3])["Body"].read()
    )
    assert request.task == "interrogate_clip" and request.checkpoint is None and request.loras == []
    assert request.payload["image"] == png_b64("green")
    job = world.job("job-i")
    assert job["status"] == "inprogress" and job["task_type"] == "interrogate_clip" and job["caption"] is None


def test_an_answer_holding_a_caption_succeeds_the_interrogation_with_it(world):
    world.dispatch(interrogation())
    answer = {"images": [], "parameters": {}, "info": json.dumps({"caption": "a cat"}), "caption": "a cat"}
    world.s3.put_object(Bucket=BUCKET, Key="sagemaker_output/job-i.out", Body=json.dumps(answer).encode())
    world.dispatch(notification("job-i", output=f"s3://{BUCKET}/sagemaker_output/job-i.out"))
    job = world.job("job-i")
    assert (job["status"], job["caption"], job["image_names"]) == ("succeed", "a cat", [])
    assert job["param_name"] == "job-i_param.json"
    params = json.loads(world.s3.get_object(Bucket=BUCKET, Key="out/job-i/result/job-i_param.json")["Body"].read())
    assert params == {"parameters": {}, "info": json.dumps({"caption": "a cat"})}
    assert world.publisher.of_type("CheckpointRegistrationRequested") == []


def test_an_interrogation_answer_without_a_caption_fails_the_job(world):
    world.dispatch(interrogation(task="interrogate_deepbooru"))
    answer = {"images": [], "parameters": {}, "info": "{}"}
    world.s3.put_object(Bucket=BUCKET, Key="sagemaker_output/job-i.out", Body=json.dumps(answer).encode())
    world.dispatch(notification("job-i", output=f"s3://{BUCKET}/sagemaker_output/job-i.out"))
    job = world.job("job-i")
    assert job["status"] == "failed" and "no caption" in job["error"] and job["caption"] is None


def test_a_generation_keeps_no_caption(world):
    test_success_notification_writes_jpegs_and_params(world)
    assert world.job("job-1")["caption"] is None
