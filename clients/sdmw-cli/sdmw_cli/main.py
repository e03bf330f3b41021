"""The ``sdmw`` command: the root app, ``sdmw configure``, and the command groups registered on it.

Each group lives in its own module under ``sdmw_cli.commands`` (assets,
endpoints, inference, training, webhooks, events); what they share (exit codes,
error mapping, output, waiting) is in ``sdmw_cli.cli``. The exit codes are
documented there: 0 ok, 1 the API refused the request or the job failed, 2
usage error, 3 the API (or AWS) cannot be reached or the key is wrong, 4 a
local file is missing, 5 a ``--wait`` ran out of time.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sdmw_cli import config
from sdmw_cli.cli import JsonOption, show
from sdmw_cli.commands import assets, endpoints, events, inference, jobs, training, webhooks

app = typer.Typer(help="Command-line client for the Stable Diffusion middleware API.", no_args_is_help=True)
app.add_typer(assets.checkpoint_app, name="checkpoint")
app.add_typer(endpoints.endpoint_app, name="endpoint")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(assets.dataset_app, name="dataset")
app.add_typer(training.model_app, name="model")
app.add_typer(webhooks.webhooks_app, name="webhooks", no_args_is_help=True)
app.add_typer(events.events_app, name="events")


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


app.command()(inference.infer)
app.command()(training.train)
app.command("trains")(training.trains_list)
