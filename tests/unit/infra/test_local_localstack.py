"""The local stack on LocalStack (SDMW_EMULATOR=localstack): DynamoDB elsewhere, LocalStack kept offline and
private, and a clear word when it is neither running nor installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.local import data
from infra.local.stack import LOCALSTACK_SERVICES, LocalStack, StackError, StackSettings


def localstack_settings(tmp_path: Path, **overrides) -> StackSettings:
    return StackSettings(
        emulator="localstack",
        emulator_port=14566,
        dynamodb_port=14568,
        run_dir=tmp_path / ".run",
        localstack_venv=tmp_path / "venv",
        **overrides,
    )


def test_every_process_finds_dynamodb_on_the_embedded_server_and_the_rest_on_localstack(tmp_path):
    env = localstack_settings(tmp_path).aws_environment()
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:14566"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:14568"


def test_under_moto_dynamodb_is_the_emulator_itself(tmp_path):
    env = StackSettings(emulator="moto", emulator_port=14566, run_dir=tmp_path).aws_environment()
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:14566"


def test_stacks_built_in_code_follow_the_test_emulator_setting(monkeypatch):
    monkeypatch.setenv("SDMW_TEST_EMULATOR", "localstack")
    assert StackSettings().emulator == "localstack"
    monkeypatch.delenv("SDMW_TEST_EMULATOR")
    assert StackSettings().emulator == "moto"


def test_localstack_runs_on_loopback_private_offline_and_without_dynamodb(tmp_path):
    settings = localstack_settings(tmp_path)
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").touch()
    process = LocalStack(settings)._localstack_process()
    env = process.env
    assert process.argv[1:] == ["-m", "localstack.runtime.main"]
    assert env["GATEWAY_LISTEN"] == env["LOCALSTACK_HOST"] == "127.0.0.1:14566"
    assert env["GATEWAY_SERVER"] == "hypercorn"  # the one that listens on GATEWAY_LISTEN's host only
    assert (env["OVERRIDE_IN_DOCKER"], env["FILESYSTEM_ROOT"]) == ("0", str(tmp_path / ".run" / "localstack"))
    assert env["SQS_ENDPOINT_STRATEGY"] == "path"
    assert env["SERVICES"].split(",") == list(LOCALSTACK_SERVICES)
    assert "dynamodb" not in LOCALSTACK_SERVICES
    assert not any(name.startswith("AWS_") for name in env)  # none of the caller's AWS settings


def test_neither_running_nor_installed_says_what_to_do(tmp_path):
    with pytest.raises(StackError, match=r"make localstack.*docker compose"):
        LocalStack(localstack_settings(tmp_path))._localstack_process()


def test_the_snapshot_reads_dynamodb_where_it_lives():
    s3, dynamodb, sqs = data._clients("http://127.0.0.1:14566", "us-east-1", "http://127.0.0.1:14568")
    assert dynamodb.meta.endpoint_url == "http://127.0.0.1:14568"
    assert s3.meta.endpoint_url == sqs.meta.endpoint_url == "http://127.0.0.1:14566"
