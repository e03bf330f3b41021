"""The seed's scenarios through the real ``sdmw`` command, against the running stack.

``sdmw events tail --json`` follows the bus in the background while the
command uploads a tiny (real) Stable Diffusion folder as a checkpoint,
deploys an endpoint and waits for it, runs txt2img and downloads its images
and parameter file, and shows the job; the tail must have printed the
endpoint's and the inference job's facts, and removed its queue and rule
when stopped. A second scenario uploads a dataset, creates a model from an
uploaded checkpoint and trains a LoRA on it with ``sdmw train --wait``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
from PIL import Image

from infra.local.stack import LocalStack
from sd_runtime import testing
from tests.e2e.conftest import ApiClient

pytestmark = pytest.mark.e2e

MODEL_NAME = "tiny-sd-cli"
ENDPOINT = "e2e-cli"
SIZE = 64
TRAIN_SIZE = 32


def sdmw_executable() -> list[str]:
    """The console script of the venv running the tests, else the one on PATH."""
    script = Path(sys.executable).with_name("sdmw")
    return [str(script)] if script.exists() else [shutil.which("sdmw") or "sdmw"]


@pytest.fixture
def cli_env(stack: LocalStack, tmp_path: Path) -> dict[str, str]:
    """A user's environment: the API's URL and key, standard AWS settings for the stack, a fresh HOME."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDMW_", "AWS_", "XDG_"))}
    return {
        **env,
        **stack.settings.aws_environment(),
        "HOME": str(home),
        "SDMW_URL": stack.settings.base_url,
        "SDMW_API_KEY": stack.settings.api_key,
        "SDMW_EVENT_BUS": f"{stack.settings.prefix}-bus",
        "COLUMNS": "200",
    }


def sdmw(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sdmw_executable(), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def aws(stack: LocalStack, service: str):
    s = stack.settings
    return boto3.client(
        service,
        endpoint_url=s.emulator_url,
        region_name=s.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def wait_for_text(path: Path, text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in {path}: {path.read_text()}")


def test_a_wrong_key_exits_3(cli_env):
    result = sdmw({**cli_env, "SDMW_API_KEY": "wrong"}, "checkpoint", "list")
    assert result.returncode == 3, result.stderr
    assert "refused the key" in result.stderr and "Traceback" not in result.stderr


def test_upload_deploy_infer_and_tail_through_the_cli(stack: LocalStack, api: ApiClient, cli_env, tmp_path):
    folder = testing.build_tiny_pipeline_dir(tmp_path / MODEL_NAME)
    tail_out, tail_err = tmp_path / "tail.jsonl", tmp_path / "tail.err"
    with tail_out.open("w") as stdout, tail_err.open("w") as stderr:
        tail = subprocess.Popen(
            [*sdmw_executable(), "events", "tail", "--json", "--wait-s", "1"],
            env=cli_env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        wait_for_text(tail_err, "following")
        [tap_name] = re.findall(r"sdmw-tail-[0-9a-f]+", tail_err.read_text())[:1]

        uploaded = sdmw(cli_env, "checkpoint", "upload", str(folder), "--type", "Stable-diffusion")
        assert uploaded.returncode == 0, uploaded.stderr
        checkpoint_id = uploaded.stdout.strip()
        assert MODEL_NAME in uploaded.stderr  # the progress bar, on stderr
        shown = sdmw(cli_env, "checkpoint", "show", checkpoint_id, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["status"] == "Active"

        deployed = sdmw(
            cli_env, "endpoint", "deploy", "--name", ENDPOINT, "--wait", "--poll-s", "0.5", "--timeout", "90"
        )
        assert deployed.returncode == 0, deployed.stderr
        assert deployed.stdout.split() == [ENDPOINT, "success"]

        out_dir = tmp_path / "out"
        inferred = sdmw(
            cli_env,
            *("infer", "--endpoint", ENDPOINT, "--model", MODEL_NAME, "--prompt", "a cute panda"),
            *("--steps", "2", "--width", str(SIZE), "--height", str(SIZE), "--seed", "7"),
            *("--wait", "--out", str(out_dir), "--poll-s", "0.5", "--timeout", "120", "--json"),
            timeout=180,
        )
        assert inferred.returncode == 0, inferred.stderr
        job = json.loads(inferred.stdout)
        job_id = job["InferenceJobId"]
        assert job["status"] == "succeed"
        # The job is named at once, on stderr (stdout keeps the JSON); the runtime's reports follow it there.
        assert inferred.stderr.splitlines()[0] == f"inference job {job_id} started", inferred.stderr
        assert {p.name for p in out_dir.iterdir()} == {"image_0.jpg", f"{job_id}_param.json"}
        with Image.open(out_dir / "image_0.jpg") as picture:
            assert (picture.format, picture.size) == ("JPEG", (SIZE, SIZE))
        params = json.loads((out_dir / f"{job_id}_param.json").read_text())
        assert params["parameters"]["prompt"] == "a cute panda"

        shown_job = sdmw(cli_env, "jobs", "show", job_id)
        assert shown_job.returncode == 0 and shown_job.stdout.split() == [job_id, "succeed"]
        listed = sdmw(cli_env, "jobs", "list", "--json")
        assert job_id in [j["InferenceJobId"] for j in json.loads(listed.stdout)]

        deadline = time.monotonic() + 20  # the last facts may still be on their way to the tail's queue
        while time.monotonic() < deadline and not _succeeded(tail_out, job_id):
            time.sleep(0.5)
    finally:
        tail.send_signal(signal.SIGINT)
        try:
            code = tail.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tail.kill()
            raise
        api.post("/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": [ENDPOINT]})

    assert code == 0, tail_err.read_text()
    printed = [json.loads(line) for line in tail_out.read_text().splitlines() if line.strip()]
    facts = {(e["detail-type"], e["detail"]["data"].get("status")) for e in printed}
    assert ("EndpointDeploymentChanged", "success") in facts, facts
    assert _succeeded(tail_out, job_id), facts
    assert all(e["source"].startswith("sdmw.") for e in printed)
    # The runtime's progress reached the tail as the job's own facts, in order, before its final state.
    job_facts = [e["detail"]["data"] for e in printed if e["detail-type"] == "InferenceJobChanged"]
    job_facts = [data for data in job_facts if data["id"] == job_id]
    assert [data["version"] for data in job_facts] == sorted(data["version"] for data in job_facts)
    reported = [
        data["progress"]["phase"] for data in job_facts if data["status"] == "inprogress" and data.get("progress")
    ]
    assert reported and reported[0] == "loading", job_facts
    assert job_facts[-1]["status"] == "succeed"

    assert aws(stack, "sqs").list_queues(QueueNamePrefix=tap_name).get("QueueUrls", []) == []
    rules = aws(stack, "events").list_rules(EventBusName=cli_env["SDMW_EVENT_BUS"], NamePrefix=tap_name)["Rules"]
    assert rules == []


def _succeeded(tail_out: Path, job_id: str) -> bool:
    for line in tail_out.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:  # empty, or still being written
            continue
        data = event["detail"]["data"]
        if event["detail-type"] == "InferenceJobChanged" and data.get("id") == job_id and data["status"] == "succeed":
            return True
    return False


def test_dataset_model_and_lora_training_through_the_cli(cli_env, tmp_path):
    folder = testing.build_tiny_pipeline_dir(tmp_path / "tiny-train-cli")
    uploaded = sdmw(cli_env, "checkpoint", "upload", str(folder), "--type", "Stable-diffusion")
    assert uploaded.returncode == 0, uploaded.stderr
    checkpoint_id = uploaded.stdout.strip()

    images = tmp_path / "images"
    images.mkdir()
    for name, color in {"red.png": (220, 30, 30), "blue.png": (30, 30, 220)}.items():
        Image.new("RGB", (TRAIN_SIZE + 8, TRAIN_SIZE), color).save(images / name)
    (images / "red.txt").write_text("a photo of sks square")
    dataset = f"cli-{uuid.uuid4().hex[:8]}"
    stored = sdmw(cli_env, "dataset", "upload", str(images), "--name", dataset, "--description", "from the CLI")
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.split() == [dataset, "Enabled", "(3", "files)"]

    created = sdmw(
        cli_env,
        *("model", "create", "--name", "tiny-cli-model", "--ckpt", "tiny-train-cli"),
        *("--checkpoint-id", checkpoint_id, "--wait", "--poll-s", "0.5", "--timeout", "120"),
        timeout=180,
    )
    assert created.returncode == 0, created.stderr
    model_id, status = created.stdout.split()
    assert status == "Complete"

    trained = sdmw(
        cli_env,
        *("train", "--model-id", model_id, "--type", "lora", "--dataset", dataset),
        *("--instance-prompt", "a photo of sks square", "--output-name", "tiny-cli-lora", "--steps", "2"),
        *("--set", f"resolution={TRAIN_SIZE}", "--set", "train_batch_size=1", "--set", "lora_rank=4"),
        *("--wait", "--poll-s", "1", "--timeout", "240"),
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr
    job_id, status, _, trained_checkpoint = trained.stdout.split()
    assert status == "Complete"
    assert [line.split()[-1] for line in trained.stderr.splitlines()][-1] == "Complete"
    shown = sdmw(cli_env, "checkpoint", "show", trained_checkpoint, "--json")
    assert json.loads(shown.stdout)["name"] == ["tiny-cli-lora.safetensors"]


def test_webhook_subscriptions_through_the_cli(cli_env):
    created = sdmw(
        cli_env, "webhooks", "create", "http://127.0.0.1:9/hook", "--type", "inference", "--terminal-only", "--json"
    )
    assert created.returncode == 0, created.stderr
    subscription = json.loads(created.stdout)
    assert subscription["secret"].startswith("whsec_") and subscription["terminal_only"] is True
    listed = json.loads(sdmw(cli_env, "webhooks", "list", "--json").stdout)
    assert subscription["id"] in [w["id"] for w in listed["webhooks"]]
    assert "secret" not in json.dumps(listed)
    deleted = sdmw(cli_env, "webhooks", "delete", subscription["id"], "--json")
    assert deleted.returncode == 0, deleted.stderr
    refused = sdmw(cli_env, "webhooks", "create", "http://169.254.169.254/", "--type", "inference")
    assert refused.returncode == 1 and "link-local" in refused.stderr, refused.stderr
