"""What the services that call SageMaker share: its async notification topics and its error answers."""

from __future__ import annotations

from botocore.exceptions import ClientError

#: The core stack's SNS topics (infra/core.py creates them) that SageMaker async inference notifies:
#: endpoint-manager names them in every endpoint config, inference-dispatcher subscribes to both.
ASYNC_SUCCESS_TOPIC = "async-success"
ASYNC_ERROR_TOPIC = "async-error"

#: Codes that mean "no such resource" on their own. SageMaker itself answers a missing model, endpoint,
#: config or training job with a ValidationException whose message says so.
_NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ObjectNotFoundException"})
_NOT_FOUND_MESSAGES = ("could not find", "not found")


def _code_and_message(error: ClientError) -> tuple[str, str]:
    details = error.response.get("Error", {})
    return details.get("Code", ""), details.get("Message", "")


def is_not_found(error: ClientError) -> bool:
    """Whether SageMaker (or Application Auto Scaling, or CloudWatch) said the resource does not exist."""
    code, message = _code_and_message(error)
    if code in _NOT_FOUND_CODES:
        return True
    # The control plane says ValidationException; SageMaker Runtime (InvokeEndpointAsync) says ValidationError.
    validation = code in ("ValidationException", "ValidationError")
    return validation and any(words in message.lower() for words in _NOT_FOUND_MESSAGES)


def already_exists(error: ClientError) -> bool:
    """Whether a create call found its resource already there (a retried command)."""
    code, message = _code_and_message(error)
    return code == "ResourceInUse" or "already exist" in message


def describe_error(error: ClientError) -> str:
    """``Code: message``, as a failure reason a user can read."""
    code, message = _code_and_message(error)
    return f"{code or 'Error'}: {message or error}"
