"""The ``sdmw`` command: configuration, output and the exit codes scripts rely on."""

from __future__ import annotations

import json
import stat

import httpx
import pytest
from typer.testing import CliRunner

from sdmw_cli import cli, config, main
from sdmw_cli.client import Client

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("SDMW_URL", raising=False)
    monkeypatch.delenv("SDMW_API_KEY", raising=False)
    monkeypatch.delenv("SDMW_EVENT_BUS", raising=False)


def serve(monkeypatch, handler) -> list[httpx.Request]:
    """Points the commands at ``handler`` and answers the requests it saw."""
    seen: list[httpx.Request] = []

    def record(request):
        seen.append(request)
        return handler(request)

    transport = httpx.MockTransport(record)
    monkeypatch.setattr(
        cli,
        "client_factory",
        lambda s: Client(
            s.url, s.api_key, http=httpx.Client(transport=transport), storage=httpx.Client(transport=transport)
        ),
    )
    monkeypatch.setenv("SDMW_URL", "http://api.test/prod")
    monkeypatch.setenv("SDMW_API_KEY", "key")
    return seen


def test_configure_writes_a_private_file_and_the_environment_overrides_it(monkeypatch):
    result = runner.invoke(main.app, ["configure", "--url", "http://a/prod", "--key", "k1"])
    assert result.exit_code == 0, result.output
    path = config.config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load() == config.Settings("http://a/prod", "k1")
    monkeypatch.setenv("SDMW_API_KEY", "k2")
    assert config.load() == config.Settings("http://a/prod", "k2")


def test_no_configuration_is_a_usage_error():
    result = runner.invoke(main.app, ["checkpoint", "list"])
    assert result.exit_code == 2 and "sdmw configure" in result.output


def test_list_prints_json_with_json(monkeypatch):
    answer = {"checkpoints": [{"id": "c1", "type": "Lora", "status": "Active", "name": ["a.safetensors"]}]}
    serve(monkeypatch, lambda request: httpx.Response(200, json=answer))
    assert json.loads(runner.invoke(main.app, ["checkpoint", "list", "--json"]).output) == answer
    assert "a.safetensors" in runner.invoke(main.app, ["checkpoint", "list"]).output


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, cli.EXIT_UNREACHABLE), (401, cli.EXIT_UNREACHABLE), (404, cli.EXIT_API), (500, cli.EXIT_API)],
)
def test_refusals_map_to_exit_codes(monkeypatch, status, code):
    serve(monkeypatch, lambda request: httpx.Response(status, json={"message": "nope"}))
    result = runner.invoke(main.app, ["jobs", "show", "j1"])
    assert result.exit_code == code and "nope" in result.output


def test_an_unreachable_api_exits_3(monkeypatch):
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    serve(monkeypatch, refuse)
    assert runner.invoke(main.app, ["endpoint", "list"]).exit_code == cli.EXIT_UNREACHABLE


def test_a_missing_file_exits_4(monkeypatch, tmp_path):
    seen = serve(monkeypatch, lambda request: httpx.Response(200, json={}))
    result = runner.invoke(main.app, ["checkpoint", "upload", str(tmp_path / "absent.safetensors"), "--type", "Lora"])
    assert result.exit_code == cli.EXIT_MISSING_FILE and seen == []


def test_a_bad_option_is_typers_usage_error():
    assert runner.invoke(main.app, ["endpoint", "deploy", "--count", "zero"]).exit_code == 2


def test_jobs_wait_polls_until_finished_and_a_failed_job_exits_1(monkeypatch):
    statuses = iter(["inprogress", "inprogress", "failed"])
    serve(monkeypatch, lambda request: httpx.Response(200, json={"status": next(statuses), "error": "OOM"}))
    result = runner.invoke(main.app, ["jobs", "wait", "j1", "--poll-s", "0"])
    assert result.exit_code == cli.EXIT_API and "OOM" in result.output


def test_endpoint_deploy_wait_polls_the_deployment_job(monkeypatch):
    def handle(request):
        if request.method == "POST":
            assert json.loads(request.content) == {"instance_type": "ml.g5.xlarge", "initial_instance_count": 1}
            return httpx.Response(
                200, json={"EndpointDeploymentJobId": "d1", "endpoint_name": "e", "status": "inprogress"}
            )
        assert request.url.params["jobID"] == "d1"
        return httpx.Response(200, json={"EndpointDeploymentJobId": "d1", "endpoint_name": "e", "status": "success"})

    serve(monkeypatch, handle)
    result = runner.invoke(main.app, ["endpoint", "deploy", "--wait", "--poll-s", "0"])
    assert result.exit_code == 0 and "e  success" in result.output


def test_endpoint_delete_sends_every_name(monkeypatch):
    said = "Endpoint delete completed: a; skipped (no such endpoint, or already deleted): b"
    seen = serve(monkeypatch, lambda request: httpx.Response(200, json=said))
    result = runner.invoke(main.app, ["endpoint", "delete", "a", "b"])
    assert result.exit_code == 0 and result.stdout.strip() == said
    assert json.loads(seen[0].content) == {"delete_endpoint_list": ["a", "b"]}


def test_infer_waits_and_downloads_images_and_parameters(monkeypatch, tmp_path):
    def handle(request):
        path = request.url.path
        if request.url.host == "s3.test":
            return httpx.Response(200, content=b"bytes of " + path.encode())
        if path.endswith("/inference-api/inference"):
            body = json.loads(request.content)
            assert body["models"] == {"Stable-diffusion": ["v1-5.safetensors"]} and body["steps"] == 4
            return httpx.Response(200, json={"inference_id": "j1", "status": "inprogress"})
        if path.endswith("/get-inference-job"):
            return httpx.Response(200, json={"InferenceJobId": "j1", "status": "succeed"})
        if path.endswith("image-output"):
            return httpx.Response(200, json=["https://s3.test/out/j1/image_0.jpg?X-Amz-Signature=s"])
        return httpx.Response(200, json=["https://s3.test/out/j1/j1_param.json?X-Amz-Signature=s"])

    serve(monkeypatch, handle)
    args = ["infer", "--endpoint", "e", "--model", "v1-5.safetensors", "--prompt", "a cat", "--steps", "4"]
    result = runner.invoke(main.app, [*args, "--out", str(tmp_path / "out"), "--poll-s", "0"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["image_0.jpg", "j1_param.json"]


def test_a_diffusers_folder_is_named_after_the_folder_and_prints_the_id(monkeypatch, tmp_path):
    model = tmp_path / "my-model"
    (model / "unet").mkdir(parents=True)
    (model / "unet" / "weights.bin").write_bytes(b"w")
    (model / "model_index.json").write_text("{}")

    def handle(request):
        if request.url.host == "s3.test":
            return httpx.Response(200, headers={"ETag": '"e"'})
        body = json.loads(request.content)
        if request.method == "POST":
            assert body["params"] == {"new_model_name": "my-model"}
            names = [f["filename"] for f in body["filenames"]]
            assert names == ["model_index.json", "unet/weights.bin"]
            urls = {name: [f"https://s3.test/{name}?partNumber=1"] for name in names}
            return httpx.Response(200, json={"checkpoint": {"id": "ck-9"}, "s3PresignUrl": urls})
        assert set(body["multi_parts_tags"]) == {"model_index.json", "unet/weights.bin"}
        return httpx.Response(200, json={"checkpoint": {"id": "ck-9", "status": "Active"}})

    serve(monkeypatch, handle)
    result = runner.invoke(main.app, ["checkpoint", "upload", str(model), "--type", "Stable-diffusion"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ck-9"
