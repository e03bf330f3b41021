"""The SageMaker HTTP contract: /ping and /invocations through the ASGI app."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from starlette.testclient import TestClient

from sd_runtime.errors import ModelNotFound
from sd_runtime.serve import create_app
from sdmw_contracts.runtime import InvocationResponse
from tests.unit.sd_runtime.conftest import BUCKET, images_of, invocation


@pytest.fixture
def client(world):
    with TestClient(create_app(world.runtime)) as test_client:
        yield test_client


def test_ping_answers_200(client):
    assert client.get("/ping").status_code == 200


def test_invocations_writes_the_images_and_answers_where_they_are(client, world):
    request = invocation(world, batch_size=2)
    response = client.post("/invocations", json=request)

    assert response.status_code == 200
    assert set(response.json()) == {"files", "parameters", "info"}  # no caption: not an interrogation
    body = InvocationResponse.model_validate(response.json())
    prefix = request["results"]["prefix"]
    assert body.files == [prefix + "image_0.jpg", prefix + "image_1.jpg"]
    assert [image.shape for image in images_of(body)] == [(32, 32, 3), (32, 32, 3)]
    info = json.loads(body.info)
    assert info["all_seeds"] == [1234, 1235]
    assert body.parameters["prompt"] == "a red cube"


def test_unknown_sampler_is_a_400_with_a_readable_error(client, world):
    response = client.post("/invocations", json=invocation(world, sampler_name="Foo"))

    assert response.status_code == 400
    assert response.json()["error"].startswith("unknown sampler_name 'Foo'; supported: Euler a, ")


def test_bad_bodies_are_400s(client, world):
    not_json = client.post("/invocations", content=b"{nope", headers={"content-type": "application/json"})
    no_task = client.post("/invocations", json={"inference_id": "x"})
    bad_params = invocation(world)
    bad_params["params"]["steps"] = 0
    bad_payload = client.post("/invocations", json=bad_params)

    assert not_json.status_code == 400
    assert not_json.json()["error"].startswith("the request body is not JSON")
    assert no_task.status_code == 400
    assert "invalid invocation request: task: Field required" in no_task.json()["error"]
    assert bad_payload.status_code == 400
    assert bad_payload.json()["error"].startswith("invalid invocation request: params.steps:")


def test_missing_checkpoint_is_a_404_naming_it(client, world):
    body = invocation(world)
    body["models"]["checkpoint"] = {"name": "gone", "s3_uri": f"s3://{BUCKET}/Stable-diffusion/gone.safetensors"}

    response = client.post("/invocations", json=body)

    assert response.status_code == 404
    assert response.json() == {"error": f"checkpoint s3://{BUCKET}/Stable-diffusion/gone.safetensors not found"}


class BlockingRuntime:
    """Holds its job until released, to see /ping answer while a job runs."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def invoke(self, body):
        self.started.set()
        assert self.release.wait(10)
        raise ModelNotFound("checkpoint s3://x/y not found")


def test_ping_answers_while_a_job_runs():
    runtime = BlockingRuntime()
    with TestClient(create_app(runtime)) as client:
        results = {}
        job = threading.Thread(target=lambda: results.update(job=client.post("/invocations", json={})))
        job.start()
        assert runtime.started.wait(10)

        assert client.get("/ping").status_code == 200

        runtime.release.set()
        job.join(10)
    assert results["job"].status_code == 404


def test_unexpected_failures_are_500s_with_the_reason():
    class Broken:
        def invoke(self, body):
            raise RuntimeError("CUDA error: device-side assert triggered")

    with TestClient(create_app(Broken())) as client:
        response = client.post("/invocations", json={})

    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError: CUDA error: device-side assert triggered"}


def test_the_server_module_does_not_import_torch():
    code = "import sys, sd_runtime.serve; sys.exit(1 if 'torch' in sys.modules or 'diffusers' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
