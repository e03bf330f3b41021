"""Issue 20, item 8: names are bounded in UTF-8 bytes, so that every S3 key made from one fits S3's 1,024.

A bound in characters let 1,024 ``x`` (1,024 bytes, before any prefix), 300 emoji (1,200 bytes) or
1,000 ``é`` (2,000 bytes) through, making keys of up to 2,053 bytes.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sdmw_contracts.api.assets import CreateCheckpointRequest, CreateDatasetRequest
from sdmw_contracts.api.names import (
    MAX_CLIENT_PATH_BYTES,
    MAX_OBJECT_NAME_BYTES,
    S3_KEY_MAX_BYTES,
    check_client_path,
    check_object_name,
)
from sdmw_contracts.api.training import CreateTrainJobRequest
from sdmw_contracts.events.assets import checkpoint_prefix, dataset_prefix
from sdmw_contracts.events.inference import result_prefix
from sdmw_contracts.events.training import input_prefix, model_prefix, train_prefix

UUID = "906a5a1f-6833-45aa-8a10-fb0e983e0eae"
TOO_LONG = {
    "1,024 x": "x" * 1024,
    "300 emoji": "\N{GRINNING FACE}" * 300,
    "1,000 é": "\N{LATIN SMALL LETTER E WITH ACUTE}" * 1000,
}


def _checkpoint(filename: str) -> dict:
    return {"checkpoint_type": "Stable-diffusion", "filenames": [{"filename": filename, "parts_number": 1}]}


@pytest.mark.parametrize("name", TOO_LONG.values(), ids=TOO_LONG.keys())
def test_a_name_over_the_bound_in_bytes_is_refused_saying_so(name):
    size = len(name.encode())
    with pytest.raises(ValidationError) as refused:
        CreateCheckpointRequest.model_validate(_checkpoint(name))
    [error] = refused.value.errors()
    assert error["loc"] == ("filenames", 0, "filename")
    assert f"at most {MAX_OBJECT_NAME_BYTES} bytes in UTF-8; this one is {size}" in error["msg"]


@pytest.mark.parametrize("name", TOO_LONG.values(), ids=TOO_LONG.keys())
def test_a_dataset_item_name_over_the_bound_is_refused(name):
    body = {"dataset_name": "cats", "content": [{"filename": "a.png", "name": name, "type": "png"}]}
    with pytest.raises(ValidationError, match=f"at most {MAX_OBJECT_NAME_BYTES} bytes in UTF-8"):
        CreateDatasetRequest.model_validate(body)


def test_the_bound_is_in_bytes_not_characters():
    # 443 two-byte characters are 886 bytes: allowed; 444 are 888: refused, though far fewer than 887 characters.
    assert check_object_name("é" * 443) == "é" * 443
    with pytest.raises(ValueError, match="this one is 888"):
        check_object_name("é" * 444)
    assert check_object_name("x" * MAX_OBJECT_NAME_BYTES)
    with pytest.raises(ValueError, match=f"this one is {MAX_OBJECT_NAME_BYTES + 1}"):
        check_object_name("x" * (MAX_OBJECT_NAME_BYTES + 1))


def test_the_longest_allowed_name_makes_every_key_within_s3s_limit():
    longest = "x" * MAX_OBJECT_NAME_BYTES
    four_byte = "\N{GRINNING FACE}" * (MAX_OBJECT_NAME_BYTES // 4)
    dataset_name = "d" * 128  # the longest dataset name (ASCII only)
    for name in (longest, four_byte):
        check_object_name(name)
        keys = [
            checkpoint_prefix("Stable-diffusion", UUID) + name,
            checkpoint_prefix("hypernetworks", UUID) + name,
            input_prefix(model_prefix(UUID)) + name,
            input_prefix(train_prefix(UUID)) + name,
            result_prefix(UUID) + name + ".safetensors",
            dataset_prefix(dataset_name) + name,
        ]
        for key in keys:
            assert len(key.encode()) <= S3_KEY_MAX_BYTES, key[:80]
    assert len((dataset_prefix(dataset_name) + longest).encode()) == S3_KEY_MAX_BYTES  # the tightest layout


def test_names_in_use_still_pass():
    for name in (
        "v1-5-pruned-emaonly.safetensors",
        "sub/model.ckpt",
        "dreamshaper_8.safetensors",
        "config/aigc.json",
        "my cats/🐱.png",
        "模型/检查点.safetensors",
    ):
        assert check_object_name(name) == name
    body = {"train_type": "Stable-diffusion", "model_id": UUID, "filenames": ["training_config.json", "images.tar"]}
    try:
        CreateTrainJobRequest.model_validate(body)
    except ValidationError as refused:  # other fields may be required; the names themselves are fine
        assert not any("filenames" in error["loc"] for error in refused.errors())


def test_a_client_path_is_bounded_in_bytes_too():
    assert check_client_path("/home/me/" + "é" * 500)  # 1,009 bytes
    with pytest.raises(ValueError, match=f"at most {MAX_CLIENT_PATH_BYTES} bytes in UTF-8; this one is 2009"):
        check_client_path("/home/me/" + "é" * 1000)
