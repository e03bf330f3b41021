"""The ``sdmw`` command.

Exit codes: 0 ok, 1 the API refused the request or the job failed, 2 usage
error, 3 the API cannot be reached or the key is wrong, 4 a local file is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from sdmw_cli import config
from sdmw_cli.client import MIB, ApiError, AuthError, Client, UnreachableError, files_to_upload

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_MISSING_FILE = 0, 1, 2, 3, 4
#: Inference and endpoint deployment jobs both say "inprogress" until they end.
IN_PROGRESS = "inprogress"
FAILED = {"failed", "failure"}

app = typer.Typer(help="Command-line client for the Stable Diffusion middleware API.", no_args_is_help=True)
checkpoint_app = typer.Typer(help="Upload and list checkpoints.", no_args_is_help=True)
endpoint_app = typer.Typer(help="Deploy, list and delete SageMaker endpoints.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect inference jobs.", no_args_is_help=True)
app.add_typer(checkpoint_app, name="checkpoint")
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(jobs_app, name="jobs")

out = Console()
err = Console(stderr=True)

#: Tests replace this to hand the commands a client over an in-process app.
client_factory: Callable[[config.Settings], Client] = lambda s: Client(s.url, s.api_key)  # noqa: E731

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")]
PollOption = Annotated[float, typer.Option("--poll-s", help="Seconds between status checks.")]


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def mapped_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turns SDK exceptions into a message and the documented exit code."""

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
        except FileNotFoundError as error:
            raise fail(f"no such file: {error.filename or error}", EXIT_MISSING_FILE) from None

    return run


def connect() -> Client:
    settings = config.load()
    if not settings.url or not settings.api_key:
        raise fail(
            "no API configured: run `sdmw configure --url URL --key KEY` or set SDMW_URL and SDMW_API_KEY", EXIT_USAGE
        )
    return client_factory(settings)


def show(answer: Any, as_json: bool, summary: str | None = None) -> None:
    if as_json or summary is None:
        out.print_json(json.dumps(answer, default=str))
    else:
        out.print(summary, highlight=False)


def wait_until_finished(read: Callable[[], Any], poll_s: float) -> Any:
    while (answer := read()).get("status") == IN_PROGRESS:
        time.sleep(poll_s)
    return answer


def exit_if_failed(answer: Any) -> None:
    if answer.get("status") in FAILED:
        raise fail(f"job failed: {answer.get('error') or answer.get('sagemakerRaw') or 'no reason given'}", EXIT_API)


# ---------------------------------------------------------------- configure


@app.command()
def configure(
    url: Annotated[str, typer.Option(help="The API's base URL, stage included, e.g. https://.../prod")],
    key: Annotated[str, typer.Option(help="The API key (sent as x-api-key).")],
    as_json: JsonOption = False,
) -> None:
    """Saves the API's URL and key to ~/.config/sdmw/config.json (mode 0600)."""
    path = config.save(url, key)
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
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    files = files_to_upload(path)
    if not files:
        raise fail(f"{path} holds no files", EXIT_MISSING_FILE)
    params = {"new_model_name": path.name} if path.is_dir() else {}
    client = connect()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as progress:
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
    poll_s: PollOption = 15.0,
    as_json: JsonOption = False,
) -> None:
    """Deploys a SageMaker endpoint; prints its name."""
    client = connect()
    answer = client.deploy_endpoint(instance_type, count, name)
    if wait:
        job_id = answer["EndpointDeploymentJobId"]
        answer = wait_until_finished(lambda: client.endpoint_job(job_id), poll_s)
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
    wait: Annotated[bool, typer.Option("--wait")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Download images and parameters here.")] = None,
    poll_s: PollOption = 2.0,
    as_json: JsonOption = False,
) -> None:
    """Starts a txt2img job; prints its id (and, with --wait, its outcome)."""
    client = connect()
    body = {
        "sagemaker_endpoint_name": endpoint,
        "task_type": "txt2img",
        "models": {"Stable-diffusion": [model]},
        "prompt": prompt,
        "negative_prompt": negative,
        "steps": steps,
        "width": width,
        "height": height,
        "seed": seed,
    }
    answer = client.infer(body)
    job_id = answer["inference_id"]
    if wait or out_dir:
        answer = wait_until_finished(lambda: client.inference_job(job_id), poll_s)
        exit_if_failed(answer)
    if out_dir:
        saved = download_outputs(client, job_id, out_dir)
        answer = {**answer, "downloaded": [str(p) for p in saved]}
    show(answer, as_json, job_id if not (wait or out_dir) else f"{job_id}  {answer['status']}")


@jobs_app.command("show")
@mapped_errors
def jobs_show(job_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Shows an inference job."""
    answer = connect().inference_job(job_id)
    show(answer, as_json, f"{job_id}  {answer['status']}")


@jobs_app.command("wait")
@mapped_errors
def jobs_wait(job_id: Annotated[str, typer.Argument()], poll_s: PollOption = 2.0, as_json: JsonOption = False) -> None:
    """Waits for an inference job to finish; exits 1 if it failed."""
    client = connect()
    answer = wait_until_finished(lambda: client.inference_job(job_id), poll_s)
    show(answer, as_json, f"{job_id}  {answer['status']}")
    exit_if_failed(answer)
