"""The ``sdmw`` command.

Exit codes: 0 ok, 1 the API refused the request or the job failed, 2 usage
error (or no/corrupt configuration), 3 the API (or AWS) cannot be reached or
the key is wrong, 4 a local file is missing, 5 a ``--wait`` ran out of time.
"""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import boto3
import httpx
import typer
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from sdmw_cli import config, events
from sdmw_cli.client import MIB, ApiError, AuthError, Client, UnreachableError, files_to_upload, presigned_urls

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_MISSING_FILE, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 5
#: Inference and endpoint deployment jobs both say "inprogress" until they end.
IN_PROGRESS = "inprogress"
FAILED = {"failed", "failure", "Fail"}
#: Training jobs (and model-creation jobs) end Complete or Fail.
TRAINING_DONE = {"Complete", "Fail"}
#: What ``sdmw webhooks create --type`` accepts (the API's event kinds).
WEBHOOK_KINDS = ("inference", "endpoint", "checkpoint", "dataset", "model", "training")

app = typer.Typer(help="Command-line client for the Stable Diffusion middleware API.", no_args_is_help=True)
checkpoint_app = typer.Typer(help="Upload, list and show checkpoints.", no_args_is_help=True)
endpoint_app = typer.Typer(help="Deploy, list and delete SageMaker endpoints.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect inference jobs.", no_args_is_help=True)
dataset_app = typer.Typer(help="Upload and list training datasets.", no_args_is_help=True)
model_app = typer.Typer(help="Create and list the models training starts from.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook subscriptions, and forwarding the bus's events to a local URL.")
events_app = typer.Typer(help="Follow the project's event bus live.", no_args_is_help=True)
app.add_typer(checkpoint_app, name="checkpoint")
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(jobs_app, name="jobs")
app.add_typer(dataset_app, name="dataset")
app.add_typer(model_app, name="model")
app.add_typer(webhooks_app, name="webhooks", no_args_is_help=True)
app.add_typer(events_app, name="events")

out = Console()
err = Console(stderr=True)

#: Tests replace this to hand the commands a client over an in-process app.
client_factory: Callable[[config.Settings], Client] = lambda s: Client(s.url, s.api_key)  # noqa: E731
#: Tests replace these: the AWS session ``events tail`` and ``webhooks listen`` use, a hook called once
#: their queue and rule exist, and the HTTP client ``webhooks listen`` forwards with.
aws_session_factory: Callable[[], boto3.session.Session] = lambda: boto3.session.Session()  # noqa: E731
on_tap_ready: Callable[[events.EventTap], None] = lambda tap: None  # noqa: E731
forward_http_factory: Callable[[], httpx.Client] = lambda: httpx.Client(timeout=10.0)  # noqa: E731

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")]
PollOption = Annotated[float, typer.Option("--poll-s", help="Seconds between status checks.")]
TimeoutOption = Annotated[
    float | None,
    typer.Option("--timeout", min=0, help="With --wait: give up after this many seconds (exit 5); default never."),
]


class WaitTimeout(Exception):
    """A ``--wait`` ran out of time; the job goes on."""


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def note(message: str) -> None:
    """A line for the user on stderr, never wrapped or read as markup."""
    err.print(message, highlight=False, markup=False, soft_wrap=True)


def mapped_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turns SDK, AWS and file exceptions into a message and the documented exit code."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except AuthError as error:
            raise fail(f"the API refused the key ({error.status_code}): {error.message}", EXIT_UNREACHABLE) from None
        except UnreachableError as error:
            raise fail(str(error), EXIT_UNREACHABLE) from None
        except ApiError as error:
            raise fail(str(error), EXIT_API) from None
        except WaitTimeout as error:
            raise fail(str(error), EXIT_TIMEOUT) from None
        except FileNotFoundError as error:
            raise fail(f"no such file: {error.filename or error}", EXIT_MISSING_FILE) from None
        except config.ConfigError as error:
            raise fail(str(error), EXIT_USAGE) from None
        except (NoCredentialsError, EndpointConnectionError) as error:
            raise fail(f"AWS: {error}", EXIT_UNREACHABLE) from None
        except ClientError as error:
            info = error.response.get("Error", {})
            message = f"AWS refused {error.operation_name}: {info.get('Code')}: {info.get('Message')}"
            code = EXIT_UNREACHABLE if info.get("Code") in AWS_AUTH_CODES else EXIT_API
            raise fail(message, code) from None
        except BotoCoreError as error:
            raise fail(f"AWS: {error}", EXIT_UNREACHABLE) from None

    return run


AWS_AUTH_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
}


def settings() -> config.Settings:
    try:
        return config.load()
    except config.ConfigError as error:
        raise fail(str(error), EXIT_USAGE) from None


def connect() -> Client:
    found = settings()
    if not found.url or not found.api_key:
        raise fail(
            "no API configured: run `sdmw configure --url URL --key KEY` or set SDMW_URL and SDMW_API_KEY", EXIT_USAGE
        )
    return client_factory(found)


def show(answer: Any, as_json: bool, summary: str | None = None) -> None:
    if as_json or summary is None:
        out.print_json(json.dumps(answer, default=str))
    else:
        out.print(summary, highlight=False, markup=False, soft_wrap=True)


def wait_until(
    read: Callable[[], Any],
    done: Callable[[Any], bool],
    poll_s: float,
    timeout_s: float | None,
    what: str,
    on_change: Callable[[Any], None] = lambda answer: None,
) -> Any:
    """Reads until ``done``; ``on_change`` sees each new status; WaitTimeout after ``timeout_s``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = object()
    while True:
        answer = read()
        status = answer.get("status")
        if status != last:
            on_change(answer)
            last = status
        if done(answer):
            return answer
        if deadline is not None and time.monotonic() + poll_s > deadline:
            raise WaitTimeout(
                f"gave up waiting after {timeout_s:g} s: {what} is still {status} (it goes on; check it later)"
            )
        time.sleep(poll_s)


def wait_until_finished(read: Callable[[], Any], poll_s: float, timeout_s: float | None = None, what: str = "the job"):
    return wait_until(read, lambda answer: answer.get("status") != IN_PROGRESS, poll_s, timeout_s, what)


def exit_if_failed(answer: Any) -> None:
    if answer.get("status") in FAILED:
        raise fail(f"job failed: {answer.get('error') or answer.get('sagemakerRaw') or 'no reason given'}", EXIT_API)


def progress_bar() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
    )


def require_path(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))


# ---------------------------------------------------------------- configure


@app.command()
def configure(
    url: Annotated[str, typer.Option(help="The API's base URL, stage included, e.g. https://.../prod")],
    key: Annotated[str, typer.Option(help="The API key (sent as x-api-key).")],
    bus: Annotated[str, typer.Option("--bus", help="The project's event bus (events tail, webhooks listen).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Saves the API's URL and key to ~/.config/sdmw/config.json (mode 0600)."""
    path = config.save(url, key, event_bus=bus)
    show({"config": str(path), "url": url}, as_json, f"saved {path}")


# ---------------------------------------------------------------- checkpoints


@checkpoint_app.command("upload")
@mapped_errors
def checkpoint_upload(
    path: Annotated[Path, typer.Argument(help="A model file, or a diffusers folder (every file in it).")],
    checkpoint_type: Annotated[str, typer.Option("--type", help="Stable-diffusion, Lora, embeddings, ...")],
    part_mib: Annotated[int, typer.Option("--part-mib", min=5, help="Part size in MiB.")] = 64,
    workers: Annotated[int, typer.Option(min=1, help="Parts uploaded at once.")] = 4,
    as_json: JsonOption = False,
) -> None:
    """Uploads a checkpoint in parts to presigned URLs, then activates it; prints its id."""
    require_path(path)
    files = files_to_upload(path)
    if not files:
        raise fail(f"{path} holds no files", EXIT_MISSING_FILE)
    params = {"new_model_name": path.name} if path.is_dir() else {}
    client = connect()
    with progress_bar() as progress:
        task = progress.add_task(path.name, total=sum(f.size for f in files))
        answer = client.upload_checkpoint(
            files,
            checkpoint_type,
            params=params,
            part_size=part_mib * MIB,
            workers=workers,
            on_bytes=lambda sent: progress.advance(task, sent),
        )
    show(answer, as_json, answer["checkpoint"]["id"])


@checkpoint_app.command("list")
@mapped_errors
def checkpoint_list(as_json: JsonOption = False) -> None:
    """Lists checkpoints (GET /checkpoints)."""
    answer = connect().list_checkpoints()
    lines = [f"{c['id']}  {c['type']:<16} {c['status']:<10} {', '.join(c['name'])}" for c in answer["checkpoints"]]
    show(answer, as_json, "\n".join(lines) or "no checkpoints")


@checkpoint_app.command("show")
@mapped_errors
def checkpoint_show(checkpoint_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Shows one checkpoint (found in GET /checkpoints; exits 1 if there is none of that id)."""
    c = connect().checkpoint(checkpoint_id)
    summary = "\n".join(
        [
            f"id        {c['id']}",
            f"type      {c['type']}",
            f"status    {c['status']}",
            f"files     {', '.join(c.get('name') or []) or '-'}",
            f"location  {c.get('s3Location', '-')}",
            f"created   {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(c['created'])) if c.get('created') else '-'}",
        ]
    )
    show(c, as_json, summary)


# ---------------------------------------------------------------- endpoints


@endpoint_app.command("list")
@mapped_errors
def endpoint_list(as_json: JsonOption = False) -> None:
    """Lists endpoint deployment jobs."""
    answer = connect().list_endpoints()
    lines = [f"{e['endpoint_name']:<32} {e.get('endpoint_status') or '-':<12} {e['status']}" for e in answer]
    show(answer, as_json, "\n".join(lines) or "no endpoints")


@endpoint_app.command("deploy")
@mapped_errors
def endpoint_deploy(
    instance_type: Annotated[str, typer.Option("--instance-type")] = "ml.g5.xlarge",
    count: Annotated[int, typer.Option("--count", min=1)] = 1,
    name: Annotated[str | None, typer.Option("--name")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the deployment finishes.")] = False,
    timeout: TimeoutOption = None,
    poll_s: PollOption = 15.0,
    as_json: JsonOption = False,
) -> None:
    """Deploys a SageMaker endpoint; prints its name."""
    client = connect()
    answer = client.deploy_endpoint(instance_type, count, name)
    if wait:
        job_id = answer["EndpointDeploymentJobId"]
        what = f"deployment {job_id} of {answer.get('endpoint_name')}"
        answer = wait_until_finished(lambda: client.endpoint_job(job_id), poll_s, timeout, what)
    show(answer, as_json, f"{answer['endpoint_name']}  {answer['status']}")
    exit_if_failed(answer)


@endpoint_app.command("delete")
@mapped_errors
def endpoint_delete(names: Annotated[list[str], typer.Argument()], as_json: JsonOption = False) -> None:
    """Deletes endpoints by name; the API skips names it does not know, so only those it took are shown."""
    answer = connect().delete_endpoints(names)
    lines = [f"{e['endpoint_name']:<32} {e['status']}" for e in answer]
    show(answer, as_json, "\n".join(lines) or "no endpoint of those names")


# ---------------------------------------------------------------- inference


def download_outputs(client: Client, job_id: str, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    urls = client.image_urls(job_id) + client.param_urls(job_id)
    return [client.download(url, folder / Path(url.split("?")[0]).name) for url in urls]


def lora_name_and_tag(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:WEIGHT`` -> the LoRA's file name, and the prompt tag that sets its weight."""
    name, sep, weight = spec.rpartition(":")
    if not sep or not name or not _is_number(weight):
        return spec, None
    return name, f"<lora:{Path(name).stem}:{weight}>"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@app.command()
@mapped_errors
def infer(
    endpoint: Annotated[str, typer.Option("--endpoint")],
    model: Annotated[str, typer.Option("--model", help="The Stable-diffusion checkpoint's file name.")],
    prompt: Annotated[str, typer.Option("--prompt")],
    negative: Annotated[str, typer.Option("--negative")] = "",
    steps: Annotated[int, typer.Option("--steps", min=1)] = 20,
    width: Annotated[int, typer.Option("--width", min=64)] = 512,
    height: Annotated[int, typer.Option("--height", min=64)] = 512,
    seed: Annotated[int, typer.Option("--seed")] = -1,
    init_image: Annotated[
        Path | None, typer.Option("--init-image", help="img2img: start from this image (sent base64).")
    ] = None,
    denoising_strength: Annotated[
        float, typer.Option("--denoising-strength", min=0.0, max=1.0, help="img2img: how much to change the image.")
    ] = 0.75,
    lora: Annotated[
        list[str] | None,
        typer.Option(
            "--lora",
            help="A LoRA's file name (sent in models.Lora), repeatable; "
            "NAME:WEIGHT also adds <lora:stem:WEIGHT> to the prompt.",
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    timeout: TimeoutOption = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Download images and parameters here.")] = None,
    poll_s: PollOption = 2.0,
    as_json: JsonOption = False,
) -> None:
    """Starts a txt2img (or, with --init-image, img2img) job; prints its id (and, with --wait, its outcome)."""
    models: dict[str, list[str]] = {"Stable-diffusion": [model]}
    tags = []
    for spec in lora or []:
        name, tag = lora_name_and_tag(spec)
        models.setdefault("Lora", []).append(name)
        if tag:
            tags.append(tag)
    body: dict[str, Any] = {
        "sagemaker_endpoint_name": endpoint,
        "task_type": "txt2img",
        "models": models,
        "prompt": " ".join([prompt, *tags]),
        "negative_prompt": negative,
        "steps": steps,
        "width": width,
        "height": height,
        "seed": seed,
    }
    if init_image is not None:
        require_path(init_image)
        body |= {
            "task_type": "img2img",
            "init_images": [base64.b64encode(init_image.read_bytes()).decode("ascii")],
            "denoising_strength": denoising_strength,
        }
    client = connect()
    answer = client.infer(body)
    job_id = answer["inference_id"]
    if (wait or out_dir) and answer.get("status") == IN_PROGRESS:
        answer = wait_until_finished(lambda: client.inference_job(job_id), poll_s, timeout, f"inference job {job_id}")
    if wait or out_dir:
        exit_if_failed(answer)
    if out_dir:
        saved = download_outputs(client, job_id, out_dir)
        answer = {**answer, "downloaded": [str(p) for p in saved]}
    summary = job_id if not (wait or out_dir) else f"{job_id}  {answer['status']}"
    if out_dir:
        summary += "".join(f"\n{p}" for p in answer["downloaded"])
    show(answer, as_json, summary)


@jobs_app.command("show")
@mapped_errors
def jobs_show(job_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Shows an inference job."""
    answer = connect().inference_job(job_id)
    show(answer, as_json, f"{job_id}  {answer['status']}")


@jobs_app.command("list")
@mapped_errors
def jobs_list(as_json: JsonOption = False) -> None:
    """Lists inference jobs (GET /inference/list-inference-jobs)."""
    answer = connect().list_inference_jobs()
    lines = [
        f"{j['InferenceJobId']}  {j.get('taskType', '-'):<10} {j['status']:<10} {j.get('startTime', '')}"
        for j in answer
    ]
    show(answer, as_json, "\n".join(lines) or "no inference jobs")


@jobs_app.command("wait")
@mapped_errors
def jobs_wait(
    job_id: Annotated[str, typer.Argument()],
    timeout: TimeoutOption = None,
    poll_s: PollOption = 2.0,
    as_json: JsonOption = False,
) -> None:
    """Waits for an inference job to finish; exits 1 if it failed, 5 if --timeout ran out."""
    client = connect()
    answer = wait_until_finished(lambda: client.inference_job(job_id), poll_s, timeout, f"inference job {job_id}")
    show(answer, as_json, f"{job_id}  {answer['status']}")
    exit_if_failed(answer)


# ---------------------------------------------------------------- datasets


@dataset_app.command("upload")
@mapped_errors
def dataset_upload(
    folder: Annotated[Path, typer.Argument(help="A folder of images (and .txt captions); every file under it.")],
    name: Annotated[str, typer.Option("--name", help="The dataset's name.")],
    description: Annotated[str, typer.Option("--description")] = "",
    workers: Annotated[int, typer.Option(min=1, help="Files uploaded at once.")] = 4,
    as_json: JsonOption = False,
) -> None:
    """Creates a dataset from the files in FOLDER (presigned PUTs), then marks it Enabled."""
    require_path(folder)
    if not folder.is_dir():
        raise fail(f"{folder} is not a folder", EXIT_MISSING_FILE)
    files = files_to_upload(folder)
    if not files:
        raise fail(f"{folder} holds no files", EXIT_MISSING_FILE)
    client = connect()
    with progress_bar() as progress:
        task = progress.add_task(name, total=sum(f.size for f in files))
        answer = client.upload_dataset(
            name,
            files,
            params={"description": description} if description else {},
            workers=workers,
            on_bytes=lambda sent: progress.advance(task, sent),
        )
    show(answer, as_json, f"{answer.get('datasetName', name)}  {answer.get('status')}  ({len(files)} files)")


@dataset_app.command("list")
@mapped_errors
def dataset_list(as_json: JsonOption = False) -> None:
    """Lists datasets (GET /datasets)."""
    answer = connect().list_datasets()
    lines = [f"{d['datasetName']:<32} {d['status']:<10} {d.get('s3', '')}" for d in answer["datasets"]]
    show(answer, as_json, "\n".join(lines) or "no datasets")


# ---------------------------------------------------------------- training


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


def _setting(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{text!r} is not KEY=VALUE")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


@app.command()
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
    params: dict[str, Any] = dict(_setting(s) for s in setting or [])
    for key, value in {
        "dataset_names": dataset,
        "class_dataset_names": class_dataset,
        "instance_prompt": instance_prompt,
        "output_name": output_name,
        "max_train_steps": max_train_steps,
        "training_instance_type": instance_type,
    }.items():
        if value:
            params[key] = value
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
        answer = wait_until(
            lambda: client.train_job(job_id),
            lambda job: job.get("status") in TRAINING_DONE,
            poll_s,
            timeout,
            f"training job {job_id}",
            on_change=lambda job: note(f"{time.strftime('%H:%M:%S')}  {job_id}  {job.get('status')}"),
        )
    summary = f"{job_id}  {answer.get('status')}"
    if answer.get("checkpoint_id"):
        summary += f"  checkpoint {answer['checkpoint_id']}"
    show(answer, as_json, summary)
    if answer.get("status") == "Fail":
        raise fail(f"training failed: {answer.get('error') or 'no reason given'}", EXIT_API)


@app.command("trains")
@mapped_errors
def trains_list(as_json: JsonOption = False) -> None:
    """Lists training jobs (GET /trains)."""
    answer = connect().list_train_jobs()
    lines = [f"{j['id']}  {j['trainType']:<16} {j['status']:<10} {j.get('modelName', '')}" for j in answer["trainJobs"]]
    show(answer, as_json, "\n".join(lines) or "no training jobs")


# ---------------------------------------------------------------- webhooks


def _webhook_line(w: dict[str, Any]) -> str:
    kinds = ",".join(w.get("event_types") or [])
    final = " terminal-only" if w.get("terminal_only") else ""
    return f"{w['id']}  {w.get('status', '-'):<8} {w['url']}  [{kinds}]{final}"


@webhooks_app.command("create")
@mapped_errors
def webhooks_create(
    url: Annotated[str, typer.Argument(help="Where deliveries are POSTed.")],
    event_type: Annotated[
        list[str], typer.Option("--type", help=f"An event kind, repeatable: {', '.join(WEBHOOK_KINDS)}.")
    ],
    terminal_only: Annotated[bool, typer.Option("--terminal-only", help="Only final states.")] = False,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonOption = False,
) -> None:
    """Subscribes URL to the kinds of event; prints its id and signing secret."""
    unknown = [t for t in event_type if t not in WEBHOOK_KINDS]
    if unknown:
        raise fail(f"unknown --type {', '.join(unknown)}; choose from {', '.join(WEBHOOK_KINDS)}", EXIT_USAGE)
    answer = connect().create_webhook(url, event_type, terminal_only=terminal_only, description=description)
    show(answer, as_json, f"{_webhook_line(answer)}\nsecret: {answer.get('secret', '-')}")


@webhooks_app.command("list")
@mapped_errors
def webhooks_list(as_json: JsonOption = False) -> None:
    """Lists webhook subscriptions."""
    answer = connect().list_webhooks()
    show(answer, as_json, "\n".join(_webhook_line(w) for w in answer["webhooks"]) or "no webhooks")


@webhooks_app.command("show")
@mapped_errors
def webhooks_show(webhook_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Shows one webhook subscription."""
    answer = connect().webhook(webhook_id)
    lines = [_webhook_line(answer)]
    if answer.get("description"):
        lines.append(f"description: {answer['description']}")
    if answer.get("created_at"):
        lines.append(f"created: {answer['created_at']}")
    show(answer, as_json, "\n".join(lines))


@webhooks_app.command("delete")
@mapped_errors
def webhooks_delete(webhook_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Deletes a webhook subscription."""
    answer = connect().delete_webhook(webhook_id)
    show(answer or {"id": webhook_id, "deleted": True}, as_json, f"{webhook_id}  deleted")


@webhooks_app.command("default-secret")
@mapped_errors
def webhooks_default_secret(as_json: JsonOption = False) -> None:
    """Prints the deployment's default secret (jobs' own webhooks are signed with it)."""
    answer = connect().default_webhook_secret()
    show(answer, as_json, answer["secret"])


# ---------------------------------------------------------------- following the bus


class Stopped(Exception):
    """SIGTERM: leave the poll loop the way Ctrl-C does."""


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped


@contextmanager
def stops_on_sigterm() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGTERM, _raise_stopped)
    except ValueError:  # not the main thread (a test runner's worker): Ctrl-C only
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def event_bus(option: str | None) -> str:
    return option or settings().event_bus or config.DEFAULT_EVENT_BUS


BusOption = Annotated[
    str | None,
    typer.Option("--bus", help="The project's event bus; default $SDMW_EVENT_BUS, the config's, or sdmw-bus."),
]
TypeFilter = Annotated[list[str] | None, typer.Option("--type", help="Only this detail-type; repeatable.")]
JobFilter = Annotated[
    list[str] | None, typer.Option("--job", help="Only events about this job (correlation id); repeatable.")
]
MaxEvents = Annotated[int | None, typer.Option("--max-events", min=1, help="Stop after this many events.")]
WaitS = Annotated[int, typer.Option("--wait-s", min=0, max=20, help="Seconds each long poll waits.", hidden=True)]


def run_tap(
    bus: str,
    pattern: dict[str, Any],
    on_event: Callable[[dict[str, Any]], None],
    max_events: int | None,
    wait_s: int,
) -> None:
    """Makes the tap, follows it until Ctrl-C, SIGTERM, ``max_events`` or an error; always removes it."""
    seen = 0

    def handle(event: dict[str, Any]) -> None:
        nonlocal seen
        on_event(event)
        seen += 1

    tap = events.EventTap(bus, pattern, session=aws_session_factory())
    with stops_on_sigterm():
        try:
            tap.create()
            note(f"following {bus} (queue and rule {tap.name}); Ctrl-C to stop")
            on_tap_ready(tap)
            events.follow(tap, handle, stop=lambda: max_events is not None and seen >= max_events, wait_s=wait_s)
        except (KeyboardInterrupt, Stopped):
            pass
        finally:
            with signals_ignored():  # a second Ctrl-C must not leave the queue and the rule behind
                failures = tap.remove()
            for failure in failures:
                note(f"warning: could not remove part of {tap.name}: {failure}")
            note(f"removed {tap.name}")


@contextmanager
def signals_ignored() -> Iterator[None]:
    try:
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@events_app.command("tail")
@mapped_errors
def events_tail(
    detail_type: TypeFilter = None,
    job: JobFilter = None,
    bus: BusOption = None,
    max_events: MaxEvents = None,
    wait_s: WaitS = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Each event as one JSON line.")] = False,
) -> None:
    """Prints the bus's project events live, one line each, until Ctrl-C."""

    def show_event(event: dict[str, Any]) -> None:
        typer.echo(json.dumps(event, default=str) if as_json else events.summary_line(event))

    run_tap(event_bus(bus), events.event_pattern(detail_type or [], job or []), show_event, max_events, wait_s)


@webhooks_app.command("listen")
@mapped_errors
def webhooks_listen(
    forward_to: Annotated[str, typer.Option("--forward-to", help="The local receiver's URL.")],
    detail_type: TypeFilter = None,
    job: JobFilter = None,
    secret: Annotated[
        str | None,
        typer.Option("--secret", help="whsec_... to sign with; default a new one, printed first.", show_default=False),
    ] = None,
    bus: BusOption = None,
    max_events: MaxEvents = None,
    wait_s: WaitS = 10,
) -> None:
    """Forwards the bus's events to a local URL as signed Standard Webhooks deliveries, until Ctrl-C."""
    if secret is None:
        secret = events.new_secret()
        typer.echo(f"signing secret: {secret}")
    elif not secret.startswith(events.SECRET_PREFIX):
        raise fail("--secret must start with whsec_", EXIT_USAGE)
    try:
        events.signed_request({}, secret)
    except Exception as error:
        raise fail(f"--secret is not a usable Standard Webhooks secret: {error}", EXIT_USAGE) from None
    http = forward_http_factory()

    def forward(event: dict[str, Any]) -> None:
        line = events.summary_line(event)
        try:
            status = events.forward(http, forward_to, event, secret)
        except httpx.HTTPError as error:
            typer.echo(f"{line}  -> {forward_to} failed: {type(error).__name__}: {error}")
            return
        typer.echo(f"{line}  -> {status}")

    try:
        run_tap(event_bus(bus), events.event_pattern(detail_type or [], job or []), forward, max_events, wait_s)
    finally:
        http.close()
