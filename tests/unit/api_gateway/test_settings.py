"""The edge's keys: from the environment locally, from Secrets Manager on AWS."""

import boto3
import pytest
from moto import mock_aws

from api_gateway.settings import EdgeSettings


@pytest.fixture
def environment(aws_credentials, monkeypatch):
    for name in ("API_KEY", "API_KEYS", "API_KEYS_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_keys_come_from_api_key_and_api_keys(environment):
    environment.setenv("API_KEYS", "one, two,")
    environment.setenv("API_KEY", "three")
    assert EdgeSettings.from_env().api_keys == ("one", "two", "three")


def test_no_key_at_all_refuses_to_start(environment):
    with pytest.raises(RuntimeError, match="API_KEYS_SECRET_ARN"):
        EdgeSettings.from_env()


@mock_aws
def test_keys_are_read_from_the_secret_named_by_api_keys_secret_arn(environment):
    secret = boto3.client("secretsmanager").create_secret(Name="sdmw/api-key", SecretString="new-key,old-key")
    environment.setenv("API_KEYS_SECRET_ARN", secret["ARN"])
    assert EdgeSettings.from_env().api_keys == ("new-key", "old-key")


@mock_aws
def test_an_empty_secret_is_no_key(environment):
    secret = boto3.client("secretsmanager").create_secret(Name="sdmw/api-key", SecretString=" , ")
    environment.setenv("API_KEYS_SECRET_ARN", secret["ARN"])
    with pytest.raises(RuntimeError, match="no API key configured"):
        EdgeSettings.from_env()
