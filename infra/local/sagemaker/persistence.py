"""What the local SageMaker keeps across a restart, as SageMaker does not forget when this machine stops.

When the server stops with ``Settings.state_dir`` set (``make down``: the
stack's ``.run/data/sagemaker``), ``save`` writes its models, endpoint configs,
endpoints, training jobs and the async invocations accepted and not answered
into ``state.json`` there. When it starts, ``restore`` puts them back: each
endpoint InService comes back InService and starts its instances (see
``LocalSageMaker._restore_endpoint``), each invocation is queued again on its
endpoint and runs, and a training job that was running ends Failed, with the
usual state-change event (its process is gone and cannot go on).

``restore`` removes the file once read: it is written again at the next clean
stop, so a server that crashes and is started again by the supervisor does
not run the same invocations twice.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from infra.local.sagemaker.async_inference import AsyncInference, AsyncRequest
from infra.local.sagemaker.common import ApiError
from infra.local.sagemaker.state import Endpoint, EndpointConfig, LocalSageMaker, Model, Variant
from infra.local.sagemaker.training import TrainingJob, Transition

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
VERSION = 1


def save(state_dir: Path, sagemaker: LocalSageMaker, plane: AsyncInference) -> dict[str, int]:
    """Write everything down; answers how many endpoints, invocations and training jobs were kept."""
    with sagemaker.lock:
        state = {
            "version": VERSION,
            "models": [dataclasses.asdict(model) for model in sagemaker.models()],
            "endpoint_configs": [dataclasses.asdict(config) for config in sagemaker.endpoint_configs()],
            "endpoints": [_endpoint(endpoint) for endpoint in sagemaker.endpoints()],
            "async_invocations": [_request(request) for request in plane.unfinished()],
        }
    with sagemaker.training.lock:
        state["training_jobs"] = [_training_job(job) for job in sagemaker.training.jobs()]
    _write_private(state_dir / STATE_FILE, json.dumps(state))
    return {kind: len(state[kind]) for kind in ("endpoints", "async_invocations", "training_jobs")}


def restore(state_dir: Path, sagemaker: LocalSageMaker, plane: AsyncInference) -> None:
    """Put back what ``save`` wrote, if anything; call before the server takes requests."""
    state_file = state_dir / STATE_FILE
    if not state_file.is_file():
        return
    text = state_file.read_text(encoding="utf-8")
    state_file.unlink()  # first: a state that cannot be restored must not stop every later start
    try:
        counts = _restore(json.loads(text), sagemaker, plane)
    except Exception:
        log.exception("could not restore what the local SageMaker kept in %s; going on without it", state_file)
        return
    log.info("restored %s from %s", described(counts), state_dir)


def _restore(state: dict[str, Any], sagemaker: LocalSageMaker, plane: AsyncInference) -> dict[str, int]:
    if state.get("version") != VERSION:
        raise ValueError(f"version {state.get('version')!r}, not {VERSION}")
    sagemaker.restore(
        models=[Model(**saved) for saved in state["models"]],
        configs=[EndpointConfig(**saved) for saved in state["endpoint_configs"]],
        endpoints=[_endpoint_from(saved) for saved in state["endpoints"]],
    )
    _resume_invocations(sagemaker, plane, [_request_from(saved) for saved in state["async_invocations"]])
    sagemaker.training.restore([_training_job_from(saved) for saved in state["training_jobs"]])
    return {kind: len(state[kind]) for kind in ("endpoints", "async_invocations", "training_jobs")}


def described(counts: dict[str, int]) -> str:
    """For the log: "1 endpoints, 2 async invocations, 0 training jobs"."""
    return ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in counts.items())


def _resume_invocations(sagemaker: LocalSageMaker, plane: AsyncInference, requests: list[AsyncRequest]) -> None:
    by_endpoint: dict[str, list[AsyncRequest]] = {}
    for request in requests:
        by_endpoint.setdefault(request.endpoint_name, []).append(request)
    with sagemaker.lock:
        for name, waiting in by_endpoint.items():
            try:
                endpoint = sagemaker.endpoint(name)
            except ApiError:
                # Only the queue of an endpoint in service holds requests, and such an endpoint is kept.
                log.error("dropped %d async invocations of endpoint %s, which is not there", len(waiting), name)
                continue
            plane.resume(endpoint, waiting)


# Endpoints


def _endpoint(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "arn": endpoint.arn,
        "config_name": endpoint.config_name,
        "variants": [dataclasses.asdict(variant) for variant in endpoint.variants],
        "async_inference_config": endpoint.async_inference_config,
        "tags": endpoint.tags,
        "creation_time": endpoint.creation_time,
        "last_modified_time": endpoint.last_modified_time,
        "status": endpoint.status,
        "failure_reason": endpoint.failure_reason,
    }


def _endpoint_from(saved: dict[str, Any]) -> Endpoint:
    return Endpoint(**{**saved, "variants": [Variant(**variant) for variant in saved["variants"]]})


# Async invocations: an inline payload is bytes, kept as base64


def _request(request: AsyncRequest) -> dict[str, Any]:
    saved = dataclasses.asdict(request)
    if request.payload is not None:
        saved["payload"] = base64.b64encode(request.payload).decode("ascii")
    return saved


def _request_from(saved: dict[str, Any]) -> AsyncRequest:
    payload = saved["payload"]
    return AsyncRequest(**{**saved, "payload": None if payload is None else base64.b64decode(payload)})


# Training jobs: what DescribeTrainingJob tells, and where the job's files are


_TRAINING_JOB_FIELDS = (
    "name",
    "arn",
    "spec",
    "tags",
    "creation_time",
    "status",
    "secondary_status",
    "failure_reason",
    "last_modified_time",
    "training_start_time",
    "training_end_time",
    "model_artifacts",
    "stop_cause",
)


def _training_job(job: TrainingJob) -> dict[str, Any]:
    saved = {name: getattr(job, name) for name in _TRAINING_JOB_FIELDS}
    saved["directory"] = str(job.directory)
    saved["transitions"] = [dataclasses.asdict(transition) for transition in job.transitions]
    return saved


def _training_job_from(saved: dict[str, Any]) -> TrainingJob:
    return TrainingJob(
        **{name: saved[name] for name in _TRAINING_JOB_FIELDS},
        directory=Path(saved["directory"]),
        transitions=[Transition(**transition) for transition in saved["transitions"]],
    )


def _write_private(path: Path, text: str) -> None:
    """Atomically, readable by this user only: it holds the models' environments and inline payloads."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(work, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    work.replace(path)
