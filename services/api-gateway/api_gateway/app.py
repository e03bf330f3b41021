"""The ASGI app: every route under the stage prefix, behind the API key check.

Middleware, outermost first:

1. ``ApiGatewayCors``: answers CORS preflights itself, without a key, as API
   Gateway's CORS did; adds ``Access-Control-Allow-Origin: *`` to every other
   answer (a 401/403 included, so a browser can read it).
2. ``CollapseSlashesMiddleware``: ``//`` in a path is ``/`` (the extension asks
   for ``/prod//dataset``); ``JsonBodiesMiddleware``: a body is JSON whatever its
   ``Content-Type`` (a browser labels the extension's JSON strings ``text/plain``).
3. ``BodyLimitMiddleware``: a body over what one AWS Lambda invocation carries
   (``api_gateway.limits.MAX_BODY_BYTES``, counted as it sits in the event) gets
   413, before the key is looked at when its ``Content-Length`` says so; any
   other body is counted as it is read, after the key check.
4. ``ApiKeyMiddleware``: nothing else gets further without a valid key, an
   ``OPTIONS`` that is not a preflight included.
5. ``IdempotencyMiddleware``: a creating request retried with the same ``Idempotency-Key`` gets the
   first answer again, never a second job (``api_gateway.idempotency``).
6. ``HeadAsGetMiddleware``: ``HEAD`` on any ``GET`` route, answered as the ``GET`` without its body.
7. ``TraceHeaderMiddleware``: the request's trace header into every command.

The OpenAPI document (``api_gateway.openapi``) lists every status each route can answer. List routes
answer pages that fit one Lambda response, with a continuation (``api_gateway.pages``).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from api_gateway.auth import ApiKeyMiddleware
from api_gateway.bodies import JsonBodiesMiddleware
from api_gateway.cors import ApiGatewayCors
from api_gateway.dependencies import EdgeDependencies
from api_gateway.errors import install_error_handlers
from api_gateway.head import HeadAsGetMiddleware
from api_gateway.idempotency import IdempotencyMiddleware
from api_gateway.limits import BodyLimitMiddleware
from api_gateway.openapi import install_openapi
from api_gateway.paths import CollapseSlashesMiddleware
from api_gateway.routes import assets, endpoints, inference, logs, training, webhooks
from api_gateway.tracing import TraceHeaderMiddleware

TITLE = "Stable Diffusion train-and-deploy API"
#: Every route's router, in the order the app tries them. Assets holds the catch-all /{dataset_name}/data,
#: which the seed's routes (route 29) must keep before any later two-segment path: webhooks come after it,
#: so GET /webhooks/data stays the data of a dataset named "webhooks" (no webhook id is "data": they are UUIDs).
ROUTERS = (endpoints.router, inference.router, training.router, logs.router, assets.router, webhooks.router)
#: What FastAPI itself serves under the stage: the OpenAPI document and its viewer.
DOCUMENT_PATHS = ("/openapi.json", "/docs")


def served_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the app answers, without the stage prefix: what the AWS API fronts.

    Every ``GET`` is answered for ``HEAD`` too (``HeadAsGetMiddleware``).
    """
    routes = [
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods)
    ]
    routes += [("GET", path) for path in DOCUMENT_PATHS]
    return routes + [("HEAD", path) for method, path in routes if method == "GET"]


def create_app(deps: EdgeDependencies) -> FastAPI:
    prefix = deps.settings.prefix
    app = FastAPI(
        title=TITLE,
        version="2023-07-05",
        openapi_url=f"{prefix}{DOCUMENT_PATHS[0]}",
        docs_url=f"{prefix}{DOCUMENT_PATHS[1]}",
        redoc_url=None,
    )
    app.state.deps = deps
    install_error_handlers(app)
    stage = APIRouter(prefix=prefix)
    for router in ROUTERS:
        stage.include_router(router)
    app.include_router(stage)
    install_openapi(app, deps.settings)
    # add_middleware puts each one outside the ones added before it: the last added runs first.
    app.add_middleware(TraceHeaderMiddleware)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(IdempotencyMiddleware, clock=deps.clock)
    app.add_middleware(ApiKeyMiddleware, keys=deps.settings.api_keys)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(JsonBodiesMiddleware)
    app.add_middleware(CollapseSlashesMiddleware)
    app.add_middleware(ApiGatewayCors)
    return app
