"""Following the event bus from a command (``sdmw events tail``, ``sdmw webhooks listen``).

``run_tap`` makes a temporary SQS queue and EventBridge rule (an ``events.EventTap``),
hands each event to the command until Ctrl-C, SIGTERM or ``--max-events``, and
always removes them again. The options both commands share are here too.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import boto3
import typer

from sdmw_cli import config, events
from sdmw_cli.cli import note, settings

#: Tests replace these: the AWS session the tap uses, and a hook called once its queue and rule exist.
aws_session_factory: Callable[[], boto3.session.Session] = lambda: boto3.session.Session()  # noqa: E731
on_tap_ready: Callable[[events.EventTap], None] = lambda tap: None  # noqa: E731


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
