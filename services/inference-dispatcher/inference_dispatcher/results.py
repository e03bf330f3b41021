"""SageMaker's async notifications, and the runtime's answer where a job's result is in it.

The runtime writes a generation's files itself (``out/<id>/result/image_<n>.jpg``
and ``<id>_param.json``, where the seed's clients look) before it answers, so a
success notification is all a generation needs. An interrogation's caption and
a merge's checkpoint are read from the answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sdmw_contracts.runtime import InvocationResponse


class UnreadableResult(ValueError):
    """The runtime's answer does not hold what the job needs."""


@dataclass(frozen=True)
class Notification:
    """SageMaker's async inference notification (success or error topic)."""

    raw: dict[str, Any]

    @property
    def inference_id(self) -> str:
        return str(self.raw.get("inferenceId", ""))

    @property
    def completed(self) -> bool:
        return self.raw.get("invocationStatus") == "Completed"

    @property
    def output_location(self) -> str | None:
        return self.raw.get("responseParameters", {}).get("outputLocation")

    @property
    def answer_location(self) -> str | None:
        """Where SageMaker wrote the runtime's answer: the output on success, the failure object otherwise."""
        parameters = self.raw.get("responseParameters", {})
        return parameters.get("outputLocation") or parameters.get("failureLocation")

    @property
    def failure_reason(self) -> str:
        return str(self.raw.get("failureReason") or "SageMaker reported the invocation failed without a reason")

    def as_seed_text(self) -> str:
        # The seed's sagemakerRaw is the notification as Python prints a dict.
        return str(self.raw)


def parse_response(body: bytes) -> InvocationResponse:
    try:
        return InvocationResponse.model_validate_json(body)
    except ValidationError as exc:
        raise UnreadableResult(f"the runtime's answer is not in the expected shape: {exc.errors()[0]['msg']}") from exc


def caption(response: InvocationResponse) -> str:
    """A1111's interrogate answer, ``caption``; an interrogation's answer without one is unreadable."""
    if response.caption is None:
        raise UnreadableResult("the runtime's answer to an interrogation has no caption")
    return response.caption


def merged_output(response: InvocationResponse) -> str | None:
    """Where the runtime wrote the merged checkpoint, as its ``info`` says."""
    try:
        info = json.loads(response.info or "{}")
    except ValueError:
        return None
    uri = info.get("output_s3_uri") if isinstance(info, dict) else None
    return uri if isinstance(uri, str) and uri.startswith("s3://") else None
