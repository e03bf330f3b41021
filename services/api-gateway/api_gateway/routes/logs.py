"""``GET /jobs/{job_id}/logs``: a job's log lines, as its container wrote them (``api_gateway.job_logs``).

A training job's lines are its SageMaker training job's streams; an inference
job's are the lines of its endpoint's log that name it. A job known but not
started yet, or whose log group does not exist yet, has no lines.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api_gateway.dependencies import EdgeDependencies, edge
from api_gateway.errors import ApiError, answers, not_found
from api_gateway.job_logs import BadToken, Cursor, Page
from api_gateway.routes import MAX_ID_LENGTH
from sdmw_contracts.api.jobs import JobLogs, LogLine
from sdmw_contracts.events import InferenceJobChanged, TrainJobChanged

router = APIRouter(tags=["jobs"])
Edge = Annotated[EdgeDependencies, Depends(edge)]
JobIdPath = Annotated[
    str, Path(min_length=1, max_length=MAX_ID_LENGTH, examples=["1f9679f3-25b8-4c44-8345-0a845da30094"])
]
DEFAULT_LINES = 100
MAX_LINES = 1000
#: A token holds two numbers; anything much longer is not one this route answered.
MAX_TOKEN_CHARS = 200


@router.get("/jobs/{job_id}/logs", responses=answers(400, 404, 503))
def job_logs(
    job_id: JobIdPath,
    deps: Edge,
    next_token: Annotated[
        str | None, Query(max_length=MAX_TOKEN_CHARS, description="The previous answer's next_token: go on after it.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LINES, description="At most this many lines.")] = DEFAULT_LINES,
) -> JobLogs:
    """The job's log lines, oldest first; ``next_token`` continues after them, now or once more are written."""
    try:
        cursor = Cursor.decode(next_token) if next_token else None
    except BadToken as exc:
        raise ApiError(400, str(exc)) from exc
    page = _lines_of(job_id, deps, cursor, limit)
    return JobLogs(
        job_id=job_id,
        lines=[LogLine(timestamp=at, message=message) for at, message in page.lines],
        next_token=page.cursor.encode() if page.cursor else None,
    )


def _lines_of(job_id: str, deps: EdgeDependencies, cursor: Cursor | None, limit: int) -> Page:
    if (training := deps.read_model.get(TrainJobChanged, job_id)) is not None:
        if not training.sagemaker_job_name:
            return Page(cursor=cursor)  # not started: nothing written yet
        return deps.logs.training_lines(training.sagemaker_job_name, training.created_at, cursor, limit)
    if (inference := deps.read_model.get(InferenceJobChanged, job_id)) is not None:
        if not inference.endpoint_name:
            return Page(cursor=cursor)
        return deps.logs.endpoint_lines(inference.endpoint_name, job_id, inference.start_time, cursor, limit)
    raise not_found(f"no job {job_id}")
