"""Issue 20, items 8 and 13, at the edge: odd inputs get a 422 that says what is wrong with them.

- A body nested deeper than Python's parser goes, or holding an integer of more digits than it converts,
  was answered "the body is not UTF-8 text"; the 422 now gives the true reason.
- NaN, Infinity, 1e999 and huge integers in ``override_settings`` are refused naming where; A1111's
  ``s_tmax: Infinity`` is still its "no limit".
- A checkpoint file name over the bound in UTF-8 bytes is refused, saying how many bytes it has.
"""

from __future__ import annotations

import json
import sys

import pytest

from api_gateway.bodies import MAX_JSON_DEPTH_HINT
from sdmw_contracts.api.names import MAX_OBJECT_NAME_BYTES

KEY = {"x-api-key": "key"}
JSON_KEY = {**KEY, "content-type": "application/json"}


def _only_error(answer) -> dict:
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    return error


def test_a_body_nested_too_deep_is_refused_for_that(edge, publisher):
    body = b'{"checkpoint_type": "Lora", "params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = _only_error(edge.client.post("/prod/checkpoint", content=body, headers=JSON_KEY))
    assert error["type"] == "json_invalid" and error["loc"] == ["body"]
    assert f"nested deeper than {MAX_JSON_DEPTH_HINT} levels" in error["msg"]
    assert "UTF-8" not in error["msg"]
    assert publisher.published == []


def test_nesting_within_the_stated_depth_is_parsed(edge):
    depth = MAX_JSON_DEPTH_HINT
    params = b"[" * depth + b"]" * depth
    body = b'{"checkpoint_type": "Lora", "filenames": [], "params": {"x": ' + params + b"}}"
    error = _only_error(edge.client.post("/prod/checkpoint", content=body, headers=JSON_KEY))
    assert error["type"] != "json_invalid"  # parsed; refused for what it says (no files), not for its nesting


def test_a_body_with_a_huge_integer_is_refused_for_that(edge, publisher):
    digits = sys.get_int_max_str_digits() + 1
    body = b'{"checkpoint_type": "Lora", "params": {"n": ' + b"9" * digits + b"}}"
    error = _only_error(edge.client.post("/prod/checkpoint", content=body, headers=JSON_KEY))
    assert error["type"] == "json_invalid"
    assert f"an integer of more than {sys.get_int_max_str_digits()} digits" in error["msg"]
    assert "UTF-8" not in error["msg"]
    assert publisher.published == []


def test_bytes_that_are_not_utf8_keep_their_reason(edge):
    error = _only_error(edge.client.post("/prod/checkpoint", content=b"\xff\xfe{", headers=JSON_KEY))
    assert error["msg"] == "JSON decode error: the body is not UTF-8 text"


def _inference(override: str, extra: str = "") -> bytes:
    return (
        '{"sagemaker_endpoint_name": "infer-endpoint-cb821ea", "task_type": "txt2img", "prompt": "a cat", '
        '"models": {"Stable-diffusion": ["v1-5-pruned-emaonly.safetensors"]}, '
        f'"override_settings": {{"sd_vae": {override}}}{extra}}}'
    ).encode()


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999", "9" * 4001])
def test_odd_numbers_in_override_settings_are_refused_naming_the_field(edge, publisher, raw):
    answer = edge.client.post("/prod/inference-api/inference", content=_inference(raw), headers=JSON_KEY)
    error = _only_error(answer)
    assert error["loc"] == ["body", "override_settings"]
    assert '["sd_vae"]' in error["msg"]
    assert ("finite number" in error["msg"]) or ("64 bits" in error["msg"])
    assert publisher.published == []


def test_s_tmax_infinity_is_not_refused(edge):
    answer = edge.client.post(
        "/prod/inference-api/inference", content=_inference("1", ', "s_tmax": Infinity'), headers=JSON_KEY
    )
    # Validated and taken (the job then fails only because no endpoint exists in this test).
    assert answer.status_code == 200, answer.text
    assert "does not exist" in answer.json()["error"]


@pytest.mark.parametrize("name", ["x" * 1024, "\N{GRINNING FACE}" * 300, "\N{LATIN SMALL LETTER E WITH ACUTE}" * 1000])
def test_a_checkpoint_name_too_long_in_bytes_is_refused(edge, publisher, name):
    body = {"checkpoint_type": "Stable-diffusion", "filenames": [{"filename": name, "parts_number": 1}]}
    answer = edge.client.post("/prod/checkpoint", content=json.dumps(body), headers=JSON_KEY)
    error = _only_error(answer)
    assert error["loc"] == ["body", "filenames", 0, "filename"]
    size = len(name.encode())
    assert f"at most {MAX_OBJECT_NAME_BYTES} bytes in UTF-8; this one is {size}" in error["msg"]
    assert publisher.published == []
