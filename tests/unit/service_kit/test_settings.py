"""Each service reads its environment through one settings model, and its bootstrap takes its adapters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api_gateway.settings import ApiGatewaySettings
from asset_registry.bootstrap import bootstrap as asset_registry
from asset_registry.settings import AssetRegistrySettings
from endpoint_manager.bootstrap import bootstrap as endpoint_manager
from endpoint_manager.settings import EndpointManagerSettings
from infra.core import CORE
from service_kit.config import core_environment
from service_kit.events import RecordingPublisher
from service_kit.sagemaker import ASYNC_ERROR_TOPIC, ASYNC_SUCCESS_TOPIC
from service_kit.testing import InMemorySnapshotTable
from tests.conftest import SERVICE_ENVIRONMENT
from training_manager.bootstrap import bootstrap as training_manager
from training_manager.settings import TrainingManagerSettings

SETTINGS = [ApiGatewaySettings, AssetRegistrySettings, EndpointManagerSettings, TrainingManagerSettings]
SERVICE_VARIABLES = (
    "MAX_AUTOSCALING_INSTANCES",
    "MODEL_CREATION_INSTANCE_TYPE",
    "TRAINING_MAX_RUNTIME_S",
    "TRAINING_VOLUME_SIZE_GB",
    "SD_RUNTIME_CAPTION_MODEL",
    "SD_RUNTIME_SINGLE_FILE_CONFIG",
    "SD_RUNTIME_PIPELINE_CACHE",
    "SD_RUNTIME_CHANNELS_LAST",
    "SD_RUNTIME_COMPILE_UNET",
)


@pytest.fixture(autouse=True)
def environment(aws_credentials, monkeypatch):
    for name in SERVICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in SERVICE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize("settings_type", SETTINGS)
def test_every_service_finds_the_core_and_its_own_resources_in_its_environment(settings_type):
    settings = settings_type()
    assert (settings.event_bus, settings.bucket) == (SERVICE_ENVIRONMENT["SDMW_EVENT_BUS"], "sdmw-bucket")
    assert (settings.table_name, settings.queue_url) == ("sdmw-table", SERVICE_ENVIRONMENT["SDMW_QUEUE_URL"])
    assert settings.source == f"sdmw.{settings.service}"


@pytest.mark.parametrize("settings_type", SETTINGS)
@pytest.mark.parametrize("variable", ["SDMW_EVENT_BUS", "SDMW_BUCKET"])
def test_a_service_without_the_cores_names_does_not_start(settings_type, variable, environment):
    environment.delenv(variable)
    with pytest.raises(ValidationError, match=variable):
        settings_type()


def test_a_service_without_a_table_says_so_when_it_needs_one(environment):
    environment.delenv("SDMW_TABLE")
    with pytest.raises(RuntimeError, match="SDMW_TABLE"):
        asset_registry(AssetRegistrySettings())


def test_the_topic_arns_are_read_from_the_variables_the_deployment_sets(environment):
    arns = {topic: f"arn:aws:sns:us-east-1:1:x-{topic}" for topic in CORE.topics}
    for name, value in core_environment("bus", "bucket", arns).items():
        environment.setenv(name, value)
    settings = EndpointManagerSettings()
    assert settings.success_topic_arn == arns[ASYNC_SUCCESS_TOPIC]
    assert settings.error_topic_arn == arns[ASYNC_ERROR_TOPIC]
    runtime = settings.runtime()
    assert (runtime.success_topic_arn, runtime.error_topic_arn) == (arns[ASYNC_SUCCESS_TOPIC], arns[ASYNC_ERROR_TOPIC])
    assert runtime.output_s3_uri == "s3://bucket/sagemaker_output/"


def test_the_sagemaker_settings_have_defaults_and_follow_their_variables(environment):
    endpoints, training = EndpointManagerSettings(), TrainingManagerSettings().training()
    assert endpoints.max_autoscaling_instances == 4
    assert (training.model_creation_instance_type, training.max_runtime_s, training.volume_size_gb) == (
        "ml.g4dn.xlarge",
        24 * 3600,
        100,
    )
    assert training.image_uri == SERVICE_ENVIRONMENT["SD_RUNTIME_IMAGE"]
    assert training.container_environment == {
        "SDMW_BUCKET": "sdmw-bucket",
        "SDMW_EVENT_BUS": SERVICE_ENVIRONMENT["SDMW_EVENT_BUS"],
    }
    environment.setenv("MAX_AUTOSCALING_INSTANCES", "9")
    environment.setenv("MODEL_CREATION_INSTANCE_TYPE", "ml.g5.xlarge")
    environment.setenv("TRAINING_MAX_RUNTIME_S", "600")
    environment.setenv("TRAINING_VOLUME_SIZE_GB", "50")
    endpoints, training = EndpointManagerSettings(), TrainingManagerSettings().training()
    assert endpoints.max_autoscaling_instances == 9
    assert (training.model_creation_instance_type, training.max_runtime_s, training.volume_size_gb) == (
        "ml.g5.xlarge",
        600,
        50,
    )


def test_a_value_that_is_not_a_number_is_refused(environment):
    environment.setenv("MAX_AUTOSCALING_INSTANCES", "many")
    with pytest.raises(ValidationError, match="max_autoscaling_instances"):
        EndpointManagerSettings()


def test_settings_passed_in_win_over_the_environment():
    settings = EndpointManagerSettings(bucket="other", max_autoscaling_instances=2)
    assert (settings.bucket, settings.max_autoscaling_instances) == ("other", 2)
    assert settings.container_environment() == {"SDMW_BUCKET": "other", "SDMW_EVENT_BUS": "sdmw-bus"}


def test_each_bootstrap_uses_the_adapters_it_is_given():
    table, publisher = InMemorySnapshotTable(), RecordingPublisher()
    for app in (
        asset_registry(AssetRegistrySettings(), snapshots=table, publisher=publisher),
        training_manager(TrainingManagerSettings(), snapshots=table, publisher=publisher),
    ):
        assert (app.deps.snapshots, app.deps.publisher) == (table, publisher)
    endpoints = object()
    app = endpoint_manager(EndpointManagerSettings(), jobs=table, endpoints=endpoints, publisher=publisher)
    assert (app.deps.jobs, app.deps.endpoints, app.deps.publisher) == (table, endpoints, publisher)
    assert app.deps.max_autoscaling_instances == app.settings.max_autoscaling_instances == 4
