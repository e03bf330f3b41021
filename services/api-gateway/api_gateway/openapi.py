"""The OpenAPI document as the app really behaves.

Each route documents the refusals it can answer itself (``responses=answers(...)`` where it is
declared; FastAPI adds the 422 of any route with parameters or a body). This adds what is the same
everywhere, or known only once the settings are:

- 401 and 403 on every operation (the key check answers them before anything else);
- 413 on every operation with a body (over what one Lambda invocation carries, ``api_gateway.limits``);
- the cap of ``expires_in`` (``PRESIGN_MAX_EXPIRY_S``) as its ``maximum``, and the hour URLs signed with
  temporary credentials are held to (``api_gateway.presign``);
- a ``head`` operation beside every ``get`` (``api_gateway.head``): the same answers, without bodies.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api_gateway.limits import MAX_BODY_BYTES
from api_gateway.presign import EXPIRES_IN_HEADER, TEMPORARY_CREDENTIALS_MAX_EXPIRY_S
from api_gateway.settings import EdgeSettings
from sdmw_contracts.api.common import GatewayMessage

_GATEWAY_MESSAGE = {"$ref": "#/components/schemas/GatewayMessage"}
_KEY_ANSWERS = {
    "401": "No x-api-key header.",
    "403": "The x-api-key is not a valid key.",
}
_TOO_LARGE = (
    f"The body takes more than {MAX_BODY_BYTES:,} bytes in the AWS Lambda event that carries it (each quote and "
    "backslash counted twice, each non-ASCII byte three times); API Gateway refuses bodies over 10 MB itself. "
    "The message says so, and how to send large images through S3 instead."
)


def _gateway_answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _GATEWAY_MESSAGE}}}


def document(app: FastAPI, settings: EdgeSettings) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schema.setdefault("components", {}).setdefault("schemas", {})["GatewayMessage"] = GatewayMessage.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in _KEY_ANSWERS.items():
                responses.setdefault(status, _gateway_answer(description))
            if "requestBody" in operation:
                responses.setdefault("413", _gateway_answer(_TOO_LARGE))
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "expires_in":
                    _cap_expiry(parameter, settings.presign_max_expiry_s)
            operation["responses"] = dict(sorted(responses.items()))
        if "get" in operations and "head" not in operations:
            operations["head"] = _head_of(operations["get"])
    return schema


def _cap_expiry(parameter: dict[str, Any], maximum: int) -> None:
    target = parameter.get("schema", {})
    # ``int | None`` is documented as anyOf [integer, null]: the bound belongs to the integer.
    for option in target.get("anyOf", [target]):
        if option.get("type") == "integer":
            option["maximum"] = maximum
    parameter["description"] = (
        f"Seconds the presigned URLs stay valid: 1..{maximum} (PRESIGN_MAX_EXPIRY_S); more is refused with 400. "
        f"URLs signed with temporary credentials (on AWS, always) are granted at most "
        f"{TEMPORARY_CREDENTIALS_MAX_EXPIRY_S} seconds, as they cannot outlive them: the answer's {EXPIRES_IN_HEADER} "
        "says what was granted."
    )


def _head_of(get: dict[str, Any]) -> dict[str, Any]:
    head = copy.deepcopy(get)
    head["operationId"] = f"{get.get('operationId', 'get')}_head"
    head["summary"] = f"{get.get('summary', '')} (headers only)".strip()
    head["description"] = "The GET answer's status and headers, without its body."
    for response in head.get("responses", {}).values():
        response.pop("content", None)
    return head


def install_openapi(app: FastAPI, settings: EdgeSettings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
