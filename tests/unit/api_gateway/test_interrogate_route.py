"""``POST /inference/run-sagemaker-inference`` with interrogate_clip/interrogate_deepbooru, in-process, and the
job's ``caption`` in ``GET /inference/get-inference-job``."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime

import pytest
from PIL import Image

from sdmw_contracts.events import EndpointDeploymentChanged, InferenceJobChanged
from service_kit.events import RecordingPublisher
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge, in_service_endpoint

BUCKET = EDGE_BUCKET
KEY = {"x-api-key": "key"}
NOW = datetime(2024, 1, 1, tzinfo=UTC)
ENDPOINT = "infer-endpoint-abc1234"
RUN = "/prod/inference/run-sagemaker-inference"


def png_b64(fmt: str = "PNG") -> str:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format=fmt)
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture
def edge(mocked_aws):
    publisher = RecordingPublisher()
    made = in_process_edge(publisher, clock=lambda: NOW)
    made.read_model.apply(endpoint("InService"))
    return made.client, made.read_model, publisher, made.s3


def endpoint(status: str, name: str = ENDPOINT) -> EndpointDeploymentChanged:
    return in_service_endpoint(name, status, NOW)


def upload_params(s3, params: dict) -> None:
    s3.put_object(Bucket=BUCKET, Key="config/aigc.json", Body=json.dumps(params).encode())


@pytest.mark.parametrize("task", ["interrogate_clip", "interrogate_deepbooru"])
def test_an_interrogation_starts_a_job_with_the_image_and_no_checkpoint(edge, task):
    client, read_model, publisher, s3 = edge
    image = png_b64()
    upload_params(s3, {"image": f"data:image/png;base64,{image}", "prompt": "ignored"})

    started = client.post(RUN, json={"task_type": task, "sagemaker_endpoint": ENDPOINT}, headers=KEY)

    assert started.status_code == 200, started.text
    job_id = started.json()["inference_id"]
    assert started.json()["status"] == "inprogress" and started.json()["endpoint_name"] == ENDPOINT
    [command] = publisher.of_type("InferenceRequested")
    data = command["data"]
    assert (data["job_id"], data["task_type"], data["endpoint_name"], data["models"]) == (job_id, task, ENDPOINT, {})
    assert data["interrogation"] == {
        "image": f"data:image/png;base64,{image}",
        "model": task.removeprefix("interrogate_"),
    }
    assert data["params"] is None and data["resolved"]["checkpoint"] is None
    shown = client.get("/prod/inference/get-inference-job", params={"jobID": job_id}, headers=KEY).json()
    assert shown["taskType"] == task and shown["status"] == "inprogress"
    # The extension reads an interrogation's caption whatever became of the job: "" until there is one.
    assert shown["caption"] == "" and "error" not in shown


def test_init_images_is_the_fallback_and_a_jpeg_will_do(edge):
    client, _, publisher, s3 = edge
    upload_params(s3, {"init_images": [png_b64("JPEG")]})
    started = client.post(RUN, json={"task_type": "interrogate_clip", "sagemaker_endpoint": ENDPOINT}, headers=KEY)
    assert started.status_code == 200, started.text
    [command] = publisher.of_type("InferenceRequested")
    assert command["data"]["interrogation"]["image"] == png_b64("JPEG")


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (None, "interrogate_clip needs the image: upload the parameters to config/aigc.json first"),
        ({"prompt": "no image"}, "interrogate_clip needs the image"),
        ({"image": "", "init_images": []}, "interrogate_clip needs the image"),
        ({"image": "not base64!"}, "image is not base64"),
        ({"image": base64.b64encode(b"hello, world").decode()}, "image is not an image"),
        ({"init_images": [base64.b64encode(b"plain text").decode()]}, "init_images[0] is not an image"),
        ({"image": 7}, "image must be a base64-encoded image"),
    ],
)
def test_no_image_or_not_an_image_fails_the_job_with_the_reason(edge, params, reason):
    """The extension follows the id it is answered: the job it shows failed says why, and nothing runs."""
    client, _, publisher, s3 = edge
    if params is not None:
        upload_params(s3, params)
    refused = client.post(RUN, json={"task_type": "interrogate_clip", "sagemaker_endpoint": ENDPOINT}, headers=KEY)
    assert refused.status_code == 200
    assert reason in refused.json()["error"] and refused.json()["status"] == "failed"
    shown = client.get(
        "/prod/inference/get-inference-job", params={"jobID": refused.json()["inference_id"]}, headers=KEY
    )
    assert shown.json()["status"] == "failed" and reason in shown.json()["error"]
    assert publisher.published == []


def test_the_endpoint_must_be_in_service(edge):
    client, read_model, publisher, s3 = edge
    read_model.apply(endpoint("Creating", "infer-endpoint-new"))
    upload_params(s3, {"image": png_b64()})
    for name, reason in (("infer-endpoint-new", "not InService"), ("infer-endpoint-nope", "does not exist")):
        body = {"task_type": "interrogate_clip", "sagemaker_endpoint": name}
        refused = client.post(RUN, json=body, headers=KEY)
        assert refused.json()["status"] == "failed" and reason in refused.json()["error"]
    assert publisher.published == []


def extension_page_values(tab: str, image: object) -> dict:
    """``config/aigc.json`` as the extension's img2img page writes it (``img2img_config_save``): the image
    under the key of the img2img tab selected, the other tabs' keys empty."""
    keys = {
        "img2img": "img2img_init_img",
        "Sketch": "img2img_sketch",
        "Inpaint": "img2img_init_img_with_mask",
        "Inpaint_sketch": "img2img_inpaint_color_sketch",
        "Inpaint_upload": "img2img_init_img_inpaint",
    }
    values = {key: "" for key in keys.values()} | {"img2img_init_mask_inpaint": ""}
    return {**values, keys[tab]: image, "img2img_selected_tab_name": tab, "aws_api_token": "key", "txt2img_prompt": ""}


@pytest.mark.parametrize("tab", ["img2img", "Sketch", "Inpaint", "Inpaint_sketch", "Inpaint_upload"])
def test_the_extensions_img2img_page_values_are_interrogated(edge, tab):
    """Defect 7: the extension stores the image as img2img_init_img (or its sketch and inpaint variants,
    the Inpaint tab as {image, mask}), never as image or init_images."""
    client, _, publisher, s3 = edge
    data_url = f"data:image/png;base64,{png_b64()}"
    image = {"image": data_url, "mask": data_url} if tab == "Inpaint" else data_url
    upload_params(s3, extension_page_values(tab, image))
    started = client.post(RUN, json={"task_type": "interrogate_clip", "sagemaker_endpoint": ENDPOINT}, headers=KEY)
    assert started.json()["status"] == "inprogress", started.text
    [command] = publisher.of_type("InferenceRequested")
    assert command["data"]["interrogation"]["image"] == data_url


def test_a_succeeded_interrogation_shows_its_caption(edge):
    client, read_model, _, _ = edge
    done = InferenceJobChanged(
        id="job-i",
        version=4,
        task_type="interrogate_clip",
        endpoint_name=ENDPOINT,
        status="succeed",
        start_time=NOW,
        complete_time=NOW,
        param_name="job-i_param.json",
        caption="a red square",
    )
    read_model.apply(done)
    shown = client.get("/prod/inference/get-inference-job", params={"jobID": "job-i"}, headers=KEY).json()
    assert (shown["status"], shown["taskType"], shown["caption"], shown["image_names"]) == (
        "succeed",
        "interrogate_clip",
        "a red square",
        [],
    )
    listed = client.get("/prod/inference/list-inference-jobs", headers=KEY).json()
    assert [job["caption"] for job in listed] == ["a red square"]
