"""The commands added on top of upload/deploy/infer: each over a fake API (httpx.MockTransport)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from typer.testing import CliRunner

from sdmw_cli import cli, config, main

runner = CliRunner()

CHECKPOINTS = {
    "checkpoints": [
        {"id": "c1", "type": "Lora", "status": "Active", "name": ["a.safetensors"], "s3Location": "s3://b/c1"},
        {"id": "c2", "type": "Stable-diffusion", "status": "Initialed", "name": ["m.ckpt"], "s3Location": "s3://b/c2"},
    ]
}


def body_of(request: httpx.Request) -> dict:
    return json.loads(request.content)


# ---------------------------------------------------------------- checkpoint show, jobs list


def test_checkpoint_show_finds_the_checkpoint_in_the_list(fake_api):
    seen = fake_api(lambda request: httpx.Response(200, json=CHECKPOINTS))
    result = runner.invoke(main.app, ["checkpoint", "show", "c2"])
    assert result.exit_code == 0, result.output
    assert "Initialed" in result.stdout and "m.ckpt" in result.stdout
    assert seen[0].url.path == "/prod/checkpoints"
    as_json = runner.invoke(main.app, ["checkpoint", "show", "c1", "--json"])
    assert json.loads(as_json.stdout) == CHECKPOINTS["checkpoints"][0]


def test_checkpoint_show_of_an_unknown_id_exits_1(fake_api):
    fake_api(lambda request: httpx.Response(200, json=CHECKPOINTS))
    result = runner.invoke(main.app, ["checkpoint", "show", "nope"])
    assert result.exit_code == cli.EXIT_API and "no checkpoint nope" in result.output


def test_jobs_list_lists_inference_jobs(fake_api):
    jobs = [
        {"InferenceJobId": "j1", "taskType": "txt2img", "status": "succeed", "startTime": "2026-01-01 00:00:00"},
        {"InferenceJobId": "j2", "taskType": "img2img", "status": "inprogress", "startTime": "2026-01-01 00:01:00"},
    ]
    seen = fake_api(lambda request: httpx.Response(200, json=jobs))
    result = runner.invoke(main.app, ["jobs", "list"])
    assert result.exit_code == 0, result.output
    assert seen[0].url.path == "/prod/inference/list-inference-jobs"
    assert [line.split()[:3] for line in result.stdout.splitlines()] == [
        ["j1", "txt2img", "succeed"],
        ["j2", "img2img", "inprogress"],
    ]
    assert json.loads(runner.invoke(main.app, ["jobs", "list", "--json"]).stdout) == jobs


# ---------------------------------------------------------------- --timeout on every --wait


def always_in_progress(request: httpx.Request) -> httpx.Response:
    if request.method == "POST" and request.url.path.endswith("/inference-api/inference"):
        return httpx.Response(200, json={"inference_id": "j1", "status": "inprogress"})
    if request.method == "POST" and request.url.path.endswith("/deploy-sagemaker-endpoint"):
        return httpx.Response(200, json={"EndpointDeploymentJobId": "d1", "endpoint_name": "e", "status": "inprogress"})
    if request.method == "POST" and request.url.path.endswith("/train"):
        return httpx.Response(200, json={"job": {"id": "t1", "status": "Initialed"}, "s3PresignUrl": {}})
    if request.method == "PUT" and request.url.path.endswith("/train"):
        return httpx.Response(200, json={"job": {"id": "t1", "status": "Training"}})
    if request.url.path.endswith("/trains"):
        return httpx.Response(200, json={"trainJobs": [{"id": "t1", "status": "Training"}]})
    return httpx.Response(200, json={"status": "inprogress", "endpoint_name": "e"})


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "wait", "j1"],
        ["endpoint", "deploy", "--wait"],
        ["infer", "--endpoint", "e", "--model", "m", "--prompt", "p", "--wait"],
        ["infer", "--endpoint", "e", "--model", "m", "--prompt", "p", "--out", "unused-dir"],
        ["train", "--model-id", "m1", "--dataset", "d", "--wait"],
    ],
    ids=["jobs-wait", "endpoint-deploy", "infer-wait", "infer-out", "train"],
)
def test_a_wait_that_runs_out_of_time_exits_5_with_a_message(fake_api, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_api(always_in_progress)
    result = runner.invoke(main.app, [*args, "--timeout", "0.05", "--poll-s", "0.01"])
    assert result.exit_code == cli.EXIT_TIMEOUT, result.output
    assert "gave up waiting after 0.05 s" in result.output and "goes on" in result.output
    assert not (tmp_path / "unused-dir").exists()


def test_a_wait_within_its_timeout_succeeds(fake_api):
    statuses = iter(["inprogress", "succeed"])
    fake_api(lambda request: httpx.Response(200, json={"status": next(statuses)}))
    result = runner.invoke(main.app, ["jobs", "wait", "j1", "--timeout", "30", "--poll-s", "0"])
    assert result.exit_code == 0 and "j1  succeed" in result.stdout


# ---------------------------------------------------------------- infer: img2img and LoRAs


def started(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"inference_id": "j1", "status": "inprogress"})


def test_infer_init_image_sends_img2img_with_the_file_in_base64(fake_api, tmp_path):
    picture = tmp_path / "start.png"
    picture.write_bytes(b"\x89PNG fake bytes")
    seen = fake_api(started)
    args = ["infer", "--endpoint", "e", "--model", "m.safetensors", "--prompt", "a cat", "--init-image", str(picture)]
    result = runner.invoke(main.app, [*args, "--denoising-strength", "0.4"])
    assert result.exit_code == 0, result.output
    body = body_of(seen[0])
    assert body["task_type"] == "img2img" and body["denoising_strength"] == 0.4
    assert body["init_images"] == [base64.b64encode(b"\x89PNG fake bytes").decode()]
    assert result.stdout.strip() == "j1"


def test_infer_without_init_image_is_txt2img(fake_api):
    seen = fake_api(started)
    assert runner.invoke(main.app, ["infer", "--endpoint", "e", "--model", "m", "--prompt", "p"]).exit_code == 0
    body = body_of(seen[0])
    assert body["task_type"] == "txt2img" and "init_images" not in body and "Lora" not in body["models"]


def test_a_missing_init_image_exits_4_before_any_request(fake_api, tmp_path):
    seen = fake_api(started)
    args = ["infer", "--endpoint", "e", "--model", "m", "--prompt", "p", "--init-image", str(tmp_path / "no.png")]
    result = runner.invoke(main.app, args)
    assert result.exit_code == cli.EXIT_MISSING_FILE and "no.png" in result.output and seen == []


def test_infer_loras_go_in_models_lora_and_a_weight_adds_a_prompt_tag(fake_api):
    seen = fake_api(started)
    args = ["infer", "--endpoint", "e", "--model", "m.safetensors", "--prompt", "a cat"]
    result = runner.invoke(main.app, [*args, "--lora", "style.safetensors", "--lora", "dir/ink.safetensors:0.6"])
    assert result.exit_code == 0, result.output
    body = body_of(seen[0])
    assert body["models"] == {
        "Stable-diffusion": ["m.safetensors"],
        "Lora": ["style.safetensors", "dir/ink.safetensors"],
    }
    assert body["prompt"] == "a cat <lora:ink:0.6>"


def test_infer_out_saves_images_and_the_parameter_file(fake_api, tmp_path):
    def handle(request):
        path = request.url.path
        if request.url.host == "s3.test":
            return httpx.Response(200, content=b"bytes of " + path.encode())
        if path.endswith("/inference-api/inference"):
            return httpx.Response(200, json={"inference_id": "j1", "status": "inprogress"})
        if path.endswith("/get-inference-job"):
            return httpx.Response(200, json={"InferenceJobId": "j1", "status": "succeed"})
        if path.endswith("image-output"):
            return httpx.Response(200, json=[f"https://s3.test/out/j1/image_{i}.jpg?X-Amz-Signature=s" for i in (0, 1)])
        return httpx.Response(200, json=["https://s3.test/out/j1/j1_param.json?X-Amz-Signature=s"])

    fake_api(handle)
    picture = tmp_path / "in.png"
    picture.write_bytes(b"png")
    args = ["infer", "--endpoint", "e", "--model", "m", "--prompt", "p", "--init-image", str(picture)]
    result = runner.invoke(main.app, [*args, "--lora", "l.safetensors", "--wait", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    saved = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert saved == ["image_0.jpg", "image_1.jpg", "j1_param.json"]
    assert (tmp_path / "o" / "j1_param.json").read_bytes() == b"bytes of /out/j1/j1_param.json"


# ---------------------------------------------------------------- dataset upload


def test_dataset_upload_creates_puts_every_file_and_enables_it(fake_api, tmp_path):
    folder = tmp_path / "cats"
    (folder / "more").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"png-a")
    (folder / "a.txt").write_text("a photo of sks cat")
    (folder / "more" / "b.JPG").write_bytes(b"jpg-b")

    def handle(request):
        if request.url.host == "s3.test":
            return httpx.Response(200, headers={"ETag": '"e"'})
        body = body_of(request)
        if request.method == "POST":
            urls = {item["filename"]: f"https://s3.test/dataset/cats/{item['name']}" for item in body["content"]}
            return httpx.Response(200, json={"statusCode": 200, "datasetName": "cats", "s3PresignUrl": urls})
        return httpx.Response(200, json={"statusCode": 200, "datasetName": "cats", "status": body["status"]})

    seen = fake_api(handle)
    result = runner.invoke(main.app, ["dataset", "upload", str(folder), "--name", "cats", "--description", "mine"])
    assert result.exit_code == 0, result.output
    created = body_of(seen[0])
    assert created == {
        "dataset_name": "cats",
        "content": [
            {"filename": "a.png", "name": "a.png", "type": "image"},
            {"filename": "a.txt", "name": "a.txt", "type": "text"},
            {"filename": "more/b.JPG", "name": "more/b.JPG", "type": "image"},
        ],
        "params": {"description": "mine"},
    }
    puts = {r.url.path: r.content for r in seen if r.url.host == "s3.test"}
    assert puts == {
        "/dataset/cats/a.png": b"png-a",
        "/dataset/cats/a.txt": b"a photo of sks cat",
        "/dataset/cats/more/b.JPG": b"jpg-b",
    }
    assert all("x-api-key" not in r.headers for r in seen if r.url.host == "s3.test")
    assert (seen[-1].method, body_of(seen[-1])) == ("PUT", {"dataset_name": "cats", "status": "Enabled"})
    assert result.stdout.split() == ["cats", "Enabled", "(3", "files)"]


def test_dataset_upload_of_a_missing_or_empty_folder_exits_4(fake_api, tmp_path):
    seen = fake_api(lambda request: httpx.Response(200, json={}))
    missing = runner.invoke(main.app, ["dataset", "upload", str(tmp_path / "absent"), "--name", "d"])
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(main.app, ["dataset", "upload", str(tmp_path / "empty"), "--name", "d"])
    assert missing.exit_code == empty.exit_code == cli.EXIT_MISSING_FILE
    assert "holds no files" in empty.output and seen == []


def test_a_refused_dataset_part_is_retried_then_fails_with_exit_1(fake_api, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"x")

    def handle(request):
        if request.url.host == "s3.test":
            return httpx.Response(403, text="SignatureDoesNotMatch")
        return httpx.Response(200, json={"datasetName": "d", "s3PresignUrl": {"a.png": "https://s3.test/a.png"}})

    seen = fake_api(handle)
    result = runner.invoke(main.app, ["dataset", "upload", str(folder), "--name", "d"])
    assert result.exit_code == cli.EXIT_API and "SignatureDoesNotMatch" in result.output
    assert len([r for r in seen if r.url.host == "s3.test"]) == 3
    assert [r.method for r in seen if r.url.host == "api.test"] == ["POST"]  # never enabled


# ---------------------------------------------------------------- train


def training_api(statuses: list[str], error: str | None = None):
    remaining = iter(statuses)

    def handle(request):
        path = request.url.path
        if request.url.host == "s3.test":
            return httpx.Response(200)
        if request.method == "POST" and path.endswith("/train"):
            urls = {name: f"https://s3.test/train/{name}" for name in body_of(request).get("filenames", [])}
            return httpx.Response(200, json={"job": {"id": "t1", "status": "Initialed"}, "s3PresignUrl": urls})
        if request.method == "PUT" and path.endswith("/train"):
            return httpx.Response(200, json={"job": {"id": "t1", "status": "Training"}})
        status = next(remaining)
        job = {"id": "t1", "status": status, "trainType": "Lora", "error": error if status == "Fail" else None}
        if status == "Complete":
            job["checkpoint_id"] = "ck-new"
        return httpx.Response(200, json={"trainJobs": [{"id": "other", "status": "Fail"}, job]})

    return handle


def test_train_creates_starts_and_waits_showing_each_status_change(fake_api):
    seen = fake_api(training_api(["Training", "Training", "Complete"]))
    args = ["train", "--model-id", "m1", "--type", "lora", "--dataset", "cats", "--instance-prompt", "sks cat"]
    result = runner.invoke(main.app, [*args, "--steps", "2", "--set", "lora_rank=4", "--wait", "--poll-s", "0"])
    assert result.exit_code == 0, result.output
    assert body_of(seen[0]) == {
        "train_type": "lora",
        "model_id": "m1",
        "params": {
            "train_params": {
                "lora_rank": 4,
                "dataset_names": ["cats"],
                "instance_prompt": "sks cat",
                "max_train_steps": 2,
            }
        },
    }
    assert body_of(seen[1]) == {"train_job_id": "t1", "status": "Training"}
    assert [r.url.path for r in seen[2:]] == ["/prod/trains"] * 3
    changes = [line.split()[1:] for line in result.stderr.splitlines()]
    assert changes == [["t1", "Training"], ["t1", "Complete"]]
    assert result.stdout.strip() == "t1  Complete  checkpoint ck-new"


def test_train_that_fails_exits_1_with_its_reason(fake_api):
    fake_api(training_api(["Fail"], error="CUDA out of memory"))
    result = runner.invoke(main.app, ["train", "--model-id", "m1", "--dataset", "d", "--wait", "--poll-s", "0"])
    assert result.exit_code == cli.EXIT_API and "CUDA out of memory" in result.output


def test_train_uploads_its_files_to_the_presigned_urls(fake_api, tmp_path):
    config_file = tmp_path / "db_config.tar"
    config_file.write_bytes(b"tar bytes")
    seen = fake_api(training_api([]))
    result = runner.invoke(main.app, ["train", "--model-id", "m1", "--type", "dreambooth", "--file", str(config_file)])
    assert result.exit_code == 0, result.output
    assert body_of(seen[0])["filenames"] == ["db_config.tar"]
    [put] = [r for r in seen if r.url.host == "s3.test"]
    assert (put.url.path, put.content) == ("/train/db_config.tar", b"tar bytes")
    assert result.stdout.strip() == "t1  Training"


def test_train_without_data_is_a_usage_error(fake_api):
    seen = fake_api(training_api([]))
    result = runner.invoke(main.app, ["train", "--model-id", "m1"])
    assert result.exit_code == cli.EXIT_USAGE and "--dataset" in result.output and seen == []


# ---------------------------------------------------------------- webhooks


WEBHOOK = {
    "id": "wh_1",
    "url": "https://example.test/hook",
    "event_types": ["inference", "training"],
    "terminal_only": True,
    "description": "CI",
    "status": "active",
    "created_at": "2026-01-01T00:00:00Z",
}


def webhooks_api(request: httpx.Request) -> httpx.Response:
    path, method = request.url.path, request.method
    if method == "POST" and path == "/prod/webhooks":
        return httpx.Response(201, json={**WEBHOOK, "secret": "whsec_abc"})
    if method == "GET" and path == "/prod/webhooks":
        return httpx.Response(200, json={"webhooks": [WEBHOOK]})
    if path == "/prod/webhooks/default/secret":
        return httpx.Response(200, json={"secret": "whsec_default"})
    if path == "/prod/webhooks/wh_1":
        return httpx.Response(204) if method == "DELETE" else httpx.Response(200, json=WEBHOOK)
    return httpx.Response(404, json={"detail": f"no webhook {path.rsplit('/', 1)[-1]}"})


def test_webhooks_create_sends_the_subscription_and_prints_the_secret(fake_api):
    seen = fake_api(webhooks_api)
    args = ["webhooks", "create", "https://example.test/hook", "--type", "inference", "--type", "training"]
    result = runner.invoke(main.app, [*args, "--terminal-only", "--description", "CI"])
    assert result.exit_code == 0, result.output
    assert body_of(seen[0]) == {
        "url": "https://example.test/hook",
        "event_types": ["inference", "training"],
        "terminal_only": True,
        "description": "CI",
    }
    assert "wh_1" in result.stdout and "secret: whsec_abc" in result.stdout
    as_json = runner.invoke(main.app, [*args, "--json"])
    assert json.loads(as_json.stdout)["secret"] == "whsec_abc"


def test_webhooks_create_refuses_an_unknown_kind_without_a_request(fake_api):
    seen = fake_api(webhooks_api)
    result = runner.invoke(main.app, ["webhooks", "create", "https://x.test", "--type", "invoices"])
    assert result.exit_code == cli.EXIT_USAGE and "invoices" in result.output and seen == []


def test_webhooks_list_show_delete_and_default_secret(fake_api):
    seen = fake_api(webhooks_api)
    listed = runner.invoke(main.app, ["webhooks", "list"])
    assert listed.exit_code == 0 and listed.stdout.split()[:3] == ["wh_1", "active", "https://example.test/hook"]
    assert "terminal-only" in listed.stdout
    assert json.loads(runner.invoke(main.app, ["webhooks", "list", "--json"]).stdout) == {"webhooks": [WEBHOOK]}
    shown = runner.invoke(main.app, ["webhooks", "show", "wh_1"])
    assert shown.exit_code == 0 and "description: CI" in shown.stdout
    deleted = runner.invoke(main.app, ["webhooks", "delete", "wh_1"])
    assert deleted.exit_code == 0 and deleted.stdout.strip() == "wh_1  deleted"
    secret = runner.invoke(main.app, ["webhooks", "default-secret"])
    assert secret.stdout.strip() == "whsec_default"
    methods = [(r.method, r.url.path) for r in seen]
    assert ("DELETE", "/prod/webhooks/wh_1") in methods and ("GET", "/prod/webhooks/default/secret") in methods


def test_webhooks_show_of_an_unknown_id_exits_1(fake_api):
    fake_api(webhooks_api)
    result = runner.invoke(main.app, ["webhooks", "show", "wh_404"])
    assert result.exit_code == cli.EXIT_API and "no webhook wh_404" in result.output


# ---------------------------------------------------------------- clear errors


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"url": 3}', "\xff\xfe"])
def test_a_corrupt_config_file_exits_2_with_a_message(content):
    path = config.config_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("latin-1"))
    result = runner.invoke(main.app, ["checkpoint", "list"])
    assert result.exit_code == cli.EXIT_USAGE, result.output
    assert (str(path) in result.output and result.exception is None) or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_configure_keeps_the_event_bus(monkeypatch):
    result = runner.invoke(main.app, ["configure", "--url", "http://a/prod", "--key", "k", "--bus", "my-bus"])
    assert result.exit_code == 0
    assert config.load().event_bus == "my-bus"
    monkeypatch.setenv("SDMW_EVENT_BUS", "env-bus")
    assert config.load().event_bus == "env-bus"


def test_a_url_that_is_not_a_url_exits_3_with_a_message(monkeypatch):
    monkeypatch.setenv("SDMW_URL", "api.test/prod")
    monkeypatch.setenv("SDMW_API_KEY", "key")
    result = runner.invoke(main.app, ["jobs", "list"])
    assert result.exit_code == cli.EXIT_UNREACHABLE and "api.test/prod" in result.output


# ---------------------------------------------------------------- model create


def models_api(statuses: list[str]):
    remaining = iter(statuses)

    def handle(request):
        if request.method == "POST":
            return httpx.Response(200, json={"job": {"id": "m1", "status": "Initialed"}})
        if request.method == "PUT":
            return httpx.Response(200, json={"job": {"id": "m1", "jobStatus": "Creating"}})
        status = next(remaining, statuses[-1])
        params = {"error": "bad checkpoint"} if status == "Fail" else {}
        model = {"id": "m1", "model_name": "base", "status": status, "params": params}
        return httpx.Response(200, json={"models": [model]})

    return handle


def test_model_create_starts_the_job_and_waits_for_complete(fake_api):
    seen = fake_api(models_api(["Creating", "Complete"]))
    args = ["model", "create", "--name", "base", "--ckpt", "v1-5.safetensors", "--checkpoint-id", "c1"]
    result = runner.invoke(main.app, [*args, "--wait", "--poll-s", "0"])
    assert result.exit_code == 0, result.output
    assert body_of(seen[0]) == {
        "model_type": "Stable-diffusion",
        "name": "base",
        "params": {"create_model_params": {"new_model_name": "base", "ckpt_path": "v1-5.safetensors"}},
        "checkpoint_id": "c1",
    }
    assert body_of(seen[1]) == {"model_id": "m1", "status": "Creating", "multi_parts_tags": {}}
    assert result.stdout.strip() == "m1  Complete"
    listed = runner.invoke(main.app, ["model", "list"])
    assert listed.stdout.split() == ["m1", "Complete", "base"]


def test_model_create_that_fails_exits_1_and_one_that_takes_too_long_exits_5(fake_api):
    fake_api(models_api(["Fail"]))
    args = ["model", "create", "--name", "base", "--ckpt", "x.ckpt", "--wait", "--poll-s", "0"]
    failed = runner.invoke(main.app, args)
    assert failed.exit_code == cli.EXIT_API and "bad checkpoint" in failed.output
    fake_api(models_api(["Creating"] * 100))
    slow = runner.invoke(main.app, [*args, "--timeout", "0"])
    assert slow.exit_code == cli.EXIT_TIMEOUT and "model m1 is still Creating" in slow.output
