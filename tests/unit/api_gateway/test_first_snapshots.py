"""An entity's first snapshot comes from its creating command, on both sides.

The edge records version 0 from the command it sends; the owner saves version 1 from the same command
(``<Command>.initial_snapshot``). Both services run in-process here, the owner built by its bootstrap with
test doubles for what would reach SageMaker.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from endpoint_manager.bootstrap import bootstrap as endpoint_manager
from endpoint_manager.handlers import router as endpoint_router
from endpoint_manager.sagemaker import EndpointSpec, EndpointState
from endpoint_manager.settings import EndpointManagerSettings
from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import (
    EndpointDeploymentChanged,
    EndpointDeploymentRequested,
    ModelChanged,
    TrainJobChanged,
    TrainJobRequested,
)
from service_kit.events import RecordingPublisher
from service_kit.messages import BusEvent
from service_kit.testing import InMemorySnapshotTable
from tests.conftest import SERVICE_ENVIRONMENT
from tests.unit.api_gateway.conftest import EDGE_BUCKET, in_process_edge
from training_manager.bootstrap import bootstrap as training_manager
from training_manager.handlers import router as training_router
from training_manager.settings import TrainingManagerSettings

KEY = {"x-api-key": "key"}
NOW = datetime(2024, 1, 1, tzinfo=UTC)


class NoSageMaker:
    """Test double of both SageMaker gateways: creating, starting and describing do nothing."""

    def create(self, spec: EndpointSpec) -> None:
        pass

    def describe(self, name: str) -> EndpointState | None:
        return None


@pytest.fixture
def edge(mocked_aws):
    publisher = RecordingPublisher()
    return in_process_edge(publisher, clock=lambda: NOW), publisher


def sent(publisher: RecordingPublisher, command_type: type) -> tuple[BusEvent, object]:
    """The last command of that type the edge sent, as the owner receives it, and parsed."""
    (detail, *_) = publisher.of_type(command_type.detail_type())[-1:]
    event = BusEvent(id="e", source="sdmw.api-gateway", detail_type=command_type.detail_type(), detail=detail)
    return event, EventEnvelope.model_validate(detail).parse_data(command_type)


def settings_of(settings_type: type, **variables: str):
    """The service's settings from the tests' service environment, with ``variables`` changed."""
    return settings_type(**{**SERVICE_ENVIRONMENT, **variables})


def test_an_endpoint_jobs_first_snapshot_is_the_same_at_the_edge_and_its_owner(edge):
    made, publisher = edge
    response = made.client.post(
        "/prod/inference/deploy-sagemaker-endpoint",
        json={"instance_type": "ml.g4dn.xlarge", "initial_instance_count": 2, "autoscaling_enabled": True},
        headers=KEY,
    )
    assert response.status_code == 200, response.text
    event, command = sent(publisher, EndpointDeploymentRequested)
    at_the_edge = made.read_model.get(EndpointDeploymentChanged, command.job_id)
    assert at_the_edge == command.initial_snapshot(version=0)
    assert (at_the_edge.start_time, at_the_edge.instance_type, at_the_edge.autoscaling_enabled) == (
        NOW,
        "ml.g4dn.xlarge",
        True,
    )

    jobs = InMemorySnapshotTable()
    owner = endpoint_manager(
        settings_of(EndpointManagerSettings), jobs=jobs, endpoints=NoSageMaker(), publisher=RecordingPublisher()
    )
    endpoint_router(owner.deps).dispatch(event)
    owned = jobs.get(EndpointDeploymentChanged, command.job_id)
    assert (owned.version, owned.endpoint_status) == (2, "Creating")
    assert owned.model_copy(update={"version": 0, "endpoint_status": None}) == at_the_edge


def test_a_train_jobs_first_snapshot_is_the_same_at_the_edge_and_its_owner(edge):
    made, publisher = edge
    made.read_model.apply(
        ModelChanged(
            id="m1",
            version=3,
            model_type="Stable-diffusion",
            name="my-model",
            status="Complete",
            s3_base=f"s3://{EDGE_BUCKET}/model/m1/",
            output_s3_location=f"s3://{EDGE_BUCKET}/model/m1/out/",
            created_at=NOW,
        )
    )
    body = {
        "train_type": "dreambooth",
        "model_id": "m1",
        "filenames": ["dog.png"],
        "params": {"train_params": {"max_train_steps": 7}},
    }
    response = made.client.post("/prod/train", json=body, headers=KEY)
    assert response.status_code == 200, response.text
    event, command = sent(publisher, TrainJobRequested)
    at_the_edge = made.read_model.get(TrainJobChanged, command.train_job_id)
    assert at_the_edge == command.initial_snapshot(EDGE_BUCKET, version=0)

    snapshots = InMemorySnapshotTable()
    owner = training_manager(
        settings_of(TrainingManagerSettings, SDMW_BUCKET=EDGE_BUCKET),
        snapshots=snapshots,
        training=NoSageMaker(),
        publisher=RecordingPublisher(),
    )
    training_router(owner.deps).dispatch(event)
    owned = snapshots.get(TrainJobChanged, command.train_job_id)
    assert owned.model_copy(update={"version": 0}) == at_the_edge
    assert json.loads(owner.deps.publisher.published[-1].detail_json())["data"]["version"] == 1
