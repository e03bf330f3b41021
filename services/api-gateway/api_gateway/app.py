"""The ASGI app: every route under the stage prefix, behind the API key check."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from api_gateway.auth import ApiKeyMiddleware
from api_gateway.dependencies import EdgeDependencies
from api_gateway.errors import install_error_handlers
from api_gateway.routes import assets, endpoints, inference, training
from api_gateway.tracing import TraceHeaderMiddleware

TITLE = "Stable Diffusion train-and-deploy API"


def create_app(deps: EdgeDependencies) -> FastAPI:
    prefix = deps.settings.prefix
    app = FastAPI(
        title=TITLE,
        version="2023-07-05",
        openapi_url=f"{prefix}/openapi.json",
        docs_url=f"{prefix}/docs",
        redoc_url=None,
    )
    app.state.deps = deps
    install_error_handlers(app)
    stage = APIRouter(prefix=prefix)
    stage.include_router(endpoints.router)
    stage.include_router(inference.router)
    stage.include_router(training.router)
    stage.include_router(assets.router)  # last: it holds the catch-all /{dataset_name}/data
    app.include_router(stage)
    app.add_middleware(TraceHeaderMiddleware)
    # Added last, so it runs first: no request gets further without a valid key.
    app.add_middleware(ApiKeyMiddleware, keys=deps.settings.api_keys)
    return app
