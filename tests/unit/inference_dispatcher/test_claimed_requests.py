"""An inference request too large for EventBridge (a big init image) goes by claim check: the edge
publishes it through S3, the dispatcher reads it back whole and sends it to SageMaker."""

from __future__ import annotations

import base64
import io
import json
import os
import time

import boto3
import pytest
from PIL import Image

from api_gateway.commands import CommandSender
from inference_dispatcher.adapters import S3Storage
from inference_dispatcher.bootstrap import bootstrap
from inference_dispatcher.settings import InferenceDispatcherSettings
from sdmw_contracts.runtime import InvocationRequest
from service_kit.claims import CLAIM_ABOVE_BYTES, EventClaims
from service_kit.events import EventBridgePublisher, RecordingPublisher
from service_kit.testing import InMemorySnapshotTable
from service_kit.worker import LocalLambdaContext
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge, ready_to_run
from tests.unit.inference_dispatcher.test_handlers import FakeSageMakerAsync
from tests.unit.service_kit.test_claims import FakeEvents, as_sqs_event

ENDPOINT = "infer-endpoint-a"
MODELS = {"Stable-diffusion": ["v1-5.safetensors"]}


def noisy_png(side: int) -> str:
    """A PNG that does not compress: its base64 is about 1.4 x side^2 x 3 bytes."""
    picture = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture
def edge_events(mocked_aws):
    """The edge publishing through the real publisher and claim check, into a fake EventBridge."""
    made = in_process_edge(RecordingPublisher())
    events = FakeEvents()
    s3 = boto3.client("s3")
    publisher = EventBridgePublisher("bus", "sdmw.api-gateway", client=events, claims=EventClaims(EDGE_BUCKET, s3))
    made.client.app.state.deps.commands = CommandSender(publisher)
    ready_to_run(made.read_model, ENDPOINT, MODELS)
    return made, events, s3


def test_a_request_over_the_limit_goes_through_s3_and_reaches_sagemaker_whole(edge_events):
    made, events, s3 = edge_events
    image = noisy_png(256)
    assert len(image) > CLAIM_ABOVE_BYTES
    body = {"sagemaker_endpoint_name": ENDPOINT, "task_type": "img2img", "prompt": "p", "models": MODELS}
    started = made.client.post(
        "/prod/inference-api/inference", json={**body, "init_images": [image]}, headers={"x-api-key": "key"}
    )
    assert started.status_code == 200, started.text

    # The edge's end: the entry is small and names the claim; the claim holds the image.
    [entry] = events.entries
    detail = json.loads(entry["Detail"])
    assert len(entry["Detail"]) < 8 * 1024 and detail["data"] == {}
    bucket, key = detail["data_s3_uri"].removeprefix("s3://").split("/", 1)
    assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["params"]["init_images"] == [image]

    # The dispatcher's end: it reads the claim and sends the request with the image, typed.
    sagemaker = FakeSageMakerAsync()
    settings = InferenceDispatcherSettings(event_bus="bus", bucket=EDGE_BUCKET, table="unused")
    app = bootstrap(
        settings,
        jobs=InMemorySnapshotTable(),
        storage=S3Storage(EDGE_BUCKET, s3),
        endpoints=sagemaker,
        publisher=RecordingPublisher(),
    )
    context = LocalLambdaContext(function_name="dispatcher", deadline=time.monotonic() + 60)
    assert app.consumer.handle_batch(as_sqs_event(entry), context) == {"batchItemFailures": []}
    [(endpoint, input_uri, job_id)] = sagemaker.invocations
    assert (endpoint, job_id) == (ENDPOINT, started.json()["inference_id"])
    bucket, key = input_uri.removeprefix("s3://").split("/", 1)
    sent = InvocationRequest.model_validate_json(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert sent.task == "img2img" and sent.params.init_images == [image]
    assert sent.models.checkpoint.name == "v1-5.safetensors"
