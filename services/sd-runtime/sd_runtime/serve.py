"""``serve``: the HTTP side of the SageMaker container contract.

SageMaker sends ``GET /ping`` until it answers 200 and only then routes
traffic to the instance. The port comes from ``SAGEMAKER_BIND_TO_PORT``
(SageMaker sets it; 8080 otherwise). SageMaker needs ``0.0.0.0``; a local run
can keep the server off the network with ``SD_RUNTIME_HOST=127.0.0.1``.
"""

from __future__ import annotations

import os

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEFAULT_PORT = 8080
DEFAULT_HOST = "0.0.0.0"


async def ping(request: Request) -> Response:
    # Nothing is loaded at start-up yet, so a running server is a ready one.
    return Response(status_code=200)


def create_app() -> Starlette:
    return Starlette(routes=[Route("/ping", ping, methods=["GET"])])


def serve() -> None:
    host = os.environ.get("SD_RUNTIME_HOST", DEFAULT_HOST)
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT))
    uvicorn.run(create_app(), host=host, port=port, log_level="info")
