"""Reading a job's log lines from CloudWatch Logs, where SageMaker puts its containers' output.

A training job's lines are its streams in ``/aws/sagemaker/TrainingJobs``
(``<TrainingJobName>/algo-1-<epoch>``); an inference job's are the lines of
its endpoint's group ``/aws/sagemaker/Endpoints/<EndpointName>`` that name the
job (the runtime names the job in each line about it).

Pages continue by a token of this module's own, not CloudWatch's: it holds
the time of the last line answered and how many lines at that time were
answered, so the next page starts there and skips those (CloudWatch keeps
lines of the same time in the order they came). Unlike CloudWatch's
token it stays good at the end of the log, which is what following a running
job needs: asked again later, it answers the lines written since.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from service_kit import aws

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
#: One answer holds at most this much text, well inside a Lambda response (6 MB).
MAX_PAGE_CHARS = 1_000_000
#: CloudWatch's filter calls take at most 100 stream names.
MAX_STREAMS = 100
#: CloudWatch may answer a filter with empty pages while it searches; one answer reads at most this many,
#: so it comes well inside API Gateway's 29 s.
MAX_CALLS = 10
#: A job's lines are looked for from a little before it was created (clocks differ).
SLACK_MS = 60_000


def endpoint_log_group(endpoint_name: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint_name}"


class BadToken(ValueError):
    """A next_token this module did not make."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last line's time (epoch ms) and how many lines of that time were answered."""

    at_ms: int = 0
    answered_at: int = 0

    def encode(self) -> str:
        text = json.dumps({"t": self.at_ms, "n": self.answered_at}, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            at_ms, answered_at = data["t"], data["n"]
        except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            raise BadToken("next_token: not a token this route answered") from exc
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (at_ms, answered_at)):
            raise BadToken("next_token: not a token this route answered")
        return cls(at_ms, answered_at)


@dataclass
class Page:
    lines: list[tuple[datetime, str]] = field(default_factory=list)
    cursor: Cursor | None = None


class LogReader(Protocol):
    def training_lines(self, job_name: str, since: datetime, cursor: Cursor | None, limit: int) -> Page: ...
    def endpoint_lines(
        self, endpoint_name: str, job_id: str, since: datetime, cursor: Cursor | None, limit: int
    ) -> Page: ...


class CloudWatchLogReader:
    """Pages of log lines from CloudWatch Logs; its client is made on first use."""

    def __init__(self, logs: Any = None) -> None:
        self._logs = logs

    @property
    def _client(self) -> Any:
        if self._logs is None:
            self._logs = aws.client("logs")
        return self._logs

    def training_lines(self, job_name: str, since: datetime, cursor: Cursor | None, limit: int) -> Page:
        """The lines of the job's streams, from ``since`` (the job's creation) or the cursor on."""
        streams = self._streams(TRAINING_LOG_GROUP, f"{job_name}/")
        if not streams:
            return Page(cursor=cursor)
        request = {"logGroupName": TRAINING_LOG_GROUP, "logStreamNames": streams}
        return self._page(request, cursor or _from(since), cursor, limit)

    def endpoint_lines(
        self, endpoint_name: str, job_id: str, since: datetime, cursor: Cursor | None, limit: int
    ) -> Page:
        """The lines of the endpoint's log that name the job, from ``since`` (the job's creation) or the cursor on."""
        # A quoted term matches lines holding it exactly, dashes included.
        request = {"logGroupName": endpoint_log_group(endpoint_name), "filterPattern": f'"{job_id}"'}
        return self._page(request, cursor or _from(since), cursor, limit)

    def _streams(self, group: str, prefix: str) -> list[str]:
        try:
            answer = self._client.describe_log_streams(logGroupName=group, logStreamNamePrefix=prefix)
        except ClientError as exc:
            if _is_missing(exc):
                return []
            raise
        return [stream["logStreamName"] for stream in answer.get("logStreams", [])][-MAX_STREAMS:]

    def _page(self, request: dict[str, Any], start: Cursor, cursor: Cursor | None, limit: int) -> Page:
        """Up to ``limit`` lines after ``start``; the cursor answered stays ``cursor`` when there are none."""
        page = Page(cursor=cursor)
        chars, to_skip = 0, start.answered_at
        at_ms, answered_at = start.at_ms, start.answered_at
        try:
            for event in self._events_from(request, start):
                timestamp = int(event["timestamp"])
                if timestamp == start.at_ms and to_skip:
                    to_skip -= 1  # answered on an earlier page
                    continue
                message = str(event.get("message", "")).rstrip("\n")
                if len(page.lines) >= limit or (page.lines and chars + len(message) > MAX_PAGE_CHARS):
                    break
                page.lines.append((datetime.fromtimestamp(timestamp / 1000, UTC), message))
                chars += len(message)
                answered_at = answered_at + 1 if timestamp == at_ms else 1
                at_ms = timestamp
        except ClientError as exc:
            if not _is_missing(exc):
                raise
            return page  # no such group yet: nothing was written
        if page.lines:
            page.cursor = Cursor(at_ms, answered_at)
        return page

    def _events_from(self, request: dict[str, Any], start: Cursor) -> Iterator[dict[str, Any]]:
        """Every event from the cursor's time on, oldest first, page after CloudWatch page."""
        kwargs: dict[str, Any] = {**request, "startTime": start.at_ms, "interleaved": True}
        for _ in range(MAX_CALLS):
            answer = self._client.filter_log_events(**kwargs)
            yield from sorted(answer.get("events", []), key=lambda event: event["timestamp"])
            token = answer.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                return
            kwargs["nextToken"] = token


def _from(since: datetime) -> Cursor:
    return Cursor(at_ms=max(0, int(since.timestamp() * 1000) - SLACK_MS))


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
