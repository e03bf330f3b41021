"""The local SageMaker's HTTP server: ``python -m infra.local.sagemaker.server``.

It speaks SageMaker's own wire protocols, so unmodified boto3 ``sagemaker``
and ``sagemaker-runtime`` clients reach it through ``AWS_ENDPOINT_URL_SAGEMAKER``
and ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` (same host and port). The control
plane is AWS JSON 1.1: ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``;
errors are HTTP 400 with ``{"__type": <code>, "message": ...}``. The runtime
plane is REST-JSON: ``POST /endpoints/{name}/async-invocations``
(InvokeEndpointAsync); errors carry their code in ``X-Amzn-ErrorType``. Either
way botocore turns the code into ``ClientError.response["Error"]["Code"]``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from infra.local.sagemaker import persistence
from infra.local.sagemaker.async_inference import AsyncInference
from infra.local.sagemaker.common import ApiError, EventPublisher, Settings
from infra.local.sagemaker.control_plane import dispatch
from infra.local.sagemaker.log_shipping import LogShipper
from infra.local.sagemaker.runtime_plane import accept_invocation
from infra.local.sagemaker.state import LocalSageMaker

log = logging.getLogger(__name__)

JSON_1_1 = "application/x-amz-json-1.1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4567
RUNTIME_ERROR_STATUS = {"ValidationError": 400, "ServiceUnavailable": 503, "InternalFailure": 500}
SHUTDOWN_REASON = "The local SageMaker shut down before the request completed."
DRAIN_TIMEOUT_S = 30.0


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


def _runtime_error(code: str, message: str) -> JSONResponse:
    headers = {"x-amzn-RequestId": str(uuid.uuid4()), "X-Amzn-ErrorType": code}
    return JSONResponse({"message": message}, status_code=RUNTIME_ERROR_STATUS.get(code, 400), headers=headers)


def _runtime_plane(sagemaker: LocalSageMaker, plane: AsyncInference):
    async def invoke_endpoint_async(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        body = await request.body()
        try:
            accepted = await run_in_threadpool(accept_invocation, sagemaker, plane, name, request.headers, body)
        except ApiError as error:
            return _runtime_error(error.code, error.message)
        except Exception:
            log.exception("InvokeEndpointAsync on %s failed", name)
            return _runtime_error("InternalFailure", "InvokeEndpointAsync failed inside the local SageMaker.")
        headers = {"x-amzn-RequestId": str(uuid.uuid4()), "X-Amzn-SageMaker-OutputLocation": accepted.output_location}
        if accepted.failure_location:
            headers["X-Amzn-SageMaker-FailureLocation"] = accepted.failure_location
        return JSONResponse({"InferenceId": accepted.inference_id}, status_code=202, headers=headers)

    return invoke_endpoint_async


def _shutdown(sagemaker: LocalSageMaker, plane: AsyncInference) -> None:
    """Fail what is queued, stop every instance, then let the workers publish those failures."""
    with sagemaker.lock:
        plane.close_all(SHUTDOWN_REASON)
    sagemaker.shutdown()
    plane.join(DRAIN_TIMEOUT_S)


def _shutdown_keeping_state(sagemaker: LocalSageMaker, plane: AsyncInference, state_dir: Path) -> None:
    """Keep what is queued or running, stop every instance, then write everything down for the next start."""
    with sagemaker.lock:
        plane.suspend_all()
    # Written at once too: the supervisor kills a server that takes long to stop, and then what is
    # running runs again after the restart rather than never.
    persistence.save(state_dir, sagemaker, plane)
    sagemaker.shutdown(keep=True)
    plane.join(DRAIN_TIMEOUT_S)  # a request that completed as its instance stopped is answered, not kept
    kept = persistence.save(state_dir, sagemaker, plane)
    log.info("kept %s in %s for the next start", persistence.described(kept), state_dir)


def create_app(settings: Settings | None = None, events: EventPublisher | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    sagemaker = LocalSageMaker(
        settings, events or EventPublisher.for_region(settings.region), logs=LogShipper.for_region(settings.region)
    )
    plane = AsyncInference(settings.region)
    sagemaker.add_status_listener(plane.endpoint_status_changed)
    sagemaker.add_instance_listener(plane.instance_changed)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("instance logs go to %s", settings.workdir)
        state_dir = settings.state_dir
        if state_dir is not None:
            await run_in_threadpool(persistence.restore, state_dir, sagemaker, plane)
        yield
        # No instance outlives the server, and no accepted request goes unanswered: it is
        # failed, or kept to run when the server starts again.
        if state_dir is None:
            await run_in_threadpool(_shutdown, sagemaker, plane)
        else:
            await run_in_threadpool(_shutdown_keeping_state, sagemaker, plane, state_dir)

    routes = [
        Route("/", _control_plane(sagemaker), methods=["POST"]),
        Route("/endpoints/{name}/async-invocations", _runtime_plane(sagemaker, plane), methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sagemaker = sagemaker
    app.state.async_inference = plane
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = os.environ.get("LOCAL_SAGEMAKER_HOST", DEFAULT_HOST)
    port = int(os.environ.get("LOCAL_SAGEMAKER_PORT", DEFAULT_PORT))
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
