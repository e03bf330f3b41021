"""Event contracts: schemas stay fresh, example payloads parse, envelope rules hold."""

import json
from pathlib import Path

import jsonschema
import pytest

from contracts import export_schemas
from sdmw_contracts.envelope import EventEnvelope, snapshot_event_id
from sdmw_contracts.events import ALL_EVENTS, EndpointDeploymentChanged, InferenceRequested

EXAMPLES = Path(export_schemas.__file__).parent / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*/v*.json"))


def test_exported_schemas_are_fresh():
    assert export_schemas.stale_files() == [], "run `make schemas` after changing an event model"


def test_every_event_has_an_example_for_its_version():
    for name, model in ALL_EVENTS.items():
        assert (EXAMPLES / name / f"v{model.event_version}.json").exists(), name


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_parses_with_the_current_model_and_schema(path):
    model = ALL_EVENTS[path.parent.name]
    payload = json.loads(path.read_text())
    envelope = EventEnvelope.model_validate(payload)
    envelope.parse_data(model)
    schema_path = export_schemas.SCHEMA_DIR / f"{model.detail_type()}.v{path.stem.removeprefix('v')}.json"
    jsonschema.validate(payload, json.loads(schema_path.read_text()))


def test_detail_type_is_the_class_name():
    assert EndpointDeploymentChanged.detail_type() == "EndpointDeploymentChanged"
    assert EndpointDeploymentChanged.entity_type() == "EndpointDeployment"


def test_snapshot_event_id_is_stable_per_version():
    payload = json.loads((EXAMPLES / "EndpointDeploymentChanged" / "v1.json").read_text())["data"]
    v3 = EndpointDeploymentChanged.model_validate(payload)
    v4 = v3.model_copy(update={"version": 4})
    assert snapshot_event_id(v3) == snapshot_event_id(v3.model_copy())
    assert snapshot_event_id(v3) != snapshot_event_id(v4)


def test_a_newer_producer_field_is_ignored_by_old_consumers():
    payload = json.loads((EXAMPLES / "EndpointDeploymentChanged" / "v1.json").read_text())
    payload["data"]["added_later"] = {"anything": 1}
    payload["metadata"]["added_later"] = "x"
    envelope = EventEnvelope.model_validate(payload)
    assert envelope.parse_data(EndpointDeploymentChanged).status == "success"


def test_an_inference_command_from_before_hypernetworks_were_sent_parses_with_none():
    payload = json.loads((EXAMPLES / "InferenceRequested" / "v2.json").read_text())
    del payload["data"]["resolved"]["hypernetworks"]
    command = EventEnvelope.model_validate(payload).parse_data(InferenceRequested)
    assert command.resolved.hypernetworks == []
    schema = json.loads((export_schemas.SCHEMA_DIR / "InferenceRequested.v2.json").read_text())
    jsonschema.validate(payload, schema)
