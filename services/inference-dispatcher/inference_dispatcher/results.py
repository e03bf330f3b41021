"""SageMaker's async notifications, and turning the runtime's answer into the job's files.

Files land where the seed's clients look: ``out/<id>/result/image_<n>.jpg`` and
``out/<id>/result/<id>_param.json``.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from inference_dispatcher import jobs
from inference_dispatcher.adapters import Storage
from sdmw_contracts.events.inference import result_prefix
from sdmw_contracts.runtime import InvocationResponse


class UnreadableResult(ValueError):
    """The runtime's answer cannot be turned into images and parameters."""


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
    def failure_reason(self) -> str:
        return str(self.raw.get("failureReason") or "SageMaker reported the invocation failed without a reason")

    def as_seed_text(self) -> str:
        # The seed's sagemakerRaw is the notification as Python prints a dict.
        return str(self.raw)


def jpeg_from_base64(data: str) -> bytes:
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise UnreadableResult(f"an image in the runtime's answer is not a readable picture: {exc}") from exc
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=95)
    return out.getvalue()


def parse_response(body: bytes) -> InvocationResponse:
    try:
        return InvocationResponse.model_validate_json(body)
    except ValidationError as exc:
        raise UnreadableResult(f"the runtime's answer is not in the A1111 shape: {exc.errors()[0]['msg']}") from exc


def store_result(storage: Storage, job_id: str, response: InvocationResponse) -> int:
    """Write the images as JPEG and the parameter file; the number of images."""
    prefix = result_prefix(job_id)
    pictures = [jpeg_from_base64(image) for image in response.images]  # all readable before any is written
    for index, picture in enumerate(pictures):
        storage.put_bytes(prefix + jobs.image_name(index), picture, "image/jpeg")
    storage.put_json(prefix + jobs.param_name(job_id), {"parameters": response.parameters, "info": response.info})
    return len(pictures)
