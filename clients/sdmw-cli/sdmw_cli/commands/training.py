"""``sdmw model``, ``sdmw train`` and ``sdmw trains``: the models training starts from, and training jobs.

``train`` and ``trains_list`` are root commands (registered by ``sdmw_cli.main``);
``model_app`` is the ``sdmw model`` group.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sdmw_cli.cli import (
    EXIT_API,
    EXIT_USAGE,
    JsonOption,
    PollOption,
    TimeoutOption,
    connect,
    fail,
    mapped_errors,
    note,
    require_path,
    show,
    wait_until,
)
from sdmw_cli.client import presigned_urls
from sdmw_cli.progress_view import JobProgressView

model_app = typer.Typer(help="Create, list and delete the models training starts from.", no_args_is_help=True)
#: Training jobs (and model-creation jobs) end Complete or Fail.
TRAINING_DONE = {"Complete", "Fail"}


@model_app.command("create")
@mapped_errors
def model_create(
    name: Annotated[str, typer.Option("--name", help="The new model's name.")],
    ckpt: Annotated[
        str, typer.Option("--ckpt", help="The Active Stable-diffusion checkpoint's file name (or folder model name).")
    ],
    checkpoint_id: Annotated[str | None, typer.Option("--checkpoint-id", help="That checkpoint's id.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until Complete or Fail.")] = False,
    timeout: TimeoutOption = None,
    poll_s: PollOption = 2.0,
    as_json: JsonOption = False,
) -> None:
    """Creates a model from a checkpoint (POST /model, then PUT /model Creating); prints its id."""
    client = connect()
    model_id = client.create_model(name, ckpt, checkpoint_id)["job"]["id"]
    answer = client.set_model_status(model_id, "Creating")["job"]
    status = answer.get("jobStatus")
    if wait:
        answer = wait_until(
            lambda: client.model(model_id),
            lambda model: model.get("status") in TRAINING_DONE,
            poll_s,
            timeout,
            f"model {model_id}",
        )
        status = answer.get("status")
    show(answer, as_json, f"{model_id}  {status}")
    if status == "Fail":
        raise fail(f"model creation failed: {(answer.get('params') or {}).get('error') or 'no reason given'}", EXIT_API)


@model_app.command("list")
@mapped_errors
def model_list(as_json: JsonOption = False) -> None:
    """Lists models (GET /models)."""
    answer = connect().list_models()
    lines = [f"{m['id']}  {m['status']:<10} {m['model_name']}" for m in answer["models"]]
    show(answer, as_json, "\n".join(lines) or "no models")


@model_app.command("delete")
@mapped_errors
def model_delete(model_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Deletes a model and its files; refused (exit 1) while it is being created or a running training uses it."""
    answer = connect().delete_model(model_id)
    show(answer, as_json, f"{model_id}  deleted")


def _setting(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{text!r} is not KEY=VALUE")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def train_params(settings: list[str], named: dict[str, Any]) -> dict[str, Any]:
    """The job's ``train_params``: each ``--set KEY=VALUE``, then the named options that were given."""
    params: dict[str, Any] = dict(_setting(s) for s in settings)
    params.update({key: value for key, value in named.items() if value})
    return params


@mapped_errors
def train(
    model_id: Annotated[str, typer.Option("--model-id", help="A Complete model (GET /models).")],
    train_type: Annotated[str, typer.Option("--type", help="dreambooth or lora.")] = "dreambooth",
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="An Enabled dataset of instance images; repeatable.")
    ] = None,
    class_dataset: Annotated[
        list[str] | None, typer.Option("--class-dataset", help="A dataset of class images; repeatable.")
    ] = None,
    instance_prompt: Annotated[str | None, typer.Option("--instance-prompt")] = None,
    output_name: Annotated[str | None, typer.Option("--output-name", help="The trained checkpoint's name.")] = None,
    max_train_steps: Annotated[int | None, typer.Option("--steps", min=1, help="max_train_steps.")] = None,
    instance_type: Annotated[str | None, typer.Option("--instance-type")] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="Another training setting, KEY=VALUE (VALUE as JSON if it parses); repeatable."),
    ] = None,
    upload: Annotated[
        list[Path] | None, typer.Option("--file", help="A file to upload with the job (filenames); repeatable.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show its status changes until Complete or Fail.")] = False,
    timeout: TimeoutOption = None,
    poll_s: PollOption = 5.0,
    as_json: JsonOption = False,
) -> None:
    """Creates a training job (POST /train), uploads its files, starts it (PUT /train Training)."""
    named = {
        "dataset_names": dataset,
        "class_dataset_names": class_dataset,
        "instance_prompt": instance_prompt,
        "output_name": output_name,
        "max_train_steps": max_train_steps,
        "training_instance_type": instance_type,
    }
    params = train_params(setting or [], named)
    files = list(upload or [])
    for path in files:
        require_path(path)
    if not params.get("dataset_names") and not files:
        raise fail("give --dataset NAME (or --file F to upload with the job)", EXIT_USAGE)
    client = connect()
    body = {"train_type": train_type, "model_id": model_id, "params": {"train_params": params}}
    if files:
        body["filenames"] = [p.name for p in files]
    created = client.create_train_job(body)
    job_id = created["job"]["id"]
    urls = presigned_urls(created) if files else {}
    for path in files:
        client.put_object(urls[path.name], path.read_bytes())
    answer = client.set_train_job_status(job_id, "Training")["job"]
    if wait:
        with JobProgressView(f"training job {job_id}") as view:  # step, loss and time left, on stderr
            answer = wait_until(
                lambda: client.train_job(job_id),
                lambda job: job.get("status") in TRAINING_DONE,
                poll_s,
                timeout,
                f"training job {job_id}",
                on_change=lambda job: note(f"{time.strftime('%H:%M:%S')}  {job_id}  {job.get('status')}"),
                on_each=view.update,
            )
    summary = f"{job_id}  {answer.get('status')}"
    if answer.get("checkpoint_id"):
        summary += f"  checkpoint {answer['checkpoint_id']}"
    show(answer, as_json, summary)
    if answer.get("status") == "Fail":
        raise fail(f"training failed: {answer.get('error') or 'no reason given'}", EXIT_API)


@mapped_errors
def trains_list(as_json: JsonOption = False) -> None:
    """Lists training jobs (GET /trains)."""
    answer = connect().list_train_jobs()
    lines = [f"{j['id']}  {j['trainType']:<16} {j['status']:<10} {j.get('modelName', '')}" for j in answer["trainJobs"]]
    show(answer, as_json, "\n".join(lines) or "no training jobs")
