"""Following, cancelling and deleting jobs, and the asset commands that clean up: each over a fake API."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from sdmw_cli import cli, events, main

runner = CliRunner()


def report(step: int, total: int = 20, **more) -> dict:
    return {
        "phase": "txt2img",
        "step": step,
        "total_steps": total,
        "fraction": step / total,
        "eta_s": 20 - step,
        **more,
    }


def answers_in_turn(*answers: dict):
    """A handler for ``GET /inference/get-inference-job`` answering each of ``answers`` in turn (the last for good)."""
    remaining = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/inference-api/inference"):
            return httpx.Response(200, json={"inference_id": "j1", "status": "inprogress"})
        answer = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return httpx.Response(200, json={"InferenceJobId": "j1", **answer})

    return handle


INFER = ["infer", "--endpoint", "e", "--model", "m.safetensors", "--prompt", "a cat", "--wait", "--poll-s", "0"]


def test_infer_names_the_job_at_once_then_shows_each_new_report_and_the_outcome(fake_api):
    fake_api(
        answers_in_turn(
            {"status": "inprogress", "progress": None},
            {"status": "inprogress", "progress": report(3)},
            {"status": "inprogress", "progress": report(3)},
            {"status": "inprogress", "progress": report(15)},
            {"status": "succeed", "progress": report(20)},
        )
    )
    result = runner.invoke(main.app, INFER)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "inference job j1 started"
    assert lines[1:] == [
        "inference job j1: txt2img step 3/20, ~17 s left",
        "inference job j1: txt2img step 15/20, ~5 s left",
        "inference job j1: txt2img step 20/20, ~0 s left",
    ]
    assert result.stdout.strip() == "j1  succeed"


def test_infer_of_a_job_cancelled_meanwhile_exits_1_saying_so(fake_api):
    fake_api(answers_in_turn({"status": "inprogress"}, {"status": "cancelled"}))
    result = runner.invoke(main.app, INFER)
    assert result.exit_code == cli.EXIT_API
    assert "the job was cancelled" in result.stderr


def test_train_wait_shows_step_loss_and_time_left(fake_api):
    answers = iter(
        [
            {
                "status": "Training",
                "progress": {
                    "phase": "training",
                    "step": 10,
                    "total_steps": 100,
                    "fraction": 0.1,
                    "loss": 0.25,
                    "learning_rate": 0.0001,
                    "eta_s": 90,
                },
            },
            {"status": "Complete", "progress": None},
        ]
    )

    def handle(request):
        if request.method == "POST":
            return httpx.Response(200, json={"job": {"id": "t1", "status": "Initialed"}, "s3PresignUrl": {}})
        if request.method == "PUT":
            return httpx.Response(200, json={"job": {"id": "t1", "status": "Training"}})
        return httpx.Response(200, json={"trainJobs": [{"id": "t1", **next(answers)}]})

    fake_api(handle)
    result = runner.invoke(main.app, ["train", "--model-id", "m1", "--dataset", "d", "--wait", "--poll-s", "0"])
    assert result.exit_code == 0, result.output
    assert "training job t1: training step 10/100, loss 0.25, lr 0.0001, ~90 s left" in result.stderr.splitlines()


def test_cancel_asks_the_inference_route_first(fake_api):
    seen = fake_api(lambda request: httpx.Response(202, json={"InferenceJobId": "j1", "status": "cancelled"}))
    result = runner.invoke(main.app, ["jobs", "cancel", "j1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "j1  cancelled"
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/prod/inference/j1/cancel")]


def test_cancel_of_a_training_job_goes_to_the_training_route_after_a_404(fake_api):
    def handle(request):
        if request.url.path.startswith("/prod/inference/"):
            return httpx.Response(404, json={"statusCode": 404, "error": "no inference job t1"})
        return httpx.Response(202, json={"id": "t1", "status": "Training"})

    seen = fake_api(handle)
    result = runner.invoke(main.app, ["jobs", "cancel", "t1"])
    assert result.exit_code == 0, result.output
    assert [r.url.path for r in seen] == ["/prod/inference/t1/cancel", "/prod/trains/t1/cancel"]


def test_cancel_of_a_finished_job_exits_1_with_the_apis_words(fake_api):
    error = "inference job j1 is already finished: succeed"
    fake_api(lambda request: httpx.Response(409, json={"statusCode": 409, "error": error}))
    result = runner.invoke(main.app, ["jobs", "cancel", "j1"])
    assert result.exit_code == cli.EXIT_API
    assert error in result.stderr and "statusCode" not in result.stderr


def test_delete_falls_back_to_the_training_route_and_other_errors_stop_it(fake_api):
    def handle(request):
        if request.url.path == "/prod/inference/t1":
            return httpx.Response(404, json={"statusCode": 404, "error": "no inference job t1"})
        return httpx.Response(200, json={"id": "t1", "deleted": True})

    seen = fake_api(handle)
    result = runner.invoke(main.app, ["jobs", "delete", "t1"])
    assert result.exit_code == 0 and result.stdout.strip() == "t1  deleted"
    assert [(r.method, r.url.path) for r in seen] == [("DELETE", "/prod/inference/t1"), ("DELETE", "/prod/trains/t1")]

    running = "inference job j2 is running: cancel it first"
    fake_api(lambda request: httpx.Response(409, json={"statusCode": 409, "error": running}))
    refused = runner.invoke(main.app, ["jobs", "delete", "j2"])
    assert refused.exit_code == cli.EXIT_API and running in refused.stderr


def test_logs_follow_prints_each_line_once_until_the_job_has_ended(fake_api):
    pages = {
        None: {"lines": [{"timestamp": "t0", "message": "loading"}], "next_token": "a"},
        "a": [
            {"lines": [], "next_token": "a"},
            {
                "lines": [{"timestamp": "t1", "message": "step 1/2"}, {"timestamp": "t2", "message": "step 2/2"}],
                "next_token": "b",
            },
        ],
        "b": {"lines": [], "next_token": "b"},
    }
    statuses = iter(["inprogress", "inprogress", "succeed"])

    def handle(request):
        if request.url.path.endswith("/logs"):
            page = pages[request.url.params.get("next_token")]
            return httpx.Response(200, json=page.pop(0) if isinstance(page, list) else page)
        return httpx.Response(200, json={"InferenceJobId": "j1", "status": next(statuses)})

    fake_api(handle)
    result = runner.invoke(main.app, ["jobs", "logs", "j1", "--follow", "--poll-s", "0"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["t0  loading", "t1  step 1/2", "t2  step 2/2"]


def test_checkpoint_import_waits_through_the_download_and_a_failure_exits_1(fake_api):
    states = iter(
        [
            {"status": "Initialed", "progress": {"phase": "download", "step": 5, "total_steps": 10, "fraction": 0.5}},
            {"status": "Failed", "error": "x.safetensors: not a safetensors file"},
        ]
    )

    def handle(request):
        if request.method == "POST":
            assert json.loads(request.content) == {
                "checkpoint_type": "Lora",
                "url": "https://example.com/x.safetensors",
                "params": {},
            }
            return httpx.Response(202, json={"checkpoint": {"id": "c9", "status": "Initialed"}})
        return httpx.Response(
            200, json={"checkpoints": [{"id": "c9", "type": "Lora", "name": ["x.safetensors"], **next(states)}]}
        )

    fake_api(handle)
    args = ["checkpoint", "import", "https://example.com/x.safetensors", "--type", "Lora", "--wait", "--poll-s", "0"]
    result = runner.invoke(main.app, args)
    assert result.exit_code == cli.EXIT_API
    assert "checkpoint c9: download step 5/10" in result.stderr
    assert "the import failed: x.safetensors: not a safetensors file" in result.stderr


def test_checkpoint_delete_rename_dataset_and_model_delete_use_their_routes(fake_api):
    seen = fake_api(lambda request: httpx.Response(200, json={"id": "x", "deleted": True}))
    for args in (
        ["checkpoint", "delete", "c1"],
        ["checkpoint", "rename", "c1", "new name.safetensors"],
        ["dataset", "delete", "cats"],
        ["model", "delete", "m1"],
        ["endpoint", "forget", "d1"],
    ):
        assert runner.invoke(main.app, args).exit_code == 0, args
    assert [(r.method, r.url.path) for r in seen] == [
        ("DELETE", "/prod/checkpoints/c1"),
        ("PUT", "/prod/checkpoints/c1/name"),
        ("DELETE", "/prod/datasets/cats"),
        ("DELETE", "/prod/models/m1"),
        ("DELETE", "/prod/inference/endpoint-deployment-jobs/d1"),
    ]
    assert json.loads(seen[1].content) == {"name": "new name.safetensors"}


def test_a_slash_in_an_id_cannot_reach_another_route(fake_api):
    seen = fake_api(lambda request: httpx.Response(200, json={"id": "x", "deleted": True}))
    runner.invoke(main.app, ["dataset", "delete", "../checkpoints/c1"])
    assert seen[0].url.raw_path == b"/prod/datasets/..%2Fcheckpoints%2Fc1"


def test_the_tail_shows_progress_of_running_jobs_and_deletions():
    running = {
        "detail-type": "InferenceJobChanged",
        "detail": {
            "metadata": {"occurred_at": "2026-12-07T10:00:00Z"},
            "data": {"id": "j1", "status": "inprogress", "progress": report(7, images=2, image=1)},
        },
    }
    assert events.summary_line(running).endswith("j1  inprogress  txt2img image 1/2 step 7/20, ~13 s left")
    deleted = {
        "detail-type": "CheckpointChanged",
        "detail": {
            "metadata": {"occurred_at": "2026-12-07T10:00:00Z"},
            "data": {"id": "c1", "status": "Active", "deleted_at": "2026-12-07T10:00:00Z"},
        },
    }
    assert events.summary_line(deleted).endswith("c1  deleted")
