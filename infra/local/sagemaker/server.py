"""The local SageMaker's HTTP server: ``python -m infra.local.sagemaker.server``.

It speaks SageMaker's own wire protocol, so an unmodified boto3 ``sagemaker``
client reaches it through ``AWS_ENDPOINT_URL_SAGEMAKER``. The control plane is
AWS JSON 1.1: ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``; errors
are HTTP 400 with ``{"__type": <code>, "message": ...}``, which botocore turns
into ``ClientError.response["Error"]["Code"]``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from infra.local.sagemaker.control_plane import dispatch
from infra.local.sagemaker.state import ApiError, EventPublisher, LocalSageMaker, Settings

log = logging.getLogger(__name__)

JSON_1_1 = "application/x-amz-json-1.1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4567


def _answer(body: dict, status_code: int = 200) -> JSONResponse:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    return JSONResponse(body, status_code=status_code, media_type=JSON_1_1, headers=headers)


def _error(code: str, message: str, status_code: int = 400) -> JSONResponse:
    return _answer({"__type": code, "message": message}, status_code)


def _control_plane(sagemaker: LocalSageMaker):
    async def handle(request: Request) -> JSONResponse:
        service, _, operation = request.headers.get("x-amz-target", "").partition(".")
        if service != "SageMaker" or not operation:
            return _error("UnknownOperationException", "X-Amz-Target must be SageMaker.<Operation>.")
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return _error("SerializationException", "The request body is not valid JSON.")
        try:
            # Handlers take the state lock and may wait on it; keep them off the event loop.
            return _answer(await run_in_threadpool(dispatch, sagemaker, operation, body))
        except ApiError as error:
            return _error(error.code, error.message)
        except Exception:
            log.exception("%s failed", operation)
            return _error("InternalFailure", f"{operation} failed inside the local SageMaker.", 500)

    return handle


def create_app(settings: Settings | None = None, events: EventPublisher | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    sagemaker = LocalSageMaker(settings, events or EventPublisher.for_region(settings.region))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("instance logs go to %s", settings.workdir)
        yield
        # No instance outlives the server.
        await run_in_threadpool(sagemaker.shutdown)

    routes = [
        Route("/", _control_plane(sagemaker), methods=["POST"]),
        # The runtime plane (sagemaker-runtime, rest-json) goes here:
        # POST /endpoints/{name}/async-invocations for InvokeEndpointAsync, served
        # from Endpoint.instances and Endpoint.async_inference_config.
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sagemaker = sagemaker
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = os.environ.get("LOCAL_SAGEMAKER_HOST", DEFAULT_HOST)
    port = int(os.environ.get("LOCAL_SAGEMAKER_PORT", DEFAULT_PORT))
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
