"""``sdmw checkpoint`` and ``sdmw dataset``: uploading and listing the assets jobs use.

Checkpoints are uploaded in parts to presigned URLs, datasets file by file;
both show a progress bar on stderr.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from sdmw_cli.cli import (
    EXIT_API,
    EXIT_MISSING_FILE,
    JsonOption,
    PollOption,
    TimeoutOption,
    connect,
    fail,
    mapped_errors,
    note,
    progress_bar,
    require_path,
    show,
    wait_until,
)
from sdmw_cli.client import MIB, files_to_upload
from sdmw_cli.progress_view import JobProgressView

checkpoint_app = typer.Typer(help="Upload, import, list, show, rename and delete checkpoints.", no_args_is_help=True)
dataset_app = typer.Typer(help="Upload, list and delete training datasets.", no_args_is_help=True)


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


@checkpoint_app.command("delete")
@mapped_errors
def checkpoint_delete(checkpoint_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Deletes a checkpoint and its files; refused (exit 1) while a running job uses it, naming the job."""
    answer = connect().delete_checkpoint(checkpoint_id)
    show(answer, as_json, f"{checkpoint_id}  deleted")


@checkpoint_app.command("import")
@mapped_errors
def checkpoint_import(
    url: Annotated[str, typer.Argument(help="An https URL of one model file; the cloud fetches it.")],
    checkpoint_type: Annotated[str, typer.Option("--type", help="Stable-diffusion, Lora, embeddings, ...")],
    filename: Annotated[
        str | None, typer.Option("--name", help="The file's name; default: the URL's last part.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show the download until Active or Failed.")] = False,
    timeout: TimeoutOption = None,
    poll_s: PollOption = 2.0,
    as_json: JsonOption = False,
) -> None:
    """Creates a checkpoint from a URL, streamed into S3 by the service and checked like an upload; prints its id."""
    client = connect()
    answer = client.import_checkpoint(checkpoint_type, url, filename, {})
    checkpoint = answer.get("checkpoint", answer)
    checkpoint_id = checkpoint["id"]
    if wait:
        note(f"importing {url} as checkpoint {checkpoint_id}")
        with JobProgressView(f"checkpoint {checkpoint_id}") as view:
            checkpoint = wait_until(
                lambda: client.checkpoint(checkpoint_id),
                lambda found: found.get("status") != "Initialed",
                poll_s,
                timeout,
                f"the import of checkpoint {checkpoint_id}",
                on_each=view.update,
            )
        answer = checkpoint
    show(answer, as_json, checkpoint_id if not wait else f"{checkpoint_id}  {checkpoint.get('status')}")
    if checkpoint.get("status") == "Failed":
        raise fail(f"the import failed: {checkpoint.get('error') or 'no reason given'}", EXIT_API)


@checkpoint_app.command("rename")
@mapped_errors
def checkpoint_rename(
    checkpoint_id: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument(help="The name jobs will use for it, e.g. my-model.safetensors.")],
    as_json: JsonOption = False,
) -> None:
    """Renames a checkpoint: jobs then name it by its new name (its files stay where they are)."""
    answer = connect().rename_checkpoint(checkpoint_id, name)
    show(answer, as_json, f"{checkpoint_id}  {name}")


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


@dataset_app.command("delete")
@mapped_errors
def dataset_delete(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Deletes a dataset and its files; refused (exit 1) while a running training reads it."""
    answer = connect().delete_dataset(name)
    show(answer, as_json, f"{name}  deleted")
