"""The edge's settings: one model read from the environment; the keys from it or from Secrets Manager on AWS."""

import json

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from api_gateway.settings import ApiGatewaySettings

EDGE_VARIABLES = (
    "API_KEY",
    "API_KEYS",
    "API_KEYS_SECRET",
    "API_STAGE",
    "TRANSITION_WAIT_S",
    "PRESIGN_EXPIRY_S",
    "PRESIGN_MAX_EXPIRY_S",
    "UPLOAD_KEY_PREFIXES",
    "TRAINING_INSTANCE_TYPE",
    "SDMW_WEBHOOK_SIGNING_KEY_SECRET",
    "WEBHOOKS_ALLOW_LOOPBACK",
)


@pytest.fixture
def environment(aws_credentials, monkeypatch):
    for name in EDGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SDMW_EVENT_BUS", "sdmw-bus")
    monkeypatch.setenv("SDMW_BUCKET", "sdmw-bucket")
    monkeypatch.setenv("SDMW_TABLE", "sdmw-api-gateway")
    return monkeypatch


def test_every_setting_comes_from_its_variable(environment):
    environment.setenv("API_KEY", "k")
    environment.setenv("API_STAGE", "/dev/")
    environment.setenv("TRANSITION_WAIT_S", "1.5")
    environment.setenv("PRESIGN_EXPIRY_S", "60")
    environment.setenv("PRESIGN_MAX_EXPIRY_S", "120")
    environment.setenv("UPLOAD_KEY_PREFIXES", "config/, extra/")
    environment.setenv("TRAINING_INSTANCE_TYPE", "ml.p3.2xlarge")
    settings = ApiGatewaySettings()
    edge = settings.edge()
    assert (settings.event_bus, settings.bucket, settings.table_name) == ("sdmw-bus", "sdmw-bucket", "sdmw-api-gateway")
    assert settings.source == "sdmw.api-gateway"
    assert (edge.stage, edge.prefix) == ("dev", "/dev")
    assert (edge.transition_wait_s, edge.presign_expiry_s, edge.presign_max_expiry_s) == (1.5, 60, 120)
    assert edge.upload_key_prefixes == ("config/", "extra/")
    assert edge.training_instance_type == "ml.p3.2xlarge"


def test_the_defaults(environment):
    edge = ApiGatewaySettings(api_key="k").edge()
    assert (edge.stage, edge.transition_wait_s, edge.presign_expiry_s, edge.presign_max_expiry_s) == (
        "prod",
        20,
        3600,
        12 * 3600,
    )
    assert edge.upload_key_prefixes == ("config/",)
    assert edge.webhooks_allow_loopback is False


def test_the_webhook_settings_come_from_the_shared_variables(environment):
    environment.setenv("SDMW_WEBHOOK_SIGNING_KEY_SECRET", "sdmw-webhook-signing-key")
    environment.setenv("WEBHOOKS_ALLOW_LOOPBACK", "1")
    settings = ApiGatewaySettings(api_key="k")
    assert settings.webhook_signing_key_secret == "sdmw-webhook-signing-key"
    assert settings.edge().webhooks_allow_loopback is True


def test_the_core_names_are_required(environment):
    environment.delenv("SDMW_BUCKET")
    with pytest.raises(ValidationError, match="SDMW_BUCKET"):
        ApiGatewaySettings()


def test_keys_come_from_api_key_and_api_keys(environment):
    environment.setenv("API_KEYS", "one, two,")
    environment.setenv("API_KEY", "three")
    assert ApiGatewaySettings().edge().api_keys == ("one", "two", "three")


def test_no_key_at_all_refuses_to_start(environment):
    with pytest.raises(RuntimeError, match="API_KEYS_SECRET"):
        ApiGatewaySettings().edge()


@mock_aws
def test_keys_are_read_from_the_secret_named_by_api_keys_secret(environment):
    secret = boto3.client("secretsmanager").create_secret(Name="sdmw/api-key", SecretString="new-key,old-key")
    environment.setenv("API_KEYS_SECRET", secret["ARN"])
    assert ApiGatewaySettings().edge().api_keys == ("new-key", "old-key")
    environment.setenv("API_KEYS_SECRET", "sdmw/api-key")  # by name, as the AWS deployment names it
    assert ApiGatewaySettings().edge().api_keys == ("new-key", "old-key")


@mock_aws
def test_a_json_secret_gives_every_value_it_holds(environment):
    """The AWS deployment's secret: {"key": <the deployed key>}, and a rotation's next key beside it."""
    boto3.client("secretsmanager").create_secret(
        Name="sdmw/api-key", SecretString=json.dumps({"key": "deployed-key", "next": "rotated-key", "n": 1})
    )
    environment.setenv("API_KEYS_SECRET", "sdmw/api-key")
    assert ApiGatewaySettings().edge().api_keys == ("deployed-key", "rotated-key")


@mock_aws
def test_an_empty_secret_is_no_key(environment):
    secret = boto3.client("secretsmanager").create_secret(Name="sdmw/api-key", SecretString=" , ")
    environment.setenv("API_KEYS_SECRET", secret["ARN"])
    with pytest.raises(RuntimeError, match="no API key configured"):
        ApiGatewaySettings().edge()
