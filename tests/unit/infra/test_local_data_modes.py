"""Issue 20, item 13 (c): the local snapshot ``make down`` writes holds the webhook signing key, so it is
its owner's alone: the folder 0700, ``snapshot.json`` 0600, whatever the umask (it was 0644)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from infra.local import data
from infra.local.stack import LocalStack, StackSettings


class _Paginator:
    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return []


class _Empty:
    """S3, DynamoDB and SQS with nothing in them."""

    def list_buckets(self) -> dict[str, Any]:
        return {"Buckets": []}

    def list_tables(self) -> dict[str, Any]:
        return {"TableNames": []}

    def list_queues(self) -> dict[str, Any]:
        return {}

    def get_paginator(self, _: str) -> _Paginator:
        return _Paginator()


@pytest.fixture
def emulator(monkeypatch):
    put_back: list[dict[str, str]] = []
    monkeypatch.setattr(data, "_clients", lambda *_: (_Empty(), _Empty(), _Empty()))
    monkeypatch.setattr(data, "_secrets", lambda *_: {"sdmw-webhook-signing-key": "s3cr3t"})
    monkeypatch.setattr(data, "_put_back_secrets", lambda saved, *_: put_back.append(saved))
    return put_back


@pytest.fixture
def open_umask():
    previous = os.umask(0o000)  # the loosest umask: the modes must not depend on it
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_snapshot_with_the_signing_key_is_private(tmp_path, emulator, open_umask):
    data_dir = tmp_path / "run" / "data"
    data.save(data_dir, "http://127.0.0.1:1", "us-east-1", inflight_wait_s=0)
    snapshot = data_dir / data.SNAPSHOT
    assert "s3cr3t" in snapshot.read_text()
    assert _mode(snapshot) == 0o600
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / data.S3_DIR) == 0o700


def test_restore_rewrites_an_old_world_readable_snapshot_privately(tmp_path, emulator, open_umask):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    snapshot = data_dir / data.SNAPSHOT
    snapshot.write_text('{"buckets": {}, "tables": {}, "queues": {}, "secrets": {"k": "v"}}')
    snapshot.chmod(0o644)
    data.restore(data_dir, "http://127.0.0.1:1", "us-east-1")
    assert emulator == [{"k": "v"}]
    assert _mode(snapshot) == 0o600
    assert _mode(data_dir) == 0o700


def test_save_keeps_what_the_local_sagemaker_wrote_as_it_stopped(tmp_path, emulator):
    """Issue 20, item 10: `down` stops the local SageMaker, which writes its state into the data folder,
    then saves the emulator's snapshot over that folder: the SageMaker's state must come along."""
    data_dir = tmp_path / "data"
    (data_dir / data.SAGEMAKER_DIR).mkdir(parents=True)
    (data_dir / data.SAGEMAKER_DIR / "state.json").write_text('{"version": 1}')
    (data_dir / "stale").write_text("from the snapshot before")

    data.save(data_dir, "http://emulator", "us-east-1", inflight_wait_s=0)

    assert (data_dir / data.SAGEMAKER_DIR / "state.json").read_text() == '{"version": 1}'
    assert not (data_dir / "stale").exists()


def test_the_local_sagemaker_keeps_its_state_in_the_data_folder_only_when_data_is_kept(tmp_path):
    def sagemaker_env(keep_data: bool) -> dict[str, str]:
        stack = LocalStack(StackSettings(run_dir=tmp_path / ".run", keep_data=keep_data))
        return stack._sagemaker_process().env

    assert sagemaker_env(True)["LOCAL_SAGEMAKER_STATE_DIR"] == str(tmp_path / ".run" / "data" / "sagemaker")
    assert "LOCAL_SAGEMAKER_STATE_DIR" not in sagemaker_env(False)
