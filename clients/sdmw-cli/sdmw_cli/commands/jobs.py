"""``sdmw jobs cancel|delete|logs``: stopping a job, removing it, reading its log.

A job id names an inference job or a training job; the commands ask the
inference routes first and the training routes when the id is not an inference
job's (404), so the user never has to say which kind it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from sdmw_cli.cli import JsonOption, PollOption, connect, mapped_errors, out, show
from sdmw_cli.client import ApiError, Client
from sdmw_cli.commands.inference import jobs_app

#: The states in which a job is over: inference (succeed, failed, cancelled) and training (Complete, Fail).
FINISHED = {"succeed", "failed", "cancelled", "Complete", "Fail"}


def either_kind(inference: Callable[[], Any], training: Callable[[], Any]) -> Any:
    """The inference route's answer, or the training route's when the job is not an inference job."""
    try:
        return inference()
    except ApiError as error:
        if error.status_code != 404:
            raise
    return training()


@jobs_app.command("cancel")
@mapped_errors
def jobs_cancel(job_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Cancels a job: a queued one never runs, a running one stops within a few steps.

    Cancelling a cancelled job again is fine; a finished job exits 1 saying it is finished.
    """
    client = connect()
    answer = either_kind(lambda: client.cancel_inference(job_id), lambda: client.cancel_train_job(job_id))
    job = answer.get("job", answer) if isinstance(answer, dict) else answer
    show(answer, as_json, f"{job_id}  {job.get('status', 'cancelling')}")


@jobs_app.command("delete")
@mapped_errors
def jobs_delete(job_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Deletes a finished job and its outputs (a running one must be cancelled first)."""
    client = connect()
    answer = either_kind(lambda: client.delete_inference(job_id), lambda: client.delete_train_job(job_id))
    show(answer, as_json, f"{job_id}  deleted")


@jobs_app.command("logs")
@mapped_errors
def jobs_logs(
    job_id: Annotated[str, typer.Argument()],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")] = False,
    poll_s: PollOption = 2.0,
) -> None:
    """Prints a job's log lines (the runtime's or the training container's), oldest first."""
    client = connect()
    token = _print_lines(client, job_id, None)
    while follow:
        finished = _is_finished(client, job_id)
        token = _print_lines(client, job_id, token)
        if finished:  # read once more after the end, so the last lines are not missed
            break
        time.sleep(poll_s)


def _print_lines(client: Client, job_id: str, token: str | None) -> str | None:
    """Prints every line after ``token``; the token to continue from."""
    while True:
        page = client.job_logs(job_id, token)
        for line in page.get("lines", []):
            out.print(f"{line.get('timestamp', '')}  {line.get('message', '')}", highlight=False, markup=False)
        next_token = page.get("next_token")
        if not page.get("lines") or not next_token or next_token == token:
            return next_token or token
        token = next_token


def _is_finished(client: Client, job_id: str) -> bool:
    job = either_kind(lambda: client.inference_job(job_id), lambda: client.train_job(job_id))
    return job.get("status") in FINISHED
