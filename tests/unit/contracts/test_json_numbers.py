"""Issue 20, item 13 (a): free-form JSON in requests holds only numbers JSON carries and readers hold.

``NaN``, ``Infinity`` and ``1e999`` (read as infinity) in ``override_settings`` were accepted and became
``null`` silently when written on; a 4,001-digit integer was accepted as it was. Both are now a 422
naming where. A1111's ``s_tmax: Infinity`` (its "no limit") is still taken, as None.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from sdmw_contracts.api.assets import CreateCheckpointRequest
from sdmw_contracts.api.common import MAX_JSON_INT, MIN_JSON_INT, check_json_numbers
from sdmw_contracts.generation import GenerationParams

ODD = {
    "NaN": ("NaN", "must be a finite number, not nan"),
    "Infinity": ("Infinity", "must be a finite number, not inf"),
    "-Infinity": ("-Infinity", "must be a finite number, not -inf"),
    "1e999": ("1e999", "must be a finite number, not inf"),
    "4001 digits": ("9" * 4001, "at most 64 bits"),
    "2**64": (str(2**64), "at most 64 bits"),
    "-2**63-1": (str(-(2**63) - 1), "at most 64 bits"),
}


def _params(raw_override: str) -> dict:
    inner = '{"CLIP_stop_at_last_layers": {"x": [1, ' + raw_override + "]}}"
    return json.loads('{"prompt": "a cat", "override_settings": ' + inner + "}")


@pytest.mark.parametrize(("raw", "why"), ODD.values(), ids=ODD.keys())
def test_override_settings_refuse_odd_numbers_naming_where(raw, why):
    with pytest.raises(ValidationError) as refused:
        GenerationParams.model_validate(_params(raw))
    [error] = refused.value.errors()
    assert error["loc"] == ("override_settings",)
    assert '["CLIP_stop_at_last_layers"]["x"][1]' in error["msg"] and why in error["msg"]


def test_ordinary_numbers_pass():
    for value in (0, -1, 2**63 - 1, MAX_JSON_INT, MIN_JSON_INT, 1.5, -1e308, True, None):
        assert check_json_numbers({"a": [value]}) == {"a": [value]}
    params = GenerationParams.model_validate(_params("2"))
    assert params.override_settings == {"CLIP_stop_at_last_layers": {"x": [1, 2]}}


def test_s_tmax_infinity_is_still_a1111s_no_limit():
    params = GenerationParams.model_validate(json.loads('{"prompt": "a cat", "s_tmax": Infinity}'))
    assert params.s_tmax is None


def test_script_args_and_other_scripts_refuse_them_too():
    with pytest.raises(ValidationError, match="finite number"):
        GenerationParams.model_validate(json.loads('{"prompt": "p", "script_args": [NaN]}'))
    with pytest.raises(ValidationError, match="finite number"):
        GenerationParams.model_validate(json.loads('{"prompt": "p", "alwayson_scripts": {"x": {"args": [Infinity]}}}'))
    with pytest.raises(ValidationError, match="finite number"):
        GenerationParams.model_validate(
            json.loads('{"prompt": "p", "alwayson_scripts": {"extra options": {"args": [NaN]}}}')
        )


def test_stored_params_refuse_them():
    body = {"checkpoint_type": "Lora", "filenames": [{"filename": "a.safetensors", "parts_number": 1}]}
    with pytest.raises(ValidationError) as refused:
        CreateCheckpointRequest.model_validate({**body, "params": {"n": 10**30}})
    [error] = refused.value.errors()
    assert error["loc"] == ("params",) and '["n"]' in error["msg"] and "64 bits" in error["msg"]
