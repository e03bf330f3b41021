"""InvokeEndpointAsync as SageMaker Runtime answers it: headers in, an accepted AsyncRequest out.

The wire protocol is botocore's ``sagemaker-runtime`` (REST-JSON):
``POST /endpoints/{EndpointName}/async-invocations`` with the members in
``X-Amzn-SageMaker-*`` headers and an optional inline payload as the body;
the answer is 202 with ``{"InferenceId"}`` and the output and failure
locations in headers. Errors carry their code in ``X-Amzn-ErrorType``
(``ValidationError`` for anything wrong with the request or the endpoint),
which botocore turns into ``ClientError.response["Error"]["Code"]``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from infra.local.sagemaker.async_inference import AsyncInference, AsyncRequest, OutputConfig, join_s3
from infra.local.sagemaker.common import ApiError
from infra.local.sagemaker.state import Endpoint, LocalSageMaker

DEFAULT_REQUEST_TTL_S = 6 * 60 * 60
DEFAULT_INVOCATION_TIMEOUT_S = 15 * 60

# Header members of InvokeEndpointAsyncInput: member, header, min and max length, pattern.
# Bounds and patterns are the service model's (Java regexes written for Python's re.fullmatch).
ASCII = r"[\x00-\x7f]*"
STRING_MEMBERS = (
    ("ContentType", "X-Amzn-SageMaker-Content-Type", 0, 1024, ASCII),
    ("Accept", "X-Amzn-SageMaker-Accept", 0, 1024, ASCII),
    ("CustomAttributes", "X-Amzn-SageMaker-Custom-Attributes", 0, 1024, ASCII),
    ("InferenceId", "X-Amzn-SageMaker-Inference-Id", 1, 64, r"\S[\x20-\x7e]*"),
    ("InputLocation", "X-Amzn-SageMaker-InputLocation", 1, 1024, r"(https|s3)://([^/]+)/?(.*)"),
    ("S3OutputPathExtension", "X-Amzn-SageMaker-S3OutputPathExtension", 1, 512, r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+"),
    ("Filename", "X-Amzn-SageMaker-Filename", 1, 32, r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*"),
)
INTEGER_MEMBERS = (
    ("RequestTTLSeconds", "X-Amzn-SageMaker-RequestTTLSeconds", 60, 21600),
    ("InvocationTimeoutSeconds", "X-Amzn-SageMaker-InvocationTimeoutSeconds", 1, 3600),
)
ENDPOINT_NAME_PATTERN = r"[a-zA-Z0-9](-*[a-zA-Z0-9])*"
MAX_INLINE_BODY = 128_000


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationError", message)


# Request validation, worded as SageMaker Runtime words it


def _violation(member: str, value: Any, constraint: str) -> str:
    return (
        f"Value '{value}' at '{member[0].lower() + member[1:]}' failed to satisfy constraint: Member must {constraint}"
    )


def _string_violations(member: str, value: str, low: int, high: int, pattern: str) -> list[str]:
    if len(value) < low:
        return [_violation(member, value, f"have length greater than or equal to {low}")]
    if len(value) > high:
        return [_violation(member, value, f"have length less than or equal to {high}")]
    if not re.fullmatch(pattern, value):
        return [_violation(member, value, f"satisfy regular expression pattern: {pattern}")]
    return []


def _integer(member: str, raw: str, low: int, high: int, violations: list[str]) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        violations.append(_violation(member, raw, "be an integer"))
        return None
    if value < low:
        violations.append(_violation(member, value, f"have value greater than or equal to {low}"))
    elif value > high:
        violations.append(_violation(member, value, f"have value less than or equal to {high}"))
    return value


def parse_invocation(endpoint_name: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The request's members by name, or ValidationError."""
    violations = _string_violations("EndpointName", endpoint_name, 1, 63, ENDPOINT_NAME_PATTERN)
    members: dict[str, Any] = {"EndpointName": endpoint_name}
    for member, header, low, high, pattern in STRING_MEMBERS:
        if (value := headers.get(header)) is not None:
            violations += _string_violations(member, value, low, high, pattern)
            members[member] = value
    for member, header, low, high in INTEGER_MEMBERS:
        if (raw := headers.get(header)) is not None:
            members[member] = _integer(member, raw, low, high, violations)
    if len(body) > MAX_INLINE_BODY:
        violations.append(
            _violation("Body", f"<{len(body)} bytes>", f"have length less than or equal to {MAX_INLINE_BODY}")
        )
    if violations:
        count = len(violations)
        raise validation_error(f"{count} validation error{'s' if count > 1 else ''} detected: {'; '.join(violations)}")
    if body:
        members["Body"] = body
    if ("InputLocation" in members) == ("Body" in members):
        raise validation_error("Provide exactly one of InputLocation and Body.")
    if members.get("InputLocation", "s3://").startswith("https://"):
        raise validation_error("The local SageMaker reads InputLocation from s3:// URIs only.")
    return members


# Accepting a request


def _async_endpoint(sm: LocalSageMaker, name: str) -> Endpoint:
    """The endpoint if it can take async requests now; call with the state lock held."""
    try:
        endpoint = sm.endpoint(name)
    except ApiError:
        raise validation_error(f"Endpoint {name} of account {sm.settings.account} not found.") from None
    if endpoint.async_inference_config is None:
        raise validation_error(f"Endpoint {name} of account {sm.settings.account} is not an async inference endpoint.")
    if endpoint.status != "InService":
        raise validation_error(
            f"Endpoint {name} of account {sm.settings.account} is not in service (its status is {endpoint.status})."
        )
    return endpoint


def _locations(config: OutputConfig, members: Mapping[str, Any]) -> tuple[str, str | None]:
    """Output and failure locations, decided at invoke time as SageMaker does: <path>/<uuid>.out, <uuid>-error.out."""
    if not config.s3_output_path:
        raise validation_error("The endpoint's AsyncInferenceConfig has no OutputConfig.S3OutputPath.")
    name = str(uuid.uuid4())
    extension = members.get("S3OutputPathExtension", "")
    output = join_s3(config.s3_output_path, extension, members.get("Filename") or f"{name}.out")
    failure = join_s3(config.s3_failure_path, extension, f"{name}-error.out") if config.s3_failure_path else None
    return output, failure


def accept_invocation(
    sm: LocalSageMaker, plane: AsyncInference, endpoint_name: str, headers: Mapping[str, str], body: bytes
) -> AsyncRequest:
    """Validate an InvokeEndpointAsync request and queue it on its endpoint."""
    members = parse_invocation(endpoint_name, headers, body)
    with sm.lock:
        endpoint = _async_endpoint(sm, endpoint_name)
        endpoint_queue = plane.queue(endpoint.arn)
        if endpoint_queue is None:  # InService without a queue: it is starting to serve
            raise ApiError("ServiceUnavailable", f"Endpoint {endpoint_name} is not serving yet; try again.")
        output_location, failure_location = _locations(endpoint_queue.config, members)
        request = AsyncRequest(
            endpoint_name=endpoint.name,
            inference_id=members.get("InferenceId") or str(uuid.uuid4()),
            input_location=members.get("InputLocation"),
            payload=members.get("Body"),
            content_type=members.get("ContentType"),
            accept=members.get("Accept"),
            custom_attributes=members.get("CustomAttributes"),
            output_location=output_location,
            failure_location=failure_location,
            request_ttl_s=members.get("RequestTTLSeconds") or DEFAULT_REQUEST_TTL_S,
            invocation_timeout_s=members.get("InvocationTimeoutSeconds") or DEFAULT_INVOCATION_TIMEOUT_S,
        )
        endpoint_queue.submit(request)
    return request
