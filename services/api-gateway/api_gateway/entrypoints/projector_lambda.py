"""AWS Lambda entrypoint of the read-model projector (SQS, partial batch failures)."""

from typing import Any

from api_gateway.bootstrap import projector

_config, _consumer = projector()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _consumer.handle_batch(event, context)
