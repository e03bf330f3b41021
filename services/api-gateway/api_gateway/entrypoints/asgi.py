"""ASGI entrypoint: ``uvicorn api_gateway.entrypoints.asgi:app``."""

from api_gateway.bootstrap import http_app

app = http_app()
