"""AWS Lambda entrypoint behind API Gateway (REST API), with Powertools' logger and tracer."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from mangum import Mangum

from api_gateway import SERVICE
from api_gateway.entrypoints.asgi import app
from api_gateway.paths import with_stage_in_path
from service_kit.lambda_entry import lambda_entry

_mangum = Mangum(app, lifespan="off")


def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _mangum(with_stage_in_path(event), context)


handler = lambda_entry(
    SERVICE,
    _handle,
    correlation_id_path=correlation_paths.API_GATEWAY_REST,
    capture_response=False,  # HTTP bodies (lists, presigned URLs) stay out of the trace
)
