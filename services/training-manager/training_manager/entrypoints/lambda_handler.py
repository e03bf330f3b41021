"""AWS Lambda entrypoint (SQS event source with ReportBatchItemFailures)."""

from typing import Any

from training_manager.bootstrap import bootstrap

_app = bootstrap()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _app.consumer.handle_batch(event, context)
