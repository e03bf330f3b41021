"""``interrogate_clip`` / ``interrogate_deepbooru`` in ``/invocations``: a BLIP caption from a tiny random BLIP."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from PIL import Image
from starlette.testclient import TestClient

from sd_runtime.errors import RequestError
from sd_runtime.invocations import Runtime
from sd_runtime.serve import create_app
from sd_runtime.settings import Settings
from sd_runtime.testing import build_tiny_blip, result_files
from tests.unit.sd_runtime.conftest import BUCKET, gradient_image, png_b64, upload


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("tiny-blip") / "blip")


def runtime(tmp_path: Path, caption_model: str | None) -> Runtime:
    return Runtime(Settings(cache_dir=tmp_path / "cache", device="cpu", caption_model=caption_model))


def interrogation(task: str = "interrogate_clip", **params) -> dict:
    return {
        "inference_id": "job-1",
        "task": task,
        "interrogation": params,
        "results": result_files(BUCKET, "job-1", 0).model_dump(),
    }


def test_the_tiny_blip_is_a_saved_blip_captioning_model(tiny_blip):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(tiny_blip)
    model = BlipForConditionalGeneration.from_pretrained(tiny_blip)
    assert processor.decode(processor.tokenizer("a cat on the table").input_ids, skip_special_tokens=True) == (
        "a cat on the table"
    )
    assert model.config.vision_config.image_size == 32


def test_a_caption_comes_back_from_a_model_in_s3(mocked_aws, tiny_blip, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    uri = upload(s3, tiny_blip, "test-models/blip")
    worker = runtime(tmp_path, uri)

    first = worker.invoke(interrogation(image=png_b64(gradient_image(), data_url=True), model="clip"))
    again = worker.invoke(interrogation(image=png_b64(gradient_image())))

    assert isinstance(first.caption, str) and first.caption.strip()
    assert again.caption == first.caption  # greedy decoding of the same picture, with the model kept loaded
    assert first.files == []
    assert first.parameters == {"model": "clip"}  # the input image is not echoed back
    info = json.loads(first.info)
    assert info["caption"] == first.caption and info["model"] == uri
    # The parameter file is written as for any job, with the caption in its info; there are no images.
    written = s3.list_objects_v2(Bucket=BUCKET, Prefix="out/job-1/result/")["Contents"]
    assert [item["Key"] for item in written] == ["out/job-1/result/job-1_param.json"]
    document = json.loads(s3.get_object(Bucket=BUCKET, Key="out/job-1/result/job-1_param.json")["Body"].read())
    assert document == {"parameters": {"model": "clip"}, "info": again.info}


def test_a_local_folder_works_too_and_the_server_answers_the_caption(mocked_aws, tiny_blip, tmp_path):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    with TestClient(create_app(runtime(tmp_path, str(tiny_blip)))) as client:
        answer = client.post("/invocations", json=interrogation(image=png_b64(gradient_image())))
        generated = client.post("/invocations", content=b"{}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["caption"].strip() and body["files"] == []
    assert json.loads(body["info"])["caption"] == body["caption"]
    assert generated.status_code == 400 and "caption" not in generated.json()


def test_without_the_setting_it_is_a_400_naming_it(tmp_path):
    with TestClient(create_app(runtime(tmp_path, None))) as client:
        answer = client.post("/invocations", json=interrogation(image=png_b64(gradient_image())))
    assert answer.status_code == 400
    assert "SD_RUNTIME_CAPTION_MODEL" in answer.json()["error"]


def test_deepbooru_is_refused_with_a_clear_reason(tiny_blip, tmp_path):
    with pytest.raises(RequestError, match="no DeepBooru model is configured in this runtime") as refused:
        runtime(tmp_path, str(tiny_blip)).invoke(
            interrogation("interrogate_deepbooru", image=png_b64(gradient_image()))
        )
    assert refused.value.status == 400


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "interrogation.image: Field required"),
        ({"image": ""}, "interrogation.image: Value error, must be base64-encoded data, got an empty string"),
        ({"image": "not base64!"}, "interrogation.image: Value error, must be base64-encoded data"),
        ({"image": 42}, "interrogation.image: Input should be a valid string"),
        ({"image": "aGVsbG8gd29ybGQ="}, "interrogation.image is not a base64-encoded image"),
    ],
)
def test_a_bad_or_missing_image_is_a_400_before_any_model_is_loaded(tmp_path, params, message):
    worker = runtime(tmp_path, str(tmp_path / "no-such-model"))
    with pytest.raises(RequestError) as refused:
        worker.invoke(interrogation(**params))
    assert refused.value.status == 400 and message in refused.value.message
    assert worker._captioner is None


def test_a_setting_that_names_nothing_is_a_clear_error(tmp_path):
    worker = runtime(tmp_path, str(tmp_path / "no-such-model"))
    with pytest.raises(RequestError, match="SD_RUNTIME_CAPTION_MODEL"):
        worker.invoke(interrogation(image=png_b64(Image.new("RGB", (8, 8)))))
