"""SageMaker's ``/opt/ml`` training contract: where inputs are, where results and failures go.

SageMaker copies each input channel to ``input/data/<channel>/``, the
hyperparameters to ``input/config/hyperparameters.json`` (every value a
string), uploads whatever is left in ``model/`` when the process exits 0, and
reports the text of ``output/failure`` as the job's ``FailureReason`` when it
exits non-zero. ``SD_RUNTIME_ML_ROOT`` moves the root (the local SageMaker
runs the container on a temporary directory).

This module imports no torch: a bad hyperparameter fails in milliseconds.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sdmw_contracts.training import MAX_HYPERPARAMETER_LENGTH, TrainingHyperparameters

DEFAULT_ML_ROOT = "/opt/ml"
#: SageMaker keeps the first 1024 characters of a FailureReason.
MAX_FAILURE_LENGTH = 1024


class TrainingError(Exception):
    """The job cannot run as asked; the message says what to change (it becomes the FailureReason)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def log(message: str) -> None:
    """One line of the job's log (SageMaker sends stdout to CloudWatch; metrics are read from it)."""
    print(message, flush=True)


def log_written(target: Path) -> None:
    """One line naming what a job leaves for SageMaker to upload."""
    files = sorted(p for p in target.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    names = ", ".join(str(p.relative_to(target)) for p in files[:12]) + (" ..." if len(files) > 12 else "")
    log(f"wrote {len(files)} files ({size / 2**20:.1f} MiB) to {target}: {names}")


@dataclass(frozen=True)
class MLPaths:
    root: Path

    @classmethod
    def from_env(cls) -> MLPaths:
        return cls(Path(os.environ.get("SD_RUNTIME_ML_ROOT") or DEFAULT_ML_ROOT))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    def channel(self, name: str) -> Path | None:
        """The channel's folder, or None when the job has no such channel (or it is empty)."""
        path = self.root / "input" / "data" / name
        if not path.is_dir() or not any(path.iterdir()):
            return None
        return path

    def channels(self, name: str) -> list[Path]:
        """``name``, ``name-1``, ``name-2``...: training-manager gives each dataset a channel of its own."""
        found = [self.channel(name)]
        found += [self.channel(path.name) for path in self._numbered(name)]
        return [path for path in found if path is not None]

    def _numbered(self, name: str) -> list[Path]:
        data = self.root / "input" / "data"
        numbered = [p for p in data.glob(f"{name}-*") if p.name.removeprefix(f"{name}-").isdigit()]
        return sorted(numbered, key=lambda p: int(p.name.removeprefix(f"{name}-")))

    def write_failure(self, message: str) -> None:
        text = " ".join(message.split())
        if len(text) > MAX_FAILURE_LENGTH:
            text = text[: MAX_FAILURE_LENGTH - 3] + "..."
        try:
            self.failure.parent.mkdir(parents=True, exist_ok=True)
            self.failure.write_text(text + "\n")
        except OSError as error:  # still say why on stderr, which SageMaker logs
            print(f"could not write {self.failure}: {error}", file=sys.stderr)
        print(f"training failed: {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Hyperparameters:
    """The job's hyperparameters, and which of them were sent with a value other than the default.

    Training-manager sends every field (``to_sagemaker`` dumps defaults too),
    so "sent" cannot be told from "left at its default" by the key alone: a
    value equal to the default counts as not set, and then an uploaded
    db_config may decide it.
    """

    values: TrainingHyperparameters
    explicit: frozenset[str]


def read_hyperparameters(paths: MLPaths) -> Hyperparameters:
    file = paths.hyperparameters
    if not file.is_file():
        raise TrainingError(
            f"{file} is missing: the training job must be created with HyperParameters (at least task and model_name)"
        )
    try:
        raw = json.loads(file.read_text() or "{}")
    except ValueError as error:
        raise TrainingError(f"{file} is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise TrainingError(f"{file} must hold a JSON object of hyperparameters, not {type(raw).__name__}")
    too_long = sorted(k for k, v in raw.items() if isinstance(v, str) and len(v) > MAX_HYPERPARAMETER_LENGTH)
    if too_long:
        raise TrainingError(
            f"hyperparameter {too_long[0]} is longer than SageMaker's {MAX_HYPERPARAMETER_LENGTH} characters"
        )
    strings = {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    try:
        values = TrainingHyperparameters.from_sagemaker(strings)
    except ValidationError as error:
        raise TrainingError(_hyperparameter_message(error, raw)) from None
    fields = TrainingHyperparameters.model_fields
    explicit = frozenset(
        key
        for key in raw
        if key in fields and getattr(values, key) != fields[key].get_default(call_default_factory=True)
    )
    return Hyperparameters(values, explicit)


def _hyperparameter_message(error: ValidationError, raw: dict[str, Any]) -> str:
    known = ", ".join(TrainingHyperparameters.model_fields)
    problems = []
    for item in error.errors()[:5]:
        name = str(item["loc"][0]) if item["loc"] else "hyperparameters"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown hyperparameter {name!r} (sd-runtime train knows: {known})")
        elif item["type"] == "missing":
            problems.append(f"hyperparameter {name} is required")
        else:
            sent = raw.get(name)
            shown = f" (got {sent!r})" if sent is not None and len(str(sent)) < 200 else ""
            problems.append(f"invalid hyperparameter {name}: {item['msg']}{shown}")
    more = f" (and {error.error_count() - 5} more)" if error.error_count() > 5 else ""
    return "; ".join(problems) + more
