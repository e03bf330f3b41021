"""What the services that call SageMaker share: its async notification topics and its error answers."""

from __future__ import annotations

from typing import Any

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


#: SageMaker makes its log groups on first use, with no retention (kept, and paid for, forever): the
#: services that start SageMaker work give them one. The training group is shared by every training job.
SAGEMAKER_LOG_RETENTION_DAYS = 30
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def endpoint_log_group(endpoint_name: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint_name}"


def keep_logs_for_a_while(logs: Any, group: str, days: int = SAGEMAKER_LOG_RETENTION_DAYS) -> str | None:
    """Create ``group`` if SageMaker has not yet, and set its retention; safe to repeat.

    Returns why it could not (the caller logs it): a retention is housekeeping, and the endpoint or job
    it is for goes ahead without it.
    """
    try:
        try:
            logs.create_log_group(logGroupName=group)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
        logs.put_retention_policy(logGroupName=group, retentionInDays=days)
    except ClientError as exc:
        return f"no retention set on {group}: {describe_error(exc)}"
    return None
