"""Showing a running job's progress: a bar on a terminal, a line per new report elsewhere.

A job's answer (``GET /inference/get-inference-job``, a ``/trains`` entry)
carries ``progress``, the latest report of the GPU (phase, step of steps,
loss, estimated time left) or null before the first. The view draws it on
stderr, so stdout keeps only what scripts read.
"""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, Progress, TaskID, TextColumn

from sdmw_cli.cli import err, note
from sdmw_cli.events import progress_line


def describe(progress: dict[str, Any] | None) -> str:
    """The report in a few words (``events.progress_line``); "" before the first report."""
    return progress_line(progress) if progress else ""


class JobProgressView:
    """``with JobProgressView("job 1234") as view: view.update(answer)`` for each answer read."""

    def __init__(self, title: str) -> None:
        self._title = title
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last_line = ""

    def __enter__(self) -> JobProgressView:
        if err.is_terminal:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[detail]}"),
                console=err,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self._title, total=100, detail="waiting for the GPU")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, answer: dict[str, Any]) -> None:
        progress = answer.get("progress")
        line = describe(progress)
        if self._bar is not None and self._task is not None:
            fraction = float((progress or {}).get("fraction", 0.0))
            self._bar.update(self._task, completed=100 * fraction, detail=line or str(answer.get("status", "")))
        elif line and line != self._last_line:  # not a terminal: one line per new report, none before the first
            note(f"{self._title}: {line}")
        self._last_line = line
