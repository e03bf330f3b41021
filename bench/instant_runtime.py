"""A stand-in for sd-runtime that answers at once, for measuring the middleware alone.

Serves the SageMaker container contract (``GET /ping``, ``POST /invocations``)
on ``SAGEMAKER_BIND_TO_PORT`` and does what the runtime's contract asks of it
(``sdmw_contracts.runtime``) with no model: it writes one prepared 8x8 JPEG
for every image the request's ``results`` name and the parameter file, then
answers. Not a runtime: it never generates anything.
"""

from __future__ import annotations

import io
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
from PIL import Image

from sdmw_contracts.runtime import InvocationRequest, InvocationResponse
from sdmw_contracts.s3 import split_s3_uri


def _picture() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 255)).save(out, format="JPEG", quality=95)
    return out.getvalue()


PICTURE = _picture()
S3 = boto3.client("s3")


def _put(uri: str, body: bytes, content_type: str) -> None:
    bucket, key = split_s3_uri(uri)
    S3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def answer(body: bytes) -> bytes:
    request = InvocationRequest.model_validate_json(body)
    results = request.results
    files = [results.prefix + name for name in results.images]
    for uri in files:
        _put(uri, PICTURE, "image/jpeg")
    parameters = {"seed": 1}
    info = json.dumps({"seed": 1})
    _put(
        results.prefix + results.parameters,
        json.dumps({"parameters": parameters, "info": info}).encode(),
        "application/json",
    )
    return InvocationResponse(files=files, parameters=parameters, info=info).model_dump_json().encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._reply(200 if self.path == "/ping" else 404, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/invocations":
            self._reply(404, b"{}")
            return
        self._reply(200, answer(body))

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    host = os.environ.get("SD_RUNTIME_HOST", "127.0.0.1")
    ThreadingHTTPServer((host, int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))), Handler).serve_forever()
