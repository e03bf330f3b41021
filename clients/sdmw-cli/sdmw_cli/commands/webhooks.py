"""``sdmw webhooks``: webhook subscriptions, and ``listen``, which forwards the bus's events to a local URL
as signed Standard Webhooks deliveries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer

from sdmw_cli import events
from sdmw_cli.cli import EXIT_USAGE, JsonOption, connect, fail, mapped_errors, show
from sdmw_cli.following import BusOption, JobFilter, MaxEvents, TypeFilter, WaitS, event_bus, run_tap

webhooks_app = typer.Typer(help="Webhook subscriptions, and forwarding the bus's events to a local URL.")
#: What ``sdmw webhooks create --type`` accepts (the API's event kinds).
WEBHOOK_KINDS = ("inference", "endpoint", "checkpoint", "dataset", "model", "training")

#: Tests replace this: the HTTP client ``webhooks listen`` forwards with.
forward_http_factory: Callable[[], httpx.Client] = lambda: httpx.Client(timeout=10.0)  # noqa: E731


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
