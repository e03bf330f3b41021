"""Answers of the routes that act on a job after it was submitted: its log lines, and its deletion.

``GET /jobs/{job_id}/logs`` reads what the job's container wrote, as CloudWatch
Logs holds it (a training job's streams; for an inference job, the lines of
its endpoint's log that name it). ``next_token`` continues after the last line
answered; when no more lines are there yet it still comes back, so a client
following a running job asks again with it for the lines written since.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sdmw_contracts.api.common import ApiModel


class LogLine(ApiModel):
    timestamp: datetime = Field(description="When CloudWatch Logs got the line (ISO 8601, UTC).")
    message: str


class JobLogs(ApiModel):
    job_id: str
    lines: list[LogLine] = Field(default_factory=list, description="Oldest first.")
    next_token: str | None = Field(
        default=None, description="Ask again with it for the lines after these; null when there were none yet."
    )


class Deleted(ApiModel):
    """What a delete answers once the owner has forgotten the thing."""

    id: str
    deleted: bool = True
