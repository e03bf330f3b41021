"""``sdmw infer`` and ``sdmw jobs``: starting inference jobs, following them, fetching their images.

``infer`` is a root command (registered by ``sdmw_cli.main``); ``jobs_app`` is the
``sdmw jobs`` group.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from sdmw_cli.cli import (
    IN_PROGRESS,
    JsonOption,
    PollOption,
    TimeoutOption,
    connect,
    exit_if_failed,
    mapped_errors,
    note,
    require_path,
    show,
    wait_until,
)
from sdmw_cli.client import Client
from sdmw_cli.progress_view import JobProgressView

jobs_app = typer.Typer(help="Inspect, follow, cancel and delete jobs (inference and training).", no_args_is_help=True)


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


def models_and_lora_tags(model: str, loras: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The request's ``models`` (the checkpoint, then each ``--lora``), and the prompt tags the LoRA weights add."""
    models: dict[str, list[str]] = {"Stable-diffusion": [model]}
    tags = []
    for spec in loras:
        name, tag = lora_name_and_tag(spec)
        models.setdefault("Lora", []).append(name)
        if tag:
            tags.append(tag)
    return models, tags


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
    models, tags = models_and_lora_tags(model, lora or [])
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
        note(f"inference job {job_id} started")  # at once: stdout gets the outcome when it comes
        answer = follow_job(lambda: client.inference_job(job_id), poll_s, timeout, f"inference job {job_id}")
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
    answer = follow_job(lambda: client.inference_job(job_id), poll_s, timeout, f"inference job {job_id}")
    show(answer, as_json, f"{job_id}  {answer['status']}")
    exit_if_failed(answer)


def follow_job(read: Callable[[], Any], poll_s: float, timeout_s: float | None, what: str) -> Any:
    """Waits for an inference job to finish, showing its progress (steps, time left) on stderr."""
    with JobProgressView(what) as view:
        return wait_until(
            read, lambda answer: answer.get("status") != IN_PROGRESS, poll_s, timeout_s, what, on_each=view.update
        )
