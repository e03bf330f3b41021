"""``serve``: the HTTP side of the SageMaker container contract.

SageMaker sends ``GET /ping`` until it answers 200 and only then routes
traffic to the instance; then ``POST /invocations`` with an
InvocationRequest. The port comes from ``SAGEMAKER_BIND_TO_PORT``
(SageMaker sets it; 8080 otherwise). SageMaker needs ``0.0.0.0``; a local run
can keep the server off the network with ``SD_RUNTIME_HOST=127.0.0.1``.

Jobs run in a worker thread, one at a time, so ``/ping`` keeps answering
while a long job runs (SageMaker replaces an instance whose ping fails).
torch and diffusers are imported by the first job, not at start-up, so the
server is up in about a second; a background thread starts importing them
right away so the first job does not pay for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sd_runtime.errors import RequestError
from sd_runtime.invocations import Runtime
from sdmw_contracts.runtime import InvocationResponse

DEFAULT_PORT = 8080
DEFAULT_HOST = "0.0.0.0"

logger = logging.getLogger("sd_runtime")


def _preload() -> None:
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
    except Exception:  # the first job will report it with its own message
        logger.exception("preloading torch/diffusers failed")


def create_app(runtime: Runtime | None = None, preload: bool = False) -> Starlette:
    holder: dict[str, Runtime] = {}

    def get_runtime() -> Runtime:
        # Made on first use, so a misconfigured environment fails a job with its message, not the start-up.
        if "runtime" not in holder:
            holder["runtime"] = runtime or Runtime()
        return holder["runtime"]

    async def ping(request: Request) -> Response:
        # Nothing has to be loaded before a job can be taken: models come with each request.
        return Response(status_code=200)

    async def invocations(request: Request) -> Response:
        body = await request.body()
        try:
            response = await run_in_threadpool(lambda: get_runtime().invoke(body))
        except RequestError as error:
            logger.warning("invocation refused (%s): %s", error.status, error.message)
            return JSONResponse({"error": error.message}, status_code=error.status)
        except Exception as error:
            logger.exception("invocation failed")
            return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, status_code=500)
        return JSONResponse(_answer(response))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if preload:
            threading.Thread(target=_preload, name="preload", daemon=True).start()
        yield

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def _answer(response: InvocationResponse) -> dict:
    """The files written, the parameters and info; ``caption`` (A1111's interrogate answer) only when the
    job was an interrogation."""
    data = response.model_dump()
    if data.get("caption") is None:
        data.pop("caption", None)
    return data


def serve() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    host = os.environ.get("SD_RUNTIME_HOST", DEFAULT_HOST)
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT))
    uvicorn.run(create_app(preload=True), host=host, port=port, log_level="info")
