"""The ASGI app: every route under the stage prefix, behind the API key check."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.middleware.cors import CORSMiddleware

from api_gateway.auth import ApiKeyMiddleware
from api_gateway.dependencies import EdgeDependencies
from api_gateway.errors import install_error_handlers
from api_gateway.paths import CollapseSlashesMiddleware
from api_gateway.routes import assets, endpoints, inference, training
from api_gateway.tracing import TraceHeaderMiddleware

TITLE = "Stable Diffusion train-and-deploy API"
#: The request headers API Gateway's CORS allows by default.
CORS_ALLOWED_HEADERS = ("Content-Type", "X-Amz-Date", "Authorization", "X-Api-Key", "X-Amz-Security-Token")


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
    # No request gets further without a valid key...
    app.add_middleware(ApiKeyMiddleware, keys=deps.settings.api_keys)
    app.add_middleware(CollapseSlashesMiddleware)
    # ...except a CORS preflight, which browsers send without it: the CORS middleware runs first and
    # answers preflights itself, as API Gateway's CORS did; every other answer gets its headers too.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=list(CORS_ALLOWED_HEADERS),
    )
    return app
