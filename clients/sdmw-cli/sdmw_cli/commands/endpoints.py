"""``sdmw endpoint``: deploying, listing and deleting SageMaker endpoints."""

from __future__ import annotations

from typing import Annotated

import typer

from sdmw_cli.cli import (
    JsonOption,
    PollOption,
    TimeoutOption,
    connect,
    exit_if_failed,
    mapped_errors,
    show,
    wait_until_finished,
)

endpoint_app = typer.Typer(help="Deploy, list and delete SageMaker endpoints.", no_args_is_help=True)


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
    """Deletes endpoints by name; prints what the API says became of each (deleted, still deleting, or
    skipped as unknown or already deleted)."""
    answer = connect().delete_endpoints(names)
    show(answer, as_json, str(answer))


@endpoint_app.command("forget")
@mapped_errors
def endpoint_forget(
    job_id: Annotated[str, typer.Argument(help="A deployment job whose endpoint is deleted or failed.")],
    as_json: JsonOption = False,
) -> None:
    """Removes a deleted (or failed) endpoint's deployment job from the list."""
    answer = connect().forget_endpoint_job(job_id)
    show(answer, as_json, f"{job_id}  forgotten")
