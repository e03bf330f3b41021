"""AWS Lambda entrypoint behind API Gateway (REST API, stage in the path), with Powertools' logger and tracer."""

from aws_lambda_powertools.logging import correlation_paths
from mangum import Mangum

from api_gateway import SERVICE
from api_gateway.entrypoints.asgi import app
from service_kit.lambda_entry import lambda_entry

handler = lambda_entry(
    SERVICE,
    Mangum(app, lifespan="off"),
    correlation_id_path=correlation_paths.API_GATEWAY_REST,
    capture_response=False,  # HTTP bodies (lists, presigned URLs) stay out of the trace
)
