"""``sdmw events tail``: printing the project's event bus live, one line (or JSON object) per event."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from sdmw_cli import events
from sdmw_cli.cli import mapped_errors
from sdmw_cli.following import BusOption, JobFilter, MaxEvents, TypeFilter, WaitS, event_bus, run_tap

events_app = typer.Typer(help="Follow the project's event bus live.", no_args_is_help=True)


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
