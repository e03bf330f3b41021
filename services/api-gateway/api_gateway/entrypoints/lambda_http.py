"""AWS Lambda entrypoint behind API Gateway (REST API, stage in the path)."""

from mangum import Mangum

from api_gateway.entrypoints.asgi import app

handler = Mangum(app, lifespan="off")
