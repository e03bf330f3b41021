"""Whether a job can run, decided at the edge from its read model when the request arrives.

The endpoint must be in service and every model the request names must be an
Active checkpoint, found by the one rule every service uses
(``CheckpointChanged.model_named``: A1111's `` [hash]`` ignored, a file named
with or without its extension). What is found travels in the command resolved
to S3, so nothing downstream looks a name up again, and a request naming
something unknown is answered at once instead of failing minutes later.

What was found is kept for ``ttl_s`` (a read-through cache per process): a
job's submission then costs no lookups while the catalogue stands still. Only
what was found is kept, never what was not, so a checkpoint or endpoint that
has just become ready is seen at once; one removed within ``ttl_s`` fails the
job downstream instead, with the same message SageMaker or the runtime gives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from api_gateway.catalogue import AmbiguousName, find_model
from api_gateway.read_model import ReadModel
from sdmw_contracts.api.inference import BASE_MODEL_TYPE
from sdmw_contracts.generation import GenerationParams
from sdmw_contracts.runtime import ModelRef, ModelSet, plain_model_name

#: Long enough that a stream of jobs costs no lookups, short enough that a removal is soon noticed.
DEFAULT_TTL_S = 10.0
#: The WebUI extension names every ControlNet model ``<ControlNet's title>.pth``, whatever its file is
#: (a ``.safetensors`` too): such a name that no file has means the model of that stem.
CONTROLNET_ASSUMED_SUFFIX = ".pth"


class CannotRun(Exception):
    """The job cannot run; the message says why, for the user."""


class ModelNotFound(CannotRun):
    """No Active checkpoint of the type holds the model the name means."""


class Directory:
    """In-service endpoints and Active models by name, read through a short-lived cache."""

    def __init__(
        self, read_model: ReadModel, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._read_model = read_model
        self._ttl_s = ttl_s
        self._clock = clock
        self._found: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def endpoint_in_service(self, name: str) -> str:
        """``name``, if that endpoint is in service; CannotRun saying what it is otherwise."""
        return self._cached(("endpoint", name), lambda: self._in_service(name))

    def any_endpoint_in_service(self) -> str:
        for job in self._read_model.endpoint_jobs():
            if job.status == "success" and job.endpoint_status == "InService":
                return job.endpoint_name
        raise CannotRun("no endpoint is InService")

    def model(self, model_type: str, title: str) -> ModelRef:
        """The Active model of ``model_type`` that ``title`` names; CannotRun when there is none."""
        return self._cached(("model", model_type, title), lambda: self._find_model(model_type, title))

    def _in_service(self, name: str) -> str:
        job = self._read_model.endpoint_job_named(name, include_failed=False)
        if job is None:
            raise CannotRun(f"endpoint {name} does not exist")
        if job.endpoint_status != "InService":
            raise CannotRun(f"endpoint {name} is {job.endpoint_status or job.status}, not InService")
        return name

    def _find_model(self, model_type: str, title: str) -> ModelRef:
        try:
            found = find_model(self._read_model, model_type, title)
            if found is None and model_type == "ControlNet" and title.endswith(CONTROLNET_ASSUMED_SUFFIX):
                found = find_model(self._read_model, model_type, title.removesuffix(CONTROLNET_ASSUMED_SUFFIX))
        except AmbiguousName as exc:
            raise CannotRun(str(exc)) from None
        if found is None:
            raise ModelNotFound(f"no Active checkpoint for: {plain_model_name(title)} ({model_type})")
        return found

    def _cached(self, key: tuple[str, ...], look_up: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            hit = self._found.get(key)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        value = look_up()  # raises CannotRun, which is never kept
        with self._lock:
            self._found[key] = (now, value)
        return value


def resolve_models(directory: Directory, models: dict[str, list[str]], params: GenerationParams | None) -> ModelSet:
    """Every model the request names, resolved; CannotRun naming each one that is not Active.

    ``models`` may name types the runtime does not use (VAE): they must exist too, as the seed's clients
    pick them from the list of checkpoints.
    """
    wanted = [(kind, title) for kind, titles in models.items() for title in titles]
    unit_titles = params.controlnet_titles() if params is not None else []
    found = resolve_all(directory, wanted + [("ControlNet", title) for title in unit_titles])

    def refs(kind: str) -> list[ModelRef]:
        return [found[kind, title] for title in dict.fromkeys(models.get(kind, []))]

    return ModelSet(
        checkpoint=(refs(BASE_MODEL_TYPE) or [None])[0],
        loras=refs("Lora"),
        embeddings=refs("embeddings"),
        hypernetworks=refs("hypernetworks"),
        controlnets={title: found["ControlNet", title] for title in unit_titles},
    )


def resolve_all(directory: Directory, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], ModelRef]:
    """(type, title) -> the model; CannotRun naming every one that is not Active, not just the first."""
    found: dict[tuple[str, str], ModelRef] = {}
    missing: list[str] = []
    ambiguous: list[str] = []
    for kind, title in dict.fromkeys(wanted):
        try:
            found[kind, title] = directory.model(kind, title)
        except ModelNotFound:
            missing.append(f"{plain_model_name(title)} ({kind})")
        except CannotRun as exc:
            ambiguous.append(str(exc))
    problems = ([f"no Active checkpoint for: {', '.join(missing)}"] if missing else []) + ambiguous
    if problems:
        raise CannotRun("; ".join(problems))
    return found
